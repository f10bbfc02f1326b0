"""Saving code under real concurrency: several OS processes, each with its own PostgreSQL
connection, save code for one participant's task at the same moment (two tabs autosaving,
Runs racing an autosave).

``code_save`` numbers versions under a lock on the task's state row, and an autosave is
compare-and-set against the version its editor was based on. What must hold whatever the
interleaving: no acknowledged save is lost, versions are 1..n without a gap or a repeat, the
stored latest version is the last acknowledged one, and of several autosaves based on the same
version exactly one is stored (the others are told to reload). Each worker holds still after
reading the state row, so without the lock the races happen every time: the control run with
``select_for_update`` switched off shows this test can fail.

SQLite serialises every writer on one file lock: PostgreSQL only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db.models.query import QuerySet

from tests.builders import enroll, launched_trial
from tests.processes import POSTGRES_ONLY, run_in_processes, switch_locks_off
from trials.models import CodeSnapshot, Participant, TaskState
from trials.services import (
    coding,
)

pytestmark = POSTGRES_ONLY

SAMPLE = Path(settings.BASE_DIR) / "studies" / "trio-skill-formation"
STAGE = "main_tasks"
TASK = "tasks/concurrent_greetings"
SAVERS = 6
# How long each save holds still after reading the task's state row.
WIDEN_SECONDS = 0.2


@pytest.fixture
def participant(transactional_db: None, tmp_path: Path) -> Participant:
    # transactional_db: every write is committed, so the child processes see it.
    person = enroll(launched_trial(), pid="saver", through=("warmup",))
    stage, task = coding.coding_task(participant=person, stage_key=STAGE, task_folder=TASK)
    first = coding.code_save(
        participant=person, stage=stage, task=task, code="v1\n", base_version=None, source="load"
    )
    assert first.version == 1
    return person


def _save_worker(job: tuple[str, str, int | None, bool], barrier: Any) -> str:
    """One save; returns "v<version>" when acknowledged, else the error's name."""
    participant_id, code, base_version, locks_off = job
    get = QuerySet.get

    def slow_get(self: QuerySet[Any], *args: Any, **kwargs: Any) -> Any:
        found = get(self, *args, **kwargs)
        if self.model is TaskState:
            time.sleep(WIDEN_SECONDS)
        return found

    QuerySet.get = slow_get  # type: ignore[method-assign]
    if locks_off:
        switch_locks_off()
    participant = Participant.objects.select_related("trial", "current_stage").get(
        pk=participant_id
    )
    stage, task = coding.coding_task(participant=participant, stage_key=STAGE, task_folder=TASK)
    barrier.wait()
    try:
        snapshot = coding.code_save(
            participant=participant,
            stage=stage,
            task=task,
            code=code,
            base_version=base_version,
            source="autosave" if base_version is not None else "run",
        )
    except Exception as exc:
        return type(exc).__name__
    return f"v{snapshot.version}"


def _stored(participant: Participant) -> dict[int, str]:
    rows = CodeSnapshot.objects.filter(participant=participant, task=TASK)
    return dict(rows.values_list("version", "code"))


def _race(participant: Participant, base_version: int | None, *, locks_off: bool) -> list[str]:
    codes = [f"saved by {n}\n" for n in range(SAVERS)]
    jobs = [(participant.pk, code, base_version, locks_off) for code in codes]
    return run_in_processes(_save_worker, jobs)


def test_racing_saves_are_all_kept_in_gap_free_versions(participant: Participant) -> None:
    outcomes = _race(participant, None, locks_off=False)

    assert sorted(outcomes) == [f"v{n}" for n in range(2, SAVERS + 2)]
    stored = _stored(participant)
    assert sorted(stored) == list(range(1, SAVERS + 2))
    acknowledged = {int(o[1:]): f"saved by {n}\n" for n, o in enumerate(outcomes)}
    assert all(stored[version] == code for version, code in acknowledged.items())
    state = TaskState.objects.get(participant=participant, task=TASK)
    assert state.latest_version == max(acknowledged)


def test_racing_autosaves_from_one_base_store_exactly_one(participant: Participant) -> None:
    outcomes = _race(participant, 1, locks_off=False)

    assert sorted(outcomes) == ["SaveConflict"] * (SAVERS - 1) + ["v2"]
    winner = f"saved by {outcomes.index('v2')}\n"
    assert _stored(participant) == {1: "v1\n", 2: winner}
    assert TaskState.objects.get(participant=participant, task=TASK).latest_version == 2


def test_control_without_the_lock_the_same_race_breaks(participant: Participant) -> None:
    """The control: proves the tests above can fail (and that the lock is what holds)."""
    outcomes = _race(participant, None, locks_off=True)

    stored = _stored(participant)
    acknowledged = [o for o in outcomes if o.startswith("v")]
    lost_or_refused = len(acknowledged) < SAVERS or sorted(stored) != list(range(1, SAVERS + 2))
    assert lost_or_refused, outcomes
