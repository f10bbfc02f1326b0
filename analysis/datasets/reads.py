"""The bulk database reads of the data sets and of the analysis cache's fingerprint.

This is the analysis app's selector layer: the only module of :mod:`analysis.datasets` that
touches trials' and quizzes' models. Every read is a fixed number of queries whatever the
trial's size, iterated in chunks, and keeps only what the columns need (as tuples), so memory
stays proportional to the participants rather than to the rows read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from analysis.datasets.population import ERROR_STATUSES
from quizzes.models import AnswerKeyChange, HumanGrade, ItemResponse
from quizzes.quizfile import Quiz
from quizzes.selectors import stage_quiz
from trials.event_types import EventName, Sender
from trials.identity import DuplicateFlag, duplicate_flags
from trials.models import (
    Allocation,
    Arm,
    AssistantTurn,
    CodeRun,
    CodeSnapshot,
    Event,
    Participant,
    Stage,
    StageRecord,
    TaskState,
    Trial,
)

CHUNK = 5000

# The model enumerations the other modules of the package compare with, so that they need
# not import the models themselves.
TASK_STAGE = Stage.Type.TASK
QUIZ_STAGE = Stage.Type.QUIZ
SURVEY_STAGE = Stage.Type.SURVEY
COMPLETED = Participant.Status.COMPLETED
WITHDRAWN = Participant.Status.WITHDRAWN
PARTICIPANT_STATUSES = tuple(Participant.Status.values)
ITEM_STATUSES = tuple(ItemResponse.Status.values)
PENDING_STATUSES = (
    ItemResponse.Status.NEEDS_HUMAN,
    ItemResponse.Status.NEEDS_ADJUDICATION,
    ItemResponse.Status.NEEDS_SANDBOX,
)

PARTICIPANT_FIELDS = (
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

Rows = Iterator[tuple[Any, ...]]


class Record(NamedTuple):
    started_at: datetime
    ended_at: datetime | None
    end_reason: str
    answers: dict[str, Any] | None  # kept for survey stages only


class TaskRow(NamedTuple):
    first_passed_at: datetime | None
    submitted_at: datetime | None
    runs: int
    checks: int


# ---------------------------------------------------------------------------------------------
# The trial's shape


def trial_stages(trial: Trial) -> list[Stage]:
    return list(Stage.objects.filter(trial=trial).order_by("order"))


def stage_quizzes(trial: Trial, stages: list[Stage]) -> list[Quiz]:
    return [stage_quiz(trial, s) for s in stages if s.type == Stage.Type.QUIZ]


def arm_labels(trial: Trial) -> dict[str, str]:
    return {a.key: a.label for a in trial.arms.order_by("order")}


def arm_tools(trial: Trial) -> dict[str, set[str]]:
    return {a.key: set(a.tools) for a in trial.arms.all()}


def later_version(trial: Trial) -> Trial | None:
    """The newest later version of the same trial, if any."""
    return (
        Trial.objects.filter(slug=trial.slug, version__gt=trial.version)
        .order_by("-version")
        .first()
    )


# ---------------------------------------------------------------------------------------------
# Per participant, for the participants data set


def participant_rows(trial: Trial) -> Iterator[dict[str, Any]]:
    participants = Participant.objects.filter(trial=trial).order_by("created_at", "id")
    rows: Iterator[dict[str, Any]] = participants.values(*PARTICIPANT_FIELDS).iterator(
        chunk_size=CHUNK
    )
    return rows


def allocations_by_participant(trial: Trial) -> dict[str, Mapping[str, Any]]:
    return {
        a["participant_id"]: a
        for a in Allocation.objects.filter(trial=trial)
        .values("participant_id", "arm__key", "created_at", "sequence_number")
        .iterator(chunk_size=CHUNK)
    }


def stage_records(trial: Trial, survey_stages: set[int]) -> dict[str, dict[int, Record]]:
    """Each participant's stage records by stage id; answers kept for ``survey_stages`` only."""
    records: dict[str, dict[int, Record]] = defaultdict(dict)
    for pid, stage_id, started, ended, reason, answers in (
        StageRecord.objects.filter(participant__trial=trial)
        .values_list(
            "participant_id", "stage_id", "started_at", "ended_at", "end_reason", "answers"
        )
        .iterator(chunk_size=CHUNK)
    ):
        kept = answers if stage_id in survey_stages else None
        records[pid][stage_id] = Record(started, ended, reason, kept)
    return records


def task_states(trial: Trial) -> dict[str, dict[tuple[int, str], TaskRow]]:
    """Each participant's task states by (stage id, task folder)."""
    tasks: dict[str, dict[tuple[int, str], TaskRow]] = defaultdict(dict)
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
        tasks[pid][(stage_id, folder)] = TaskRow(passed, submitted, runs, checks)
    return tasks


def duplicates(trial: Trial) -> dict[str, DuplicateFlag]:
    return duplicate_flags(trial)


def browser_moves(trial: Trial) -> dict[tuple[str, str], int]:
    """How often each participant's session moved browser, by (participant id, event type)."""
    return {
        (pid, etype): n
        for pid, etype, n in Event.objects.filter(
            participant__trial=trial,
            type__in=(EventName.SESSION_RESUMED, EventName.SESSION_TAKEN_OVER),
        )
        .values_list("participant_id", "type")
        .annotate(n=Count("id"))
        .values_list("participant_id", "type", "n")
    }


def error_counts(trial: Trial) -> dict[str, int]:
    return dict(
        CodeRun.objects.filter(participant__trial=trial, status__in=ERROR_STATUSES)
        .values_list("participant_id")
        .annotate(n=Count("id"))
        .values_list("participant_id", "n")
    )


def assistant_turn_totals(trial: Trial) -> dict[str, Mapping[str, Any]]:
    """Per participant: ``n`` turns, ``tin`` input and ``tout`` output tokens."""
    return {
        t["participant_id"]: t
        for t in AssistantTurn.objects.filter(participant__trial=trial)
        .values("participant_id")
        .annotate(n=Count("id"), tin=Sum("input_tokens"), tout=Sum("output_tokens"))
    }


def paste_payloads(trial: Trial) -> Rows:
    """(participant id, payload) of every paste event."""
    return (
        Event.objects.filter(participant__trial=trial, type=EventName.PASTE)
        .values_list("participant_id", "payload")
        .iterator(chunk_size=CHUNK)
    )


def assistant_focus_rows(trial: Trial, stage_ids: list[int]) -> Rows:
    """(participant id, stage id, type, client time, server time) of the client-reported
    focus and blur events of the assistant's message box in ``stage_ids``, by participant and
    then in the order they arrived."""
    return (
        Event.objects.filter(
            participant__trial=trial,
            origin=Sender.CLIENT,
            stage_id__in=stage_ids,
            type__in=(EventName.FOCUS, EventName.BLUR),
            payload__scope="assistant",
        )
        .order_by("participant_id", "id")
        .values_list("participant_id", "stage_id", "type", "client_time", "server_time")
        .iterator(chunk_size=CHUNK)
    )


def item_grades(trial: Trial) -> Rows:
    """(participant id, question key, points, status, correct, is attention check,
    categories) of every item response."""
    return (
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
    )


# ---------------------------------------------------------------------------------------------
# The streamed and small data sets


def arm_by_participant(trial: Trial) -> dict[str, str]:
    return dict(Allocation.objects.filter(trial=trial).values_list("participant_id", "arm__key"))


def participant_codes(trial: Trial) -> dict[str, str]:
    return dict(Participant.objects.filter(trial=trial).values_list("id", "public_code"))


def item_rows(trial: Trial, chunk_size: int) -> Rows:
    return (
        ItemResponse.objects.filter(participant__trial=trial)
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
        .iterator(chunk_size=chunk_size)
    )


def event_rows(trial: Trial, chunk_size: int) -> Rows:
    return (
        Event.objects.filter(participant__trial=trial)
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
        .iterator(chunk_size=chunk_size)
    )


def allocation_rows(trial: Trial) -> list[tuple[Any, ...]]:
    return list(
        Allocation.objects.filter(trial=trial)
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


def row_counts(trial: Trial) -> dict[str, Any]:
    """The row count of each data set, as a query not yet run (call ``.count()``)."""
    return {
        "participants": Participant.objects.filter(trial=trial),
        "items": ItemResponse.objects.filter(participant__trial=trial),
        "events": Event.objects.filter(participant__trial=trial),
        "allocations": Allocation.objects.filter(trial=trial),
    }


# ---------------------------------------------------------------------------------------------
# The data-state fingerprint of the analysis cache (analysis.cache): cheap aggregates over
# everything the trial's analysis reads. Any change to what the data sets read changes one.


def _overdue_records(trial: Trial, now: datetime) -> Q:
    """Open stage records whose stage's time limit has passed by ``now`` (they count as
    censored from then on, so the results change without any write)."""
    timed = [
        (pk, limit)
        for pk, limit in Stage.objects.filter(trial=trial).values_list("pk", "time_limit_seconds")
        if limit
    ]
    if not timed:
        return Q(pk__isnull=True)
    overdue = Q()
    for pk, limit in timed:
        overdue |= Q(stage_id=pk, started_at__lte=now - timedelta(seconds=limit))
    return Q(ended_at__isnull=True) & overdue


def _trial_state(trial: Trial) -> dict[str, Any]:
    statuses = {
        f"status_{status}": Count("pk", filter=Q(status=status))
        for status in Participant.Status.values
    }
    return {
        "later_versions": list(
            Trial.objects.filter(slug=trial.slug, version__gt=trial.version)
            .order_by("version")
            .values_list("version", "definition_hash", "updated_at")
        ),
        "stages": Stage.objects.filter(trial=trial).aggregate(n=Count("pk"), last=Max("pk")),
        "arms": Arm.objects.filter(trial=trial).aggregate(n=Count("pk"), last=Max("pk")),
        "participants": Participant.objects.filter(trial=trial).aggregate(
            n=Count("pk"),
            last=Max("pk"),
            created=Max("created_at"),
            consented=Max("consented_at"),
            stage_started=Max("stage_started_at"),
            completed=Max("completed_at"),
            eligible=Count("pk", filter=Q(eligible=True)),
            synthetic=Count("pk", filter=Q(is_synthetic=True)),
            **statuses,
        ),
        "allocations": Allocation.objects.filter(trial=trial).aggregate(
            n=Count("pk"), last=Max("pk")
        ),
    }


def _progress_state(trial: Trial, now: datetime) -> dict[str, Any]:
    by_participant = Q(participant__trial=trial)
    return {
        "stage_records": StageRecord.objects.filter(by_participant).aggregate(
            n=Count("pk"),
            last=Max("pk"),
            started=Max("started_at"),
            ended=Max("ended_at"),
            n_ended=Count("pk", filter=Q(ended_at__isnull=False)),
            overdue=Count("pk", filter=_overdue_records(trial, now)),
        ),
        "task_states": TaskState.objects.filter(by_participant).aggregate(
            n=Count("pk"),
            last=Max("pk"),
            passed=Max("first_passed_at"),
            n_passed=Count("pk", filter=Q(first_passed_at__isnull=False)),
            submitted=Max("submitted_at"),
            runs=Sum("runs"),
            checks=Sum("checks"),
        ),
        "code_run_errors": CodeRun.objects.filter(
            by_participant, status__in=ERROR_STATUSES
        ).aggregate(n=Count("pk"), last=Max("pk")),
        "assistant_turns": AssistantTurn.objects.filter(by_participant).aggregate(
            n=Count("pk"),
            last=Max("pk"),
            tokens_in=Sum("input_tokens"),
            tokens_out=Sum("output_tokens"),
        ),
        "events": Event.objects.filter(
            by_participant, type__in=(EventName.PASTE, EventName.FOCUS, EventName.BLUR)
        ).aggregate(n=Count("pk"), last=Max("pk")),
    }


def _grading_state(trial: Trial) -> dict[str, Any]:
    return {
        "item_responses": ItemResponse.objects.filter(participant__trial=trial).aggregate(
            n=Count("pk"),
            last=Max("pk"),
            created=Max("created_at"),
            graded=Max("graded_at"),
            n_graded=Count("pk", filter=Q(graded_at__isnull=False)),
            n_correct=Count("pk", filter=Q(correct=True)),
            points=Sum("points"),
            max_points=Sum("max_points"),
        ),
        "human_grades": HumanGrade.objects.filter(response__participant__trial=trial).aggregate(
            n=Count("pk"), last=Max("pk"), created=Max("created_at"), points=Sum("points")
        ),
        "answer_key_changes": AnswerKeyChange.objects.filter(trial=trial).aggregate(
            n=Count("pk"), last=Max("pk"), changed=Max("changed_at"), regraded=Sum("regraded")
        ),
    }


def data_state(trial: Trial) -> dict[str, Any]:
    """Cheap aggregates over everything the trial's analysis reads (see analysis.cache)."""
    now = timezone.now()
    return _trial_state(trial) | _progress_state(trial, now) | _grading_state(trial)


def synthetic_counts(trial: Trial) -> tuple[int, int]:
    """(synthetic participants, all participants) of the trial."""
    participants = Participant.objects.filter(trial=trial)
    return participants.filter(is_synthetic=True).count(), participants.count()


def code_snapshot_count(trial: Trial) -> int:
    return CodeSnapshot.objects.filter(participant__trial=trial).count()


def code_snapshots(trial: Trial, chunk_size: int) -> Iterator[str]:
    """Every stored version of every participant's code, in the order stored."""
    codes = CodeSnapshot.objects.filter(participant__trial=trial).order_by("id")
    rows: Iterator[str] = codes.values_list("code", flat=True).iterator(chunk_size=chunk_size)
    return rows
