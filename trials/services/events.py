"""Telemetry: events sent by the browser in batches, and events the server logs itself.

Events are append-only. A browser event carries its own id; (participant, client id) is
unique in the database, so a batch that is retried after a lost response is stored once.

The trust boundary lives here. :data:`trials.event_types.EVENT_TYPES` is the one list of
event types: each is
either *client-reported* (evidence about the browser: edits, snapshots, clipboard, focus,
visibility, idle, what the page showed) or *server-only* (facts the server observed or
derived: stage changes, runs, checks, completions, submissions, assistant turns). The
telemetry endpoint stores only client-reported types; an event of a server-only or unknown
type is refused (dropped, counted, logged and recorded once as ``telemetry_refused``) while
the rest of its batch is stored. Payload fields that state a server decision (whether a
paste came from the assistant) are removed from what the browser sends and set by the
server (the assistant service's provenance check, plugged in through
:func:`register_provenance`). A client's clock is stored as ``client_time`` and nothing more:
outcomes use server time, and client-reported spans (focus to blur, hidden to visible, idle)
count only inside the server-observed window (:func:`trials.client_spans.bounded_seconds`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from django.utils.dateparse import parse_datetime

from trials.event_types import (
    EVENT_TYPES,
    PROVENANCE_FIELDS,
    EventName,
    client_may_send,
)
from trials.models import Event, Participant, Stage, StageRecord

logger = logging.getLogger("skilltrial.telemetry")

MAX_BATCH = 200
MAX_PAYLOAD_BYTES = 64_000
# A snapshot carries the whole code (up to coding.MAX_CODE_CHARS characters, JSON-escaped).
MAX_SNAPSHOT_BYTES = 1_300_000
TYPE_RE = re.compile(r"^[a-z][a-z0-9_.]{0,39}$")
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class BatchInvalid(ValueError):
    """The batch is malformed; the message names the event and field."""


class BatchProvenance(Protocol):
    """The server's provenance verdict for the events of one telemetry batch, in order."""

    def judge(self, type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload to store for an event (browser-set provenance fields already gone)."""
        ...


# Telemetry is written below the assistant service (which logs its turns through event_log),
# so it cannot import the assistant's reply matching; the services package plugs it in here.
_provenance: Callable[[Participant], BatchProvenance] | None = None


def register_provenance(factory: Callable[[Participant], BatchProvenance] | None) -> None:
    """Set what decides the provenance of pastes and copies (one instance per batch)."""
    global _provenance
    _provenance = factory


class _NoVerdict:
    # No provenance check plugged in: the browser's claims are already removed, nothing set.
    def judge(self, type: str, payload: dict[str, Any]) -> dict[str, Any]:
        return payload


def event_log(
    participant: Participant,
    type: str,
    *,
    stage: Stage | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    """An event the server itself observed (stage changes, runs, checks, assistant calls).
    ``type`` must be in :data:`EVENT_TYPES` (a new type is registered there first)."""
    if type not in EVENT_TYPES:
        raise ValueError(
            f"unregistered event type {type!r}: add it to trials.event_types.EVENT_TYPES"
        )
    return Event.objects.create(
        participant=participant,
        stage=stage,
        type=type,
        client_id=f"srv-{uuid.uuid4().hex}",
        origin="server",
        payload=payload or {},
    )


def event_log_many(
    participant: Participant, events: list[tuple[str, Stage | None, dict[str, Any]]]
) -> list[Event]:
    """Several events the server observed at once ((type, stage, payload) each), in that
    order, in one INSERT."""
    unknown = [type for type, _, _ in events if type not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unregistered event types {unknown!r}: add them to trials.event_types.EVENT_TYPES"
        )
    return Event.objects.bulk_create(
        Event(
            participant=participant,
            stage=stage,
            type=type,
            client_id=f"srv-{uuid.uuid4().hex}",
            origin="server",
            payload=payload,
        )
        for type, stage, payload in events
    )


@dataclass(frozen=True)
class ClientEvent:
    client_id: str
    seq: int | None
    type: str
    client_time: datetime | None
    stage_key: str | None
    payload: dict[str, Any]


def _has_nul(value: Any) -> bool:
    # PostgreSQL cannot store NUL in text or JSON; no real event needs one.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def parse_batch(body: Any) -> list[ClientEvent]:
    """Validate a batch ``{"events": [...]}`` from the browser; raise BatchInvalid naming the
    first problem (by index and field). Whether a well-formed event's type may come from the
    browser is decided by :func:`events_record`, which refuses it without failing the batch."""
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise BatchInvalid('expected a JSON object {"events": [...]}')
    items = body["events"]
    if len(items) > MAX_BATCH:
        raise BatchInvalid(f"at most {MAX_BATCH} events per batch (got {len(items)})")
    events = []
    for i, item in enumerate(items):
        where = f"events[{i}]"
        if not isinstance(item, dict):
            raise BatchInvalid(f"{where}: must be an object")
        client_id = item.get("id")
        if not isinstance(client_id, str) or not ID_RE.match(client_id):
            raise BatchInvalid(f"{where}.id: must be a string of 1-64 letters, digits or -_.:")
        etype = item.get("type")
        if not isinstance(etype, str) or not TYPE_RE.match(etype):
            raise BatchInvalid(
                f"{where}.type: must be a lowercase name like 'edit' (got {etype!r})"
            )
        seq = item.get("seq")
        if seq is not None and (
            not isinstance(seq, int) or isinstance(seq, bool) or abs(seq) > 2**62
        ):
            raise BatchInvalid(f"{where}.seq: must be an integer")
        raw_time = item.get("client_time")
        client_time = None
        if raw_time is not None:
            try:
                client_time = parse_datetime(raw_time) if isinstance(raw_time, str) else None
            except ValueError:
                client_time = None
            if client_time is None:
                raise BatchInvalid(f"{where}.client_time: must be an ISO 8601 date-time")
        stage_key = item.get("stage")
        if stage_key is not None and not isinstance(stage_key, str):
            raise BatchInvalid(f"{where}.stage: must be a stage key")
        payload = item.get("payload", {})
        if not isinstance(payload, dict):
            raise BatchInvalid(f"{where}.payload: must be an object")
        encoded = json.dumps(payload)
        limit = MAX_SNAPSHOT_BYTES if etype == EventName.SNAPSHOT else MAX_PAYLOAD_BYTES
        if len(encoded) > limit:
            raise BatchInvalid(f"{where}.payload: larger than {limit} bytes")
        if _has_nul(payload):
            raise BatchInvalid(f"{where}.payload: contains a NUL character")
        events.append(ClientEvent(client_id, seq, etype, client_time, stage_key, payload))
    return events


@dataclass
class BatchResult:
    """What became of a batch: stored, already stored (a retry), refused by type, and the
    client-set server fields removed (``"paste.from_assistant"`` -> count)."""

    stored: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    stripped: Counter[str] = field(default_factory=Counter)


def strip_server_fields(type: str, payload: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The payload without the fields only the server may set, and the names removed."""
    owned = EVENT_TYPES[type].server_fields if type in EVENT_TYPES else PROVENANCE_FIELDS
    removed = [k for k in owned if k in payload]
    if not removed:
        return payload, []
    return {k: v for k, v in payload.items() if k not in owned}, removed


def events_record(*, participant: Participant, events: list[ClientEvent]) -> BatchResult:
    """Store a validated batch from the browser, each event once.

    Only client-reported types are stored; the others are refused without failing the rest
    of the batch. Client-set server fields are removed, and the server decides each paste's
    and copy's provenance itself (through :func:`register_provenance`; the assistant
    service's ``link_paste``). An event's stage is kept only if the participant has entered it
    (by the server's records)."""
    result = BatchResult()
    if not events:
        return result
    refused_ids: list[str] = []
    accepted: list[ClientEvent] = []
    for e in events:
        if client_may_send(e.type):
            accepted.append(e)
        else:
            result.refused[e.type] += 1
            refused_ids.append(e.client_id)
    entered = StageRecord.objects.filter(participant=participant).values_list("stage_id")
    stages = {s.key: s for s in Stage.objects.filter(trial_id=participant.trial_id, pk__in=entered)}
    ids = [e.client_id for e in accepted]
    seen = set(
        Event.objects.filter(participant=participant, client_id__in=ids).values_list(
            "client_id", flat=True
        )
    )
    provenance = _provenance(participant) if _provenance is not None else _NoVerdict()
    fresh: dict[str, Event] = {}
    stripped_ids: list[str] = []
    for e in accepted:
        if e.client_id in seen or e.client_id in fresh:
            continue
        payload, removed = strip_server_fields(e.type, e.payload)
        if removed:
            stripped_ids.append(e.client_id)
            result.stripped.update(f"{e.type}.{name}" for name in removed)
        payload = provenance.judge(e.type, payload)
        fresh[e.client_id] = Event(
            participant=participant,
            stage=stages.get(e.stage_key or ""),
            type=e.type,
            client_id=e.client_id,
            client_seq=e.seq,
            client_time=e.client_time,
            origin="client",
            payload=payload,
        )
    # ignore_conflicts: a concurrent retry of the same batch may have stored some meanwhile.
    Event.objects.bulk_create(fresh.values(), ignore_conflicts=True)
    result.stored = len(fresh)
    result.duplicates = len(accepted) - len(fresh)
    if result.refused or result.stripped:
        _record_refusal(participant, result, refused_ids, stripped_ids)
    return result


def _record_refusal(
    participant: Participant, result: BatchResult, refused_ids: list[str], stripped_ids: list[str]
) -> None:
    logger.warning(
        "telemetry from %s: refused %s, removed client-set %s",
        participant.public_code,
        dict(result.refused),
        dict(result.stripped),
    )
    # One record per distinct set of refused events: a retried batch adds nothing.
    key = hashlib.sha256(",".join(sorted(refused_ids + stripped_ids)).encode()).hexdigest()
    Event.objects.bulk_create(
        [
            Event(
                participant=participant,
                stage_id=participant.current_stage_id,
                type=EventName.TELEMETRY_REFUSED,
                client_id=f"srv-refused-{key[:48]}",
                origin="server",
                payload={
                    "refused": dict(result.refused),
                    "refused_ids": refused_ids,
                    "stripped": dict(result.stripped),
                    "stripped_ids": stripped_ids,
                },
            )
        ],
        ignore_conflicts=True,
    )
