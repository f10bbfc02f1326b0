"""Client-reported spans (focus to blur, hidden to visible, idle), bounded by server time.

Pure (no Django): the browser's clock and claims never stretch a span beyond the window the
server observed. Read by the data sets; the telemetry service stores the events they pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ClientSpan:
    """A span the browser reported (focus to blur, hidden to visible, idle): its length as
    the browser measured it, and the server time at which its end was reported."""

    seconds: float
    reported_at: datetime


def spans_between(
    events: Iterable[tuple[str, datetime | None, datetime]], *, opens: str, closes: str
) -> list[ClientSpan]:
    """Pair ``(type, client_time, server_time)`` rows, in the order they arrived, into spans
    from an ``opens`` event to the next ``closes`` event. The length is the difference of
    the two client times (one tab's own clock), or of the server times when a client time
    is missing; a negative length counts as zero."""
    spans = []
    opened: tuple[datetime | None, datetime] | None = None
    for etype, client_time, server_time in events:
        if etype == opens:
            opened = (client_time, server_time)
        elif etype == closes and opened is not None:
            start_client, start_server = opened
            if start_client is not None and client_time is not None:
                seconds = (client_time - start_client).total_seconds()
            else:
                seconds = (server_time - start_server).total_seconds()
            spans.append(ClientSpan(max(seconds, 0.0), server_time))
            opened = None
    return spans


def bounded_seconds(spans: Iterable[ClientSpan], *, start: datetime, end: datetime) -> float:
    """Seconds covered by client-reported spans inside the server-observed window
    ``[start, end]`` (e.g. a stage's server-stamped entry to its end or time limit).

    A span cannot have ended after the server received its report, nor outside the window,
    so it is placed to end at ``min(reported_at, end)`` and clipped at ``start``; overlapping
    spans count once. The result is never more than ``end - start``, whatever the browser's
    clock or claims."""
    intervals = []
    for span in spans:
        stop = min(span.reported_at, end)
        if stop <= start or span.seconds <= 0:
            continue
        begin = max(start, stop - _seconds(span.seconds))
        intervals.append((begin, stop))
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for begin, stop in sorted(intervals):
        if current is not None and begin <= current[1]:
            current = (current[0], max(current[1], stop))
            continue
        if current is not None:
            total += (current[1] - current[0]).total_seconds()
        current = (begin, stop)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total


def _seconds(value: float) -> timedelta:
    # A forged length can exceed what timedelta holds; nothing longer than a year matters.
    return timedelta(seconds=min(value, 366 * 86_400.0))
