"""The facts of each participant that the participants data set's columns read.

:func:`load` reads the whole trial in bulk (a fixed number of queries, :mod:`.reads`) and
:func:`person` derives one participant's facts from it, once, so that the columns that
share a fact (the per-protocol rules read the stage times and the flags) agree by
construction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from analysis.datasets import population, reads
from analysis.datasets.reads import Record, TaskRow
from analysis.datasets.shape import TrialShape, intervention_stage
from trials.client_spans import ClientSpan, bounded_seconds, spans_between
from trials.event_types import EventName
from trials.identity import DuplicateFlag, is_excluded_duplicate

if TYPE_CHECKING:
    from trials.models import Stage


@dataclass
class QuizTally:
    points: float = 0.0
    pending: int = 0
    attention: list[bool] = field(default_factory=list)
    cats: dict[str, float] = field(default_factory=lambda: defaultdict(float))


@dataclass
class PasteTally:
    count: int = 0
    chars: int = 0
    from_assistant: int = 0
    large_external: int = 0


@dataclass
class TrialData:
    """Everything the participants data set reads, for the whole trial, by participant id."""

    shape: TrialShape
    now: datetime
    allocations: dict[str, Mapping[str, Any]]
    records: dict[str, dict[int, Record]]
    tasks: dict[str, dict[tuple[int, str], TaskRow]]
    duplicates: dict[str, DuplicateFlag]
    browser_moves: dict[tuple[str, str], int]
    errors: dict[str, int]
    turns: dict[str, Mapping[str, Any]]
    pastes: dict[str, PasteTally]
    chat_spans: dict[str, dict[int, list[ClientSpan]]]
    quiz: dict[str, QuizTally]
    arm_tools: dict[str, set[str]]
    assistant_stages: dict[int, Stage]

    @property
    def plan(self) -> dict[str, Any]:
        return dict(self.shape.trial.definition.get("analysis", {}))

    @property
    def plan_rules(self) -> list[str]:
        return list(self.plan.get("populations", {}).get("per_protocol", []))


def _paste_tallies(shape: TrialShape) -> dict[str, PasteTally]:
    pastes: dict[str, PasteTally] = defaultdict(PasteTally)
    for pid, payload in reads.paste_payloads(shape.trial):
        details: dict[str, Any] = payload if isinstance(payload, dict) else {}
        length = details.get("length")
        length = length if isinstance(length, int) else 0
        tally = pastes[pid]
        tally.count += 1
        tally.chars += length
        if details.get("from_assistant"):
            tally.from_assistant += 1
        elif length >= population.LARGE_PASTE_CHARS:
            tally.large_external += 1
    return pastes


def _chat_spans(shape: TrialShape, stage_ids: list[int]) -> dict[str, dict[int, list[ClientSpan]]]:
    # Assistant time: client-reported focus-to-blur spans of the chat box, only in stages
    # that allow the assistant (and, in the column, only for arms that have it), paired in
    # the order they arrived and counted only inside the stage's server-observed window.
    chat_spans: dict[str, dict[int, list[ClientSpan]]] = defaultdict(dict)
    chat_rows = reads.assistant_focus_rows(shape.trial, stage_ids)
    for pid, person_rows in groupby(chat_rows, key=lambda r: r[0]):
        by_stage: dict[int, list[tuple[str, datetime | None, datetime]]] = defaultdict(list)
        for _pid, stage_id, etype, ctime, stime in person_rows:
            by_stage[stage_id].append((etype, ctime, stime))
        for stage_id, stage_rows in by_stage.items():
            chat_spans[pid][stage_id] = spans_between(
                stage_rows, opens=EventName.FOCUS, closes=EventName.BLUR
            )
    return chat_spans


def _quiz_tallies(shape: TrialShape) -> dict[str, QuizTally]:
    quiz: dict[str, QuizTally] = {}
    for pid, _key, points, status, correct, attention, categories in reads.item_grades(shape.trial):
        tally = quiz.setdefault(pid, QuizTally())
        if attention:
            tally.attention.append(bool(correct))
            continue
        tally.points += points
        if status in reads.PENDING_STATUSES:
            tally.pending += 1
        for c in categories or []:
            tally.cats[c] += points
    return quiz


def load(shape: TrialShape) -> TrialData:
    trial = shape.trial
    assistant_stages = {s.pk: s for s in shape.stages if "assistant" in (s.tools or [])}
    return TrialData(
        shape=shape,
        now=timezone.now(),
        allocations=reads.allocations_by_participant(trial),
        records=reads.stage_records(trial, {s.pk for s, _q in shape.survey}),
        tasks=reads.task_states(trial),
        duplicates=reads.duplicates(trial),
        browser_moves=reads.browser_moves(trial),
        errors=reads.error_counts(trial),
        turns=reads.assistant_turn_totals(trial),
        pastes=_paste_tallies(shape),
        chat_spans=_chat_spans(shape, list(assistant_stages)),
        quiz=_quiz_tallies(shape),
        arm_tools=reads.arm_tools(trial),
        assistant_stages=assistant_stages,
    )


# ---------------------------------------------------------------------------------------------
# One participant


@dataclass
class Timed:
    """The time of a stage or a task: when it started, minutes and whether censored."""

    started_at: datetime | None = None
    minutes: float | None = None
    censored: bool | None = None


@dataclass
class TaskFacts:
    time: Timed
    runs: int | None
    checks: int | None
    submitted: bool | None
    submitted_min: float | None


@dataclass
class Person:
    """One participant's facts, as the columns read them."""

    row: dict[str, Any]  # the participant's fields (reads.PARTICIPANT_FIELDS)
    alloc: Mapping[str, Any] | None
    arm: str
    records: dict[int, Record]
    furthest: Stage | None
    stages: dict[str, Timed]
    tasks: dict[str, TaskFacts]
    runs: int
    checks: int
    errors: int
    paste: PasteTally
    turn: Mapping[str, Any] | None
    assistant_minutes: float
    quiz: QuizTally | None
    attention_passed: bool | None
    survey: dict[str, Any]
    flags: list[str]
    duplicate: DuplicateFlag | None
    excluded_duplicate: bool
    failed: list[str]
    lost_reason: str
    received_intervention: bool | None
    session_moves: dict[EventName, int]

    @property
    def pid(self) -> str:
        return str(self.row["id"])

    @property
    def allocated(self) -> bool:
        return self.alloc is not None


def _window_end(record: Record, stage: Stage, now: datetime) -> datetime:
    """The end of a stage's server-observed window: when it ended, its time limit, or now."""
    ends = [now] if record.ended_at is None else [record.ended_at]
    if stage.time_limit_seconds:
        ends.append(record.started_at + timedelta(seconds=stage.time_limit_seconds))
    return min(ends)


def _assistant_minutes(
    spans: dict[int, list[ClientSpan]],
    records: dict[int, Record],
    stages: dict[int, Stage],
    now: datetime,
) -> float:
    seconds = 0.0
    for stage_id, stage_spans in spans.items():
        record = records.get(stage_id)
        if record is None or stage_id not in stages:
            continue
        end = _window_end(record, stages[stage_id], now)
        seconds += bounded_seconds(stage_spans, start=record.started_at, end=end)
    return seconds / 60.0


def _passed_at(state: TaskRow | None) -> datetime | None:
    return state.first_passed_at if state else None


def _stage_times(
    data: TrialData, recs: dict[int, Record], ptasks: dict[tuple[int, str], TaskRow]
) -> dict[str, Timed]:
    times: dict[str, Timed] = {}
    for s in data.shape.task_stages:
        rec = recs.get(s.pk)
        if rec is None:
            times[s.key] = Timed()
            continue
        firsts = [_passed_at(ptasks.get((s.pk, f))) for f in s.config.get("tasks", [])]
        minutes, censored = population.stage_time(
            rec.started_at, rec.ended_at, s.time_limit_seconds, firsts, data.now
        )
        times[s.key] = Timed(rec.started_at, minutes, censored)
    return times


def _task_facts(
    data: TrialData, recs: dict[int, Record], ptasks: dict[tuple[int, str], TaskRow]
) -> tuple[dict[str, TaskFacts], int, int]:
    """The facts of each task by column name, and the runs and checks of all tasks."""
    facts: dict[str, TaskFacts] = {}
    total_runs = total_checks = 0
    for s, folder, name in data.shape.tasks:
        rec = recs.get(s.pk)
        state = ptasks.get((s.pk, folder))
        time = Timed()
        if rec is not None:
            time.minutes, time.censored = population.stage_time(
                rec.started_at, rec.ended_at, s.time_limit_seconds, [_passed_at(state)], data.now
            )
        runs = state.runs if state else 0
        checks = state.checks if state else 0
        total_runs += runs
        total_checks += checks
        submitted_at = state.submitted_at if state is not None else None
        facts[name] = TaskFacts(
            time=time,
            runs=runs if rec else None,
            checks=checks if rec else None,
            submitted=(submitted_at is not None) if rec else None,
            submitted_min=(
                population.minutes(rec.started_at, submitted_at) if rec and submitted_at else None
            ),
        )
    return facts, total_runs, total_checks


def _attention_passed(data: TrialData, quiz: QuizTally | None) -> bool | None:
    if quiz is None or data.shape.quiz_max is None or not quiz.attention:
        return None
    return all(quiz.attention)


def _survey_answers(data: TrialData, recs: dict[int, Record]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for s, question in data.shape.survey:
        rec = recs.get(s.pk)
        answers[question["key"]] = (rec.answers or {}).get(question["key"]) if rec else None
    return answers


def _completed_quiz(data: TrialData, recs: dict[int, Record]) -> bool:
    return any(
        s.type == reads.QUIZ_STAGE
        and (rec.end_reason if (rec := recs.get(s.pk)) else "") in population.QUIZ_DONE
        for s in data.shape.stages
    )


def _furthest(data: TrialData, recs: dict[int, Record]) -> Stage | None:
    stage_by_id = {s.pk: s for s in data.shape.stages}
    entered = [stage_by_id[sid] for sid in recs if sid in stage_by_id]
    return max(entered, key=lambda s: s.order) if entered else None


def _lost_reason(
    data: TrialData, row: dict[str, Any], allocated: bool, furthest: Stage | None
) -> str:
    last_stage = data.shape.stages[-1] if data.shape.stages else None
    return population.lost_reason(
        allocated=allocated,
        completed=row["status"] == reads.COMPLETED,
        withdrawn=row["status"] == reads.WITHDRAWN,
        furthest=furthest.key if furthest else None,
        at_last=furthest is not None and last_stage is not None and furthest.pk == last_stage.pk,
    )


def person(data: TrialData, row: dict[str, Any]) -> Person:
    """One participant's facts, from a row of :func:`reads.participant_rows`."""
    pid = row["id"]
    alloc = data.allocations.get(pid)
    arm = alloc["arm__key"] if alloc else ""
    recs = data.records.get(pid, {})
    ptasks = data.tasks.get(pid, {})
    stages = _stage_times(data, recs, ptasks)
    tasks, runs, checks = _task_facts(data, recs, ptasks)
    has_assistant = "assistant" in data.arm_tools.get(arm, set())
    paste = data.pastes.get(pid, PasteTally())
    turn = data.turns.get(pid)
    quiz = data.quiz.get(pid)
    attention_passed = _attention_passed(data, quiz)
    survey = _survey_answers(data, recs)
    flags = population.noncompliance_flags(
        used_assistant=bool(turn),
        arm_has_assistant=has_assistant,
        survey_answers=survey,
        large_external_pastes=paste.large_external,
    )
    duplicate = data.duplicates.get(pid)
    excluded_duplicate = is_excluded_duplicate(duplicate, data.plan)
    failed = population.per_protocol_failures(
        data.plan_rules,
        allocated=alloc is not None,
        excluded_duplicate=excluded_duplicate,
        completed_quiz=_completed_quiz(data, recs),
        has_quiz_answers=quiz is not None,
        attention_passed=attention_passed,
        stages_censored=[stages[s.key].censored for s in data.shape.task_stages],
        flags=flags,
    )
    furthest = _furthest(data, recs)
    intervention = intervention_stage(data.shape.stages)
    return Person(
        row=row,
        alloc=alloc,
        arm=arm,
        records=recs,
        furthest=furthest,
        stages=stages,
        tasks=tasks,
        runs=runs,
        checks=checks,
        errors=data.errors.get(pid, 0),
        paste=paste,
        turn=turn,
        assistant_minutes=_assistant_minutes(
            data.chat_spans.get(pid, {}) if has_assistant else {},
            recs,
            data.assistant_stages,
            data.now,
        ),
        quiz=quiz,
        attention_passed=attention_passed,
        survey=survey,
        flags=flags,
        duplicate=duplicate,
        excluded_duplicate=excluded_duplicate,
        failed=failed,
        lost_reason=_lost_reason(data, row, alloc is not None, furthest),
        received_intervention=(
            (intervention is not None and intervention.pk in recs) if alloc else None
        ),
        session_moves={
            name: data.browser_moves.get((pid, name), 0)
            for name in (EventName.SESSION_RESUMED, EventName.SESSION_TAKEN_OVER)
        },
    )
