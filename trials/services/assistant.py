"""Writes for the assistant arm: who may ask (arm and stage, from the database), budgets and
the trial's spend cap, the exchange itself (streamed), and its complete record.

The provider call streams for seconds; no transaction or lock is held meanwhile. Every
exchange is an AssistantTurn row plus ``assistant_request`` and ``assistant_response`` /
``assistant_error`` events carrying the exact context sent, tokens, latency and cost.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from trials import assistant as llm
from trials.assistant.base import estimate_input_tokens
from trials.assistant.replies import CODE_BLOCK_RE, reply_code_blocks
from trials.event_types import (
    PROVENANCE_FIELDS,
    AssistantRequestPayload,
    EventName,
    assistant_outcome_payload,
    assistant_refused_payload,
)
from trials.models import Allocation, Arm, AssistantTurn, Event, Participant, Stage, Trial
from trials.selectors import participant_tools
from trials.services.coding import MAX_CODE_CHARS, coding_task
from trials.services.errors import TrialError
from trials.services.events import event_log
from trials.tasks import Task

logger = logging.getLogger("skilltrial.assistant")

MAX_QUESTION_CHARS = 4_000
CALM_FAILURE = (
    "The assistant is not available right now. Please try again in a moment, or carry on "
    "without it — your work is saved."
)


class AssistantRefused(TrialError):
    """The participant may not use the assistant now; ``reason`` is logged, the message shown."""

    def __init__(self, reason: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Exchange:
    turn: AssistantTurn
    settings: llm.AssistantSettings
    system: str
    messages: list[llm.ChatMessage]
    task: Task


def _arm(participant: Participant) -> Arm:
    # The Arm row, written at import, is the one source of an arm's assistant settings and
    # budget (never the definition JSON).
    allocation = Allocation.objects.select_related("arm").filter(participant=participant).first()
    if allocation is None:
        raise AssistantRefused("no_arm", "The assistant is not part of this study for you.")
    return allocation.arm


def trial_spend(trial: Trial) -> float:
    total = AssistantTurn.objects.filter(participant__trial=trial).aggregate(s=Sum("cost_usd"))["s"]
    return float(total or 0.0)


def _refuse(
    participant: Participant, stage: Stage | None, reason: str, message: str, status: int = 403
) -> AssistantRefused:
    event_log(
        participant,
        EventName.ASSISTANT_REFUSED,
        stage=stage,
        payload=assistant_refused_payload(reason),
    )
    logger.info("assistant refused for %s: %s", participant.public_code, reason)
    return AssistantRefused(reason, message, status)


def history(participant: Participant, task: str) -> list[dict[str, Any]]:
    """Earlier finished exchanges on this task, oldest first (what the chat panel shows, and
    the earlier turns sent to the provider, which reads only role and content)."""
    turns = AssistantTurn.objects.filter(participant=participant, task=task).exclude(
        status=AssistantTurn.Status.STREAMING
    )
    out: list[dict[str, Any]] = []
    for turn in turns.order_by("created_at", "id"):
        meta = {"turn": turn.pk, "status": str(turn.status)}
        out.append({"role": "user", "content": turn.question, **meta})
        if turn.reply:
            out.append({"role": "assistant", "content": turn.reply, **meta})
    return out


def assistant_begin(
    *, participant: Participant, stage_key: str, task_folder: str, question: str, code: str
) -> Exchange:
    """Check that this participant may ask now (arm and stage on the server, budgets, the
    trial's spend cap), build the exact context and record the request."""
    stage, task = coding_task(participant=participant, stage_key=stage_key, task_folder=task_folder)
    if "assistant" not in participant_tools(participant):
        raise _refuse(
            participant,
            stage,
            "not_allowed",
            "The assistant is not available in this part of the study.",
        )
    question = _checked_question(question)
    arm = _arm(participant)
    settings = llm.AssistantSettings.from_table(arm.settings)
    code = code[:MAX_CODE_CHARS].replace("\x00", "")
    system, messages = llm.build_messages(
        settings,
        task_title=task.title,
        task_instructions=task.instructions,
        code=code,
        history=history(participant, task.folder),
        question=question,
    )
    context = {
        "system": system,
        "messages": [dict(m) for m in messages],
    }
    turn = _reserve_turn(
        participant,
        stage,
        arm,
        AssistantTurn(
            participant=participant,
            stage=stage,
            task=task.folder,
            question=question,
            provider=settings.provider,
            model=settings.model,
            context=context,
            code_sha256=hashlib.sha256(code.encode()).hexdigest(),
        ),
    )
    event_log(
        participant,
        EventName.ASSISTANT_REQUEST,
        stage=stage,
        payload=AssistantRequestPayload(
            task=task.folder,
            turn=turn.pk,
            question=question,
            provider=settings.provider,
            model=settings.model,
            context=context,
            code_sha256=turn.code_sha256,
        ).as_dict(),
    )
    return Exchange(turn=turn, settings=settings, system=system, messages=messages, task=task)


def _checked_question(question: str) -> str:
    question = question.strip()
    if not question:
        raise AssistantRefused("empty", "Please type a question first.", 400)
    if len(question) > MAX_QUESTION_CHARS:
        raise AssistantRefused(
            "too_long", f"Please keep a message under {MAX_QUESTION_CHARS} characters.", 400
        )
    return question


# Why a turn is refused before the provider is called: (reason, message, HTTP status).
_BUDGET_REFUSALS = {
    "message_budget": (
        "You have used all the messages available to you in this study.",
        429,
    ),
    "token_budget": (
        "You have used all the assistant time available to you in this study.",
        429,
    ),
    "spend_cap": (CALM_FAILURE, 503),
}


def _reserve_turn(
    participant: Participant, stage: Stage, arm: Arm, turn: AssistantTurn
) -> AssistantTurn:
    """Check the budgets and store the turn as one step: the participant's allocation row is
    locked while the turns are counted and the new one inserted, so two requests at once
    cannot both see the last free message (check-then-insert without it overspends). The
    refusal is logged after the transaction, so it is not rolled back with it."""
    with transaction.atomic():
        # The allocation row alone (no join): the arm row is shared by the whole arm.
        Allocation.objects.select_for_update().filter(participant=participant).only("pk").first()
        reason = _over_budget(participant, arm)
        if reason is None:
            turn.save()
    if reason is not None:
        message, status = _BUDGET_REFUSALS[reason]
        raise _refuse(participant, stage, reason, message, status)
    return turn


def _over_budget(participant: Participant, arm: Arm) -> str | None:
    """Which budget this participant has used up (None: may ask). Turns still streaming
    count: a message is spent when it is asked."""
    budget = arm.budget
    used = AssistantTurn.objects.filter(participant=participant)
    if used.count() >= budget.get("messages", 10**9):
        return "message_budget"
    tokens = used.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    if (tokens["i"] or 0) + (tokens["o"] or 0) >= budget.get("tokens", 10**12):
        return "token_budget"
    cap = participant.trial.definition.get("assistant_spend_cap_usd")
    if cap is not None and trial_spend(participant.trial) >= cap:
        return "spend_cap"
    return None


def _provider(exchange: Exchange, participant: Participant) -> llm.Provider:
    material = llm.load_material(participant.trial.files, exchange.task.folder)
    return llm.provider_for(
        exchange.settings,
        material=material,
        scripted_chunk_delay=getattr(django_settings, "SCRIPTED_ASSISTANT_CHUNK_DELAY", 0.0),
    )


def assistant_stream(
    *, participant: Participant, exchange: Exchange
) -> Generator[dict[str, Any], None, None]:
    """Stream the reply as messages for the browser ({"type": "delta" | "done" | "error"}),
    and record the outcome whatever happens — also when the participant presses Stop (the
    browser closes the connection and this generator is closed)."""
    turn = exchange.turn
    parts: list[str] = []
    outcome: dict[str, Any] = {"status": AssistantTurn.Status.STOPPED}
    try:
        yield {"type": "start", "turn": turn.pk}
        for event in _provider(exchange, participant).stream(
            exchange.system, exchange.messages, exchange.settings
        ):
            if isinstance(event, llm.TextDelta):
                parts.append(event.text)
                yield {"type": "delta", "text": event.text}
            elif isinstance(event, llm.Finished):
                outcome = {
                    "status": AssistantTurn.Status.COMPLETED,
                    "input_tokens": event.input_tokens,
                    "output_tokens": event.output_tokens,
                    "usage_estimated": event.usage_estimated,
                    "latency_ms": event.latency_ms,
                    "first_text_ms": event.first_text_ms,
                    "attempts": event.attempts,
                    "stop_reason": event.stop_reason,
                    "model": event.model or exchange.settings.model,
                    "cost_usd": llm.estimate_cost(
                        exchange.settings, event.input_tokens, event.output_tokens
                    ),
                }
                yield {"type": "done", "turn": turn.pk, "stop_reason": event.stop_reason}
            elif isinstance(event, llm.Failed):
                input_tokens = (
                    estimate_input_tokens(exchange.system, exchange.messages) if parts else 0
                )
                outcome = {
                    "status": AssistantTurn.Status.FAILED,
                    "error_kind": event.kind,
                    "error_message": event.message[:500],
                    "latency_ms": event.latency_ms,
                    "attempts": event.attempts,
                    "input_tokens": input_tokens,
                }
                logger.warning(
                    "assistant failed for turn %s: %s (%s)", turn.pk, event.kind, event.message
                )
                yield {"type": "error", "turn": turn.pk, "message": CALM_FAILURE}
    finally:
        _finish(participant, exchange, "".join(parts), outcome)


def _finish(
    participant: Participant, exchange: Exchange, reply: str, outcome: dict[str, Any]
) -> None:
    turn = exchange.turn
    fields = {"reply": reply, "finished_at": timezone.now(), **outcome}
    AssistantTurn.objects.filter(pk=turn.pk).update(**fields)
    status = outcome["status"]
    event_type = (
        EventName.ASSISTANT_ERROR
        if status == AssistantTurn.Status.FAILED
        else EventName.ASSISTANT_RESPONSE
    )
    payload = assistant_outcome_payload(
        task=turn.task,
        turn=turn.pk,
        status=str(status),
        reply=reply,
        code_blocks=[hashlib.sha256(b.encode()).hexdigest() for b in CODE_BLOCK_RE.findall(reply)],
        outcome=outcome,
    )
    event_log(participant, event_type, stage=turn.stage, payload=payload)


def assistant_usage(participant: Participant) -> dict[str, Any]:
    used = AssistantTurn.objects.filter(participant=participant).aggregate(
        i=Sum("input_tokens"), o=Sum("output_tokens")
    )
    return {
        "messages": AssistantTurn.objects.filter(participant=participant).count(),
        "tokens": (used["i"] or 0) + (used["o"] or 0),
    }


# The chat panel sends the text of a copy taken from a reply up to this many characters
# (frontend/src/chat.js COPY_TEXT_CHARS), so the server can check that it is in the reply.
COPY_TEXT_CHARS = 8_000
_MARKUP = re.compile(r"[\s`*_~#>]+")


def _plain(text: str) -> str:
    # What a selection of the rendered reply holds, roughly: no Markdown markup, any spacing.
    return _MARKUP.sub(" ", text).strip()


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _length_matches(payload: dict[str, Any], text: str) -> bool:
    """The browser counts UTF-16 code units; a length that fits neither count is forged."""
    length = payload.get("length")
    if length is None:
        return True
    return length in (len(text), _utf16_length(text))


class ReplyIndex:
    """The assistant replies stored for one participant, read once per telemetry batch (on
    first use): hashes of each reply and code block, and the replies' text."""

    def __init__(self, participant: Participant) -> None:
        self.participant = participant
        self._hashes: dict[str, tuple[int, str]] | None = None
        self._replies: list[tuple[int, str, str]] = []

    def _load(self) -> dict[str, tuple[int, str]]:
        if self._hashes is None:
            self._hashes = {}
            turns = (
                AssistantTurn.objects.filter(participant=self.participant)
                .exclude(reply="")
                .order_by("created_at", "id")
                .values_list("pk", "reply")
            )
            for pk, reply in turns:
                self._replies.append((pk, reply, _plain(reply)))
                for text in (reply, *reply_code_blocks(reply)):
                    for variant in (text, text.rstrip("\n"), text.rstrip("\n") + "\n"):
                        digest = hashlib.sha256(variant.encode()).hexdigest()
                        self._hashes.setdefault(digest, (pk, variant))
        return self._hashes

    def by_hash(self, digest: object) -> tuple[int, str] | None:
        """(turn, text) of the reply or code block with this SHA-256."""
        return self._load().get(digest) if isinstance(digest, str) else None

    def containing(self, text: str) -> int | None:
        """The turn whose reply holds ``text`` (as stored, or as the rendered reply reads)."""
        self._load()
        plain = _plain(text)
        if not plain:
            return None
        for pk, reply, reply_plain in self._replies:
            if text in reply or plain in reply_plain:
                return pk
        return None


def copy_verify(
    participant: Participant, payload: dict[str, Any], *, replies: ReplyIndex | None = None
) -> dict[str, Any]:
    """A copy event's payload with the server's verdict: ``from_assistant`` is true, with
    ``assistant_turn``, only when the copied text (its SHA-256, or the ``text`` the chat panel
    sends, which must hash to ``sha256``) is in an assistant reply stored for this
    participant. What the browser says (``source``, ``turn``) is kept as its claim only."""
    replies = replies or ReplyIndex(participant)
    payload = {k: v for k, v in payload.items() if k not in PROVENANCE_FIELDS}
    digest = payload.get("sha256")
    text = payload.get("text")
    if isinstance(text, str) and (
        len(text) > COPY_TEXT_CHARS or hashlib.sha256(text.encode()).hexdigest() != digest
    ):
        payload.pop("text")  # not the text that was copied: no evidence
        text = None
    match = replies.by_hash(digest)
    turn = match[0] if match and _length_matches(payload, match[1]) else None
    if turn is None and isinstance(text, str) and _length_matches(payload, text):
        turn = replies.containing(text)
    return (
        payload | {"from_assistant": turn is not None} | ({"assistant_turn": turn} if turn else {})
    )


def link_paste(
    participant: Participant,
    payload: dict[str, Any],
    *,
    batch_copies: dict[str, str] | None = None,
    replies: ReplyIndex | None = None,
) -> dict[str, Any]:
    """The one place that decides a paste's provenance. ``from_assistant`` is true, with
    ``assistant_turn``, only when the pasted text is an assistant reply of this participant
    as stored on the server, or a code block of one (matched by SHA-256 and length), or text
    copied from the chat that the server finds in such a reply. Whatever the browser said
    about provenance is discarded first; everything else in a paste is client-reported.

    ``batch_copies``: copies (SHA-256 -> text) in the same batch, not stored yet."""
    replies = replies or ReplyIndex(participant)
    payload = {k: v for k, v in payload.items() if k not in PROVENANCE_FIELDS}
    digest = payload.get("sha256")
    if not isinstance(digest, str):
        return payload | {"from_assistant": False}
    match = replies.by_hash(digest)
    if match is not None and _length_matches(payload, match[1]):
        return payload | {"from_assistant": True, "assistant_turn": match[0]}
    # Text selected in a reply and copied: the copy carried the text; check it again now,
    # against the replies stored now (the copy may have arrived while the reply streamed).
    texts = [batch_copies[digest]] if batch_copies and digest in batch_copies else []
    if not texts:
        stored = (
            Event.objects.filter(
                participant=participant,
                type=EventName.COPY,
                origin="client",
                payload__sha256=digest,
            )
            .order_by("-id")
            .values_list("payload", flat=True)[:20]
        )
        texts = [
            p["text"] for p in stored if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    for text in texts:
        if hashlib.sha256(text.encode()).hexdigest() != digest:
            continue
        if not _length_matches(payload, text):
            continue
        turn = replies.containing(text)
        if turn is not None:
            return payload | {"from_assistant": True, "assistant_turn": turn}
    return payload | {"from_assistant": False}


class ReplyProvenance:
    """The server's provenance verdicts for one telemetry batch (plugged into
    :func:`trials.services.events.register_provenance`): copies are checked against the
    stored replies, and pastes also against the copies earlier in the same batch."""

    def __init__(self, participant: Participant) -> None:
        self.participant = participant
        self.replies = ReplyIndex(participant)
        self.copied: dict[str, str] = {}  # copies in this batch, not stored yet: SHA-256 -> text

    def judge(self, type: str, payload: dict[str, Any]) -> dict[str, Any]:
        if type == EventName.COPY:
            payload = copy_verify(self.participant, payload, replies=self.replies)
            text = payload.get("text")
            if isinstance(text, str):
                self.copied[hashlib.sha256(text.encode()).hexdigest()] = text
            return payload
        if type == EventName.PASTE:
            return link_paste(
                self.participant, payload, batch_copies=self.copied, replies=self.replies
            )
        return payload
