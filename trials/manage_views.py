"""The experimenters' dashboard at /manage/ (login required; experimenter or statistician)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from trials import runner
from trials.access import staff_role_required
from trials.event_types import EventName
from trials.identity import DuplicateFlag, duplicate_flags, duplicate_rule, is_excluded_duplicate
from trials.models import AssistantTurn, CodeRun, Event, Participant, Trial
from trials.selectors import (
    participant_conversation,
    participant_replay,
    trial_overview,
    trial_participants,
)
from trials.services.assistant import trial_spend

View = Callable[..., HttpResponseBase]


def _sandbox() -> dict[str, str]:
    """Which sandbox participant code runs in, for a banner: loud when it is the fallback."""
    try:
        status = runner.sandbox_status()
    except runner.SandboxUnavailable as exc:
        return {"kind": "unavailable", "detail": str(exc)}
    return {"kind": status.kind, "detail": status.detail}


def _assistant_summary(trial: Trial) -> dict[str, Any]:
    turns = AssistantTurn.objects.filter(participant__trial=trial)
    return {
        "turns": turns.count(),
        "failed": turns.filter(status=AssistantTurn.Status.FAILED).count(),
        "spend": trial_spend(trial),
        "cap": trial.definition.get("assistant_spend_cap_usd"),
        "refused": Event.objects.filter(
            participant__trial=trial, type=EventName.ASSISTANT_REFUSED
        ).count(),
    }


def _identity_summary(trial: Trial, flags: dict[str, DuplicateFlag]) -> dict[str, Any]:
    """Likely duplicates by signal and what the plan does with them; browser switches."""
    plan = trial.analysis_plan
    rule, signals = duplicate_rule(plan)
    by_signal = {
        signal: sum(signal in flag.signals for flag in flags.values())
        for signal in ("external_id", "browser", "address")
    }
    events = dict(
        Event.objects.filter(
            participant__trial=trial,
            type__in=(
                EventName.SESSION_RESUMED,
                EventName.SESSION_TAKEN_OVER,
                EventName.RESUME_FAILED,
            ),
        )
        .values_list("type")
        .annotate(n=Count("pk"))
        .values_list("type", "n")
    )
    return {
        "flagged": len(flags),
        "by_signal": by_signal,
        "excluded": sum(is_excluded_duplicate(flag, plan) for flag in flags.values()),
        "rule": rule,
        "signals": ", ".join(signals),
        "resumed": events.get(EventName.SESSION_RESUMED, 0),
        "taken_over": events.get(EventName.SESSION_TAKEN_OVER, 0),
        "failed_codes": events.get(EventName.RESUME_FAILED, 0),
    }


@staff_role_required
def trial_list(request: HttpRequest) -> HttpResponse:
    trials = Trial.objects.order_by("slug", "-version")
    rows = [(trial, trial_overview(trial), len(duplicate_flags(trial))) for trial in trials]
    return render(request, "manage/trial_list.html", {"rows": rows, "sandbox": _sandbox()})


@staff_role_required
def trial_detail(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    trial = get_object_or_404(Trial, slug=slug, version=version)
    overview = trial_overview(trial)
    page = Paginator(trial_participants(trial), 100).get_page(request.GET.get("page"))
    flags = duplicate_flags(trial)
    people = [
        (p, flags.get(p.pk), flags[p.pk].of_label(trial.version) if p.pk in flags else "")
        for p in page
    ]
    peak = max((n for _, n in overview.enrollment_by_day), default=0)
    table = [
        (
            stratum or "(unstratified)",
            [overview.by_arm_stratum.get((arm, stratum), 0) for arm in overview.arms],
        )
        for stratum in overview.strata
    ]
    return render(
        request,
        "manage/trial_detail.html",
        {
            "trial": trial,
            "overview": overview,
            "page": page,
            "peak": peak,
            "arm_stratum_table": table,
            "sandbox": _sandbox(),
            "assistant": _assistant_summary(trial),
            "people": people,
            "identity": _identity_summary(trial, flags),
            "now": timezone.now(),
        },
    )


def _participant(slug: str, version: int, code: str) -> tuple[Trial, Participant]:
    trial = get_object_or_404(Trial, slug=slug, version=version)
    participant = get_object_or_404(
        Participant.objects.select_related("current_stage"), trial=trial, public_code=code
    )
    return trial, participant


@staff_role_required
def participant_replay_view(
    request: HttpRequest, slug: str, version: int, code: str
) -> HttpResponse:
    trial, participant = _participant(slug, version, code)
    replay = participant_replay(participant)
    frames = [
        {
            "t": frame.time.isoformat(),
            "task": frame.task,
            "code": frame.code,
            "kind": frame.kind,
            "label": frame.label,
        }
        for frame in replay.frames
    ]
    runs = CodeRun.objects.filter(participant=participant).order_by("created_at")
    return render(
        request,
        "manage/replay.html",
        {
            "trial": trial,
            "participant": participant,
            "replay": replay,
            "frames": frames,
            "runs": runs,
            "records": participant.stage_records.select_related("stage").order_by("started_at"),
            "turns": AssistantTurn.objects.filter(participant=participant).count(),
            "now": timezone.now(),
        },
    )


@staff_role_required
def participant_conversation_view(
    request: HttpRequest, slug: str, version: int, code: str
) -> HttpResponse:
    """Every exchange of one participant with the assistant. Staff only: it shows the arm
    (only assistant arms have turns), so graders, who must stay blind, get the 403 page."""
    trial, participant = _participant(slug, version, code)
    turns = participant_conversation(participant)
    return render(
        request,
        "manage/conversation.html",
        {
            "trial": trial,
            "participant": participant,
            "turns": turns,
            "tokens_in": sum(t.turn.input_tokens for t in turns),
            "tokens_out": sum(t.turn.output_tokens for t in turns),
            "now": timezone.now(),
        },
    )
