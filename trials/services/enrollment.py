"""Writes: a person arriving (entry link, external ids), the session moving between browsers
(resume code, idle takeover), consent and screening — which allocates the eligible."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from trials.definition import eligibility_failures, stratum_key
from trials.event_types import EventName
from trials.identity import ParticipantRules, Visitor, resume_code_matches
from trials.models import (
    Event,
    Participant,
    Stage,
    StageRecord,
    Trial,
    new_public_code,
    new_session_token,
)
from trials.services.allocation import allocation_assign
from trials.services.errors import StageConflict, TrialError
from trials.services.events import event_log
from trials.services.stages import advance_stage, require_stage, start_stage

logger = logging.getLogger("skilltrial.trials")

EXTERNAL_ID_FIELDS = {
    "PROLIFIC_PID": "prolific_pid",
    "STUDY_ID": "study_id",
    "SESSION_ID": "session_id",
}
MAX_ID_CHARS = 64
# Wrong resume codes: at most this many per participant within the window, then a pause.
RESUME_MAX_FAILURES = 5
RESUME_FAILURE_WINDOW = timedelta(minutes=15)
# last_seen_at is written at most this often (one UPDATE a minute per active participant).
SEEN_EVERY = timedelta(seconds=60)
# A second browser arriving is logged at most this often per participant.
SECOND_BROWSER_LOG_EVERY = timedelta(minutes=5)


class EntryRefused(TrialError):
    """The entry link lacks the external id the trial requires, or carries a malformed one."""


class ResumeRefused(TrialError):
    """A new browser may not continue this participant (yet). ``reason`` is ``wrong_code``,
    ``locked`` (too many wrong codes), ``active`` (the first browser is in use) or
    ``code_required`` (the trial allows no takeover without the code)."""

    def __init__(self, message: str, *, reason: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class Arrival:
    participant: Participant
    created: bool  # False: this external id already had a participant (a resume case)


def entry_ids(*, trial: Trial, params: Mapping[str, str]) -> dict[str, str]:
    """The participant fields the entry link's parameters give (``prolific_pid``,
    ``study_id``, ``session_id``, ``external_id``), checked against the trial's
    ``[participants]`` rules. Raise EntryRefused, with a message for the person, when the
    required external id is missing or malformed."""
    rules = ParticipantRules.of(trial)

    def clean(key: str) -> str:
        value = params.get(key, "")
        return value.replace("\x00", "").strip() if isinstance(value, str) else ""

    ids = {
        field: value[:MAX_ID_CHARS]
        for key, field in EXTERNAL_ID_FIELDS.items()
        if (value := clean(key))
    }
    if not rules.external_id:
        return ids
    external = clean(rules.external_id)
    if not external:
        if rules.require_external_id:
            raise EntryRefused(
                f"This link is missing your participant ID ({rules.external_id}). Please "
                "start the study again from the recruitment site, which adds it for you."
            )
        return ids
    valid = len(external) <= MAX_ID_CHARS and all(ch.isprintable() for ch in external)
    if valid and rules.external_id_pattern:
        valid = re.fullmatch(rules.external_id_pattern, external) is not None
    if not valid:
        raise EntryRefused(
            f"The participant ID in this link ({rules.external_id}) is not a valid one. "
            "Please start the study again from the recruitment site, without changing the link."
        )
    ids["external_id"] = external
    if rules.external_id in EXTERNAL_ID_FIELDS:
        ids[EXTERNAL_ID_FIELDS[rules.external_id]] = external
    return ids


def _same_person(trial: Trial, ids: dict[str, str]) -> Participant | None:
    who = Q()
    if ids.get("external_id"):
        who |= Q(external_id=ids["external_id"])
    if ids.get("prolific_pid"):
        who |= Q(prolific_pid=ids["prolific_pid"])
    if not who:
        return None
    return (
        Participant.objects.select_related("trial", "current_stage")
        .filter(who, trial=trial)
        .order_by("created_at")
        .first()
    )


def participant_arrive(
    *, trial: Trial, external_ids: Mapping[str, str], visitor: Visitor | None = None
) -> Arrival:
    """A visit to the entry link from a browser that holds no session of this trial: create a
    participant at the first stage, or find the one that already has this external id (then
    ``created`` is False and the caller must not hand that participant to this browser
    without the resume rule). The unique constraint on (trial, external id) decides a race
    between two first visits with one id: exactly one inserts, the others find it.

    Raise EntryRefused for a missing required or malformed id, TrialError if not live."""
    ids = entry_ids(trial=trial, params=external_ids)
    if trial.status != Trial.Status.LIVE:
        raise TrialError("this study is not open")
    visitor = visitor or Visitor()
    found = _same_person(trial, ids)
    if found is not None:
        return Arrival(found, created=False)
    first = trial.stages.order_by("order").first()
    now = timezone.now()
    fields: dict[str, Any] = {
        **ids,
        "last_seen_at": now,
        "address_hash": visitor.address_hash,
        "browser_hash": visitor.browser_hash,
    }
    try:
        with transaction.atomic():
            participant = Participant.objects.create(trial=trial, **fields)
            start_stage(participant, first, now)
            participant.save()
    except IntegrityError:
        # Two first visits with one external id at once (the other one won), or a
        # public-code collision.
        found = _same_person(trial, ids)
        if found is not None:
            return Arrival(found, created=False)
        with transaction.atomic():
            participant = Participant.objects.create(
                trial=trial, public_code=new_public_code(), **fields
            )
            start_stage(participant, first, now)
            participant.save()
    return Arrival(participant, created=True)


def participant_enter(*, trial: Trial, external_ids: Mapping[str, str]) -> Participant:
    """Create a participant at the trial's first stage, or return the one that already has
    this external id (a returning person keeps their record and arm). For callers that are
    not a browser (tests, commands); the entry page uses :func:`participant_arrive`."""
    return participant_arrive(trial=trial, external_ids=external_ids).participant


def participant_touch(*, participant: Participant) -> None:
    """Note that the browser holding the session is still there (at most once a minute)."""
    now = timezone.now()
    if participant.last_seen_at is not None and now - participant.last_seen_at < SEEN_EVERY:
        return
    Participant.objects.filter(pk=participant.pk).update(last_seen_at=now)
    participant.last_seen_at = now


def _visitor_payload(participant: Participant, visitor: Visitor) -> dict[str, Any]:
    # Whether the new browser looks like the one that entered (same network, same browser),
    # never the hashes themselves: events are exported.
    return {
        "same_address": bool(visitor.address_hash)
        and visitor.address_hash == participant.address_hash,
        "same_browser": bool(visitor.browser_hash)
        and visitor.browser_hash == participant.browser_hash
        and visitor.address_hash == participant.address_hash,
    }


def participant_note_second_browser(*, participant: Participant, visitor: Visitor) -> None:
    """Log that a browser without this participant's session arrived with their external id
    (event ``resume_prompted``; at most one per participant every few minutes)."""
    now = timezone.now()
    recent = Event.objects.filter(
        participant=participant,
        type=EventName.RESUME_PROMPTED,
        server_time__gte=now - SECOND_BROWSER_LOG_EVERY,
    ).exists()
    if not recent:
        event_log(
            participant,
            EventName.RESUME_PROMPTED,
            stage=participant.current_stage,
            payload=_visitor_payload(participant, visitor),
        )


def _rebind(locked: Participant, visitor: Visitor, event: str, now: Any) -> Participant:
    """Give the session to the browser asking (a new token: the old cookie stops working).
    The participant row must be locked."""
    last = locked.last_seen_at or locked.created_at
    payload = _visitor_payload(locked, visitor) | {
        "previous_browser_idle_seconds": max(0, round((now - last).total_seconds())),
    }
    locked.session_token = new_session_token()
    locked.last_seen_at = now
    locked.save(update_fields=["session_token", "last_seen_at"])
    event_log(locked, event, stage=locked.current_stage, payload=payload)
    logger.info("participant %s: %s", locked.public_code, event)
    return locked


def participant_resume(*, participant: Participant, code: str, visitor: Visitor) -> Participant:
    """Move the participant's session to this browser if ``code`` is their resume code
    (event ``session_resumed``). A wrong code is logged (``resume_failed``); after
    RESUME_MAX_FAILURES within RESUME_FAILURE_WINDOW no code is tried until the window has
    passed. The participant row is locked while attempts are counted, so parallel guesses
    cannot exceed the limit."""
    now = timezone.now()
    with transaction.atomic():
        locked = (
            # of=self: the stage is a nullable outer join, which PostgreSQL cannot lock.
            Participant.objects.select_for_update(of=("self",))
            .select_related("trial", "current_stage")
            .get(pk=participant.pk)
        )
        failures = list(
            Event.objects.filter(
                participant=locked,
                type=EventName.RESUME_FAILED,
                server_time__gte=now - RESUME_FAILURE_WINDOW,
            )
            .order_by("server_time")
            .values_list("server_time", flat=True)
        )
        if len(failures) >= RESUME_MAX_FAILURES:
            wait = failures[-RESUME_MAX_FAILURES] + RESUME_FAILURE_WINDOW - now
            minutes = max(1, math.ceil(wait.total_seconds() / 60))
            logger.warning(
                "participant %s: resume refused, too many wrong codes", locked.public_code
            )
            raise ResumeRefused(
                f"Too many wrong codes. Please wait {minutes} minute"
                f"{'s' if minutes != 1 else ''} before trying again.",
                reason="locked",
                retry_after=max(1, math.ceil(wait.total_seconds())),
            )
        if resume_code_matches(locked, code):
            return _rebind(locked, visitor, EventName.SESSION_RESUMED, now)
        event_log(
            locked,
            EventName.RESUME_FAILED,
            stage=locked.current_stage,
            payload=_visitor_payload(locked, visitor) | {"failures": len(failures) + 1},
        )
    left = RESUME_MAX_FAILURES - len(failures) - 1
    raise ResumeRefused(
        "That is not the resume code of this session. Please check it and try again"
        + (f" ({left} more tries for now)." if left else " later."),
        reason="wrong_code",
    )


def takeover_wait(participant: Participant, now: Any | None = None) -> timedelta | None:
    """How much longer the first browser must stay silent before another may take over
    without the code (zero: now); None if the trial allows no takeover without it."""
    idle = ParticipantRules.of(participant.trial).idle_takeover
    if idle is None:
        return None
    now = now or timezone.now()
    last = participant.last_seen_at or participant.created_at
    return max(timedelta(0), last + idle - now)


def participant_take_over(*, participant: Participant, visitor: Visitor) -> Participant:
    """Move the session to this browser without the code, allowed only once the browser
    holding it has been silent for the trial's ``resume_idle_minutes`` (event
    ``session_taken_over``). Decided under a lock on the participant row."""
    now = timezone.now()
    with transaction.atomic():
        locked = (
            # of=self: the stage is a nullable outer join, which PostgreSQL cannot lock.
            Participant.objects.select_for_update(of=("self",))
            .select_related("trial", "current_stage")
            .get(pk=participant.pk)
        )
        wait = takeover_wait(locked, now)
        if wait is None:
            raise ResumeRefused(
                "This study can only be continued in another browser with the resume code.",
                reason="code_required",
            )
        if wait > timedelta(0):
            minutes = max(1, math.ceil(wait.total_seconds() / 60))
            raise ResumeRefused(
                "This session is still in use in another browser. Enter the resume code, or "
                f"continue here without it once that browser has been inactive for "
                f"{ParticipantRules.of(locked.trial).resume_idle_minutes} minutes "
                f"(in about {minutes} minute{'s' if minutes != 1 else ''}).",
                reason="active",
                retry_after=max(1, math.ceil(wait.total_seconds())),
            )
        return _rebind(locked, visitor, EventName.SESSION_TAKEN_OVER, now)


def participant_consent(*, participant: Participant, stage_key: str, agreed: bool) -> Participant:
    stage = require_stage(participant, stage_key, Stage.Type.CONSENT)
    now = timezone.now()
    with transaction.atomic():
        if not agreed:
            changed = Participant.objects.filter(pk=participant.pk, current_stage=stage).update(
                status=Participant.Status.DECLINED, current_stage=None, stage_deadline=None
            )
            if changed != 1:
                raise StageConflict("this step has already been completed")
            StageRecord.objects.filter(participant=participant, stage=stage).update(
                ended_at=now, end_reason=StageRecord.EndReason.DECLINED
            )
            participant.refresh_from_db()
            return participant
        participant = advance_stage(
            participant,
            stage,
            reason=StageRecord.EndReason.COMPLETED,
            answers={"agreed": True},
            now=now,
        )
        Participant.objects.filter(pk=participant.pk).update(
            consented_at=now, status=Participant.Status.SCREENING
        )
    participant.consented_at, participant.status = now, Participant.Status.SCREENING
    return participant


def participant_screen(
    *, participant: Participant, stage_key: str, answers: dict[str, Any]
) -> Participant:
    """Record baseline answers (already validated against the questions), decide eligibility
    and, if eligible, allocate — only now — and move on. Screen-outs keep their reasons."""
    stage = require_stage(participant, stage_key, Stage.Type.SCREENING)
    trial = participant.trial
    reasons = eligibility_failures(trial.definition["eligibility"], answers)
    now = timezone.now()
    with transaction.atomic():
        locked = Participant.objects.select_for_update().get(pk=participant.pk)
        locked.trial = trial  # already loaded; saves a query inside the lock
        if locked.current_stage_id != stage.pk:
            raise StageConflict("this step has already been completed")
        locked.baseline = answers
        locked.eligible = not reasons
        locked.screen_out_reasons = reasons
        if reasons:
            locked.status = Participant.Status.SCREENED_OUT
            locked.current_stage = None
            locked.stage_deadline = None
            locked.save()
            StageRecord.objects.filter(participant=locked, stage=stage).update(
                ended_at=now, end_reason=StageRecord.EndReason.SCREENED_OUT, answers=answers
            )
            logger.info("participant %s screened out", locked.public_code)
            return locked
        strata = trial.definition["randomization"].get("strata", [])
        locked.stratum = stratum_key(strata, answers)
        locked.status = Participant.Status.ACTIVE
        locked.save(
            update_fields=["baseline", "eligible", "screen_out_reasons", "stratum", "status"]
        )
        locked = advance_stage(
            locked, stage, reason=StageRecord.EndReason.COMPLETED, answers=answers, now=now
        )
        # Last in the transaction: the stratum's lock is then held for a few statements only.
        allocation_assign(participant=locked, locked=True)
        return locked
