"""Telemetry: events sent by the browser in batches, and events the server logs itself.

Events are append-only. A browser event carries its own id; (participant, client id) is
unique in the database, so a batch that is retried after a lost response is stored once.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from trials.models import Event, Participant, Stage

MAX_BATCH = 200
MAX_PAYLOAD_BYTES = 64_000
# A snapshot carries the whole code (up to coding.MAX_CODE_CHARS characters, JSON-escaped).
MAX_SNAPSHOT_BYTES = 1_300_000
TYPE_RE = re.compile(r"^[a-z][a-z0-9_.]{0,39}$")
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class BatchInvalid(ValueError):
    """The batch is malformed; the message names the event and field."""


def event_log(
    participant: Participant,
    type: str,
    *,
    stage: Stage | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    """An event the server itself observed (stage changes, runs, checks, assistant calls)."""
    return Event.objects.create(
        participant=participant,
        stage=stage,
        type=type,
        client_id=f"srv-{uuid.uuid4().hex}",
        origin="server",
        payload=payload or {},
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
    first problem (by index and field)."""
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
        limit = MAX_SNAPSHOT_BYTES if etype == "snapshot" else MAX_PAYLOAD_BYTES
        if len(encoded) > limit:
            raise BatchInvalid(f"{where}.payload: larger than {limit} bytes")
        if _has_nul(payload):
            raise BatchInvalid(f"{where}.payload: contains a NUL character")
        events.append(ClientEvent(client_id, seq, etype, client_time, stage_key, payload))
    return events


def events_record(*, participant: Participant, events: list[ClientEvent]) -> tuple[int, int]:
    """Store a validated batch once each; returns (stored, duplicates)."""
    if not events:
        return 0, 0
    stages = {s.key: s for s in Stage.objects.filter(trial_id=participant.trial_id)}
    ids = [e.client_id for e in events]
    seen = set(
        Event.objects.filter(participant=participant, client_id__in=ids).values_list(
            "client_id", flat=True
        )
    )
    fresh: dict[str, Event] = {}
    copies: dict[str, Any] = {}  # assistant copies in this batch, for pastes after them
    for e in events:
        if e.client_id in seen or e.client_id in fresh:
            continue
        payload = e.payload
        if e.type == "copy" and payload.get("source") == "assistant":
            if isinstance(payload.get("sha256"), str):
                copies[payload["sha256"]] = payload.get("turn")
        elif e.type == "paste":
            from trials.chat import link_paste  # chat builds on events

            payload = link_paste(participant, payload, copies)
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
    return len(fresh), len(events) - len(fresh)
