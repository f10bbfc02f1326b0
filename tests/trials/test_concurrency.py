"""Allocation under real concurrency: several OS processes, each with its own PostgreSQL
connection, screen participants at the same moment.

What must hold whatever the interleaving (DESIGN.md, "Randomization"): one allocation per
participant; per stratum, sequence numbers 1..n with no gap; the realised arms are exactly the
stratum's permuted-block schedule (so every completed block is balanced); a second call returns
the same arm; and two requests racing on one participant end with one allocation and no 500.

SQLite serialises every writer on one file lock, so it proves nothing here: these tests run on
PostgreSQL only (CI runs the suite once with ``DATABASE_URL`` pointing at PostgreSQL).

These tests fail without the locks: ``test_the_allocation_race_breaks_without_the_locks`` shows
it on every run (a control with ``select_for_update`` switched off in the workers). By hand,
disabling ``select_for_update`` for one run (a throwaway pytest plugin doing
``QuerySet.select_for_update = lambda self, *a, **k: self``, loaded with ``-p``) made each of
the first three fail on every try: the enrollment test with ``IntegrityError`` on
``allocation_sequence_unique`` (two transactions read the same ``next_index``); the service race
with ``IntegrityError`` on ``stage_record_unique`` (the loser's stale full-row save put the
winner back at screening, then advanced it a second time); the POST race with 500 responses.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from tests.builders import ELIGIBLE
from tests.processes import POSTGRES_ONLY, run_in_processes, switch_locks_off
from trials import randomization
from trials.definition import load_trial_dir
from trials.models import Allocation, Participant, Trial
from trials.randomization import ArmWeight, BlockSchedule
from trials.services import (
    StageConflict,
    allocation_assign,
    participant_consent,
    participant_enter,
    participant_screen,
    trial_import,
    trial_launch,
)

pytestmark = POSTGRES_ONLY

SAMPLE_TRIAL = Path(__file__).resolve().parents[2] / "studies" / "trio-skill-formation"
SLUG = "trio-skill-formation"
PROCESSES = 8

# Uneven on purpose, so strata end in the middle of a block at different points.
STRATA_SIZES = {"1-3": 96, "4-6": 84, "7+": 60}


def _answers(coding_years: str, *, eligible: bool = True) -> dict[str, str]:
    answers = ELIGIBLE | {"coding_years": coding_years}
    if not eligible:
        answers["used_trio"] = "yes"
    return answers


@pytest.fixture
def trial(transactional_db: None) -> Trial:
    # transactional_db: every write is committed, so the child processes see it.
    result = trial_import(definition=load_trial_dir(SAMPLE_TRIAL))
    return trial_launch(trial=result.trial)


def _at_screening(trial: Trial, prolific_pid: str) -> Participant:
    participant = participant_enter(trial=trial, external_ids={"PROLIFIC_PID": prolific_pid})
    return participant_consent(participant=participant, stage_key="consent", agreed=True)


# --- running work in several processes at once ----------------------------------------------


def _load(participant_ids: list[str]) -> list[Participant]:
    # As a view does: a participant read before the write, possibly stale by the time of it.
    return [
        Participant.objects.select_related("trial", "current_stage").get(pk=pk)
        for pk in participant_ids
    ]


def _screen_worker(job: list[tuple[str, dict[str, str]]], barrier: Any) -> list[tuple[str, str]]:
    loaded = list(zip(_load([pk for pk, _ in job]), [answers for _, answers in job], strict=True))
    barrier.wait()
    outcomes = []
    for participant, answers in loaded:
        try:
            participant_screen(participant=participant, stage_key="screening", answers=answers)
            outcomes.append((participant.pk, "screened"))
        except StageConflict:
            outcomes.append((participant.pk, "StageConflict"))
    return outcomes


def _enter_then_screen_worker(
    job: list[tuple[str, dict[str, str]]], barrier: Any
) -> list[tuple[str, str, str]]:
    """Enter and consent this process's participants (concurrently with the other processes),
    then, all together, screen them."""
    trial = Trial.objects.get(slug=SLUG, status=Trial.Status.LIVE)
    pks = [_at_screening(trial, prolific_pid).pk for prolific_pid, _ in job]
    outcomes = _screen_worker(list(zip(pks, [answers for _, answers in job], strict=True)), barrier)
    return [
        (prolific_pid, pk, outcome)
        for (prolific_pid, _), (pk, outcome) in zip(job, outcomes, strict=True)
    ]


def _post_screening_worker(job: list[tuple[str, dict[str, str]]], barrier: Any) -> list[Any]:
    """The same race through the participant's page: POST the screening form."""
    cookie_name = f"stp_{SLUG}"
    clients = []
    for signed_cookie, _ in job:
        client = Client(raise_request_exception=False)
        client.cookies[cookie_name] = signed_cookie
        clients.append(client)
    connections["default"].ensure_connection()
    barrier.wait()
    outcomes = []
    for client, (_, answers) in zip(clients, job, strict=True):
        response = client.post(f"/t/{SLUG}/s/screening/", answers)
        outcomes.append((response.status_code, response.get("Location", "")))
    return outcomes


def _allocate_worker(participant_ids: list[str], barrier: Any) -> list[tuple[str, str]]:
    loaded = _load(participant_ids)
    barrier.wait()
    outcomes = []
    for participant in loaded:
        try:
            allocation = allocation_assign(participant=participant)
            outcomes.append((participant.pk, f"{allocation.pk}:{allocation.arm.key}"))
        except Exception as exc:
            outcomes.append((participant.pk, type(exc).__name__))
    return outcomes


# --- checks -------------------------------------------------------------------------------


def _assert_sequences_follow_the_schedule(trial: Trial) -> None:
    """Per stratum: sequence numbers 1..n, and arm i is exactly the schedule's arm i, which
    makes every completed block exactly balanced (also checked directly)."""
    trial.refresh_from_db()
    config = trial.definition["randomization"]
    arms = [ArmWeight(arm.key, arm.weight) for arm in trial.arms.order_by("order")]
    total_weight = sum(arm.weight for arm in arms)
    by_stratum: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for stratum, number, arm_key in Allocation.objects.filter(trial=trial).values_list(
        "stratum", "sequence_number", "arm__key"
    ):
        by_stratum[stratum].append((number, arm_key))
    assert by_stratum, "nothing was allocated"
    for stratum, rows in by_stratum.items():
        rows.sort()
        n = len(rows)
        assert [number for number, _ in rows] == list(range(1, n + 1)), stratum
        schedule = BlockSchedule(arms, config["block_sizes"], trial.randomization_seed, stratum)
        realised = [arm_key for _, arm_key in rows]
        assert realised == [schedule.arm_at(i) for i in range(n)], stratum
        boundary = 0
        for block in schedule.blocks():
            boundary += len(block)
            if boundary > n:
                break
            counts = Counter(realised[:boundary])
            assert counts == {arm.key: boundary // total_weight * arm.weight for arm in arms}, (
                f"{stratum}: unbalanced after {boundary} allocations"
            )


# --- tests --------------------------------------------------------------------------------


def test_simultaneous_screenings_allocate_each_participant_once_on_schedule(
    trial: Trial,
) -> None:
    work = [
        (f"elig-{coding_years}-{i}", _answers(coding_years))
        for coding_years, size in STRATA_SIZES.items()
        for i in range(size)
    ]
    # A few screen-outs in the mix: they must not take a sequence number.
    work += [(f"inelig-{i}", _answers("4-6", eligible=False)) for i in range(24)]
    random.Random(20260101).shuffle(work)  # every process gets a mix of strata

    outcomes = run_in_processes(
        _enter_then_screen_worker, [work[k::PROCESSES] for k in range(PROCESSES)]
    )

    results = [row for chunk in outcomes for row in chunk]
    assert sorted(pid for pid, _, _ in results) == sorted(pid for pid, _ in work)
    assert {outcome for _, _, outcome in results} == {"screened"}
    pk_of = {pid: pk for pid, pk, _ in results}
    eligible_ids = {pk_of[pid] for pid, answers in work if answers["used_trio"] == "no"}
    allocations = Allocation.objects.filter(trial=trial)
    assert allocations.count() == len(eligible_ids) == sum(STRATA_SIZES.values())
    assert set(allocations.values_list("participant_id", flat=True)) == eligible_ids
    for participant in Participant.objects.filter(pk__in=eligible_ids).select_related(
        "allocation", "current_stage"
    ):
        assert participant.status == Participant.Status.ACTIVE
        assert participant.current_stage is not None
        assert participant.current_stage.key == "warmup"
        assert participant.allocation.stratum == participant.stratum
    assert not Participant.objects.filter(trial=trial, eligible=False, allocation__isnull=False)
    assert dict(Counter(allocations.values_list("stratum", flat=True))) == {
        f"coding_years={level}": size for level, size in STRATA_SIZES.items()
    }
    _assert_sequences_follow_the_schedule(trial)

    # Asking again returns the same allocation, and screening again is refused.
    first = dict(allocations.values_list("participant_id", "arm__key"))
    for participant in Participant.objects.filter(pk__in=eligible_ids).select_related("trial"):
        assert allocation_assign(participant=participant).arm.key == first[participant.pk]
    prolific_pid, answers = work[0]
    replay = Participant.objects.select_related("trial").get(pk=pk_of[prolific_pid])
    replay.current_stage = trial.stages.get(key="screening")  # a stale copy, as in a 2nd tab
    with pytest.raises(StageConflict):
        participant_screen(participant=replay, stage_key="screening", answers=answers)
    assert Allocation.objects.filter(trial=trial).count() == len(eligible_ids)


RACERS = 4
RACED = 30


def _raced_participants(trial: Trial) -> list[tuple[Participant, dict[str, str]]]:
    levels = list(STRATA_SIZES)
    return [
        (_at_screening(trial, f"race-{i}"), _answers(levels[i % len(levels)])) for i in range(RACED)
    ]


def test_one_participant_screened_by_racing_processes_is_allocated_once(trial: Trial) -> None:
    raced = [(participant.pk, answers) for participant, answers in _raced_participants(trial)]

    # Every process screens every participant, in the same order: RACERS requests per person.
    outcomes = run_in_processes(_screen_worker, [raced] * RACERS)

    per_participant: dict[str, Counter[str]] = defaultdict(Counter)
    for chunk in outcomes:
        for pk, outcome in chunk:
            per_participant[pk][outcome] += 1
    for pk, _ in raced:
        assert per_participant[pk] == {"screened": 1, "StageConflict": RACERS - 1}, pk
    assert Allocation.objects.filter(trial=trial).count() == RACED
    _assert_sequences_follow_the_schedule(trial)


def test_racing_screening_posts_all_redirect_to_the_next_stage(trial: Trial) -> None:
    signed: list[tuple[str, dict[str, str]]] = []
    for i in range(RACED):
        client = Client()
        client.get(f"/t/{SLUG}/", {"PROLIFIC_PID": f"post-race-{i}"})
        response = client.post(f"/t/{SLUG}/s/consent/", {"agree": "on", "decision": "agree"})
        assert response.status_code == 302
        assert response["Location"] == f"/t/{SLUG}/s/screening/"
        levels = list(STRATA_SIZES)
        signed.append((client.cookies[f"stp_{SLUG}"].value, _answers(levels[i % len(levels)])))

    outcomes = run_in_processes(_post_screening_worker, [signed] * RACERS)

    # The winner is redirected onwards; each loser hits StageConflict, which the view turns
    # into the same redirect: no 500, whoever wins.
    responses = Counter(outcome for chunk in outcomes for outcome in chunk)
    assert responses == {(302, f"/t/{SLUG}/s/warmup/"): RACED * RACERS}
    assert Allocation.objects.filter(trial=trial).count() == RACED
    assert Participant.objects.filter(trial=trial, current_stage__key="warmup").count() == RACED
    _assert_sequences_follow_the_schedule(trial)


def test_racing_direct_allocations_of_one_participant_return_the_same_arm(
    trial: Trial,
) -> None:
    participants = _raced_participants(trial)
    for participant, answers in participants:
        # Screened and eligible but not yet allocated: the state allocation_assign requires.
        Participant.objects.filter(pk=participant.pk).update(
            baseline=answers,
            eligible=True,
            stratum=f"coding_years={answers['coding_years']}",
            status=Participant.Status.ACTIVE,
        )
    ids = [participant.pk for participant, _ in participants]

    outcomes = run_in_processes(_allocate_worker, [ids] * RACERS)

    per_participant: dict[str, set[str]] = defaultdict(set)
    for chunk in outcomes:
        for pk, outcome in chunk:
            per_participant[pk].add(outcome)
    assert all(len(seen) == 1 for seen in per_participant.values()), dict(per_participant)
    assert Allocation.objects.filter(trial=trial).count() == RACED
    _assert_sequences_follow_the_schedule(trial)


# --- the control: the same race with the locks switched off must break ------------------------

# How long each allocation holds still between reading its sequence row and writing: long
# enough that, without the lock, the racing processes all read the same next index.
WIDEN_SECONDS = 0.2


def _widened_allocate_worker(job: tuple[list[str], bool], barrier: Any) -> list[tuple[str, str]]:
    """Allocate distinct participants of one stratum, each allocation slowed down between
    its read of the sequence and its write; with ``locks_off`` this process's
    ``select_for_update`` does nothing (nothing else changes)."""
    participant_ids, locks_off = job
    assign = randomization.assign

    def slow_assign(*args: Any, **kwargs: Any) -> Any:
        time.sleep(WIDEN_SECONDS)
        return assign(*args, **kwargs)

    randomization.assign = slow_assign  # type: ignore[assignment]
    if locks_off:
        switch_locks_off()
    return _allocate_worker(participant_ids, barrier)


def _eligible_unallocated(trial: Trial, count: int) -> list[str]:
    ids = []
    for i in range(count):
        participant = _at_screening(trial, f"control-{i}")
        Participant.objects.filter(pk=participant.pk).update(
            baseline=_answers("1-3"),
            eligible=True,
            stratum="coding_years=1-3",
            status=Participant.Status.ACTIVE,
        )
        ids.append(participant.pk)
    return ids


def _sequence_invariant_holds(trial: Trial, outcomes: list[list[tuple[str, str]]]) -> bool:
    failures = [outcome for chunk in outcomes for _, outcome in chunk if ":" not in outcome]
    numbers = sorted(
        Allocation.objects.filter(trial=trial).values_list("sequence_number", flat=True)
    )
    return not failures and numbers == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("locks_off", [False, True], ids=["locks-on", "locks-off"])
def test_the_allocation_race_breaks_without_the_locks(trial: Trial, locks_off: bool) -> None:
    """The control that shows the race tests above can fail: with every allocation widened the
    same way, the locked service still numbers 1..n without a gap, and with ``select_for_update``
    switched off the racing processes read the same next index (a unique-constraint error or a
    repeated number)."""
    ids = _eligible_unallocated(trial, RACERS * 3)
    jobs = [(ids[k::RACERS], locks_off) for k in range(RACERS)]

    outcomes = run_in_processes(_widened_allocate_worker, jobs)

    if locks_off:
        assert not _sequence_invariant_holds(trial, outcomes), "the race did not happen"
    else:
        assert _sequence_invariant_holds(trial, outcomes), outcomes
        assert Allocation.objects.filter(trial=trial).count() == len(ids)
        _assert_sequences_follow_the_schedule(trial)
