"""``synthesize_trial``: the whole generation, batch by batch, and its summary."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from analysis.synthetic.model import (
    ENROLLMENT_DAYS,
    SESSION_ROOM_S,
    FlowRates,
    SyntheticEffects,
    SyntheticError,
    SyntheticProgress,
    SyntheticSummary,
    _chunks,
)
from analysis.synthetic.population import (
    DECLINED,
    LEFT_CONSENT,
    LEFT_SCREENING,
    SCREENED_OUT,
    _allocate,
    _draw_population,
    _event_targets,
    _Person,
    _plan_paths,
    _screen,
)
from analysis.synthetic.timelines import _Builder
from analysis.synthetic.world import _build_world, _World
from analysis.synthetic.writer import (
    _refresh_planner_statistics,
    _Rows,
    _store,
    _write,
    _write_in_background,
)
from trials.models import (
    Allocation,
    AllocationSequence,
    Participant,
    StageRecord,
    Trial,
    new_participant_id,
)


def _identifiers(trial: Trial, people: list[_Person], rng: np.random.Generator) -> str:
    """Public codes, Prolific-style ids and completion codes drawn from the seed, avoiding
    any already used in the trial; returns the synthetic study id."""
    taken_codes = set(Participant.objects.filter(trial=trial).values_list("public_code", flat=True))
    taken_pids = set(
        Participant.objects.filter(trial=trial)
        .exclude(prolific_pid="")
        .values_list("prolific_pid", flat=True)
    )

    def hex_digits(count: int) -> str:
        return "".join(f"{int(b):02x}" for b in rng.integers(0, 256, (count + 1) // 2))[:count]

    study_id = hex_digits(24)
    for person in people:
        code = "P" + hex_digits(8).upper()
        while code in taken_codes:
            code = "P" + hex_digits(8).upper()
        taken_codes.add(code)
        pid = hex_digits(24)
        while pid in taken_pids:
            pid = hex_digits(24)
        taken_pids.add(pid)
        person.public_code, person.pid, person.session_id = code, pid, hex_digits(24)
        person.completion_code = hex_digits(8).upper()
        person.participant_id = new_participant_id()
    return study_id


def _participant_rows(
    world: _World, people: list[_Person], origin: datetime, study_id: str
) -> Iterator[Participant]:
    def at(t: float | None) -> datetime | None:
        return None if t is None else origin + timedelta(seconds=t)

    for person in people:
        last = person.records[-1]
        current = person.current
        yield Participant(
            id=person.participant_id,
            trial=world.trial,
            public_code=person.public_code,
            prolific_pid=person.pid,
            study_id=study_id,
            session_id=person.session_id,
            status=person.status,
            consented_at=at(person.consented_at),
            baseline=person.baseline,
            eligible=person.eligible,
            screen_out_reasons=person.reasons,
            stratum=person.stratum,
            current_stage=current.stage.row if current else None,
            stage_started_at=at(last.start),
            stage_deadline=at(current.deadline) if current else None,
            completion_code=(
                person.completion_code if person.status == Participant.Status.COMPLETED else ""
            ),
            is_synthetic=True,
            created_at=origin + timedelta(seconds=person.arrival),
            completed_at=at(person.completed_at),
        )


def _allocation_rows(
    world: _World, people: list[_Person], origin: datetime
) -> Iterator[Allocation]:
    scheme = world.trial.definition["randomization"]["scheme"]
    for person in people:
        if person.arm:
            yield Allocation(
                participant_id=person.participant_id,
                trial=world.trial,
                arm=world.arms[person.arm],
                stratum=person.stratum,
                scheme=scheme,
                sequence_number=person.sequence_number,
                details=person.allocation_details,
                created_at=origin + timedelta(seconds=person.allocated_at),
            )


def _check_request(
    trial: Trial,
    effects: SyntheticEffects,
    rates: FlowRates,
    participants: int,
    events_per_participant: int,
    enrollment_days: float,
) -> None:
    """Every problem with the request at once, as one error."""
    problems = effects.problems() + rates.problems()
    if trial.status != Trial.Status.LIVE:
        problems.append(f"trial '{trial.slug}' version {trial.version} is {trial.status}, not live")
    if participants <= 0:
        problems.append("the number of participants must be positive")
    if events_per_participant < 0:
        problems.append("the number of events per participant cannot be negative")
    if enrollment_days <= 0:
        problems.append("the enrollment period must be positive")
    if problems:
        raise SyntheticError("; ".join(problems))


def _batches(
    world: _World, people: list[_Person], origin: datetime, chunk_size: int, *, telemetry: bool
) -> Iterator[tuple[int, _Rows]]:
    """The rows of ``chunk_size`` participants at a time, generated as they are asked for."""
    for chunk in _chunks(people, max(1, chunk_size)):
        rows = _Rows()
        builder = _Builder(world, origin, rows, telemetry=telemetry)
        for person in chunk:
            builder.person(person)
        yield len(chunk), rows


def _new_summary(trial: Trial, world: _World, seed: int) -> SyntheticSummary:
    summary = SyntheticSummary(trial_slug=trial.slug, trial_version=trial.version, seed=seed)
    summary.main_stage = world.main_stage.key if world.main_stage else ""
    quizzes = [s.quiz for s in world.stages if s.quiz is not None]
    summary.quiz_shift = quizzes[0].shift if quizzes else 0.0
    return summary


def synthesize_trial(
    trial: Trial,
    *,
    participants: int,
    seed: int,
    effects: SyntheticEffects | None = None,
    rates: FlowRates | None = None,
    events_per_participant: int = 200,
    end: datetime | None = None,
    enrollment_days: float = ENROLLMENT_DAYS,
    chunk_size: int = 250,
    progress: Callable[[SyntheticProgress], None] | None = None,
) -> SyntheticSummary:
    """Add ``participants`` synthetic participants to a live trial.

    Preconditions: the trial is live (its randomization seed and sequences exist). The
    allocations are made in one short transaction that locks the trial's sequence rows (as
    ``allocation_assign`` does), together with the participant rows; everything else is
    written afterwards in one transaction per ``chunk_size`` participants, so real
    participants are never blocked for long. ``events_per_participant`` is the average over
    everyone added (people who decline or are screened out have only a few); 0 writes no
    telemetry at all (no events, code versions, runs or assistant turns). Enrollment
    spans ``enrollment_days`` up to ``end`` (default: an hour ago); no timestamp is later.
    """
    started = time.monotonic()
    effects = effects or SyntheticEffects()
    rates = rates or FlowRates()
    _check_request(trial, effects, rates, participants, events_per_participant, enrollment_days)
    world = _build_world(trial, effects, rates)
    finish = end or timezone.now() - timedelta(hours=1)
    span = enrollment_days * 86400.0
    origin = (finish - timedelta(seconds=span + SESSION_ROOM_S)).astimezone(UTC)
    people, rng = _draw_population(world, participants, seed, span)
    _screen(world, people)
    summary = _new_summary(trial, world, seed)

    with transaction.atomic():
        next_index = _allocate(world, people)
        _plan_paths(world, people)
        _event_targets(people, participants * events_per_participant)
        study_id = _identifiers(trial, people, rng)
        _store(Participant, _participant_rows(world, people, origin, study_id))
        _store(Allocation, _allocation_rows(world, people, origin))
        for stratum, value in next_index.items():
            AllocationSequence.objects.filter(trial=trial, stratum=stratum).update(next_index=value)
    _count(summary, world, people)

    batches = _batches(world, people, origin, chunk_size, telemetry=events_per_participant > 0)
    done = 0

    def written(count: int, rows: _Rows, events: int) -> None:
        nonlocal done
        done += count
        summary.events += events
        summary.snapshots += len(rows.snapshots)
        summary.runs += len(rows.runs)
        summary.assistant_turns += len(rows.turns)
        summary.item_responses += len(rows.items)
        if progress is not None:
            progress(
                SyntheticProgress(
                    participants_done=done,
                    participants_total=participants,
                    events_written=summary.events,
                    seconds=time.monotonic() - started,
                )
            )

    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        _write_in_background(batches, written)
    else:
        for count, rows in batches:
            with transaction.atomic():
                events = _write(rows)
            written(count, rows, events)
    _refresh_planner_statistics()
    summary.seconds = time.monotonic() - started
    return summary


def _count(summary: SyntheticSummary, world: _World, people: list[_Person]) -> None:
    summary.participants = len(people)
    main = world.main_stage
    for person in people:
        if person.flow in (LEFT_CONSENT, LEFT_SCREENING):
            summary.left_before_screening += 1
        elif person.flow == DECLINED:
            summary.declined += 1
        elif person.flow == SCREENED_OUT:
            summary.screened_out += 1
        if person.arm:
            summary.allocated += 1
            summary.by_arm[person.arm] = summary.by_arm.get(person.arm, 0) + 1
        if person.status == Participant.Status.COMPLETED:
            summary.completed += 1
        elif person.status == Participant.Status.WITHDRAWN:
            summary.withdrawn += 1
        elif person.arm and person.stop == "left":
            summary.left += 1
        if main is not None and any(
            r.stage is main and r.end_reason == StageRecord.EndReason.TIMED_OUT
            for r in person.records
        ):
            summary.censored += 1
