"""How busy the machine's CPUs are, read from ``/proc/stat``: sizes the run cap by CPU actually
used rather than by slots held.

A Trio Check takes seconds of wall time but a few percent of one CPU: the program mostly
sleeps. One slot per CPU would leave the CPUs idle while runs queue, so the pool has more slots
than CPUs, and a run may take one of the slots beyond the CPU count only while the CPUs are
not busy (``CpuMeter.idle_fraction`` at or above the configured minimum). Where ``/proc/stat``
cannot be read the extra slots are never used: the cap falls back to one run per CPU.
"""

from __future__ import annotations

import threading
import time

__all__ = ["CpuMeter", "machine_meter"]

_MIN_WINDOW = 0.1
"""A reading compares two samples at least this far apart (seconds)."""
_STALE = 2.0
"""A previous sample older than this says nothing about now: sample again."""


def _read_proc_stat(path: str = "/proc/stat") -> tuple[int, int] | None:
    """(idle, total) jiffies over all CPUs since boot; None where unreadable."""
    try:
        with open(path, "rb") as f:
            first = f.readline().split()
    except OSError:
        return None
    if not first or first[0] != b"cpu":
        return None
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return idle, sum(values)


class CpuMeter:
    """The share of CPU time the machine spent idle recently (0 .. 1), shared by the threads
    of one process; each process keeps its own."""

    def __init__(self, path: str = "/proc/stat") -> None:
        self._path = path
        self._lock = threading.Lock()
        self._previous: tuple[float, int, int] | None = None
        self._last: float | None = None

    def _sample(self) -> tuple[float, int, int] | None:
        reading = _read_proc_stat(self._path)
        return None if reading is None else (time.monotonic(), *reading)

    def idle_fraction(self) -> float | None:
        """Idle share over the last ~0.1-2 s, or None when the CPU cannot be read."""
        with self._lock:
            now = time.monotonic()
            if self._previous is None or now - self._previous[0] > _STALE:
                self._previous = self._sample()
                if self._previous is None:
                    return None
                time.sleep(_MIN_WINDOW)
            elif now - self._previous[0] < _MIN_WINDOW and self._last is not None:
                return self._last
            current = self._sample()
            if current is None:
                return None
            _, idle_before, total_before = self._previous
            _, idle_now, total_now = current
            self._previous = current
            elapsed = total_now - total_before
            self._last = (idle_now - idle_before) / elapsed if elapsed > 0 else self._last
            return self._last


_meter = CpuMeter()


def machine_meter() -> CpuMeter:
    return _meter
