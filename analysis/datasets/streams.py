"""The rows of each data set: the participants computed from their declared columns, the
items and events streamed from the database in chunks, the allocations read at once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from analysis.datasets import people, reads
from analysis.datasets.columns import participant_columns
from analysis.datasets.population import join
from analysis.datasets.shape import TrialShape

Chunks = Iterator[list[tuple[Any, ...]]]


def participants_rows(shape: TrialShape, identified: bool) -> list[tuple[Any, ...]]:
    """A row per participant, each value computed by its column's declaration."""
    columns = participant_columns(shape, identified)
    data = people.load(shape)
    return [
        tuple(c.compute(person) for c in columns)
        for person in (people.person(data, row) for row in reads.participant_rows(shape.trial))
    ]


def to_json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _chunked(rows: Iterator[tuple[Any, ...]], chunk_size: int) -> Chunks:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def iter_items(shape: TrialShape, chunk_size: int) -> Chunks:
    arms = reads.arm_by_participant(shape.trial)
    stage_keys = {s.pk: s.key for s in shape.stages}
    query = reads.item_rows(shape.trial, min(chunk_size, reads.CHUNK))
    rows = (
        (
            code,
            arms.get(pid, ""),
            stage_keys.get(stage_id, ""),
            key,
            position,
            join(list(categories or [])),
            *graded,
            to_json(response),
            graded_at,
        )
        for pid, code, stage_id, key, position, categories, *graded, response, graded_at in query
    )
    return _chunked(rows, chunk_size)


def iter_events(shape: TrialShape, chunk_size: int) -> Chunks:
    arms = reads.arm_by_participant(shape.trial)
    codes = reads.participant_codes(shape.trial)
    stage_keys = {s.pk: s.key for s in shape.stages}
    query = reads.event_rows(shape.trial, min(chunk_size, reads.CHUNK))
    rows = (
        (
            eid,
            codes.get(pid, ""),
            arms.get(pid, ""),
            stage_keys.get(stage_id, "") if stage_id else "",
            etype,
            origin,
            seq,
            ctime,
            stime,
            to_json(payload),
        )
        for eid, pid, stage_id, etype, origin, seq, ctime, stime, payload in query
    )
    return _chunked(rows, chunk_size)


STREAMED: dict[str, Callable[[TrialShape, int], Chunks]] = {
    "items": iter_items,
    "events": iter_events,
}
