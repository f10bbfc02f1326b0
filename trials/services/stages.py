"""Writes: the stage engine. Entering a stage, moving on by compare-and-set, closing stages
whose server-side deadline passed, finishing a content stage. A stage type's own runtime
(what a quiz records, which questions it shows) comes from :mod:`trials.stage_kinds`."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from trials.event_types import EventName, stage_entered_payload, stage_left_payload
from trials.models import Participant, Stage, StageRecord, new_completion_code
from trials.services.errors import StageConflict, TrialError
from trials.services.events import event_log, event_log_many
from trials.stage_kinds import stage_kind

logger = logging.getLogger("skilltrial.trials")

# A request that left the browser just before the deadline still counts as in time.
DEADLINE_GRACE = timedelta(seconds=5)


def start_stage(participant: Participant, stage: Stage | None, now: Any) -> None:
    participant.current_stage = stage
    participant.stage_started_at = now if stage else None
    participant.stage_deadline = (
        now + timedelta(seconds=stage.time_limit_seconds)
        if stage is not None and stage.time_limit_seconds
        else None
    )
    if stage is not None:
        StageRecord.objects.create(
            participant=participant,
            stage=stage,
            started_at=now,
            deadline=participant.stage_deadline,
        )
        event_log(
            participant,
            EventName.STAGE_ENTERED,
            stage=stage,
            payload=stage_entered_payload(stage.key),
        )


def _next_stage(stage: Stage) -> Stage | None:
    return (
        Stage.objects.filter(trial_id=stage.trial_id, order__gt=stage.order)
        .order_by("order")
        .first()
    )


def advance_stage(
    participant: Participant,
    stage: Stage,
    *,
    reason: str,
    answers: dict[str, Any] | None,
    now: Any,
) -> Participant:
    """Move from ``stage`` to the next one by compare-and-set; raise StageConflict if the
    participant is no longer at ``stage`` (a replayed request or a second tab). Must run inside
    a transaction."""
    nxt = _next_stage(stage)
    deadline = (
        now + timedelta(seconds=nxt.time_limit_seconds) if nxt and nxt.time_limit_seconds else None
    )
    updates: dict[str, Any] = {
        "current_stage": nxt,
        "stage_started_at": now if nxt else None,
        "stage_deadline": deadline,
    }
    if nxt is not None and nxt.type == Stage.Type.DEBRIEF:
        updates.update(
            status=Participant.Status.COMPLETED,
            completed_at=now,
            completion_code=new_completion_code(),
        )
    changed = Participant.objects.filter(pk=participant.pk, current_stage=stage).update(**updates)
    if changed != 1:
        raise StageConflict("this step has already been completed")
    answers = _close_record(participant, stage, reason=reason, answers=answers, now=now)
    kind = stage_kind(stage.type)
    if kind is not None and kind.record_responses is not None:
        kind.record_responses(participant, stage, answers or {})
    events: list[tuple[str, Stage | None, dict[str, Any]]] = [
        (EventName.STAGE_LEFT, stage, stage_left_payload(stage.key, reason))
    ]
    if nxt is not None:
        StageRecord.objects.create(
            participant=participant, stage=nxt, started_at=now, deadline=deadline
        )
        events.append((EventName.STAGE_ENTERED, nxt, stage_entered_payload(nxt.key)))
    event_log_many(participant, events)
    # What was just written, without reading it back.
    for name, value in updates.items():
        setattr(participant, name, value)
    return participant


def _close_record(
    participant: Participant, stage: Stage, *, reason: str, answers: dict[str, Any] | None, now: Any
) -> dict[str, Any] | None:
    """End the open record of ``stage``: one UPDATE, unless time ran out without answers
    (then the last autosaved draft is what counts, read first). Returns the answers that
    count."""
    open_record = StageRecord.objects.filter(
        participant=participant, stage=stage, ended_at__isnull=True
    )
    if answers is None and reason == StageRecord.EndReason.TIMED_OUT:
        record = open_record.first()
        if record is None:
            return None
        answers = dict(record.draft)
    fields: dict[str, Any] = {"ended_at": now, "end_reason": reason}
    if answers is not None:
        fields["answers"] = answers
    open_record.update(**fields)
    return answers


def participant_sync_clock(
    *, participant: Participant, grace: timedelta = DEADLINE_GRACE
) -> Participant:
    """Close every stage whose server-side deadline has passed (recorded as timed out,
    censored), so the participant is where the clock says they are. Saves from the page get
    a few seconds' ``grace`` for the network; a page load gets none."""
    now = timezone.now()
    while (
        participant.current_stage is not None
        and participant.stage_deadline is not None
        and now > participant.stage_deadline + grace
    ):
        stage = participant.current_stage
        try:
            with transaction.atomic():
                participant = advance_stage(
                    participant,
                    stage,
                    reason=StageRecord.EndReason.TIMED_OUT,
                    answers=None,
                    now=now,
                )
        except StageConflict:
            participant.refresh_from_db()
        logger.info("participant %s: stage %s timed out", participant.public_code, stage.key)
    return participant


def require_stage(participant: Participant, stage_key: str, stage_type: str) -> Stage:
    stage = participant.current_stage
    if stage is None or stage.key != stage_key:
        raise StageConflict("this step is not the current one")
    if stage.type != stage_type:
        raise TrialError(f"stage '{stage_key}' is not a {stage_type} stage")
    return stage


def stage_questions(participant: Participant, stage: Stage) -> list[dict[str, Any]]:
    """The questions a stage shows, as this participant sees them (for a quiz: in their
    recorded order, and without keys, rubrics or tests)."""
    if stage.type == Stage.Type.SCREENING:
        return list(participant.trial.definition["baseline"])
    if stage.type == Stage.Type.SURVEY:
        return list(stage.config.get("questions", []))
    kind = stage_kind(stage.type)
    if kind is not None and kind.questions is not None:
        return kind.questions(participant, stage)
    return []


def participant_complete_stage(
    *, participant: Participant, stage_key: str, answers: dict[str, Any]
) -> Participant:
    """Finish a content stage (instructions, task, quiz, survey) with its final answers."""
    stage = participant.current_stage
    if stage is None or stage.key != stage_key:
        raise StageConflict("this step is not the current one")
    if stage.type in (Stage.Type.CONSENT, Stage.Type.SCREENING, Stage.Type.DEBRIEF):
        raise TrialError(f"stage '{stage_key}' cannot be completed this way")
    now = timezone.now()
    if participant.stage_deadline and now > participant.stage_deadline + DEADLINE_GRACE:
        return participant_sync_clock(participant=participant)
    with transaction.atomic():
        return advance_stage(
            participant, stage, reason=StageRecord.EndReason.COMPLETED, answers=answers, now=now
        )
