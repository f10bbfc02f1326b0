"""How much CPU the sandboxed programs use, read from ``/proc``: sizes the run cap by CPU
actually used rather than by slots held.

A Trio Check takes seconds of wall time but a few percent of one CPU: the program mostly
sleeps. One slot per CPU would leave the CPUs idle while runs queue, so the pool has more slots
than CPUs, and a run may take one of the slots beyond the CPU count only while the programs
already running leave room (``CpuMeter.busy_fraction`` below ``1 - min_idle``).

As root every slot runs under a uid of its own, so the meter adds up the CPU time of the
processes of those uids (:func:`runs_meter`): what the programs use, not what the web server
next to them uses. Without root the programs share the server's uid, and the meter falls back
to the whole machine (:func:`machine_meter`). Where ``/proc`` cannot be read the extra slots are
never used: the cap falls back to one run per CPU.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

__all__ = ["CpuMeter", "machine_meter", "runs_meter"]

_MIN_WINDOW = 0.1
"""A reading compares two samples at least this far apart (seconds)."""
_STALE = 2.0
"""A previous sample older than this says nothing about now: sample again."""

Reader = Callable[[], "tuple[int, int] | None"]
"""(busy, total) jiffies since boot over all CPUs, or None where unreadable."""


def _proc_stat_total(path: str = "/proc/stat") -> tuple[int, int] | None:
    """(idle, total) jiffies over all CPUs since boot."""
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


def machine_reader(path: str = "/proc/stat") -> Reader:
    def read() -> tuple[int, int] | None:
        reading = _proc_stat_total(path)
        return None if reading is None else (reading[1] - reading[0], reading[1])

    return read


def _uid_jiffies(uids: range, proc: str) -> int:
    """CPU time (user + system jiffies) of the live processes whose uid is in ``uids``."""
    total = 0
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid not in uids:
                continue
            with open(os.path.join(entry.path, "stat"), "rb") as f:
                data = f.read()
        except OSError:  # gone meanwhile
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total


def uid_reader(uids: range, proc: str = "/proc") -> Reader:
    def read() -> tuple[int, int] | None:
        reading = _proc_stat_total(os.path.join(proc, "stat"))
        if reading is None:
            return None
        try:
            return _uid_jiffies(uids, proc), reading[1]
        except OSError:
            return None

    return read


class CpuMeter:
    """The share of all CPU time (0 .. 1) that what ``reader`` counts used recently, shared by
    the threads of one process; each process keeps its own."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        self._previous: tuple[float, int, int] | None = None
        self._last: float | None = None

    def _sample(self) -> tuple[float, int, int] | None:
        reading = self._reader()
        return None if reading is None else (time.monotonic(), *reading)

    def busy_fraction(self) -> float | None:
        """Busy share over the last ~0.1-2 s, or None when it cannot be read."""
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
            _, busy_before, total_before = self._previous
            _, busy_now, total_now = current
            self._previous = current
            elapsed = total_now - total_before
            if elapsed > 0:
                # A process that ended between samples takes its jiffies with it: never below 0.
                self._last = max(0.0, (busy_now - busy_before) / elapsed)
            return self._last


_machine = CpuMeter(machine_reader())
_runs: dict[range, CpuMeter] = {}
_runs_lock = threading.Lock()


def machine_meter() -> CpuMeter:
    return _machine


def runs_meter(uids: range) -> CpuMeter:
    with _runs_lock:
        if uids not in _runs:
            _runs[uids] = CpuMeter(uid_reader(uids))
        return _runs[uids]
