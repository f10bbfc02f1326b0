"""Writes: importing and launching trials, enrolling, screening, allocating, moving through
stages. Each public function is one transaction; the database constraints back every rule
that must hold under concurrency."""

from __future__ import annotations

import itertools
import logging
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from trials import randomization
from trials.definition import (
    Problem,
    TrialDefinition,
    eligibility_failures,
    question_choices,
    stratum_key,
)
from trials.events import event_log
from trials.identity import ParticipantRules, Visitor, resume_code_matches
from trials.models import (
    Allocation,
    AllocationSequence,
    Arm,
    Event,
    Participant,
    Stage,
    StageRecord,
    Trial,
    new_completion_code,
    new_public_code,
    new_session_token,
)
from trials.protocol_check import protocol_problems

logger = logging.getLogger("skilltrial.trials")

# A request that left the browser just before the deadline still counts as in time.
DEADLINE_GRACE = timedelta(seconds=5)


class TrialError(Exception):
    """A request the trial's state does not allow; the message is safe to show."""


class TrialFrozen(TrialError):
    pass


class StageConflict(TrialError):
    """The participant is no longer at the stage the request was made for."""


# --- importing, launching, closing ---------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    trial: Trial
    action: str  # "created", "updated" or "unchanged"


class ProtocolBroken(TrialError):
    """Running the protocol contradicts it (trials.protocol_check); ``problems`` lists all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the trial protocol:\n{lines}")


def _require_sound_protocol(definition: TrialDefinition) -> None:
    # trials.coding imports this module, so its limits are read here, not at the top.
    from trials.coding import runner_limits

    problems = protocol_problems(definition, limits=runner_limits())
    if problems:
        raise ProtocolBroken(problems)


def trial_import(*, definition: TrialDefinition, new_version: bool = False) -> ImportResult:
    """Store a validated definition as a draft (or update the draft of the same version).

    First runs the reference solutions, starters and predict-the-output code in the sandbox
    (seconds, outside the transaction) and raises ProtocolBroken, storing nothing, when they
    contradict the protocol. A live or closed version is frozen: a changed definition for it
    is refused unless ``new_version`` asks to store it as the next version of the slug.
    """
    _require_sound_protocol(definition)
    data = dict(definition.data)
    slug = definition.slug
    with transaction.atomic():
        existing = Trial.objects.select_for_update().filter(slug=slug)
        if new_version:
            latest = existing.aggregate(Max("version"))["version__max"] or 0
            data["version"] = max(latest + 1, definition.version)
            definition = TrialDefinition(data=data, files=definition.files)
        digest = definition.protocol_hash()
        trial = existing.filter(version=definition.version).first()
        if trial is None:
            trial = Trial(slug=slug, version=definition.version)
            action = "created"
        elif trial.is_frozen:
            if trial.protocol_hash == digest:
                return ImportResult(trial, "unchanged")
            raise TrialFrozen(
                f"trial '{slug}' version {trial.version} is {trial.status} and its protocol is "
                f"frozen (hash {trial.protocol_hash[:12]}…); this definition differs. Import it "
                "as a new version: raise 'version' in trial.toml, or pass --new-version."
            )
        elif trial.definition_hash == digest:
            return ImportResult(trial, "unchanged")
        else:
            action = "updated"
        trial.title = data["title"]
        trial.description = data.get("description", "")
        trial.definition = data
        trial.files = definition.files
        trial.definition_hash = digest
        trial.randomization_scheme = data["randomization"]["scheme"]
        trial.save()
        if action == "updated":
            trial.stages.all().delete()
            trial.arms.all().delete()
        Arm.objects.bulk_create(
            Arm(
                trial=trial,
                key=arm["key"],
                label=arm["label"],
                weight=arm["weight"],
                tools=arm["tools"],
                settings=arm.get("assistant", {}),
                order=i,
            )
            for i, arm in enumerate(data["arms"])
        )
        Stage.objects.bulk_create(
            Stage(
                trial=trial,
                key=stage["key"],
                type=stage["type"],
                title=stage["title"],
                order=i,
                time_limit_seconds=(
                    round(stage["time_limit_minutes"] * 60)
                    if "time_limit_minutes" in stage
                    else None
                ),
                tools=stage["tools"],
                config=stage,
            )
            for i, stage in enumerate(data["stages"])
        )
    logger.info("trial %s v%s %s (definition %s)", slug, trial.version, action, digest[:12])
    return ImportResult(trial, action)


def _strata_levels(trial: Trial) -> list[str]:
    scheme = trial.definition["randomization"]
    if scheme["scheme"] != "stratified_blocks":
        return [""]
    questions = {q["key"]: q for q in trial.definition["baseline"]}
    level_lists = [
        [c["value"] for c in question_choices(questions[key])] for key in scheme["strata"]
    ]
    return [
        stratum_key(scheme["strata"], dict(zip(scheme["strata"], combo, strict=True)))
        for combo in itertools.product(*level_lists)
    ]


def trial_launch(*, trial: Trial) -> Trial:
    """Freeze a draft: store its protocol hash and a fresh randomization seed, open entry.

    The stored draft is checked again first (as at import; ProtocolBroken), outside the
    transaction; a draft changed while it was being checked is not launched."""
    checked = Trial.objects.get(pk=trial.pk)
    if checked.status == Trial.Status.DRAFT:
        _require_sound_protocol(TrialDefinition(data=checked.definition, files=checked.files))
    with transaction.atomic():
        trial = Trial.objects.select_for_update().get(pk=trial.pk)
        if trial.status != Trial.Status.DRAFT:
            raise TrialError(
                f"trial '{trial.slug}' version {trial.version} is already {trial.status}"
            )
        if (trial.definition, trial.files) != (checked.definition, checked.files):
            raise TrialError(
                f"trial '{trial.slug}' version {trial.version} changed while it was being "
                "checked; launch it again"
            )
        live = Trial.objects.filter(slug=trial.slug, status=Trial.Status.LIVE).first()
        if live is not None:
            raise TrialError(
                f"version {live.version} of '{trial.slug}' is live; close it first "
                f"(python manage.py close_trial {trial.slug})"
            )
        trial.status = Trial.Status.LIVE
        trial.protocol_hash = trial.definition_hash
        trial.randomization_seed = secrets.token_hex(32)
        trial.launched_at = timezone.now()
        trial.save()
        AllocationSequence.objects.bulk_create(
            [AllocationSequence(trial=trial, stratum=s) for s in _strata_levels(trial)],
            ignore_conflicts=True,
        )
    logger.info(
        "trial %s v%s launched, protocol %s", trial.slug, trial.version, trial.protocol_hash
    )
    return trial


def trial_close(*, trial: Trial) -> Trial:
    updated = Trial.objects.filter(pk=trial.pk, status=Trial.Status.LIVE).update(
        status=Trial.Status.CLOSED, closed_at=timezone.now()
    )
    if not updated:
        raise TrialError(f"trial '{trial.slug}' version {trial.version} is not live")
    trial.refresh_from_db()
    return trial


# --- entry ---------------------------------------------------------------------------------


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


def _start_stage(participant: Participant, stage: Stage | None, now: Any) -> None:
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
        event_log(participant, "stage_entered", stage=stage, payload={"stage": stage.key})


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
            _start_stage(participant, first, now)
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
            _start_stage(participant, first, now)
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
        type="resume_prompted",
        server_time__gte=now - SECOND_BROWSER_LOG_EVERY,
    ).exists()
    if not recent:
        event_log(
            participant,
            "resume_prompted",
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
                type="resume_failed",
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
            return _rebind(locked, visitor, "session_resumed", now)
        event_log(
            locked,
            "resume_failed",
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
        return _rebind(locked, visitor, "session_taken_over", now)


# --- the stage engine ----------------------------------------------------------------------


def _next_stage(stage: Stage) -> Stage | None:
    return (
        Stage.objects.filter(trial_id=stage.trial_id, order__gt=stage.order)
        .order_by("order")
        .first()
    )


def _advance(
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
    record = StageRecord.objects.filter(
        participant=participant, stage=stage, ended_at__isnull=True
    ).first()
    if answers is None and reason == StageRecord.EndReason.TIMED_OUT and record is not None:
        # Time ran out: the last autosaved answers are what count.
        answers = dict(record.draft)
    if record is not None:
        record.ended_at, record.end_reason = now, reason
        if answers is not None:
            record.answers = answers
        record.save(update_fields=["ended_at", "end_reason", "answers"])
    if stage.type == Stage.Type.QUIZ:
        from quizzes.services import quiz_record_responses  # quizzes builds on trials

        quiz_record_responses(participant=participant, stage=stage, answers=answers or {})
    event_log(
        participant, "stage_left", stage=stage, payload={"stage": stage.key, "reason": reason}
    )
    if nxt is not None:
        StageRecord.objects.create(
            participant=participant, stage=nxt, started_at=now, deadline=deadline
        )
        event_log(participant, "stage_entered", stage=nxt, payload={"stage": nxt.key})
    participant.refresh_from_db()
    return participant


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
                participant = _advance(
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


def _require_stage(participant: Participant, stage_key: str, stage_type: str) -> Stage:
    stage = participant.current_stage
    if stage is None or stage.key != stage_key:
        raise StageConflict("this step is not the current one")
    if stage.type != stage_type:
        raise TrialError(f"stage '{stage_key}' is not a {stage_type} stage")
    return stage


def participant_consent(*, participant: Participant, stage_key: str, agreed: bool) -> Participant:
    stage = _require_stage(participant, stage_key, Stage.Type.CONSENT)
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
        participant = _advance(
            participant,
            stage,
            reason=StageRecord.EndReason.COMPLETED,
            answers={"agreed": True},
            now=now,
        )
        Participant.objects.filter(pk=participant.pk).update(
            consented_at=now, status=Participant.Status.SCREENING
        )
    participant.refresh_from_db()
    return participant


def participant_screen(
    *, participant: Participant, stage_key: str, answers: dict[str, Any]
) -> Participant:
    """Record baseline answers (already validated against the questions), decide eligibility
    and, if eligible, allocate — only now — and move on. Screen-outs keep their reasons."""
    stage = _require_stage(participant, stage_key, Stage.Type.SCREENING)
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
        locked.save()
        allocation_assign(participant=locked)
        return _advance(
            locked, stage, reason=StageRecord.EndReason.COMPLETED, answers=answers, now=now
        )


def stage_questions(participant: Participant, stage: Stage) -> list[dict[str, Any]]:
    """The questions a stage shows, as this participant sees them (for a quiz: in their
    recorded order, and without keys, rubrics or tests)."""
    if stage.type == Stage.Type.SCREENING:
        return list(participant.trial.definition["baseline"])
    if stage.type == Stage.Type.SURVEY:
        return list(stage.config.get("questions", []))
    if stage.type == Stage.Type.QUIZ:
        from quizzes.services import participant_quiz_questions  # quizzes builds on trials

        return participant_quiz_questions(participant=participant, stage=stage)
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
        return _advance(
            participant, stage, reason=StageRecord.EndReason.COMPLETED, answers=answers, now=now
        )


# --- allocation ----------------------------------------------------------------------------


def allocation_assign(*, participant: Participant) -> Allocation:
    """Allocate an eligible participant, once. Idempotent: an existing allocation is returned.

    Locks the participant row, then the trial's (or the participant's stratum's) sequence row, so
    sequence numbers are gap-free and block balance exact with any number of app processes.
    Keep this transaction short: nothing slow happens while the lock is held.
    """
    trial = participant.trial
    if participant.eligible is not True:
        raise TrialError("only eligible participants are allocated")
    with transaction.atomic():
        # Lock the participant first (the same order as participant_screen, so no deadlock):
        # two calls for one participant must not both find "no allocation yet".
        Participant.objects.select_for_update().only("pk").get(pk=participant.pk)
        existing = Allocation.objects.filter(participant=participant).select_related("arm").first()
        if existing is not None:
            return existing
        config = trial.definition["randomization"]
        scheme = config["scheme"]
        seq_stratum = randomization.sequence_stratum(config, participant.stratum)
        sequence = (
            AllocationSequence.objects.select_for_update()
            .filter(trial=trial, stratum=seq_stratum)
            .first()
        )
        if sequence is None:  # a stratum not created at launch (e.g. an unlisted level)
            AllocationSequence.objects.get_or_create(trial=trial, stratum=seq_stratum)
            sequence = AllocationSequence.objects.select_for_update().get(
                trial=trial, stratum=seq_stratum
            )
        index = sequence.next_index
        arm_rows = {arm.key: arm for arm in trial.arms.order_by("order")}
        counts = None
        if scheme == "minimization":
            counts = randomization.minimization_counts(
                config,
                Allocation.objects.filter(trial=trial).values_list(
                    "arm__key", "participant__baseline"
                ),
            )
        assignment = randomization.assign(
            config,
            [randomization.ArmWeight(arm.key, arm.weight) for arm in arm_rows.values()],
            trial.randomization_seed,
            index=index,
            stratum=participant.stratum,
            baseline=participant.baseline,
            counts=counts,
        )
        arm_key, details = assignment.arm, assignment.details
        allocation = Allocation.objects.create(
            participant=participant,
            trial=trial,
            arm=arm_rows[arm_key],
            stratum=participant.stratum,
            scheme=scheme,
            sequence_number=index + 1,
            details=details,
        )
        AllocationSequence.objects.filter(pk=sequence.pk).update(next_index=index + 1)
    return allocation
