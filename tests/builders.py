"""Builders for the rows tests need most often, made through the services (so every row is
one the application itself could have written), instead of rows assembled by hand.

- :func:`launched_trial`: the sample trial (or a copy edited by the test), imported and live.
- :func:`enroll`: a participant who consented and was screened in (so allocated), then went
  through the stages given, in order.
- :func:`enroll_in_arm`: the same, enrolling until the allocation gives the wanted arm.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.conf import settings

from trials.definition import load_trial_dir
from trials.models import Participant, Trial
from trials.services import (
    participant_complete_stage,
    participant_consent,
    participant_enter,
    participant_screen,
    trial_import,
    trial_launch,
)

SAMPLE = Path(settings.BASE_DIR) / "studies" / "trio-skill-formation"

# Eligible screening answers of the sample trial.
ELIGIBLE: dict[str, Any] = {
    "coding_years": "4-6",
    "python_years": "4+",
    "python_frequency": "daily",
    "tried_ai_assistant": "yes",
    "used_trio": "no",
    "async_experience": "3",
    "used_asyncio": "no",
}

# Answers to the sample quiz (right, wrong, "I don't know" and free text mixed).
QUIZ_ANSWERS: dict[str, Any] = {
    "nursery_exit": "b",
    "start_soon_returns": "idk",
    "never_awaited": "Calling save(record) only makes a coroutine; it needs await save(record).",
    "async_await_facts": ["a", "c"],
    "start_time": "3",
    "attention": "c",
}

_numbers = itertools.count(1)


def launched_trial(
    tmp_path: Path | None = None, *, edit: Callable[[Path], None] | None = None
) -> Trial:
    """The sample trial, launched. With ``edit``, a copy under ``tmp_path`` is changed by
    ``edit(folder)`` first."""
    folder = SAMPLE
    if edit is not None:
        assert tmp_path is not None, "an edited trial needs a folder to copy it to"
        folder = tmp_path / "trial"
        shutil.copytree(SAMPLE, folder)
        edit(folder)
    return trial_launch(trial=trial_import(definition=load_trial_dir(folder)).trial)


def enroll(
    trial: Trial,
    answers: dict[str, Any] | None = None,
    *,
    through: Iterable[str] = (),
    external: bool = True,
    pid: str | None = None,
) -> Participant:
    """A participant who consented and was screened in (so allocated), then finished the
    stages in ``through``, in order (the quiz with :data:`QUIZ_ANSWERS`)."""
    n = next(_numbers)
    ids = (
        {"PROLIFIC_PID": pid or f"PID{n:06d}", "STUDY_ID": f"STUDY{n}", "SESSION_ID": f"SESS{n}"}
        if external
        else {}
    )
    participant = participant_enter(trial=trial, external_ids=ids)
    participant = participant_consent(participant=participant, stage_key="consent", agreed=True)
    participant = participant_screen(
        participant=participant, stage_key="screening", answers=dict(answers or ELIGIBLE)
    )
    for stage_key in through:
        participant = participant_complete_stage(
            participant=participant,
            stage_key=stage_key,
            answers=QUIZ_ANSWERS if stage_key == "quiz" else {},
        )
    return participant


def enroll_in_arm(trial: Trial, arm: str, *, through: Iterable[str] = ()) -> Participant:
    """:func:`enroll` until the randomization puts someone in ``arm`` (a block holds every
    arm, so a few tries are enough)."""
    stages = tuple(through)
    for _ in range(16):
        participant = enroll(trial)
        if participant.allocation.arm.key == arm:
            for stage_key in stages:
                participant = participant_complete_stage(
                    participant=participant,
                    stage_key=stage_key,
                    answers=QUIZ_ANSWERS if stage_key == "quiz" else {},
                )
            return participant
    raise AssertionError(f"16 enrollments and none in arm {arm!r}: is the arm's weight 0?")
