"""The population: who enrolls when, who is eligible, the arm each gets (the trial's own
randomization), and each person's path through the stages.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.synthetic.model import (
    QUIZ_MEDIAN_S,
    QUIZ_TIMEOUT_RATE,
    STAGE_MEDIAN_S,
    TIME_ABILITY_RHO,
    TIME_SIGMA,
    SyntheticError,
    _lognormal_s,
)
from analysis.synthetic.world import _BaselineSampler, _StageInfo, _World
from trials import randomization
from trials.definition import stratum_key
from trials.models import (
    Allocation,
    AllocationSequence,
    Participant,
    Stage,
    StageRecord,
)

# Flow outcomes before allocation.
LEFT_CONSENT, DECLINED, LEFT_SCREENING, SCREENED_OUT, ELIGIBLE = range(5)


@dataclass
class _Record:
    stage: _StageInfo
    start: float
    end: float | None = None
    end_reason: str = ""
    deadline: float | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    # Task stages: per task (window start, window end, first pass or None).
    windows: list[tuple[float, float, float | None]] = field(default_factory=list)
    submitted: bool = False


@dataclass
class _Person:
    index: int
    arrival: float
    flow: int
    rand_seed: int
    ability: float  # z, the person's ability before any arm shift
    time_z: npt.NDArray[np.float64]  # per task stage
    task_split: list[npt.NDArray[np.float64]]  # per task stage: shares of the time per task
    durations: npt.NDArray[np.float64]  # per stage, a standard normal for its duration
    jitter: npt.NDArray[np.float64]  # per stage, uniform in (0, 1): small delays
    stop: str = ""  # "", "withdrawn" or "left"
    stop_stage: int = -1
    stop_fraction: float = 0.5
    quiz_timeout: bool = False
    baseline: dict[str, Any] = field(default_factory=dict)
    eligible: bool | None = None
    reasons: list[str] = field(default_factory=list)
    stratum: str = ""
    allocated_at: float = 0.0
    consented_at: float | None = None
    arm: str = ""
    sequence_stratum: str = ""
    sequence_number: int = 0
    allocation_details: dict[str, Any] = field(default_factory=dict)
    records: list[_Record] = field(default_factory=list)
    status: str = Participant.Status.CONSENTING
    current: _Record | None = None
    completed_at: float | None = None
    public_code: str = ""
    completion_code: str = ""
    pid: str = ""
    session_id: str = ""
    participant_id: str = ""
    event_target: int = 0


def _draw_population(
    world: _World, n: int, seed: int, span: float
) -> tuple[list[_Person], np.random.Generator]:
    rng = np.random.default_rng(seed)
    rates = world.rates
    arrivals = np.sort(rng.uniform(0.0, span, n))
    cuts = np.cumsum(
        [rates.left_at_consent, rates.declined, rates.left_at_screening, rates.screened_out]
    )
    flows = np.searchsorted(cuts, rng.random(n), side="right")
    seeds = rng.integers(0, 2**63 - 1, n)
    ability = rng.standard_normal(n)
    n_task_stages = len(world.task_stages)
    time_eps = rng.standard_normal((n, max(1, n_task_stages)))
    durations = rng.standard_normal((n, len(world.stages)))
    stop_u = rng.random(n)
    stop_fraction = rng.uniform(0.1, 0.9, n)
    jitter = rng.random((n, len(world.stages)))
    quiz_u = rng.random(n)
    # Where the lost ones stop: any stage after screening but the debrief; tasks twice as often.
    later = [s for s in world.stages if s.index > world.screening_index and s.type != "debrief"]
    weights = np.array([2.0 if s.type == Stage.Type.TASK else 1.0 for s in later])
    stop_choice = (
        rng.choice(len(later), size=n, p=weights / weights.sum())
        if later
        else np.zeros(n, dtype=int)
    )
    splits = [
        rng.dirichlet(np.full(len(s.tasks), 6.0), size=n) if s.tasks else np.ones((n, 1))
        for s in world.task_stages
    ]
    people = []
    rho = TIME_ABILITY_RHO
    for i in range(n):
        stop = ""
        if stop_u[i] < rates.withdrawn:
            stop = "withdrawn"
        elif stop_u[i] < rates.withdrawn + rates.left:
            stop = "left"
        people.append(
            _Person(
                index=i,
                arrival=float(arrivals[i]),
                flow=int(flows[i]),
                rand_seed=int(seeds[i]),
                ability=float(ability[i]),
                time_z=-rho * ability[i] + math.sqrt(1 - rho**2) * time_eps[i],
                task_split=[split[i] for split in splits],
                durations=durations[i],
                stop=stop if later else "",
                stop_stage=later[int(stop_choice[i])].index if later else -1,
                jitter=jitter[i],
                stop_fraction=float(stop_fraction[i]),
                quiz_timeout=bool(quiz_u[i] < QUIZ_TIMEOUT_RATE),
            )
        )
    return people, rng


def _screen(world: _World, people: list[_Person]) -> None:
    """Baseline answers, eligibility, stratum and the time of allocation."""
    sampler = _BaselineSampler(world.trial)
    strata = world.trial.definition["randomization"].get("strata", [])
    for person in people:
        rand = random.Random(person.rand_seed ^ 0x5EED)
        if person.flow == SCREENED_OUT:
            drawn = sampler.ineligible(rand)
            if drawn is None:
                person.flow = ELIGIBLE
            else:
                person.baseline, person.reasons = drawn
                person.eligible = False
        if person.flow == ELIGIBLE:
            answers = sampler.eligible(rand)
            if answers is None:
                raise SyntheticError(
                    "could not draw baseline answers that pass the eligibility rules; "
                    "do the rules allow anyone in?"
                )
            person.baseline, person.eligible = answers, True
            person.stratum = stratum_key(strata, answers)
        # Times up to allocation (consent, any instructions before screening, screening).
        clock = person.arrival
        for info in world.stages[: world.screening_index + 1]:
            median = STAGE_MEDIAN_S.get(info.type, 60.0)
            clock += _lognormal_s(median, 0.5, float(person.durations[info.index]))
        person.allocated_at = clock


def _allocate(world: _World, people: list[_Person]) -> dict[str, int]:
    """Arms for the eligible, in order of allocation time, continuing the trial's sequences
    exactly as ``allocation_assign`` would. Must run in a transaction; locks the sequence
    rows. Returns the new next_index per sequence stratum."""
    trial = world.trial
    config = trial.definition["randomization"]
    scheme = config["scheme"]
    arm_weights = [randomization.ArmWeight(a.key, a.weight) for a in world.arms.values()]
    seed = trial.randomization_seed
    locked = {
        s.stratum: s
        for s in AllocationSequence.objects.select_for_update().filter(trial=trial).order_by("pk")
    }
    eligible = sorted((p for p in people if p.flow == ELIGIBLE), key=lambda p: p.allocated_at)
    needed = {randomization.sequence_stratum(config, p.stratum) for p in eligible}
    missing = needed - set(locked)
    if missing:
        AllocationSequence.objects.bulk_create(
            [AllocationSequence(trial=trial, stratum=s) for s in sorted(missing)],
            ignore_conflicts=True,
        )
        for s in AllocationSequence.objects.select_for_update().filter(
            trial=trial, stratum__in=missing
        ):
            locked[s.stratum] = s
    next_index = {stratum: row.next_index for stratum, row in locked.items()}
    schedules: dict[str, randomization.BlockSchedule] = {}
    counts: randomization.MinimizationCounts = {}
    if scheme == "minimization":
        counts = randomization.minimization_counts(
            config,
            Allocation.objects.filter(trial=trial).values_list("arm__key", "participant__baseline"),
        )
    for person in eligible:
        seq_stratum = randomization.sequence_stratum(config, person.stratum)
        index = next_index[seq_stratum]
        try:
            assignment = randomization.assign(
                config,
                arm_weights,
                seed,
                index=index,
                stratum=person.stratum,
                baseline=person.baseline,
                counts=counts,
                schedules=schedules,
            )
        except randomization.RandomizationError as exc:
            raise SyntheticError(str(exc)) from exc
        arm_key, details = assignment.arm, dict(assignment.details)
        if scheme == "minimization":
            randomization.add_to_counts(
                counts, randomization.factor_levels(config, person.baseline), arm_key
            )
        person.arm = arm_key
        person.sequence_stratum = seq_stratum
        person.sequence_number = index + 1
        person.allocation_details = details
        next_index[seq_stratum] = index + 1
    return next_index


def _task_stage_record(
    world: _World, person: _Person, info: _StageInfo, start: float, stop_at: float | None
) -> _Record:
    """Completion time of a task stage and the window of each task; ``stop_at`` cuts the
    stage short (the person withdrew or left then)."""
    limit = info.limit
    factor = info.treatment_factor if person.arm != world.reference_arm else 1.0
    z = float(person.time_z[info.task_number])
    jitter = float(person.jitter[info.index])
    total = _lognormal_s(info.median * factor, TIME_SIGMA, z)
    deadline = start + limit if limit else None
    record = _Record(stage=info, start=start, deadline=deadline)
    all_passed = limit is None or total <= limit
    if all_passed:
        slack = (limit - total) * 0.9 if limit else 120.0
        end = start + total + min(slack, 10 + 80 * jitter)
        reason: str = StageRecord.EndReason.COMPLETED
    else:
        end = start + (limit or 0) + 1 + 9 * jitter
        reason = StageRecord.EndReason.TIMED_OUT
    work_end = min(start + total, start + limit) if limit else start + total
    if stop_at is not None:
        end, reason, work_end = stop_at, "", min(work_end, stop_at)
    shares = person.task_split[info.task_number]
    cursor = start
    for k, _task in enumerate(info.tasks):
        planned_end = start + total * float(np.sum(shares[: k + 1]))
        passed = planned_end if planned_end <= work_end + 1e-9 else None
        window_end = min(planned_end, work_end)
        record.windows.append((cursor, max(cursor, window_end), passed))
        cursor = max(cursor, window_end)
    record.end = end
    record.end_reason = reason
    record.submitted = reason == StageRecord.EndReason.COMPLETED
    return record


def _plan_paths(world: _World, people: list[_Person]) -> None:
    """Each person's way through the stages: records with start, end and how it ended."""
    screening = world.screening_index
    for person in people:
        clock = person.arrival
        for info in world.stages:
            record = _Record(stage=info, start=clock, deadline=_deadline(info, clock))
            person.records.append(record)
            if info.type == Stage.Type.DEBRIEF:
                person.current = record
                person.status = Participant.Status.COMPLETED
                person.completed_at = clock
                break
            if info.index <= screening:
                if _early_stage(person, info, record, clock):
                    break
                assert record.end is not None
                clock = record.end
                continue
            stopping = person.stop and person.stop_stage == info.index
            record = _later_stage(world, person, info, record, clock, stopping=bool(stopping))
            if stopping:
                if person.stop == "left":
                    record.end = None
                    record.end_reason = ""
                    person.current = record
                else:
                    person.status = Participant.Status.WITHDRAWN
                break
            assert record.end is not None
            clock = record.end


def _early_stage(person: _Person, info: _StageInfo, record: _Record, clock: float) -> bool:
    """Consent, screening and instructions up to allocation; True when the path ends here
    (left, declined or screened out)."""
    median = STAGE_MEDIAN_S.get(info.type, 60.0)
    duration = _lognormal_s(median, 0.5, float(person.durations[info.index]))
    if info.type == Stage.Type.CONSENT:
        if person.flow == LEFT_CONSENT:
            person.current = record
            return True
        record.end = clock + duration
        if person.flow == DECLINED:
            record.end_reason = StageRecord.EndReason.DECLINED
            person.status = Participant.Status.DECLINED
            return True
        record.end_reason = StageRecord.EndReason.COMPLETED
        record.answers = {"agreed": True}
        person.consented_at = record.end
        person.status = Participant.Status.SCREENING
    elif info.type == Stage.Type.SCREENING:
        if person.flow == LEFT_SCREENING:
            person.current = record
            return True
        record.end = person.allocated_at
        record.answers = dict(person.baseline)
        if person.flow == SCREENED_OUT:
            record.end_reason = StageRecord.EndReason.SCREENED_OUT
            person.status = Participant.Status.SCREENED_OUT
            return True
        record.end_reason = StageRecord.EndReason.COMPLETED
        person.status = Participant.Status.ACTIVE
    else:  # instructions before screening
        record.end = clock + duration
        record.end_reason = StageRecord.EndReason.COMPLETED
    return False


def _later_stage(
    world: _World,
    person: _Person,
    info: _StageInfo,
    record: _Record,
    clock: float,
    *,
    stopping: bool,
) -> _Record:
    """A stage after allocation: its end and how it ended (a task stage's record is built by
    :func:`_task_stage_record` and replaces ``record``)."""
    z = float(person.durations[info.index])
    if info.type == Stage.Type.TASK:
        full = _task_stage_record(world, person, info, clock, None)
        if stopping:
            assert full.end is not None
            stop_at = clock + person.stop_fraction * (full.end - clock)
            full = _task_stage_record(world, person, info, clock, stop_at)
        full.deadline = record.deadline
        person.records[-1] = full
        return full
    if info.type == Stage.Type.QUIZ:
        median = min(QUIZ_MEDIAN_S, 0.5 * info.limit) if info.limit else QUIZ_MEDIAN_S
        duration = _lognormal_s(median, 0.35, z)
    else:
        duration = _lognormal_s(STAGE_MEDIAN_S.get(info.type, 60.0), 0.5, z)
    reason = StageRecord.EndReason.COMPLETED
    quiz_timeout = info.type == Stage.Type.QUIZ and person.quiz_timeout
    if info.limit and (duration > info.limit - 5 or quiz_timeout):
        duration = info.limit + 1 + 9 * float(person.jitter[info.index])
        reason = StageRecord.EndReason.TIMED_OUT
    record.end_reason = reason
    record.end = clock + duration
    if stopping:
        record.end = clock + person.stop_fraction * duration
        record.end_reason = ""
    return record


def _deadline(info: _StageInfo, start: float) -> float | None:
    return start + info.limit if info.limit else None


def _event_targets(people: list[_Person], total_events: int) -> None:
    """Share the events out in proportion to the time spent on tasks (where almost all
    telemetry comes from)."""
    active = []
    for person in people:
        seconds = 0.0
        for record in person.records:
            if record.windows:
                seconds += max(0.0, record.windows[-1][1] - record.start)
        active.append(seconds)
    whole = sum(active)
    for person, seconds in zip(people, active, strict=True):
        person.event_target = round(total_events * seconds / whole) if whole else 0
