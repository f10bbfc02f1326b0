"""The assistant's message budget under real concurrency: several OS processes, each with its
own PostgreSQL connection, ask for one participant at the same moment.

The budget is checked and the turn stored as one step under a lock on the participant's
allocation row (``trials.services.assistant._reserve_turn``); without it every request can
count the turns before any of them inserts, and the participant gets more than the budget.

To make the interleaving certain rather than lucky, each worker slows the budget check down
(it sleeps after counting): with the lock the requests still pass one at a time, so exactly
the budget is accepted; the control run with ``select_for_update`` switched off in the workers
shows that the same race then overspends, so this test can fail.

SQLite serialises every writer on one file lock: PostgreSQL only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.builders import enroll_in_arm, launched_trial
from tests.processes import POSTGRES_ONLY, run_in_processes, switch_locks_off
from trials.event_types import EventName
from trials.models import AssistantTurn, Event, Participant, Trial
from trials.services import (
    assistant,
)

pytestmark = POSTGRES_ONLY

SAMPLE = Path(settings.BASE_DIR) / "studies" / "trio-skill-formation"
TASK = "tasks/concurrent_greetings"
BUDGET = 3
ASKS = 8
# How long each worker holds still between counting the turns and storing its own: long
# enough that, without the lock, every request has counted before any has inserted.
WIDEN_SECONDS = 0.3


@pytest.fixture
def trial(transactional_db: None, tmp_path: Path) -> Trial:
    # transactional_db: every write is committed, so the child processes see it.
    def budget(folder: Path) -> None:
        toml = folder / "trial.toml"
        text = toml.read_text()
        start = text.index("[arms.assistant]")
        end = text.index("[[arms]]", start)
        table = f'[arms.assistant]\nprovider = "scripted"\n\n[arms.budget]\nmessages = {BUDGET}\n\n'
        toml.write_text(text[:start] + table + text[end:])

    return launched_trial(tmp_path, edit=budget)


def _assistant_participant(trial: Trial) -> Participant:
    """A participant of the assistant arm at the coding stage."""
    return enroll_in_arm(trial, "ai", through=("warmup",))


def _ask_worker(job: tuple[str, bool], barrier: Any) -> str:
    """One request for the assistant, started together with the others."""
    participant_id, locks_off = job
    counted = assistant._over_budget

    def slow_count(*args: Any, **kwargs: Any) -> str | None:
        reason = counted(*args, **kwargs)
        time.sleep(WIDEN_SECONDS)
        return reason

    assistant._over_budget = slow_count  # type: ignore[assignment]
    if locks_off:
        switch_locks_off()
    participant = Participant.objects.select_related("trial", "current_stage").get(
        pk=participant_id
    )
    barrier.wait()
    try:
        assistant.assistant_begin(
            participant=participant,
            stage_key="main_tasks",
            task_folder=TASK,
            question="How do I start two tasks at once?",
            code="import trio\n",
        )
    except assistant.AssistantRefused as exc:
        return exc.reason
    return "accepted"


def _race(participant: Participant, *, locks_off: bool) -> list[str]:
    return run_in_processes(_ask_worker, [(participant.pk, locks_off)] * ASKS)


def test_concurrent_asks_get_exactly_the_message_budget(trial: Trial) -> None:
    participant = _assistant_participant(trial)
    outcomes = _race(participant, locks_off=False)
    assert sorted(outcomes) == sorted(["accepted"] * BUDGET + ["message_budget"] * (ASKS - BUDGET))
    assert AssistantTurn.objects.filter(participant=participant).count() == BUDGET
    # Every refusal is logged (after its transaction, so not rolled back with it).
    refused = Event.objects.filter(participant=participant, type=EventName.ASSISTANT_REFUSED)
    assert refused.count() == ASKS - BUDGET


def test_control_without_the_lock_the_same_race_overspends(trial: Trial) -> None:
    """The control: proves the test above can fail (and that the lock is what holds)."""
    participant = _assistant_participant(trial)
    outcomes = _race(participant, locks_off=True)
    assert outcomes.count("accepted") > BUDGET
    assert AssistantTurn.objects.filter(participant=participant).count() > BUDGET
