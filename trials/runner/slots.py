"""A cap on concurrent runs per machine, shared by every process of the server.

Each slot is a file in one directory; a run holds an exclusive ``flock`` on one slot file for its
whole life. ``flock`` locks belong to the open file description, so the cap holds across gunicorn
workers and across threads of one process alike, and the kernel releases the lock when a holder
dies, so a crashed worker never leaks a slot. The slot's index also names the run's sandbox uid.

Fairness. A waiting run holds a *ticket*: a file in ``queue/`` named after the time it arrived,
locked by its holder (so a ticket of a crashed process is recognised and removed). Only the
oldest ``size`` tickets may take a free slot, so runs start in order of arrival, give or take
the slot count, and a run's position is the number of live tickets ahead of it. A run may carry
a ``tag`` (one participant): runs with the same tag go one at a time, each newer one waiting
behind the older before it even takes a ticket, so one participant flooding Run holds at most
one slot and one place in the queue, and cannot starve anyone else's Check.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["QueueTimeout", "Slot", "SlotPool", "ensure_private_dir", "queue_position"]

_TAG_RE = re.compile(r"^[A-Za-z0-9_-]{0,64}$")
_LIVENESS_EVERY = 1.0


class QueueTimeout(Exception):
    """Every slot stayed busy for the whole queue wait."""


@dataclass(frozen=True)
class Slot:
    index: int
    """0 .. size - 1 within the pool."""
    number: int
    """``first + index``: names the lock file (and, as root, is the run's uid)."""
    fd: int


def ensure_private_dir(path: Path, mode: int) -> None:
    """Create ``path`` (and parents) owned by us with ``mode``; refuse one owned by someone else
    or a symlink: in a shared /tmp another user could otherwise pre-create it to steal or
    block the slots or read the run directories."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise PermissionError(f"{path} is not a directory owned by uid {os.geteuid()}")
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)


class SlotPool:
    """Slots ``first .. first + size - 1``, locked through ``directory/slot-<number>.lock``.

    The first ``always`` slots (default: all) are taken whenever free; the others only while
    ``admit_extra()`` says the machine has room (trials/runner/cpu.py: the CPUs are not busy),
    so that programs that mostly sleep do not queue behind idle CPUs, and programs that compute
    do not oversubscribe them."""

    def __init__(
        self,
        directory: Path,
        size: int,
        *,
        first: int = 0,
        always: int | None = None,
        admit_extra: Callable[[], bool] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a slot pool needs at least one slot, got {size}")
        self.directory = directory
        self.size = size
        self.first = first
        self.always = size if always is None else max(1, min(always, size))
        self.admit_extra = admit_extra

    def _free_slot(self) -> Slot | None:
        """The lowest free slot this run may take now, so the set of sandbox uids in use stays
        small; the slots beyond ``always`` only when ``admit_extra()`` allows."""
        for index in range(self.size):
            if index == self.always and not (self.admit_extra and self.admit_extra()):
                return None
            slot = self._try_lock(index)
            if slot is not None:
                return slot
        return None

    def _try_lock(self, index: int) -> Slot | None:
        path = self.directory / f"slot-{self.first + index}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return None
            raise
        return Slot(index=index, number=self.first + index, fd=fd)

    @property
    def queue_dir(self) -> Path:
        return self.directory / "queue"

    def _lock_tag(self, tag: str, deadline: float) -> int | None:
        """Wait for this tag's earlier run to finish; the returned descriptor holds the lock."""
        if not tag:
            return None
        path = self.directory / f"tag-{tag}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    os.close(fd)
                    raise QueueTimeout("this participant's earlier run is still going") from None
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.1)

    def _take_ticket(self, tag: str) -> tuple[str, int]:
        ensure_private_dir(self.queue_dir, 0o700)
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}-{tag}.ticket"
        fd = os.open(
            self.queue_dir / name,
            os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
        fcntl.flock(fd, fcntl.LOCK_EX)
        return name, fd

    @contextlib.contextmanager
    def acquire(self, *, timeout: float, tag: str = "") -> Iterator[Slot]:
        """Hold a free slot for the ``with`` block, waiting up to ``timeout`` seconds (``inf``:
        for ever) for one, behind this ``tag``'s earlier run and the runs that came first.

        Raises QueueTimeout when none became free in time."""
        if not _TAG_RE.match(tag):
            raise ValueError(f"a run tag must be short and plain, got {tag!r}")
        ensure_private_dir(self.directory, 0o700)
        deadline = time.monotonic() + timeout if math.isfinite(timeout) else math.inf
        tag_fd = self._lock_tag(tag, deadline)
        ticket, ticket_fd = self._take_ticket(tag)
        try:
            delay = 0.005
            slot: Slot | None = None
            last_sweep = 0.0
            while slot is None:
                now = time.monotonic()
                sweep = now - last_sweep >= _LIVENESS_EVERY
                if sweep:
                    last_sweep = now
                if _ahead(self.queue_dir, ticket, sweep=sweep) < self.size:
                    slot = self._free_slot()
                if slot is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise QueueTimeout(
                            f"all {self.size} run slots stayed busy for {timeout:g} s"
                        )
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, 0.05)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.queue_dir / ticket)
            os.close(ticket_fd)
            if slot is None and tag_fd is not None:
                os.close(tag_fd)
        try:
            yield slot
        finally:
            # Closing the descriptors releases the locks.
            os.close(slot.fd)
            if tag_fd is not None:
                os.close(tag_fd)


def _alive(queue_dir: Path, name: str) -> bool:
    """Whether a ticket's holder still waits; a dead holder's ticket is removed."""
    try:
        fd = os.open(queue_dir / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(queue_dir / name)
    return False


def _ahead(queue_dir: Path, ticket: str, *, sweep: bool) -> int:
    try:
        names = [n for n in os.listdir(queue_dir) if n.endswith(".ticket") and n < ticket]
    except FileNotFoundError:
        return 0
    if sweep:
        names = [n for n in names if _alive(queue_dir, n)]
    return len(names)


def queue_position(directory: Path, tag: str) -> int | None:
    """How many runs are ahead of the oldest waiting run of ``tag`` (0: next), or None when
    it has no run waiting for a slot."""
    queue_dir = directory / "queue"
    try:
        names = sorted(n for n in os.listdir(queue_dir) if n.endswith(".ticket"))
    except FileNotFoundError:
        return None
    suffix = f"-{tag}.ticket"
    for position, name in enumerate(names):
        if tag and name.endswith(suffix):
            return position
    return None
