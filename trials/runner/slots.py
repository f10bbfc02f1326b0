"""A cap on concurrent runs per machine, shared by every process of the server.

Each slot is a file in one directory; a run holds an exclusive ``flock`` on one slot file for its
whole life. ``flock`` locks belong to the open file description, so the cap holds across gunicorn
workers and across threads of one process alike, and the kernel releases the lock when a holder
dies, so a crashed worker never leaks a slot. The slot's index also names the run's sandbox uid.

Waiting runs poll with a growing back-off rather than queueing in strict order: under constant
overload a waiting run may be overtaken, and is refused once its queue wait is over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["QueueTimeout", "Slot", "SlotPool", "ensure_private_dir"]


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
    """Slots ``first .. first + size - 1``, locked through ``directory/slot-<number>.lock``."""

    def __init__(self, directory: Path, size: int, *, first: int = 0) -> None:
        if size < 1:
            raise ValueError(f"a slot pool needs at least one slot, got {size}")
        self.directory = directory
        self.size = size
        self.first = first

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

    @contextlib.contextmanager
    def acquire(self, *, timeout: float) -> Iterator[Slot]:
        """Hold a free slot for the ``with`` block, waiting up to ``timeout`` seconds for one.

        Raises QueueTimeout when none became free in time."""
        ensure_private_dir(self.directory, 0o700)
        deadline = time.monotonic() + timeout
        delay = 0.005
        slot: Slot | None = None
        while slot is None:
            # Lowest free index first, so the set of sandbox uids in use stays small.
            for index in range(self.size):
                slot = self._try_lock(index)
                if slot is not None:
                    break
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise QueueTimeout(f"all {self.size} run slots stayed busy for {timeout:g} s")
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.1)
        try:
            yield slot
        finally:
            # Closing the descriptor releases the lock.
            os.close(slot.fd)
