"""Rebuild a participant's code history from the telemetry, for the experimenters' replay.

Pure functions (no Django): the selector gathers the rows, this module applies the edits.
An ``edit`` event carries CodeMirror changes ``[fromA, toA, inserted]`` whose positions refer
to the document before that event; ``snapshot`` events and saved versions carry whole texts
and let the replay resynchronise (the count of resyncs that changed the text is reported, so
a gap in the telemetry is visible rather than hidden).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class ReplayError(ValueError):
    pass


def apply_changes(text: str, changes: Sequence[Sequence[Any]]) -> str:
    """Apply one transaction's changes (positions in the text before the transaction).

    Positions count UTF-16 code units, as in the browser's editor, so the text is sliced in
    UTF-16 and characters outside the Basic Multilingual Plane (emoji) count twice."""
    for change in changes:
        if not isinstance(change, list | tuple) or len(change) != 3:
            raise ReplayError(f"a change must be [from, to, inserted], got {change!r}")
    units = text.encode("utf-16-le")
    # Apply from the end backwards so earlier positions stay valid; two insertions at one
    # position keep their given order.
    ordered = sorted(changes, key=lambda c: (int(c[0]), int(c[1])))
    for change in reversed(ordered):
        start, end, inserted = int(change[0]), int(change[1]), str(change[2])
        if not 0 <= start <= end <= len(units) // 2:
            raise ReplayError(f"change {change!r} is outside a text of length {len(units) // 2}")
        units = (
            units[: 2 * start] + inserted.encode("utf-16-le", "surrogatepass") + units[2 * end :]
        )
    try:
        return units.decode("utf-16-le")
    except UnicodeDecodeError:
        raise ReplayError("an edit splits a character in two") from None


@dataclass(frozen=True)
class Mark:
    """Something that happened at one moment: an edit, a run, a paste, a message..."""

    time: datetime
    task: str
    kind: str  # edit, snapshot, saved, run, check, paste, copy, assistant, stage, ...
    label: str
    changes: Sequence[Sequence[Any]] | None = None
    text: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Frame:
    time: datetime
    task: str
    code: str
    kind: str
    label: str
    detail: dict[str, Any]


@dataclass
class Replay:
    frames: list[Frame]
    resyncs: int
    errors: int


def build_replay(starters: dict[str, str], marks: Iterable[Mark]) -> Replay:
    """Walk the marks in time order and keep each task's text; every mark becomes a frame
    showing the code of its task at that moment."""
    texts = dict(starters)
    frames: list[Frame] = []
    resyncs = errors = 0
    for mark in sorted(marks, key=lambda m: m.time):
        current = texts.get(mark.task, "")
        if mark.changes is not None:
            try:
                current = apply_changes(current, mark.changes)
            except (ReplayError, TypeError, ValueError):
                errors += 1
        elif mark.text is not None:
            if mark.text != current and mark.kind in ("snapshot", "saved"):
                resyncs += 1
            current = mark.text
        texts[mark.task] = current
        frames.append(Frame(mark.time, mark.task, current, mark.kind, mark.label, mark.detail))
    return Replay(frames=frames, resyncs=resyncs, errors=errors)
