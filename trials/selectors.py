"""Reads, each scoped to one trial. Nothing here reveals the seed or upcoming allocations."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db import models
from django.db.models import Case, Count, IntegerField, QuerySet, Value, When
from django.db.models.functions import TruncDate
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from trials.event_types import EventName
from trials.models import (
    Allocation,
    AssistantTurn,
    CodeSnapshot,
    Event,
    Participant,
    Stage,
    Trial,
)
from trials.replay import Mark, Replay, build_replay
from trials.tasks import load_task


class TrialNotFound(LookupError):
    """No trial matches; the message names the slug, version and status asked for, and the
    slugs that exist, for a command's error or a 404."""


def trial_for_slug(
    slug: str, version: int | None = None, *, status: str | None = None
) -> Trial | None:
    """The one rule for which trial version a slug means, on every page, API call, export and
    command: the version asked for; else, with ``status``, the newest version in that status
    (``launch_trial`` launches the newest draft, ``close_trial`` closes the live one); else the
    live version, else the newest launched, else the newest draft."""
    versions = Trial.objects.filter(slug=slug)
    if status is not None:
        versions = versions.filter(status=status)
    if version is not None:
        return versions.filter(version=version).first()
    if status is not None:
        return versions.order_by("-version").first()
    return versions.order_by(
        Case(
            When(status=Trial.Status.LIVE, then=Value(0)),
            When(launched_at__isnull=False, then=Value(1)),
            default=Value(2),
            output_field=IntegerField(),
        ),
        "-version",
    ).first()


def require_trial(slug: str, version: int | None = None, *, status: str | None = None) -> Trial:
    """:func:`trial_for_slug`, or :class:`TrialNotFound` with a message that says what exists."""
    trial = trial_for_slug(slug, version, status=status)
    if trial is None:
        what = f"'{slug}'" + (f" version {version}" if version is not None else "")
        if status is not None:
            what += f" with status {status}"
        known = ", ".join(sorted(set(Trial.objects.values_list("slug", flat=True)))) or "none"
        raise TrialNotFound(f"no trial {what} (trials: {known})")
    return trial


_JSON_FIELDS = frozenset(
    f.attname for f in Trial._meta.concrete_fields if isinstance(f, models.JSONField)
)
_LIVE_ROWS: dict[int, tuple[datetime, list[str], tuple[Any, ...]]] = {}
"""Live trials' rows as last read, per server process: id -> (updated_at, field names, values).
A live trial's definition and files are frozen, so every participant request need not read
and decode them again (~40 KB); any save of the row moves ``updated_at`` and is read anew."""


@receiver([post_save, post_delete], sender=Trial)
def _forget_trial_row(instance: Trial, **kwargs: Any) -> None:
    """A save in this process (even one limited to some fields, which leaves ``updated_at``
    alone) is read anew here at once; other processes notice ``updated_at``."""
    _LIVE_ROWS.pop(instance.pk, None)


def live_trial(slug: str) -> Trial | None:
    """The live version of ``slug``. Whether it is live is asked of the database every time
    (one small row); the rest of the row comes from this process's copy while ``updated_at``
    says it is current. Each call gets an instance of its own."""
    row = (
        Trial.objects.filter(slug=slug, status=Trial.Status.LIVE)
        .values_list("pk", "updated_at")
        .first()
    )
    if row is None:
        return None
    pk, updated_at = row
    cached = _LIVE_ROWS.get(pk)
    if cached is None or cached[0] != updated_at:
        names = [f.attname for f in Trial._meta.concrete_fields]
        values = Trial.objects.filter(pk=pk).values_list(*names).first()
        if values is None:  # deleted in between
            return None
        # JSON fields are kept encoded, so no request can change another's copy in place.
        cached = (
            values[names.index("updated_at")],
            names,
            tuple(
                json.dumps(v) if n in _JSON_FIELDS else v
                for n, v in zip(names, values, strict=True)
            ),
        )
        _LIVE_ROWS[pk] = cached
    _, names, stored = cached
    values = tuple(
        json.loads(v) if n in _JSON_FIELDS else v for n, v in zip(names, stored, strict=True)
    )
    return Trial.from_db(Trial.objects.db, names, values)


def participant_arm_key(participant: Participant) -> str | None:
    allocation = Allocation.objects.filter(participant=participant).select_related("arm").first()
    return allocation.arm.key if allocation else None


def participant_tools(participant: Participant) -> set[str]:
    """The tools this participant may use right now: their arm's tools that the current
    stage allows. Derived from the database on every request, never from the browser."""
    stage = participant.current_stage
    if stage is None or participant.status != Participant.Status.ACTIVE:
        return set()
    allocation = Allocation.objects.filter(participant=participant).select_related("arm").first()
    if allocation is None:
        return set()
    return set(allocation.arm.tools) & set(stage.tools)


def trial_participants(trial: Trial) -> QuerySet[Participant]:
    return (
        Participant.objects.filter(trial=trial)
        .select_related("current_stage", "allocation__arm")
        .order_by("-created_at")
    )


def synthetic_count(trial: Trial) -> int:
    """How many of the trial version's participants were made by ``manage.py synthesize``."""
    return Participant.objects.filter(trial=trial, is_synthetic=True).count()


@dataclass
class TrialOverview:
    trial: Trial
    entered: int = 0
    consented: int = 0
    screened: int = 0
    declined: int = 0
    screened_out: int = 0
    allocated: int = 0
    completed: int = 0
    synthetic: int = 0
    past_deadline: int = 0
    arms: list[str] = field(default_factory=list)
    strata: list[str] = field(default_factory=list)
    by_arm_stratum: dict[tuple[str, str], int] = field(default_factory=dict)
    by_arm: dict[str, int] = field(default_factory=dict)
    screen_out_reasons: list[tuple[str, int]] = field(default_factory=list)
    by_stage: list[tuple[str, int]] = field(default_factory=list)
    enrollment_by_day: list[tuple[date, int]] = field(default_factory=list)


def trial_overview(trial: Trial) -> TrialOverview:
    """Counts for the experimenters' dashboard: flow, arm x stratum, screen-outs, stages."""
    people = Participant.objects.filter(trial=trial)
    overview = TrialOverview(trial=trial)
    status_counts = dict(
        people.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    overview.entered = sum(status_counts.values())
    overview.declined = status_counts.get(Participant.Status.DECLINED, 0)
    overview.consented = people.filter(consented_at__isnull=False).count()
    overview.screened = people.filter(eligible__isnull=False).count()
    overview.screened_out = status_counts.get(Participant.Status.SCREENED_OUT, 0)
    overview.completed = status_counts.get(Participant.Status.COMPLETED, 0)
    overview.synthetic = synthetic_count(trial)
    overview.past_deadline = people.filter(
        status=Participant.Status.ACTIVE, stage_deadline__lt=timezone.now()
    ).count()
    overview.arms = list(trial.arms.order_by("order").values_list("key", flat=True))
    allocations = Allocation.objects.filter(trial=trial)
    overview.allocated = allocations.count()
    for arm_key, stratum, n in (
        allocations.values_list("arm__key", "stratum").annotate(n=Count("pk")).order_by()
    ):
        overview.by_arm_stratum[(arm_key, stratum)] = n
        overview.by_arm[arm_key] = overview.by_arm.get(arm_key, 0) + n
    overview.strata = sorted({stratum for (_, stratum) in overview.by_arm_stratum})
    reasons: Counter[str] = Counter()
    for reason_list in people.filter(status=Participant.Status.SCREENED_OUT).values_list(
        "screen_out_reasons", flat=True
    ):
        reasons.update(reason_list or [])
    overview.screen_out_reasons = reasons.most_common()
    stage_counts = dict(
        people.filter(current_stage__isnull=False)
        .values_list("current_stage__key")
        .annotate(n=Count("pk"))
        .values_list("current_stage__key", "n")
    )
    overview.by_stage = [
        (stage.title, stage_counts.get(stage.key, 0))
        for stage in Stage.objects.filter(trial=trial).order_by("order")
    ]
    overview.enrollment_by_day = [
        (row["day"], row["n"])
        for row in allocations.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("pk"))
        .order_by("day")
    ]
    return overview


def participant_replay(participant: Participant) -> Replay:
    """The participant's code history with runs, checks, pastes, copies, assistant messages
    and stage changes on one timeline. Browser events are placed by the browser's clock,
    server records by the server's."""
    trial = participant.trial
    folders = [
        folder
        for stage in Stage.objects.filter(trial=trial, type=Stage.Type.TASK).order_by("order")
        for folder in stage.config.get("tasks", [])
    ]
    starters = {folder: load_task(trial.files, folder).starter for folder in folders}
    marks: list[Mark] = []
    edited: set[str] = set()
    for event in Event.objects.filter(participant=participant).order_by("server_time", "id"):
        payload = event.payload if isinstance(event.payload, dict) else {}
        when = event.client_time or event.server_time
        task = str(payload.get("task", ""))
        if event.origin == "client" and event.type == EventName.EDIT:
            edited.add(task)
            marks.append(Mark(when, task, "edit", "edit", changes=payload.get("changes", [])))
        elif event.origin == "client" and event.type == EventName.SNAPSHOT:
            marks.append(
                Mark(when, task, "snapshot", "snapshot", text=str(payload.get("code", "")))
            )
        elif event.origin == "server" and event.type in (EventName.RUN, EventName.CHECK):
            status = payload.get("status", "")
            label = f"{event.type}: {status}"
            if event.type == EventName.CHECK:
                label += f" ({payload.get('tests_passed')}/{payload.get('tests_total')} tests)"
            elif payload.get("exception_type"):
                label += f" ({payload['exception_type']})"
            marks.append(Mark(event.server_time, task, event.type, label, detail=payload))
        elif event.type in (EventName.PASTE, EventName.COPY):
            label = f"{event.type} of {payload.get('length', '?')} characters"
            if payload.get("from_assistant"):
                label += " from the assistant"
            marks.append(Mark(when, task, event.type, label, detail=payload))
        elif event.type.startswith("assistant"):
            marks.append(
                Mark(when, task, "assistant", event.type.replace("_", " "), detail=payload)
            )
        elif event.type in (
            EventName.STAGE_ENTERED,
            EventName.STAGE_LEFT,
            EventName.TASK_COMPLETED,
            EventName.TASK_SUBMITTED,
        ):
            marks.append(
                Mark(event.server_time, task, "stage", event.type.replace("_", " "), detail=payload)
            )
        elif event.type in (EventName.BLUR, EventName.FOCUS, EventName.VISIBILITY, EventName.IDLE):
            marks.append(Mark(when, task, "attention", event.type, detail=payload))
    # Saved versions fill in tasks for which the browser's edit stream is missing.
    for snapshot in CodeSnapshot.objects.filter(participant=participant).exclude(task__in=edited):
        marks.append(
            Mark(
                snapshot.created_at,
                snapshot.task,
                "saved",
                f"saved version {snapshot.version} ({snapshot.source})",
                text=snapshot.code,
            )
        )
    return build_replay(starters, marks)


CODE_SENT = re.compile(r"<code>\n(.*)\n</code>", re.S)


@dataclass(frozen=True)
class PasteAfterTurn:
    time: datetime
    task: str
    length: int | None


@dataclass(frozen=True)
class ConversationTurn:
    """One exchange with the assistant as the staff's conversation viewer shows it."""

    turn: AssistantTurn
    code_sent: str | None  # None when the arm does not show the assistant the code
    pastes: list[PasteAfterTurn]

    @property
    def pasted_chars(self) -> int:
        return sum(p.length or 0 for p in self.pastes)


def participant_conversation(participant: Participant) -> list[ConversationTurn]:
    """Every assistant turn of one participant, oldest first: the question, the code the
    server sent with it (read from the stored context, not from the browser), the reply, the
    tokens, and the pastes the server matched to that reply (``assistant_turn`` is set by
    the server only, see ``trials.event_types.PROVENANCE_FIELDS``)."""
    turns = list(
        AssistantTurn.objects.filter(participant=participant)
        .select_related("stage")
        .order_by("created_at", "id")
    )
    pastes: dict[int, list[PasteAfterTurn]] = {}
    for event in Event.objects.filter(participant=participant, type=EventName.PASTE).order_by(
        "server_time", "id"
    ):
        payload = event.payload if isinstance(event.payload, dict) else {}
        turn = payload.get("assistant_turn")
        if not isinstance(turn, int):
            continue
        length = payload.get("length")
        pastes.setdefault(turn, []).append(
            PasteAfterTurn(
                time=event.client_time or event.server_time,
                task=str(payload.get("task", "")),
                length=length if isinstance(length, int) else None,
            )
        )
    out = []
    for turn in turns:
        context = turn.context if isinstance(turn.context, dict) else {}
        found = CODE_SENT.findall(str(context.get("system", "")))
        out.append(
            ConversationTurn(
                turn=turn, code_sent=found[-1] if found else None, pastes=pastes.get(turn.pk, [])
            )
        )
    return out
