"""The tidy data sets of a trial, as pandas frames: participants, items, events, allocations.

Every column is declared once, as a :class:`Column` with its type, unit, allowed values,
description and source, and the codebook of every export is generated from those
declarations. Column names are stable: the same in every format, the API and the report.

Participants are named by their pseudonymous ``public_code`` (stable within a trial).
External identifiers (Prolific ids, completion codes, the internal id) are *identifier*
columns, present only when a caller asks for ``identified=True`` (and is allowed to).

The participants data set is computed in bulk (a fixed number of queries whatever the
trial's size); the events data set is streamed from the database in chunks
(:func:`iter_dataset_chunks`), so exports of millions of events stay within bounded memory.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import PurePosixPath
from typing import Any, NamedTuple

import pandas as pd
from django.db.models import Count, Sum
from django.utils import timezone

from quizzes.models import ItemResponse
from quizzes.quizfile import Quiz
from trials.client_spans import ClientSpan, bounded_seconds, spans_between
from trials.definition import DUPLICATE_SIGNALS, question_choices
from trials.event_types import CLIENT_TYPES, SERVER_TYPES
from trials.identity import duplicate_flags, is_excluded_duplicate
from trials.models import (
    Allocation,
    AssistantTurn,
    CodeRun,
    Event,
    Participant,
    Stage,
    StageRecord,
    TaskState,
    Trial,
)

DATASETS = ("participants", "items", "events", "allocations")
TYPES = ("string", "integer", "number", "boolean", "datetime", "json")

# A paste of at least this many characters that did not come from the study's own assistant
# is flagged as possible outside help (the reference study's reason to look at recordings).
LARGE_PASTE_CHARS = 400
# Survey questions whose "yes" is a self-report of outside help.
OUTSIDE_HELP_QUESTIONS = ("outside_help",)
ERROR_STATUSES = ("error", "timeout")
PENDING_STATUSES = (
    ItemResponse.Status.NEEDS_HUMAN,
    ItemResponse.Status.NEEDS_ADJUDICATION,
    ItemResponse.Status.NEEDS_SANDBOX,
)


class UnknownDataset(ValueError):
    pass


@dataclass(frozen=True)
class Column:
    """One column of a data set, as the codebook describes it."""

    name: str
    type: str
    description: str
    source: str
    unit: str = ""
    allowed: tuple[str, ...] = ()
    identifier: bool = False


@dataclass
class _TrialShape:
    """What the columns of a trial depend on: its stages, tasks, questions and categories."""

    trial: Trial
    stages: list[Stage]
    task_stages: list[Stage]
    tasks: list[tuple[Stage, str, str]]  # (stage, folder, column name)
    baseline: list[dict[str, Any]]
    survey: list[tuple[Stage, dict[str, Any]]]
    categories: list[str]
    quiz_max: float | None
    category_max: dict[str, float]
    arms: dict[str, str]
    attention_keys: set[str] = field(default_factory=set)


def _task_name(folder: str) -> str:
    return PurePosixPath(folder).name


def _quizzes(trial: Trial, stages: list[Stage]) -> list[Quiz]:
    from quizzes.selectors import stage_quiz  # quizzes builds on trials

    return [stage_quiz(trial, s) for s in stages if s.type == Stage.Type.QUIZ]


def _shape(trial: Trial) -> _TrialShape:
    stages = list(Stage.objects.filter(trial=trial).order_by("order"))
    task_stages = [s for s in stages if s.type == Stage.Type.TASK]
    tasks = [
        (s, folder, _task_name(folder)) for s in task_stages for folder in s.config.get("tasks", [])
    ]
    survey = [
        (s, q) for s in stages if s.type == Stage.Type.SURVEY for q in s.config.get("questions", [])
    ]
    categories: list[str] = []
    category_max: dict[str, float] = {}
    quiz_max: float | None = None
    attention: set[str] = set()
    for quiz in _quizzes(trial, stages):
        quiz_max = quiz_max or 0.0
        for q in quiz.questions:
            if q.attention_check:
                attention.add(q.key)
                continue
            quiz_max += q.points
            for c in q.categories:
                if c not in category_max:
                    categories.append(c)
                    category_max[c] = 0.0
                category_max[c] += q.points
    return _TrialShape(
        trial=trial,
        stages=stages,
        task_stages=task_stages,
        tasks=tasks,
        baseline=list(trial.definition.get("baseline", [])),
        survey=survey,
        categories=categories,
        quiz_max=quiz_max,
        category_max=category_max,
        arms={a.key: a.label for a in trial.arms.order_by("order")},
        attention_keys=attention,
    )


def _allowed(question: dict[str, Any]) -> tuple[str, ...]:
    return tuple(c["value"] for c in question_choices(question))


def _question_type(question: dict[str, Any]) -> str:
    kind = question.get("type", "")
    if kind in ("number", "integer"):
        return "number"
    return "string"


def _warmup_stage(shape: _TrialShape) -> Stage | None:
    for s in shape.task_stages:
        if s.key == "warmup":
            return s
    return shape.task_stages[0] if shape.task_stages else None


def intervention_stage(stages: list[Stage]) -> Stage | None:
    """The stage where the arms differ: the first with tools, else the first task stage."""
    for s in stages:
        if s.tools:
            return s
    return next((s for s in stages if s.type == Stage.Type.TASK), None)


# ---------------------------------------------------------------------------------------------
# Columns


def _participant_columns(shape: _TrialShape, identified: bool) -> list[Column]:
    P = "participants"
    stage_keys = tuple(s.key for s in shape.stages)
    cols = [
        Column(
            "participant",
            "string",
            "Pseudonymous participant code, stable within the trial",
            f"{P}.public_code",
        ),
        Column(
            "arm",
            "string",
            "Arm allocated (empty if never allocated)",
            "allocations.arm",
            allowed=tuple(shape.arms),
        ),
        Column("arm_label", "string", "Label of the allocated arm", "arms.label"),
        Column(
            "stratum",
            "string",
            "Randomization stratum (baseline answers of the strata questions)",
            f"{P}.stratum",
        ),
        Column(
            "status",
            "string",
            "Where the participant is or ended",
            f"{P}.status",
            allowed=tuple(Participant.Status.values),
        ),
        Column(
            "is_synthetic",
            "boolean",
            "Generated by `manage.py synthesize`, not a real person",
            f"{P}.is_synthetic",
        ),
        Column(
            "enrolled_at",
            "datetime",
            "When the participant first opened the trial link",
            f"{P}.created_at",
            unit="UTC",
        ),
        Column(
            "consented_at",
            "datetime",
            "When consent was given (empty if not)",
            f"{P}.consented_at",
            unit="UTC",
        ),
        Column(
            "eligible",
            "boolean",
            "Passed the eligibility rules (empty if not screened)",
            f"{P}.eligible",
        ),
        Column(
            "screen_out_reasons",
            "string",
            "Eligibility rules failed, '; '-separated",
            f"{P}.screen_out_reasons",
        ),
    ]
    for q in shape.baseline:
        cols.append(
            Column(
                f"baseline_{q['key']}",
                _question_type(q),
                f"Baseline answer: {q.get('text', q['key'])}",
                f"{P}.baseline.{q['key']}",
                allowed=_allowed(q),
            )
        )
    cols += [
        Column("allocated", "boolean", "Randomized (has an allocation)", "allocations"),
        Column(
            "allocated_at", "datetime", "Time of allocation", "allocations.created_at", unit="UTC"
        ),
        Column(
            "allocation_sequence",
            "integer",
            "1-based position in the stratum's allocation sequence",
            "allocations.sequence_number",
        ),
        Column(
            "furthest_stage",
            "string",
            "Latest stage entered",
            "stage_records.stage",
            allowed=stage_keys,
        ),
        Column("completed_trial", "boolean", "Reached the end of the trial", f"{P}.status"),
        Column(
            "itt",
            "boolean",
            "In the intention-to-treat population (everyone allocated, analysed as allocated;"
            ' when the plan says duplicates = "exclude", not those with duplicate_excluded)',
            "allocations",
        ),
        Column(
            "per_protocol",
            "boolean",
            "In the per-protocol population (allocated and every rule of the plan's"
            " [analysis.populations] per_protocol holds)",
            "derived",
        ),
        Column(
            "per_protocol_exclusions",
            "string",
            "Per-protocol rules the participant fails, '; '-separated",
            "derived",
            allowed=(
                "completed_quiz",
                "passed_attention_check",
                "completed_tasks",
                "no_noncompliance_flag",
                "not_allocated",
                "duplicate",
            ),
        ),
        Column(
            "noncompliance_flags",
            "string",
            "'; '-separated: assistant_outside_arm (used an assistant the arm does not"
            " have), reported_outside_help (answered yes to"
            f" {', '.join(OUTSIDE_HELP_QUESTIONS)}), large_external_paste (pasted >="
            f" {LARGE_PASTE_CHARS} characters that the server did not match to the study's"
            " assistant)",
            "derived",
        ),
        Column(
            "received_intervention",
            "boolean",
            "Entered the stage where the arms differ (the first stage with tools, else the"
            " first task stage)",
            "stage_records",
        ),
        Column(
            "lost_reason",
            "string",
            "Why an allocated participant did not finish (empty if finished or not allocated)",
            "derived",
        ),
        Column(
            "duplicate_flags",
            "string",
            "Why this entry looks like a repeat of an earlier one, '; '-separated: external_id"
            " (the same external id in an earlier version of the trial), browser (the same"
            " network address and browser as an earlier entry within the trial's"
            " [participants] duplicate_window_hours), address (the same address, another"
            " browser, within that window). The first entry of a group is not flagged",
            "participants.external_id, address_hash, browser_hash (keyed hashes)",
            allowed=DUPLICATE_SIGNALS,
        ),
        Column(
            "duplicate_of",
            "string",
            "The earliest entry this one repeats: its participant code, as 'v<version>:<code>'"
            " when it is in another version",
            "derived",
        ),
        Column(
            "duplicate_excluded",
            "boolean",
            "Left out of the itt and per_protocol populations by the plan's rule (duplicates ="
            ' "exclude" and a flag among its duplicate_signals); false when the plan keeps'
            " duplicates",
            "derived",
        ),
        Column(
            "session_resumes",
            "integer",
            "Times the session moved to another browser with the resume code",
            "events[type=session_resumed]",
            unit="count",
        ),
        Column(
            "session_takeovers",
            "integer",
            "Times the session moved to another browser without the code, after the first"
            " had been idle (the trial's resume_idle_minutes)",
            "events[type=session_taken_over]",
            unit="count",
        ),
    ]
    for s in shape.task_stages:
        limit = f" (limit {s.time_limit_seconds / 60:g} min)" if s.time_limit_seconds else ""
        cols += [
            Column(
                f"stage_{s.key}_started_at",
                "datetime",
                f"Start of stage {s.key}",
                "stage_records.started_at",
                unit="UTC",
            ),
            Column(
                f"stage_{s.key}_time_min",
                "number",
                f"Minutes from the start of stage {s.key} until every task in it had passed"
                " its hidden tests; if not all passed, minutes until the stage ended or its"
                f" limit{limit}, whichever came first",
                "stage_records, task_states.first_passed_at",
                unit="minutes",
            ),
            Column(
                f"stage_{s.key}_censored",
                "boolean",
                f"Not every task of stage {s.key} passed within the limit (the time is censored)",
                "task_states.first_passed_at",
            ),
        ]
    for s, folder, name in shape.tasks:
        cols += [
            Column(
                f"task_{name}_time_min",
                "number",
                f"Minutes from the start of stage {s.key} until task {folder} first passed"
                " (censored like the stage time if it never did)",
                "task_states.first_passed_at",
                unit="minutes",
            ),
            Column(
                f"task_{name}_censored",
                "boolean",
                f"Task {folder} never passed within the limit",
                "task_states.first_passed_at",
            ),
            Column(
                f"task_{name}_runs",
                "integer",
                f"Runs of the program in task {folder}",
                "task_states.runs",
                unit="count",
            ),
            Column(
                f"task_{name}_checks",
                "integer",
                f"Checks against the hidden tests in task {folder}",
                "task_states.checks",
                unit="count",
            ),
            Column(
                f"task_{name}_submitted",
                "boolean",
                f"Task {folder} was submitted",
                "task_states.submitted_at",
            ),
            Column(
                f"task_{name}_submitted_min",
                "number",
                f"Minutes from the start of stage {s.key} until task {folder} was submitted"
                " (empty if it never was)",
                "task_states.submitted_at",
                unit="minutes",
            ),
        ]
    cols += [
        Column(
            "warmup_time_min",
            "number",
            "Time of the warm-up stage (stage 'warmup', else the first task stage), as its"
            " <stage>_time_min",
            "stage_records, task_states",
            unit="minutes",
        ),
        Column("runs", "integer", "Program runs, all tasks", "task_states.runs", unit="count"),
        Column(
            "checks", "integer", "Hidden-test checks, all tasks", "task_states.checks", unit="count"
        ),
        Column(
            "errors",
            "integer",
            "Runs and checks that ended in an error or a time-out",
            "code_runs.status",
            unit="count",
        ),
        Column(
            "pastes",
            "integer",
            "Paste (and drop) events (client-reported)",
            "events[type=paste]",
            unit="count",
        ),
        Column(
            "paste_chars",
            "integer",
            "Characters pasted, as the browser reported them (client-reported)",
            "events[type=paste].payload.length",
            unit="characters",
        ),
        Column(
            "assistant_pastes",
            "integer",
            "Pastes the server matched to an assistant reply stored for the participant (the"
            " reply or one of its code blocks by SHA-256 and length, or text copied from the"
            " chat that the server found in a reply); what the browser claims is ignored",
            "events[type=paste].payload.from_assistant (set by the server), assistant_turns",
            unit="count",
        ),
        Column(
            "assistant_messages",
            "integer",
            "Questions sent to the assistant",
            "assistant_turns",
            unit="count",
        ),
        Column(
            "assistant_tokens_in",
            "integer",
            "Input tokens of the assistant's calls",
            "assistant_turns.input_tokens",
            unit="tokens",
        ),
        Column(
            "assistant_tokens_out",
            "integer",
            "Output tokens of the assistant's replies",
            "assistant_turns.output_tokens",
            unit="tokens",
        ),
        Column(
            "assistant_time_min",
            "number",
            "Client-reported, bounded by server time: minutes with the assistant's message"
            " box focused (focus to blur as the browser measured them), only for arms with"
            " the assistant in stages that allow it, and only inside each stage's"
            " server-observed window (from its server-stamped start to its end or time limit,"
            " never after the server received the blur); overlapping spans count once",
            "events[type=focus|blur, scope=assistant, origin=client], stage_records",
            unit="minutes",
        ),
        Column(
            "quiz_score",
            "number",
            "Quiz points (attention checks excluded); provisional while quiz_final is false",
            "item_responses.points",
            unit="points",
        ),
        Column("quiz_max", "number", "Quiz points possible", "quiz definition", unit="points"),
        Column(
            "quiz_percent",
            "number",
            "quiz_score as a percentage of quiz_max",
            "derived",
            unit="percent",
        ),
        Column(
            "quiz_final",
            "boolean",
            "Every quiz answer is graded (false while some wait for graders or the sandbox)",
            "item_responses.status",
        ),
        Column(
            "quiz_pending",
            "integer",
            "Quiz answers still waiting to be graded",
            "item_responses.status",
            unit="count",
        ),
        Column(
            "attention_passed",
            "boolean",
            "Answered every attention check correctly (empty if no quiz answers)",
            "item_responses[is_attention_check]",
        ),
    ]
    for c in shape.categories:
        cols += [
            Column(
                f"quiz_cat_{c}",
                "number",
                f"Quiz points in category {c} (a question in two categories counts in both)",
                "item_responses.points",
                unit="points",
            ),
            Column(
                f"quiz_cat_{c}_max",
                "number",
                f"Quiz points possible in category {c}",
                "quiz definition",
                unit="points",
            ),
        ]
    for s, q in shape.survey:
        cols.append(
            Column(
                f"survey_{q['key']}",
                _question_type(q),
                f"Survey ({s.key}): {q.get('text', q['key'])}",
                f"stage_records[{s.key}].answers.{q['key']}",
                allowed=_allowed(q),
            )
        )
    if identified:
        cols += [
            Column(
                "participant_id", "string", "Internal participant id", f"{P}.id", identifier=True
            ),
            Column(
                "prolific_pid",
                "string",
                "Prolific participant id",
                f"{P}.prolific_pid",
                identifier=True,
            ),
            Column(
                "study_id",
                "string",
                "Recruitment platform study id",
                f"{P}.study_id",
                identifier=True,
            ),
            Column(
                "session_id",
                "string",
                "Recruitment platform session id",
                f"{P}.session_id",
                identifier=True,
            ),
            Column(
                "completion_code",
                "string",
                "Completion code shown at the end",
                f"{P}.completion_code",
                identifier=True,
            ),
        ]
    return cols


def _item_columns(shape: _TrialShape) -> list[Column]:
    I = "item_responses"  # noqa: E741
    return [
        Column(
            "participant", "string", "Pseudonymous participant code", "participants.public_code"
        ),
        Column("arm", "string", "Arm allocated", "allocations.arm", allowed=tuple(shape.arms)),
        Column("stage", "string", "Quiz stage", f"{I}.stage"),
        Column("question", "string", "Question key in the quiz file", f"{I}.question_key"),
        Column(
            "position",
            "integer",
            "1-based position at which the participant saw the question",
            f"{I}.position",
        ),
        Column(
            "categories",
            "string",
            "Category tags, '; '-separated",
            f"{I}.categories",
            allowed=tuple(shape.categories),
        ),
        Column(
            "status",
            "string",
            "How the answer was graded",
            f"{I}.status",
            allowed=tuple(ItemResponse.Status.values),
        ),
        Column("correct", "boolean", "Fully correct (empty while pending)", f"{I}.correct"),
        Column("points", "number", "Points earned (0 while pending)", f"{I}.points", unit="points"),
        Column("max_points", "number", "Points possible", f"{I}.max_points", unit="points"),
        Column(
            "is_attention_check",
            "boolean",
            "An attention check (not scored)",
            f"{I}.is_attention_check",
        ),
        Column("response", "json", "The answer as given (JSON)", f"{I}.response"),
        Column(
            "graded_at",
            "datetime",
            "When the current grade was given",
            f"{I}.graded_at",
            unit="UTC",
        ),
    ]


def _event_columns(shape: _TrialShape) -> list[Column]:
    return [
        Column(
            "event_id", "integer", "Event id (increases with arrival at the server)", "events.id"
        ),
        Column(
            "participant", "string", "Pseudonymous participant code", "participants.public_code"
        ),
        Column(
            "arm",
            "string",
            "Arm allocated (empty before allocation)",
            "allocations.arm",
            allowed=tuple(shape.arms),
        ),
        Column(
            "stage",
            "string",
            "Stage the event belongs to",
            "events.stage",
            allowed=tuple(s.key for s in shape.stages),
        ),
        Column(
            "type",
            "string",
            "Event type, from the registry in trials/events.py. Client-reported (sent by the"
            f" browser, evidence about it): {', '.join(sorted(CLIENT_TYPES))}. Server-only"
            f" (observed or derived by the server, never accepted from a browser):"
            f" {', '.join(sorted(SERVER_TYPES))}",
            "events.type",
        ),
        Column(
            "origin",
            "string",
            "Who reported it: client = the participant's browser (client-reported evidence,"
            " not verified, of a client-reported type only), server = the server",
            "events.origin",
            allowed=("client", "server"),
        ),
        Column("client_seq", "integer", "Sequence number in the browser tab", "events.client_seq"),
        Column(
            "client_time",
            "datetime",
            "Client-reported: time on the participant's clock as the browser sent it; no"
            " outcome uses it (server_time does)",
            "events.client_time",
            unit="UTC",
        ),
        Column(
            "server_time",
            "datetime",
            "Time the server stored it (for a browser event: when its batch arrived)",
            "events.server_time",
            unit="UTC",
        ),
        Column("payload", "json", "Type-specific details (JSON)", "events.payload"),
    ]


def _allocation_columns(shape: _TrialShape) -> list[Column]:
    A = "allocations"
    return [
        Column(
            "participant", "string", "Pseudonymous participant code", "participants.public_code"
        ),
        Column("arm", "string", "Arm allocated", f"{A}.arm", allowed=tuple(shape.arms)),
        Column("stratum", "string", "Randomization stratum", f"{A}.stratum"),
        Column("scheme", "string", "Randomization scheme", f"{A}.scheme"),
        Column(
            "sequence_number",
            "integer",
            "1-based position in the stratum's sequence",
            f"{A}.sequence_number",
        ),
        Column("allocated_at", "datetime", "Time of allocation", f"{A}.created_at", unit="UTC"),
    ]


def _columns(shape: _TrialShape, name: str, identified: bool) -> list[Column]:
    if name == "participants":
        return _participant_columns(shape, identified)
    if name == "items":
        return _item_columns(shape)
    if name == "events":
        return _event_columns(shape)
    if name == "allocations":
        return _allocation_columns(shape)
    raise UnknownDataset(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


def dataset_columns(trial: Trial, name: str, *, identified: bool = False) -> list[Column]:
    return _columns(_shape(trial), name, identified)


# ---------------------------------------------------------------------------------------------
# Frames

_DTYPES: dict[str, Any] = {
    "string": "string",
    "integer": "Int64",
    "number": "Float64",
    "boolean": "boolean",
    "json": "string",
}


def typed_frame(
    rows: list[dict[str, Any]] | list[tuple[Any, ...]], columns: list[Column]
) -> pd.DataFrame:
    """A frame with exactly ``columns``, each in the pandas dtype of its declared type."""
    names = [c.name for c in columns]
    frame = pd.DataFrame.from_records(rows, columns=names) if rows else pd.DataFrame(columns=names)
    for c in columns:
        if c.type == "datetime":
            frame[c.name] = pd.to_datetime(frame[c.name], utc=True)
        else:
            frame[c.name] = frame[c.name].astype(_DTYPES[c.type])
    return frame


def _minutes(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0) / 60.0


def _stage_time(
    started: datetime,
    ended: datetime | None,
    limit: int | None,
    passed: list[datetime | None],
    now: datetime,
) -> tuple[float | None, bool]:
    """(minutes, censored) for a stage or a task, from its start and first passes."""
    if passed and all(p is not None for p in passed):
        return _minutes(started, max(p for p in passed if p is not None)), False
    stop = ended
    if limit:
        cap = started + pd.Timedelta(seconds=limit).to_pytimedelta()
        stop = cap if stop is None else min(stop, cap)
        if stop > now:
            stop = None  # still running: no time yet
    return _minutes(started, stop), True


def _window_end(record: _Record, stage: Stage, now: datetime) -> datetime:
    """The end of a stage's server-observed window: when it ended, its time limit, or now."""
    ends = [now] if record.ended_at is None else [record.ended_at]
    if stage.time_limit_seconds:
        ends.append(record.started_at + timedelta(seconds=stage.time_limit_seconds))
    return min(ends)


def _assistant_minutes(
    spans: dict[int, list[ClientSpan]],
    records: dict[int, _Record],
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


def _join(values: list[str]) -> str:
    return "; ".join(values)


CHUNK = 5000


class _Record(NamedTuple):
    started_at: datetime
    ended_at: datetime | None
    end_reason: str
    answers: dict[str, Any] | None  # kept for survey stages only


class _Task(NamedTuple):
    first_passed_at: datetime | None
    submitted_at: datetime | None
    runs: int
    checks: int


def _passed_at(state: _Task | None) -> datetime | None:
    return state.first_passed_at if state else None


def _end_reason(record: _Record | None) -> str:
    return record.end_reason if record else ""


_PARTICIPANT_FIELDS = (
    "id",
    "public_code",
    "prolific_pid",
    "study_id",
    "session_id",
    "status",
    "consented_at",
    "baseline",
    "eligible",
    "screen_out_reasons",
    "stratum",
    "completion_code",
    "is_synthetic",
    "created_at",
)


def _participants_rows(shape: _TrialShape, identified: bool) -> list[tuple[Any, ...]]:
    trial = shape.trial
    now = timezone.now()
    stage_by_id = {s.pk: s for s in shape.stages}
    last_stage = shape.stages[-1] if shape.stages else None
    plan_rules = list(
        trial.definition.get("analysis", {}).get("populations", {}).get("per_protocol", [])
    )
    intervention = intervention_stage(shape.stages)
    arm_tools = {a.key: set(a.tools) for a in trial.arms.all()}

    # Memory stays proportional to the participants, not to the rows read: every query is
    # iterated in chunks and only what the columns need is kept, as tuples.
    allocations = {
        a["participant_id"]: a
        for a in Allocation.objects.filter(trial=trial)
        .values("participant_id", "arm__key", "created_at", "sequence_number")
        .iterator(chunk_size=CHUNK)
    }
    survey_stages = {s.pk for s, _q in shape.survey}
    records: dict[str, dict[int, _Record]] = defaultdict(dict)
    for pid, stage_id, started, ended, reason, answers in (
        StageRecord.objects.filter(participant__trial=trial)
        .values_list(
            "participant_id", "stage_id", "started_at", "ended_at", "end_reason", "answers"
        )
        .iterator(chunk_size=CHUNK)
    ):
        kept = answers if stage_id in survey_stages else None
        records[pid][stage_id] = _Record(started, ended, reason, kept)
    tasks: dict[str, dict[tuple[int, str], _Task]] = defaultdict(dict)
    for pid, stage_id, folder, passed, submitted, runs, checks in (
        TaskState.objects.filter(participant__trial=trial)
        .values_list(
            "participant_id",
            "stage_id",
            "task",
            "first_passed_at",
            "submitted_at",
            "runs",
            "checks",
        )
        .iterator(chunk_size=CHUNK)
    ):
        tasks[pid][(stage_id, folder)] = _Task(passed, submitted, runs, checks)
    duplicates = duplicate_flags(trial)
    plan = dict(trial.definition.get("analysis", {}))
    browser_moves: dict[tuple[str, str], int] = {
        (pid, etype): n
        for pid, etype, n in Event.objects.filter(
            participant__trial=trial, type__in=("session_resumed", "session_taken_over")
        )
        .values_list("participant_id", "type")
        .annotate(n=Count("id"))
        .values_list("participant_id", "type", "n")
    }
    errors = dict(
        CodeRun.objects.filter(participant__trial=trial, status__in=ERROR_STATUSES)
        .values_list("participant_id")
        .annotate(n=Count("id"))
        .values_list("participant_id", "n")
    )
    turns = {
        t["participant_id"]: t
        for t in AssistantTurn.objects.filter(participant__trial=trial)
        .values("participant_id")
        .annotate(n=Count("id"), tin=Sum("input_tokens"), tout=Sum("output_tokens"))
    }
    pastes: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # n, chars, assistant, large
    for pid, payload in (
        Event.objects.filter(participant__trial=trial, type="paste")
        .values_list("participant_id", "payload")
        .iterator(chunk_size=CHUNK)
    ):
        details: dict[str, Any] = payload if isinstance(payload, dict) else {}
        length = details.get("length")
        length = length if isinstance(length, int) else 0
        tally = pastes[pid]
        tally[0] += 1
        tally[1] += length
        if details.get("from_assistant"):
            tally[2] += 1
        elif length >= LARGE_PASTE_CHARS:
            tally[3] += 1
    # Assistant time: client-reported focus-to-blur spans of the chat box, only in stages
    # that allow the assistant (and, below, only for arms that have it), paired in the order
    # they arrived and counted only inside the stage's server-observed window.
    assistant_stages = {s.pk: s for s in shape.stages if "assistant" in (s.tools or [])}
    chat_spans: dict[str, dict[int, list[ClientSpan]]] = defaultdict(dict)
    chat_rows = (
        Event.objects.filter(
            participant__trial=trial,
            origin="client",
            stage_id__in=list(assistant_stages),
            type__in=("focus", "blur"),
            payload__scope="assistant",
        )
        .order_by("participant_id", "id")
        .values_list("participant_id", "stage_id", "type", "client_time", "server_time")
        .iterator(chunk_size=CHUNK)
    )
    for pid, person_rows in groupby(chat_rows, key=lambda r: r[0]):
        by_stage: dict[int, list[tuple[str, datetime | None, datetime]]] = defaultdict(list)
        for _pid, stage_id, etype, ctime, stime in person_rows:
            by_stage[stage_id].append((etype, ctime, stime))
        for stage_id, stage_rows in by_stage.items():
            chat_spans[pid][stage_id] = spans_between(stage_rows, opens="focus", closes="blur")
    quiz: dict[str, dict[str, Any]] = {}
    for pid, _key, points, status, correct, attention, categories in (
        ItemResponse.objects.filter(participant__trial=trial)
        .values_list(
            "participant_id",
            "question_key",
            "points",
            "status",
            "correct",
            "is_attention_check",
            "categories",
        )
        .iterator(chunk_size=CHUNK)
    ):
        tally_q = quiz.setdefault(
            pid, {"points": 0.0, "pending": 0, "attention": [], "cats": defaultdict(float)}
        )
        if attention:
            tally_q["attention"].append(bool(correct))
            continue
        tally_q["points"] += points
        if status in PENDING_STATUSES:
            tally_q["pending"] += 1
        for c in categories or []:
            tally_q["cats"][c] += points

    names = [c.name for c in _participant_columns(shape, identified)]
    rows: list[tuple[Any, ...]] = []
    participants = Participant.objects.filter(trial=trial).order_by("created_at", "id")
    for p in participants.values(*_PARTICIPANT_FIELDS).iterator(chunk_size=CHUNK):
        pid = p["id"]
        alloc = allocations.get(pid)
        arm = alloc["arm__key"] if alloc else ""
        recs = records.get(pid, {})
        entered = [stage_by_id[sid] for sid in recs if sid in stage_by_id]
        furthest = max(entered, key=lambda s: s.order) if entered else None
        completed = p["status"] == Participant.Status.COMPLETED
        row: dict[str, Any] = {
            "participant": p["public_code"],
            "arm": arm,
            "arm_label": shape.arms.get(arm, ""),
            "stratum": p["stratum"],
            "status": p["status"],
            "is_synthetic": p["is_synthetic"],
            "enrolled_at": p["created_at"],
            "consented_at": p["consented_at"],
            "eligible": p["eligible"],
            "screen_out_reasons": _join(list(p["screen_out_reasons"] or [])),
        }
        baseline = p["baseline"] or {}
        for bq in shape.baseline:
            row[f"baseline_{bq['key']}"] = baseline.get(bq["key"])
        row |= {
            "allocated": alloc is not None,
            "allocated_at": alloc["created_at"] if alloc else None,
            "allocation_sequence": alloc["sequence_number"] if alloc else None,
            "furthest_stage": furthest.key if furthest else "",
            "completed_trial": completed,
            "itt": alloc is not None,
        }
        # Task stages and tasks.
        ptasks = tasks.get(pid, {})
        total_runs = total_checks = 0
        for s in shape.task_stages:
            rec = recs.get(s.pk)
            minutes: float | None = None
            censored: bool | None = None
            if rec is not None:
                firsts = [_passed_at(ptasks.get((s.pk, f))) for f in s.config.get("tasks", [])]
                minutes, censored = _stage_time(
                    rec.started_at, rec.ended_at, s.time_limit_seconds, firsts, now
                )
            row[f"stage_{s.key}_started_at"] = rec.started_at if rec else None
            row[f"stage_{s.key}_time_min"] = minutes
            row[f"stage_{s.key}_censored"] = censored
        for s, folder, name in shape.tasks:
            rec = recs.get(s.pk)
            state = ptasks.get((s.pk, folder))
            minutes, censored = None, None
            if rec is not None:
                minutes, censored = _stage_time(
                    rec.started_at,
                    rec.ended_at,
                    s.time_limit_seconds,
                    [_passed_at(state)],
                    now,
                )
            runs = state.runs if state else 0
            checks = state.checks if state else 0
            total_runs += runs
            total_checks += checks
            row[f"task_{name}_time_min"] = minutes
            row[f"task_{name}_censored"] = censored
            row[f"task_{name}_runs"] = runs if rec else None
            row[f"task_{name}_checks"] = checks if rec else None
            submitted_at = state.submitted_at if state is not None else None
            row[f"task_{name}_submitted"] = (submitted_at is not None) if rec else None
            row[f"task_{name}_submitted_min"] = (
                _minutes(rec.started_at, submitted_at) if rec and submitted_at else None
            )
        warm = _warmup_stage(shape)
        row["warmup_time_min"] = row.get(f"stage_{warm.key}_time_min") if warm else None
        paste = pastes.get(pid, [0, 0, 0, 0])
        turn = turns.get(pid)
        row |= {
            "runs": total_runs,
            "checks": total_checks,
            "errors": errors.get(pid, 0),
            "pastes": paste[0],
            "paste_chars": paste[1],
            "assistant_pastes": paste[2],
            "assistant_messages": turn["n"] if turn else 0,
            "assistant_tokens_in": (turn["tin"] or 0) if turn else 0,
            "assistant_tokens_out": (turn["tout"] or 0) if turn else 0,
            "assistant_time_min": _assistant_minutes(
                chat_spans.get(pid, {}) if "assistant" in arm_tools.get(arm, set()) else {},
                recs,
                assistant_stages,
                now,
            ),
        }
        q: dict[str, Any] | None = quiz.get(pid)
        if q is not None and shape.quiz_max is not None:
            row |= {
                "quiz_score": q["points"],
                "quiz_max": shape.quiz_max,
                "quiz_percent": 100.0 * q["points"] / shape.quiz_max if shape.quiz_max else None,
                "quiz_final": q["pending"] == 0,
                "quiz_pending": q["pending"],
                "attention_passed": all(q["attention"]) if q["attention"] else None,
            }
        else:
            row |= dict.fromkeys(
                (
                    "quiz_score",
                    "quiz_max",
                    "quiz_percent",
                    "quiz_final",
                    "quiz_pending",
                    "attention_passed",
                )
            )
        for c in shape.categories:
            row[f"quiz_cat_{c}"] = q["cats"].get(c, 0.0) if q is not None else None
            row[f"quiz_cat_{c}_max"] = shape.category_max[c] if q is not None else None
        survey_answers: dict[str, Any] = {}
        for s, question in shape.survey:
            rec = recs.get(s.pk)
            value = (rec.answers or {}).get(question["key"]) if rec else None
            survey_answers[question["key"]] = value
            row[f"survey_{question['key']}"] = value
        # Non-compliance, the populations, CONSORT.
        flags = []
        if turn and "assistant" not in arm_tools.get(arm, set()):
            flags.append("assistant_outside_arm")
        if any(survey_answers.get(k) == "yes" for k in OUTSIDE_HELP_QUESTIONS):
            flags.append("reported_outside_help")
        if paste[3]:
            flags.append("large_external_paste")
        row["noncompliance_flags"] = _join(flags)
        failed = []
        if alloc is None:
            failed.append("not_allocated")
        duplicate = duplicates.get(pid)
        excluded_duplicate = is_excluded_duplicate(duplicate, plan)
        if excluded_duplicate:
            failed.append("duplicate")
        for rule in plan_rules:
            ok = True
            if rule == "completed_quiz":
                ok = any(
                    s.type == Stage.Type.QUIZ
                    and _end_reason(recs.get(s.pk)) in ("completed", "timed_out")
                    for s in shape.stages
                )
            elif rule == "passed_attention_check":
                ok = row["attention_passed"] is not False and q is not None
            elif rule == "completed_tasks":
                ok = all(row[f"stage_{s.key}_censored"] is False for s in shape.task_stages)
            elif rule == "no_noncompliance_flag":
                ok = not flags
            if not ok:
                failed.append(rule)
        row["per_protocol"] = alloc is not None and not failed
        row["per_protocol_exclusions"] = _join(failed)
        row["received_intervention"] = (
            (intervention is not None and intervention.pk in recs) if alloc else None
        )
        lost = ""
        if alloc is not None and not completed:
            where = furthest.key if furthest else "?"
            if p["status"] == Participant.Status.WITHDRAWN:
                lost = f"withdrew at {where}"
            elif furthest is not None and last_stage is not None and furthest.pk == last_stage.pk:
                lost = ""
            else:
                lost = f"did not finish (last stage: {where})"
        row["lost_reason"] = lost
        row |= {
            "itt": alloc is not None and not excluded_duplicate,
            "duplicate_flags": _join(list(duplicate.signals)) if duplicate else "",
            "duplicate_of": duplicate.of_label(trial.version) if duplicate else "",
            "duplicate_excluded": excluded_duplicate,
            "session_resumes": browser_moves.get((pid, "session_resumed"), 0),
            "session_takeovers": browser_moves.get((pid, "session_taken_over"), 0),
        }
        if identified:
            row |= {
                "participant_id": pid,
                "prolific_pid": p["prolific_pid"],
                "study_id": p["study_id"],
                "session_id": p["session_id"],
                "completion_code": p["completion_code"],
            }
        rows.append(tuple(row[name] for name in names))
    return rows


def _iter_items(shape: _TrialShape, chunk_size: int) -> Iterator[list[tuple[Any, ...]]]:
    arms = _arm_by_participant(shape.trial)
    stage_keys = {s.pk: s.key for s in shape.stages}
    query = (
        ItemResponse.objects.filter(participant__trial=shape.trial)
        .order_by("participant__created_at", "participant_id", "position", "id")
        .values_list(
            "participant_id",
            "participant__public_code",
            "stage_id",
            "question_key",
            "position",
            "categories",
            "status",
            "correct",
            "points",
            "max_points",
            "is_attention_check",
            "response",
            "graded_at",
        )
    )
    rows: list[tuple[Any, ...]] = []
    for (
        pid,
        code,
        stage_id,
        key,
        position,
        categories,
        *graded,
        response,
        graded_at,
    ) in query.iterator(chunk_size=min(chunk_size, CHUNK)):
        rows.append(
            (
                code,
                arms.get(pid, ""),
                stage_keys.get(stage_id, ""),
                key,
                position,
                _join(list(categories or [])),
                *graded,
                _json(response),
                graded_at,
            )
        )
        if len(rows) >= chunk_size:
            yield rows
            rows = []
    if rows:
        yield rows


def _allocations_rows(shape: _TrialShape) -> list[tuple[Any, ...]]:
    return list(
        Allocation.objects.filter(trial=shape.trial)
        .order_by("created_at", "id")
        .values_list(
            "participant__public_code",
            "arm__key",
            "stratum",
            "scheme",
            "sequence_number",
            "created_at",
        )
    )


def _arm_by_participant(trial: Trial) -> dict[str, str]:
    return dict(Allocation.objects.filter(trial=trial).values_list("participant_id", "arm__key"))


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _iter_events(shape: _TrialShape, chunk_size: int) -> Iterator[list[tuple[Any, ...]]]:
    arms = _arm_by_participant(shape.trial)
    codes = dict(Participant.objects.filter(trial=shape.trial).values_list("id", "public_code"))
    stage_keys = {s.pk: s.key for s in shape.stages}
    query = (
        Event.objects.filter(participant__trial=shape.trial)
        .order_by("id")
        .values_list(
            "id",
            "participant_id",
            "stage_id",
            "type",
            "origin",
            "client_seq",
            "client_time",
            "server_time",
            "payload",
        )
    )
    chunk: list[tuple[Any, ...]] = []
    for eid, pid, stage_id, etype, origin, seq, ctime, stime, payload in query.iterator(
        chunk_size=min(chunk_size, 5000)
    ):
        chunk.append(
            (
                eid,
                codes.get(pid, ""),
                arms.get(pid, ""),
                stage_keys.get(stage_id, "") if stage_id else "",
                etype,
                origin,
                seq,
                ctime,
                stime,
                _json(payload),
            )
        )
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_STREAMED: dict[str, Callable[[_TrialShape, int], Iterator[list[tuple[Any, ...]]]]] = {
    "items": _iter_items,
    "events": _iter_events,
}


def iter_dataset_chunks(
    trial: Trial, name: str, *, identified: bool = False, chunk_size: int = 20_000
) -> Iterator[pd.DataFrame]:
    """The data set as a sequence of frames of at most ``chunk_size`` rows (at least one,
    possibly empty), each with exactly the declared columns. Events and items are streamed
    from the database; participants and allocations (a row per person) are built at once."""
    shape = _shape(trial)
    columns = _columns(shape, name, identified)
    if name in _STREAMED:
        produced = False
        for rows in _STREAMED[name](shape, chunk_size):
            produced = True
            yield typed_frame(rows, columns)
        if not produced:
            yield typed_frame([], columns)
        return
    frame = _frame(shape, name, identified, columns)
    if len(frame) == 0:
        yield frame
        return
    for start in range(0, len(frame), chunk_size):
        yield frame.iloc[start : start + chunk_size].reset_index(drop=True)


def _frame(shape: _TrialShape, name: str, identified: bool, columns: list[Column]) -> pd.DataFrame:
    if name == "participants":
        return typed_frame(_participants_rows(shape, identified), columns)
    if name == "allocations":
        return typed_frame(_allocations_rows(shape), columns)
    if name in _STREAMED:
        parts = [typed_frame(rows, columns) for rows in _STREAMED[name](shape, 50_000)]
        return pd.concat(parts, ignore_index=True) if parts else typed_frame([], columns)
    raise UnknownDataset(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


def dataset_frame(trial: Trial, name: str, *, identified: bool = False) -> pd.DataFrame:
    """The whole data set as one frame (for events, prefer :func:`iter_dataset_chunks`)."""
    shape = _shape(trial)
    return _frame(shape, name, identified, _columns(shape, name, identified))


def dataset_row_count(trial: Trial, name: str) -> int:
    if name == "participants":
        return Participant.objects.filter(trial=trial).count()
    if name == "items":
        return ItemResponse.objects.filter(participant__trial=trial).count()
    if name == "events":
        return Event.objects.filter(participant__trial=trial).count()
    if name == "allocations":
        return Allocation.objects.filter(trial=trial).count()
    raise UnknownDataset(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


__all__ = [
    "DATASETS",
    "TYPES",
    "Column",
    "UnknownDataset",
    "dataset_columns",
    "dataset_frame",
    "dataset_row_count",
    "intervention_stage",
    "iter_dataset_chunks",
    "typed_frame",
]


# ---------------------------------------------------------------------------------------------
# The analysis input of a trial


def _analysis_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable pandas dtypes as plain numpy ones (NaN for missing), for the statistics."""
    out = frame.copy()
    for name in out.columns:
        dtype = str(out[name].dtype)
        if dtype in ("Float64", "Int64"):
            out[name] = out[name].astype("float64")
        elif dtype in ("boolean", "string"):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out


def _numeric_or_none(series: pd.Series) -> pd.Series | None:
    values = pd.to_numeric(series, errors="coerce")
    if values.notna().sum() == 0 or values.notna().sum() < series.notna().sum():
        return None
    return values.astype("float64")


def analysis_input(trial: Trial) -> Any:
    """The trial's participants, plan and outcomes as an :class:`analysis.inputs.AnalysisInput`
    (everything the analysis, the report and CONSORT need), from its current data."""
    import hashlib

    from analysis.inputs import AnalysisInput, OutcomeSpec
    from trials.definition import protocol_hash

    shape = _shape(trial)
    participants = dataset_frame(trial, "participants")
    frame = _analysis_frame(participants)
    plan: dict[str, Any] = dict(trial.definition.get("analysis") or {})
    stages = {s.key: s for s in shape.task_stages}
    outcomes: dict[str, OutcomeSpec] = {}

    def stage_for(entry: dict[str, Any]) -> Stage | None:
        key = entry.get("stage")
        if key and key in stages:
            return stages[key]
        return shape.task_stages[-1] if shape.task_stages else None

    def time_spec(stage: Stage, label: str) -> OutcomeSpec:
        return OutcomeSpec(
            kind="time",
            column=f"stage_{stage.key}_time_min",
            censored_column=f"stage_{stage.key}_censored",
            limit=stage.time_limit_seconds / 60 if stage.time_limit_seconds else None,
            unit="minutes",
            label=label,
        )

    entries = [plan["primary"]] if plan.get("primary") else []
    entries += list(plan.get("secondary") or [])
    for entry in entries:
        name = entry.get("outcome", "")
        label = entry.get("description", "") or name
        if name == "quiz_score" and shape.quiz_max is not None:
            outcomes[name] = OutcomeSpec(
                kind="continuous",
                column="quiz_score",
                max_points=shape.quiz_max,
                unit="points",
                label=label,
            )
        elif name == "quiz_percent":
            outcomes[name] = OutcomeSpec(
                kind="continuous", column="quiz_percent", max_points=100.0, unit="%", label=label
            )
        elif name == "category_scores" and shape.categories:
            outcomes[name] = OutcomeSpec(
                kind="categories",
                label=label,
                unit="points",
                categories={
                    c: OutcomeSpec(
                        kind="continuous",
                        column=f"quiz_cat_{c}",
                        max_points=shape.category_max[c],
                        unit="points",
                        label=c.replace("_", " "),
                    )
                    for c in shape.categories
                },
            )
        elif name in ("completion_time", "warmup_time"):
            stage = _warmup_stage(shape) if name == "warmup_time" else stage_for(entry)
            if stage is not None:
                outcomes[name] = time_spec(stage, label)
        elif name == "task_completed":
            stage = stage_for(entry)
            if stage is not None:
                column = f"stage_{stage.key}_completed"
                censored = frame[f"stage_{stage.key}_censored"]
                frame[column] = [None if c is None else not c for c in censored]
                outcomes[name] = OutcomeSpec(kind="binary", column=column, label=label)
        elif name == "errors":
            outcomes[name] = OutcomeSpec(
                kind="continuous", column="errors", unit="count", label=label
            )
        elif name == "survey":
            for _stage, q in shape.survey:
                column = f"survey_{q['key']}"
                values = _numeric_or_none(frame[column])
                if values is None:
                    continue
                frame[column] = values
                outcomes[f"survey:{q['key']}"] = OutcomeSpec(
                    kind="continuous", column=column, label=q.get("text", q["key"])
                )
    covariates: dict[str, str] = {}
    for name in plan.get("covariates") or []:
        if name == "warmup_time":
            covariates[name] = "warmup_time_min"
        elif f"baseline_{name}" in frame.columns:
            column = f"baseline_{name}"
            values = _numeric_or_none(frame[column])
            if values is not None:
                frame[column] = values
            covariates[name] = column
        elif name in frame.columns:
            covariates[name] = name
    items = None
    item_frame = dataset_frame(trial, "items")
    if len(item_frame):
        items = _analysis_frame(item_frame)
    later = (
        Trial.objects.filter(slug=trial.slug, version__gt=trial.version)
        .order_by("-version")
        .first()
    )
    current_hash = protocol_hash(trial.definition, trial.files)
    notes = []
    if later is not None and (later.definition.get("analysis") or {}) != plan:
        notes.append(
            f"Version {later.version} of this trial has a different analysis plan; this report"
            f" follows the plan frozen with version {trial.version}."
        )
    csv_bytes = participants.to_csv(index=False).encode()
    meta: dict[str, Any] = {
        "title": trial.title,
        "slug": trial.slug,
        "version": trial.version,
        "protocol_hash": trial.protocol_hash,
        "trial_status": trial.status,
        "launched_at": trial.launched_at,
        "closed_at": trial.closed_at,
        "plan_changed": bool(trial.protocol_hash) and current_hash != trial.protocol_hash,
        "synthetic": bool(participants["is_synthetic"].fillna(False).any()),
        "synthetic_count": int(participants["is_synthetic"].fillna(False).sum()),
        "snapshot": {
            "taken_at": timezone.now(),
            "rows": len(participants),
            "sha256": hashlib.sha256(csv_bytes).hexdigest(),
        },
        "source": "skilltrial",
        "notes": notes,
    }
    from analysis.consort import consort_counts

    reference = str(plan.get("reference_arm") or next(iter(shape.arms), ""))
    consort = consort_counts(frame, arm_order=[reference], outcome_column="quiz_score")
    return AnalysisInput(
        frame=frame,
        plan=plan,
        reference_arm=reference,
        outcomes=outcomes,
        arm_labels=dict(shape.arms),
        covariates=covariates,
        baseline_columns=[f"baseline_{q['key']}" for q in shape.baseline],
        baseline_choices={
            f"baseline_{q['key']}": [
                (str(c["value"]), str(c.get("label", c["value"])))
                for c in q["choices"]
                if isinstance(c, dict) and "value" in c
            ]
            for q in shape.baseline
            if isinstance(q.get("choices"), list)
        },
        items=items,
        per_protocol_column="per_protocol",
        meta=meta,
        consort=consort,
    )
