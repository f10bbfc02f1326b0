"""The one list of event types: each name, who may send it, and what it means.

Pure (no Django), so writers (:mod:`trials.services.events`, the assistant and coding services), the
data sets and the ProgSnap2 export all read the same registry. A new event type is added here
first; :func:`trials.services.events.event_log` refuses an unregistered one.

*Client-reported* types are evidence about the browser (edits, snapshots, clipboard, focus,
visibility, idle, what the page showed); *server-only* types are facts the server observed or
derived (stage changes, runs, checks, completions, assistant turns). The telemetry endpoint
stores only client-reported types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class EventName(StrEnum):
    """Every event type, spelled once. A ``StrEnum``: members compare equal to the stored
    strings, so ``Event.objects.filter(type=EventName.RUN)`` works."""

    EDIT = "edit"
    SNAPSHOT = "snapshot"
    PASTE = "paste"
    COPY = "copy"
    FOCUS = "focus"
    BLUR = "blur"
    VISIBILITY = "visibility"
    IDLE = "idle"
    STAGE_VIEW = "stage_view"
    RUN_SHOWN = "run_shown"
    CHECK_SHOWN = "check_shown"
    STAGE_ENTERED = "stage_entered"
    STAGE_LEFT = "stage_left"
    RUN = "run"
    CHECK = "check"
    TASK_COMPLETED = "task_completed"
    TASK_SUBMITTED = "task_submitted"
    ASSISTANT_REQUEST = "assistant_request"
    ASSISTANT_RESPONSE = "assistant_response"
    ASSISTANT_ERROR = "assistant_error"
    ASSISTANT_REFUSED = "assistant_refused"
    RESUME_PROMPTED = "resume_prompted"
    RESUME_FAILED = "resume_failed"
    SESSION_RESUMED = "session_resumed"
    SESSION_TAKEN_OVER = "session_taken_over"
    TELEMETRY_REFUSED = "telemetry_refused"


class Sender(StrEnum):
    CLIENT = "client"  # the browser may send it; stored as client-reported evidence
    SERVER = "server"  # only the server creates it; the telemetry endpoint refuses it


@dataclass(frozen=True)
class EventType:
    name: str
    sender: Sender
    description: str
    # Payload fields only the server sets (removed from what the browser sends).
    server_fields: tuple[str, ...] = ()


# Set by the server on pastes and copies (trials.services.assistant: link_paste, copy_verify),
# never by the browser: a client-set value would let it decide a paste's provenance.
PROVENANCE_FIELDS = ("from_assistant", "assistant_turn")

_C, _S = Sender.CLIENT, Sender.SERVER
EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType(EventName.EDIT, _C, "A window of editor changes, enough to replay the code"),
        EventType(EventName.SNAPSHOT, _C, "The whole code of a task as the editor had it"),
        EventType(
            EventName.PASTE,
            _C,
            "Text pasted or dropped (length, SHA-256 as the browser computed them); the"
            " server sets from_assistant / assistant_turn by matching a stored reply",
            PROVENANCE_FIELDS,
        ),
        EventType(
            EventName.COPY,
            _C,
            "Text copied or cut (length, SHA-256; from the chat also the text); the server"
            " sets from_assistant / assistant_turn when the text is in a stored reply",
            PROVENANCE_FIELDS,
        ),
        EventType(
            EventName.FOCUS, _C, "An element got the focus (scope: editor, assistant, window)"
        ),
        EventType(
            EventName.BLUR, _C, "An element lost the focus (scope: editor, assistant, window)"
        ),
        EventType(EventName.VISIBILITY, _C, "The page was hidden or shown (state)"),
        EventType(
            EventName.IDLE, _C, "No input for a while (seconds, since), sent when input resumes"
        ),
        EventType(EventName.STAGE_VIEW, _C, "The browser showed a stage page"),
        EventType(
            EventName.RUN_SHOWN,
            _C,
            "The browser showed the answer to a Run click (its round trip); not a run",
        ),
        EventType(
            EventName.CHECK_SHOWN,
            _C,
            "The browser showed the answer to a Check click (its round trip); not a check",
        ),
        EventType(EventName.STAGE_ENTERED, _S, "The participant entered a stage (server clock)"),
        EventType(EventName.STAGE_LEFT, _S, "The participant left a stage, and why"),
        EventType(EventName.RUN, _S, "The program ran in the sandbox"),
        EventType(EventName.CHECK, _S, "The hidden tests ran against the code"),
        EventType(EventName.TASK_COMPLETED, _S, "First check in which every hidden test passed"),
        EventType(EventName.TASK_SUBMITTED, _S, "The task was handed in with its stage"),
        EventType(EventName.ASSISTANT_REQUEST, _S, "A question sent to the assistant"),
        EventType(EventName.ASSISTANT_RESPONSE, _S, "The assistant's reply as stored"),
        EventType(EventName.ASSISTANT_ERROR, _S, "The assistant's provider failed"),
        EventType(EventName.ASSISTANT_REFUSED, _S, "A question refused (arm, stage, budget, cap)"),
        # Sessions (trials.identity): the session moving between browsers.
        EventType(
            EventName.RESUME_PROMPTED,
            _S,
            "A browser without the participant's session arrived with their external id and"
            " was asked for the resume code",
        ),
        EventType(EventName.RESUME_FAILED, _S, "A wrong resume code was entered"),
        EventType(
            EventName.SESSION_RESUMED,
            _S,
            "The session moved to another browser with the resume code",
        ),
        EventType(
            EventName.SESSION_TAKEN_OVER,
            _S,
            "The session moved to another browser without the code, after the first had been idle",
        ),
        EventType(
            EventName.TELEMETRY_REFUSED,
            _S,
            "Browser events the server refused (server-only or unknown types) and client-set"
            " provenance fields it removed, by type",
        ),
    )
}
CLIENT_TYPES = frozenset(n for n, t in EVENT_TYPES.items() if t.sender is Sender.CLIENT)
SERVER_TYPES = frozenset(n for n, t in EVENT_TYPES.items() if t.sender is Sender.SERVER)


def client_may_send(type: str) -> bool:
    registered = EVENT_TYPES.get(type)
    return registered is not None and registered.sender is Sender.CLIENT


def server_only(type: str) -> bool:
    registered = EVENT_TYPES.get(type)
    return registered is not None and registered.sender is Sender.SERVER


# ---------------------------------------------------------------------------------------------
# Payloads of the events the server writes: each shape built in one place, so the writers,
# the data sets and ProgSnap2 agree on the field names.


def stage_entered_payload(stage: str) -> dict[str, Any]:
    """``stage_entered``: the stage's key."""
    return {"stage": stage}


def stage_left_payload(stage: str, reason: str) -> dict[str, Any]:
    """``stage_left``: the stage's key and why it ended (a StageRecord end reason)."""
    return {"stage": stage, "reason": reason}


def task_payload(task: str) -> dict[str, Any]:
    """``task_completed`` and ``task_submitted``: the task's folder."""
    return {"task": task}


@dataclass(frozen=True)
class RunPayload:
    """``run`` and ``check``: one sandbox run of the participant's code, as recorded."""

    task: str
    run_id: int
    code_sha256: str
    version: int
    status: str
    exit_code: int | None
    exception_type: str
    duration_ms: int
    tests_passed: int | None
    tests_total: int | None
    first_pass: bool
    sandbox: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def assistant_refused_payload(reason: str) -> dict[str, Any]:
    """``assistant_refused``: why (not_allowed, message_budget, token_budget, spend_cap)."""
    return {"reason": reason}


@dataclass(frozen=True)
class AssistantRequestPayload:
    """``assistant_request``: the question and the exact context sent to the provider."""

    task: str
    turn: int
    question: str
    provider: str
    model: str
    context: dict[str, Any]
    code_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def assistant_outcome_payload(
    *,
    task: str,
    turn: int,
    status: str,
    reply: str,
    code_blocks: list[str],
    outcome: Mapping[str, Any],
) -> dict[str, Any]:
    """``assistant_response`` / ``assistant_error``: the stored reply, the SHA-256 of each of
    its code blocks, and the turn's outcome fields (tokens, latency, cost or error)."""
    return {
        "task": task,
        "turn": turn,
        "status": status,
        "reply": reply,
        "code_blocks": code_blocks,
        **{k: v for k, v in outcome.items() if k != "status"},
    }
