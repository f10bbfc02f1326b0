"""Reads, each scoped to one trial. Nothing here reveals the seed or upcoming allocations."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate

from trials.models import Allocation, Participant, Stage, Trial


def live_trial(slug: str) -> Trial | None:
    return Trial.objects.filter(slug=slug, status=Trial.Status.LIVE).first()


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
