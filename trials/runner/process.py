"""Start one process, feed it, read its output with a cap, and stop it at a deadline.

Output is read as it comes; past ``max_output_bytes`` per stream it is read and dropped, so a
program printing 100 MB costs the server 64 KB of memory and the child never blocks on a full
pipe. The wall-clock deadline is enforced here, through the ``kill`` callback given by the
sandbox, which knows how to take down everything the run started. The process's exit is watched
through a pidfd, so nothing here polls.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["KillFn", "ProcessOutcome", "killpg", "run_captured"]

_READ_SIZE = 65536
# After the main process has ended, how long something it left behind may keep the pipes open
# before it is killed.
_LINGER_SECONDS = 0.2
# After a kill, how long to wait for the pipes to close before abandoning them.
_DRAIN_SECONDS = 2.0

KillFn = Callable[[int, bool], None]
"""``kill(pid, reaped)``: stop everything the run started. ``reaped`` is True when the main
process has already been waited for, so its pid must not be signalled any more. It is called
at the deadline, when the main process ended but something it left holds the pipes, and once
more at the very end to remove whatever the program left behind."""


@dataclass(frozen=True)
class ProcessOutcome:
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    returncode: int
    """As in ``subprocess``: negative for death by signal."""
    wall_timed_out: bool
    duration_seconds: float
    cpu_seconds: float


class _Stream:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        room = max(self.cap - self.kept, 0)
        if room:
            piece = data[:room]
            self.chunks.append(piece)
            self.kept += len(piece)
        self.dropped += len(data) - min(len(data), room)

    def value(self) -> bytes:
        return b"".join(self.chunks)


def _stdin_fd(data: bytes) -> int | None:
    """An in-memory file holding ``data`` to serve as stdin (no pipe to keep fed)."""
    if not data:
        return None
    fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def run_captured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    stdin: bytes,
    max_output_bytes: int,
    wall_seconds: float,
    kill: KillFn,
    pass_fds: Sequence[int] = (),
    user: int | None = None,
    preexec_fn: Callable[[], None] | None = None,
    on_started: Callable[[], None] | None = None,
    cancel_fd: int | None = None,
) -> ProcessOutcome:
    """Run ``argv`` in a new session and return its capped output.

    ``on_started`` is called once the process exists (to close the parent's copies of
    descriptors handed to it); when ``cancel_fd`` becomes readable the run is stopped as at
    its deadline, but not counted as timed out.

    ``user`` switches uid and gid and clears supplementary groups in the child before exec;
    ``subprocess`` does that in C, so unlike a ``preexec_fn`` it is safe in a threaded server."""
    stdin_fd = _stdin_fd(stdin)
    start = time.monotonic()
    deadline = start + wall_seconds
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=stdin_fd if stdin_fd is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            pass_fds=tuple(pass_fds),
            close_fds=True,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
            umask=0o077,
            preexec_fn=preexec_fn,
        )
    finally:
        if stdin_fd is not None:
            os.close(stdin_fd)
        if on_started is not None:
            on_started()
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    streams = {out_fd: _Stream(max_output_bytes), err_fd: _Stream(max_output_bytes)}

    status: int | None = None
    cpu = 0.0
    wall_timed_out = False
    killed_at: float | None = None
    exited_at: float | None = None

    def reap(flags: int) -> None:
        nonlocal status, cpu
        if status is not None:
            return
        pid, raw, usage = os.wait4(proc.pid, flags)
        if pid == proc.pid:
            status = raw
            # Includes every descendant that was waited for (for bwrap: its init reaps them).
            cpu = usage.ru_utime + usage.ru_stime
            proc.returncode = os.waitstatus_to_exitcode(raw)

    def stop() -> None:
        nonlocal killed_at
        if killed_at is None:
            killed_at = time.monotonic()
            if status is None:
                # Our own unreaped child: its pid is still ours to signal, whatever the
                # sandbox's own way of stopping does. (Not ``proc.send_signal``: it polls
                # first, and would reap the child behind ``reap``'s back.)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            kill(proc.pid, status is not None)

    pidfd = os.pidfd_open(proc.pid)
    try:
        with selectors.DefaultSelector() as selector:
            for fd in streams:
                os.set_blocking(fd, False)
                selector.register(fd, selectors.EVENT_READ)
            selector.register(pidfd, selectors.EVENT_READ)
            if cancel_fd is not None:
                selector.register(cancel_fd, selectors.EVENT_READ)
            open_fds = set(streams)
            while open_fds or status is None:
                if killed_at is not None:
                    wake = killed_at + _DRAIN_SECONDS
                elif exited_at is not None:
                    wake = exited_at + _LINGER_SECONDS
                else:
                    wake = deadline
                for key, _ in selector.select(max(0.0, wake - time.monotonic())):
                    fd = int(key.fd)
                    if fd == cancel_fd:
                        selector.unregister(cancel_fd)
                        if status is None:
                            stop()
                        continue
                    if fd == pidfd:
                        selector.unregister(pidfd)
                        reap(0)  # it has exited: this does not block
                        exited_at = time.monotonic()
                        continue
                    try:
                        data = os.read(fd, _READ_SIZE)
                    except BlockingIOError:
                        continue
                    if data:
                        streams[fd].feed(data)
                    else:
                        selector.unregister(fd)
                        open_fds.discard(fd)
                now = time.monotonic()
                if killed_at is None and status is None and now >= deadline:
                    wall_timed_out = True
                    stop()
                elif killed_at is None and exited_at is not None and open_fds:
                    if now >= exited_at + _LINGER_SECONDS:
                        stop()
                elif killed_at is not None and now >= killed_at + _DRAIN_SECONDS:
                    break  # something unkillable holds the pipes: give up on them
    finally:
        if status is None:
            # The deadline kill did not end it in time, or an exception escaped: never leave a
            # sandbox running behind.
            stop()
            reap(0)
        kill(proc.pid, True)
        os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode is not None
    return ProcessOutcome(
        stdout=streams[out_fd].value(),
        stderr=streams[err_fd].value(),
        stdout_truncated=streams[out_fd].dropped > 0,
        stderr_truncated=streams[err_fd].dropped > 0,
        returncode=proc.returncode,
        wall_timed_out=wall_timed_out,
        duration_seconds=time.monotonic() - start,
        cpu_seconds=cpu,
    )


def killpg(pgid: int) -> None:
    """SIGKILL a process group; gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
