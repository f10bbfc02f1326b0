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


def _start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    stdin: bytes,
    pass_fds: Sequence[int],
    user: int | None,
    preexec_fn: Callable[[], None] | None,
    on_started: Callable[[], None] | None,
) -> subprocess.Popen[bytes]:
    stdin_fd = _stdin_fd(stdin)
    try:
        return subprocess.Popen(
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


class _Watch:
    """One running process: its pipes, its exit, and the three clocks that end a run (the
    deadline, the linger after the main process exits, the drain after a kill)."""

    def __init__(
        self, proc: subprocess.Popen[bytes], max_output_bytes: int, deadline: float, kill: KillFn
    ) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.kill = kill
        self.deadline = deadline
        self.out_fd, self.err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        self.streams = {
            self.out_fd: _Stream(max_output_bytes),
            self.err_fd: _Stream(max_output_bytes),
        }
        self.open_fds = set(self.streams)
        self.status: int | None = None
        self.cpu = 0.0
        self.wall_timed_out = False
        self.killed_at: float | None = None
        self.exited_at: float | None = None

    def reap(self, flags: int) -> None:
        if self.status is not None:
            return
        pid, raw, usage = os.wait4(self.proc.pid, flags)
        if pid == self.proc.pid:
            self.status = raw
            # Includes every descendant that was waited for (for bwrap: its init reaps them).
            self.cpu = usage.ru_utime + usage.ru_stime
            self.proc.returncode = os.waitstatus_to_exitcode(raw)

    def stop(self) -> None:
        if self.killed_at is not None:
            return
        self.killed_at = time.monotonic()
        if self.status is None:
            # Our own unreaped child: its pid is still ours to signal, whatever the sandbox's
            # own way of stopping does. (Not ``proc.send_signal``: it polls first, and would
            # reap the child behind ``reap``'s back.)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
        self.kill(self.proc.pid, self.status is not None)

    def running(self) -> bool:
        return bool(self.open_fds) or self.status is None

    def wake_at(self) -> float:
        if self.killed_at is not None:
            return self.killed_at + _DRAIN_SECONDS
        if self.exited_at is not None:
            return self.exited_at + _LINGER_SECONDS
        return self.deadline

    def on_ready(
        self, selector: selectors.BaseSelector, fd: int, pidfd: int, cancel_fd: int | None
    ) -> None:
        if fd == cancel_fd:
            selector.unregister(fd)
            if self.status is None:
                self.stop()
            return
        if fd == pidfd:
            selector.unregister(pidfd)
            self.reap(0)  # it has exited: this does not block
            self.exited_at = time.monotonic()
            return
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        if data:
            self.streams[fd].feed(data)
        else:
            selector.unregister(fd)
            self.open_fds.discard(fd)

    def check_clocks(self) -> bool:
        """Act on whichever clock ran out; False when the pipes are to be abandoned."""
        now = time.monotonic()
        if self.killed_at is None and self.status is None and now >= self.deadline:
            self.wall_timed_out = True
            self.stop()
        elif self.killed_at is None and self.exited_at is not None and self.open_fds:
            if now >= self.exited_at + _LINGER_SECONDS:
                self.stop()
        elif self.killed_at is not None and now >= self.killed_at + _DRAIN_SECONDS:
            return False  # something unkillable holds the pipes: give up on them
        return True

    def loop(self, pidfd: int, cancel_fd: int | None) -> None:
        with selectors.DefaultSelector() as selector:
            for fd in self.streams:
                os.set_blocking(fd, False)
                selector.register(fd, selectors.EVENT_READ)
            selector.register(pidfd, selectors.EVENT_READ)
            if cancel_fd is not None:
                selector.register(cancel_fd, selectors.EVENT_READ)
            while self.running():
                for key, _ in selector.select(max(0.0, self.wake_at() - time.monotonic())):
                    self.on_ready(selector, int(key.fd), pidfd, cancel_fd)
                if not self.check_clocks():
                    break

    def outcome(self, start: float) -> ProcessOutcome:
        assert self.proc.returncode is not None
        out, err = self.streams[self.out_fd], self.streams[self.err_fd]
        return ProcessOutcome(
            stdout=out.value(),
            stderr=err.value(),
            stdout_truncated=out.dropped > 0,
            stderr_truncated=err.dropped > 0,
            returncode=self.proc.returncode,
            wall_timed_out=self.wall_timed_out,
            duration_seconds=time.monotonic() - start,
            cpu_seconds=self.cpu,
        )


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
    start = time.monotonic()
    proc = _start(
        argv,
        env=env,
        cwd=cwd,
        stdin=stdin,
        pass_fds=pass_fds,
        user=user,
        preexec_fn=preexec_fn,
        on_started=on_started,
    )
    watch = _Watch(proc, max_output_bytes, start + wall_seconds, kill)
    pidfd = os.pidfd_open(proc.pid)
    try:
        watch.loop(pidfd, cancel_fd)
    finally:
        if watch.status is None:
            # The deadline kill did not end it in time, or an exception escaped: never leave a
            # sandbox running behind.
            watch.stop()
            watch.reap(0)
        kill(proc.pid, True)
        os.close(pidfd)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    return watch.outcome(start)


def killpg(pgid: int) -> None:
    """SIGKILL a process group; gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
