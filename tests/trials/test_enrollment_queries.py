"""The statements each enrollment request costs, pinned: a change that adds reads or writes to
the busiest path of a study (500 people in an hour) fails here and must say why. And the
allocation reads one row of its stratum, never the earlier allocations: its cost does not grow
with the trial (permuted blocks kept per process; minimization margins kept with the
sequence)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.builders import ELIGIBLE, enroll, launched_trial
from trials import randomization
from trials.models import Allocation, AllocationSequence, Event, Trial
from trials.services import allocation, participant_consent, participant_enter, participant_screen

pytestmark = pytest.mark.django_db

# Statements per request, measured in a test transaction (so each atomic block adds a
# SAVEPOINT and a RELEASE). Lower them freely; raise them only with a reason.
BUDGET = {
    "entry": 10,
    "consent page": 3,
    "consent": 10,
    "screening page": 5,
    "screening (allocates)": 17,
}


def _requests(trial: Trial, pid: str) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    base = f"/t/{trial.slug}"
    return [
        ("entry", "get", f"{base}/?PROLIFIC_PID={pid}", None),
        ("consent page", "get", f"{base}/s/consent/", None),
        ("consent", "post", f"{base}/s/consent/", {"decision": "agree", "agree": "on"}),
        ("screening page", "get", f"{base}/s/screening/", None),
        ("screening (allocates)", "post", f"{base}/s/screening/", ELIGIBLE),
    ]


def test_each_enrollment_request_stays_within_its_statements() -> None:
    trial = launched_trial()
    for n in range(3):  # the first and later enrollments alike
        client = Client()
        for name, method, path, form in _requests(trial, f"pid{n}"):
            with CaptureQueriesContext(connection) as queries:
                response = getattr(client, method)(path, form) if form else client.get(path)
            assert response.status_code in (200, 302), (name, response.status_code)
            used = len(queries.captured_queries)
            statements = "\n".join(q["sql"][:120] for q in queries.captured_queries)
            assert used <= BUDGET[name], f"{name}: {used} statements\n{statements}"
    assert Allocation.objects.filter(trial=trial).count() == 3


def _allocation_statements(trial: Trial, answers: dict[str, Any]) -> list[str]:
    """The statements of screening (which allocates) one more participant."""
    participant = participant_enter(trial=trial, external_ids={})
    participant = participant_consent(participant=participant, stage_key="consent", agreed=True)
    with CaptureQueriesContext(connection) as queries:
        participant_screen(participant=participant, stage_key="screening", answers=dict(answers))
    assert Allocation.objects.filter(participant=participant).exists()
    return [q["sql"] for q in queries.captured_queries]


def _reads_earlier_allocations(statements: list[str]) -> list[str]:
    """Reads of the allocations table that are not about the one participant."""
    return [
        s
        for s in statements
        if s.startswith("SELECT")
        and '"trials_allocation"' in s.partition(" WHERE ")[0]
        and '"participant_id" =' not in s.partition(" WHERE ")[2]
    ]


def test_permuted_block_allocation_costs_the_same_after_5_and_after_120() -> None:
    trial = launched_trial()
    answers = dict(ELIGIBLE)
    for _ in range(5):
        enroll(trial, answers)
    early = _allocation_statements(trial, answers)
    kept = allocation._schedules[(trial.pk, trial.randomization_seed)]
    schedule_object = next(iter(kept.values()))
    for _ in range(120):
        enroll(trial, answers)
    late = _allocation_statements(trial, answers)
    assert len(early) == len(late)
    # The same schedule object, extended block by block, not drawn again from allocation 0.
    assert next(iter(kept.values())) is schedule_object
    assert not _reads_earlier_allocations(late)
    # The arms still follow the stratum's schedule, drawn from the start.
    rows = Allocation.objects.filter(trial=trial).order_by("sequence_number")
    first = rows.first()
    assert first is not None
    stratum = first.stratum
    arms = [(a.key, a.weight) for a in trial.arms.order_by("order")]
    schedule = randomization.BlockSchedule(
        [randomization.ArmWeight(k, w) for k, w in arms],
        trial.definition["randomization"]["block_sizes"],
        trial.randomization_seed,
        stratum,
    )
    realised = [a.arm.key for a in rows.filter(stratum=stratum).select_related("arm")]
    assert realised[: len(realised) - 1] == [schedule.arm_at(i) for i in range(len(realised) - 1)]


def _minimization(tmp_path: Path) -> Trial:
    def edit(folder: Path) -> None:
        toml = folder / "trial.toml"
        text = toml.read_text()
        start, end = text.index("[randomization]"), text.index("[[arms]]")
        block = (
            '[randomization]\nscheme = "minimization"\nfactors = ["coding_years", "used_asyncio"]\n'
        )
        toml.write_text(text[:start] + block + "\n" + text[end:])

    return launched_trial(tmp_path, edit=edit)


def test_minimization_reads_its_margins_not_every_allocation(tmp_path: Path) -> None:
    trial = _minimization(tmp_path)
    levels = [("1-3", "yes"), ("4-6", "no"), ("7+", "no")]
    for i in range(30):
        years, used = levels[i % 3]
        enroll(trial, ELIGIBLE | {"coding_years": years, "used_asyncio": used})
    statements = _allocation_statements(trial, ELIGIBLE)
    assert not _reads_earlier_allocations(statements)
    # The margins kept with the sequence are exactly the counts of what was allocated.
    config = trial.definition["randomization"]
    counted = randomization.minimization_counts(
        config,
        Allocation.objects.filter(trial=trial).values_list("arm__key", "participant__baseline"),
    )
    assert AllocationSequence.objects.get(trial=trial).margins == counted


def test_a_sequence_without_margins_is_counted_once_then_kept(tmp_path: Path) -> None:
    trial = _minimization(tmp_path)
    for _ in range(4):
        enroll(trial, ELIGIBLE)
    AllocationSequence.objects.filter(trial=trial).update(margins=None)  # as before 0007
    statements = _allocation_statements(trial, ELIGIBLE)
    assert _reads_earlier_allocations(statements)  # counted from the allocations, once
    assert not _reads_earlier_allocations(_allocation_statements(trial, ELIGIBLE))
    config = trial.definition["randomization"]
    counted = randomization.minimization_counts(
        config,
        Allocation.objects.filter(trial=trial).values_list("arm__key", "participant__baseline"),
    )
    assert AllocationSequence.objects.get(trial=trial).margins == counted


def test_a_telemetry_batch_costs_the_same_statements_whatever_its_size() -> None:
    """The events endpoint: one multi-row INSERT per batch, the same fixed reads for 1 event
    as for 100 (a per-event statement would show here)."""
    trial = launched_trial()
    client = Client()
    for _, method, path, form in _requests(trial, "telemetry"):  # now at the warm-up
        assert getattr(client, method)(path, *([form] if form else [])).status_code < 400
    used = []
    # Up to 100: within one INSERT on SQLite too (999 parameters per statement).
    for size in (1, 10, 100):
        events = [
            {"id": f"b{size}-{i}", "type": "edit", "stage": "warmup",
             "payload": {"task": "tasks/warmup", "changes": [[0, 0, "x"]]}}
            for i in range(size)
        ]  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                f"/t/{trial.slug}/api/events/",
                json.dumps({"events": events}),
                content_type="application/json",
            )
        assert response.json() == {"stored": size, "duplicates": 0}
        used.append(len(queries.captured_queries))
    assert used[0] == used[1] == used[2] <= 5, used
    assert Event.objects.filter(client_id__startswith="b100-").count() == 100
