"""The API's reads: one queryset per endpoint, filtered by validated query parameters, with
every relation the serializer touches joined in, so a page costs a constant number of queries
whatever its size. Unknown trials, arms and stages are a 400 naming the parameter: a typo in
``arm=`` must not look like an empty arm."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from django.db.models import (
    Count,
    IntegerField,
    Model,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from rest_framework.exceptions import ValidationError

from quizzes.models import ItemResponse
from trials.models import Allocation, Arm, Event, Participant, Stage, StageRecord, Trial
from trials.selectors import trial_for_slug

M = TypeVar("M", bound=Model)


def _count_per_trial(queryset: QuerySet[Any]) -> Coalesce:
    # A correlated COUNT per trial: joining participants and allocations into one GROUP BY
    # would multiply their rows.
    counted = (
        queryset.filter(trial=OuterRef("pk"))
        .order_by()
        .values("trial")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def trials_with_details() -> QuerySet[Trial]:
    return Trial.objects.annotate(
        n_participants=_count_per_trial(Participant.objects.all()),
        n_consented=_count_per_trial(Participant.objects.filter(consented_at__isnull=False)),
        n_allocated=_count_per_trial(Allocation.objects.all()),
        n_completed=_count_per_trial(
            Participant.objects.filter(status=Participant.Status.COMPLETED)
        ),
    ).prefetch_related(
        Prefetch(
            "arms",
            queryset=Arm.objects.annotate(n_allocated=Count("allocations")).order_by("order"),
        ),
        Prefetch("stages", queryset=Stage.objects.order_by("order")),
    )


def trials_list(params: Mapping[str, Any]) -> QuerySet[Trial]:
    trials = trials_with_details()
    if "slug" in params:
        trials = trials.filter(slug=params["slug"])
    if "status" in params:
        trials = trials.filter(status=params["status"])
    return trials


def _scope_trial(params: Mapping[str, Any]) -> Trial | None:
    if "trial" not in params:
        return None
    trial = trial_for_slug(params["trial"], params.get("version"))
    if trial is None:
        if "version" in params:
            raise ValidationError(
                {"version": [f"trial '{params['trial']}' has no version {params['version']}"]}
            )
        raise ValidationError({"trial": [f"no trial '{params['trial']}'"]})
    return trial


def _require_known(
    params: Mapping[str, Any], name: str, model: type[Arm] | type[Stage], trial: Trial | None
) -> None:
    """A 400 when ``params[name]`` is not the key of an arm/stage of the trial (or of any
    trial, when none is named), listing the keys that exist."""
    if name not in params:
        return
    candidates = model.objects.filter(trial=trial) if trial else model.objects.all()
    if candidates.filter(key=params[name]).exists():
        return
    where = f"trial '{trial.slug}' v{trial.version}" if trial else "any trial"
    known = sorted(set(candidates.values_list("key", flat=True)))
    raise ValidationError(
        {name: [f"no {name} '{params[name]}' in {where} (known: {', '.join(known) or 'none'})"]}
    )


def _trial_scope(
    queryset: QuerySet[M], trial_field: str, trial: Trial | None, params: Mapping[str, Any]
) -> QuerySet[M]:
    if trial is not None:
        return queryset.filter(**{trial_field: trial})
    if "version" in params:
        return queryset.filter(**{f"{trial_field}__version": params["version"]})
    return queryset


def _time_window(queryset: QuerySet[M], field: str, params: Mapping[str, Any]) -> QuerySet[M]:
    if "since" in params:
        queryset = queryset.filter(**{f"{field}__gte": params["since"]})
    if "until" in params:
        queryset = queryset.filter(**{f"{field}__lt": params["until"]})
    return queryset


def participants_list(params: Mapping[str, Any]) -> QuerySet[Participant]:
    trial = _scope_trial(params)
    _require_known(params, "arm", Arm, trial)
    _require_known(params, "stage", Stage, trial)
    furthest = (
        StageRecord.objects.filter(participant=OuterRef("pk"))
        .order_by("-stage__order")
        .values("stage__key")[:1]
    )
    people = Participant.objects.select_related(
        "trial", "current_stage", "allocation__arm"
    ).annotate(furthest_stage_key=Subquery(furthest))
    people = _trial_scope(people, "trial", trial, params)
    if "arm" in params:
        people = people.filter(allocation__arm__key=params["arm"])
    if "stage" in params:
        people = people.filter(current_stage__key=params["stage"])
    if "status" in params:
        people = people.filter(status=params["status"])
    return _time_window(people, "created_at", params)


def allocations_list(params: Mapping[str, Any]) -> QuerySet[Allocation]:
    trial = _scope_trial(params)
    _require_known(params, "arm", Arm, trial)
    allocations = Allocation.objects.select_related("participant", "trial", "arm")
    allocations = _trial_scope(allocations, "trial", trial, params)
    if "arm" in params:
        allocations = allocations.filter(arm__key=params["arm"])
    if "stratum" in params:
        allocations = allocations.filter(stratum=params["stratum"])
    return _time_window(allocations, "created_at", params)


def _participant_scope(
    queryset: QuerySet[M], trial: Trial | None, params: Mapping[str, Any]
) -> QuerySet[M]:
    queryset = _trial_scope(queryset, "participant__trial", trial, params)
    if "arm" in params:
        queryset = queryset.filter(participant__allocation__arm__key=params["arm"])
    if "stage" in params:
        queryset = queryset.filter(stage__key=params["stage"])
    if "participant" in params:
        queryset = queryset.filter(participant__public_code=params["participant"])
    return queryset


def events_list(params: Mapping[str, Any]) -> QuerySet[Event]:
    trial = _scope_trial(params)
    _require_known(params, "arm", Arm, trial)
    _require_known(params, "stage", Stage, trial)
    events = Event.objects.select_related(
        "participant__trial", "participant__allocation__arm", "stage"
    )
    events = _participant_scope(events, trial, params)
    if "type" in params:
        events = events.filter(type=params["type"])
    return _time_window(events, "server_time", params)


def items_list(params: Mapping[str, Any]) -> QuerySet[ItemResponse]:
    trial = _scope_trial(params)
    _require_known(params, "arm", Arm, trial)
    _require_known(params, "stage", Stage, trial)
    items = ItemResponse.objects.select_related(
        "participant__trial", "participant__allocation__arm", "stage"
    )
    items = _participant_scope(items, trial, params)
    if "question" in params:
        items = items.filter(question_key=params["question"])
    if "status" in params:
        items = items.filter(status=params["status"])
    return _time_window(items, "created_at", params)
