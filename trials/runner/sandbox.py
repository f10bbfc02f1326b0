"""Run participant code: pick the sandbox, take a run slot, make and remove the run directory,
and turn what happened into a ``RunResult``. The sandboxes themselves are in ``bwrap.py`` (the
strong one) and ``fallback.py`` (the weak one, with what it does not protect).

Process limits: ``RLIMIT_NPROC`` counts the tasks of a real uid and is never enforced for root,
so participant code must neither run as root nor share its uid with anything else. When the
server is root, run slot ``i`` runs its program as ``uid_base + i``, and holds the slot until
every process of that uid is gone; a mapped uid inside a user namespace created by root would
not do, since it is still uid 0 to the kernel. When the server is not root, bwrap's user
namespace makes the count per run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from trials.runner import slots
from trials.runner.bwrap import bwrap_problem, run_bwrap
from trials.runner.config import ENV_SANDBOX, InvalidRun, RunnerConfig, SandboxUnavailable
from trials.runner.cpu import machine_meter, runs_meter
from trials.runner.fallback import run_fallback
from trials.runner.limits import Limits
from trials.runner.process import ProcessOutcome
from trials.runner.result import Reason, RunResult, SandboxKind
from trials.runner.slots import QueueTimeout, SlotPool, ensure_private_dir

__all__ = [
    "PairResult",
    "SandboxStatus",
    "queue_position",
    "run_pair",
    "run_python",
    "sandbox_kind",
    "sandbox_status",
]

logger = logging.getLogger("skilltrial.runner")

_MAX_FILES = 200
_STALE_RUN_SECONDS = 3600


@dataclass(frozen=True)
class SandboxStatus:
    kind: SandboxKind
    detail: str
    """Why this kind is in use, in a sentence fit for the experimenters' dashboard."""


def _running_as_root() -> bool:
    return os.geteuid() == 0


def sandbox_status(config: RunnerConfig | None = None) -> SandboxStatus:
    """Which sandbox runs would use, and why. Raises SandboxUnavailable when the mode is
    ``bwrap`` and bwrap cannot work here."""
    config = config or RunnerConfig.from_env()
    if config.mode == "fallback":
        return SandboxStatus("fallback", f"the fallback sandbox was chosen ({ENV_SANDBOX})")
    if config.bwrap is None:
        problem = "bubblewrap (bwrap) is not installed"
    else:
        failure = bwrap_problem(config.bwrap, _running_as_root())
        if failure is None:
            return SandboxStatus("bwrap", f"bubblewrap ({config.bwrap})")
        problem = f"bubblewrap cannot make a sandbox here: {failure}"
    if config.mode == "bwrap":
        raise SandboxUnavailable(problem)
    return SandboxStatus("fallback", problem)


def sandbox_kind(config: RunnerConfig | None = None) -> SandboxKind:
    """``"bwrap"`` or ``"fallback"``: the sandbox ``run_python`` would use."""
    return sandbox_status(config).kind


_warned_lock = threading.Lock()
_warned = False


def _warn_fallback_once(status: SandboxStatus) -> None:
    global _warned
    with _warned_lock:
        if _warned:
            return
        _warned = True
    logger.warning(
        "PARTICIPANT CODE RUNS IN THE WEAK FALLBACK SANDBOX because %s. It has resource limits "
        "and a clean environment only: NO network isolation, and NO filesystem isolation "
        "beyond file permissions%s. Install bubblewrap (Debian package 'bubblewrap').",
        status.detail,
        "" if _running_as_root() else " (and the server is not root: none at all)",
    )


def _check_input(files: Mapping[str, str], entry: str, argv: Sequence[str]) -> list[PurePosixPath]:
    if not files:
        raise InvalidRun("a run needs at least one file")
    if len(files) > _MAX_FILES:
        raise InvalidRun(f"a run may have at most {_MAX_FILES} files, got {len(files)}")
    paths = []
    for name in files:
        path = PurePosixPath(name)
        if (
            "\0" in name
            or path.is_absolute()
            or not path.parts
            or ".." in path.parts
            or str(path) != name
        ):
            raise InvalidRun(f"file name {name!r} must be a plain relative path")
        paths.append(path)
    if entry not in files:
        raise InvalidRun(f"the entry point {entry!r} is not among the files")
    if any("\0" in arg for arg in argv):
        raise InvalidRun("arguments cannot contain NUL characters")
    return paths


def _write_files(directory: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def _remove_tree(path: Path) -> None:
    def retry(function: object, failed: str, *_: object) -> None:
        # Not root: the program may have left directories without write or search permission.
        os.chmod(os.path.dirname(failed), 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, 0o700)
            shutil.rmtree(failed)
        else:
            os.unlink(failed)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)


def _remove_stale_runs(state: Path, limits: Limits) -> None:
    """Remove run directories left by a server killed in the middle of a run. A live run's
    directory is never older than its wall-time limit (it is made after the slot is taken)."""
    cutoff = time.time() - max(_STALE_RUN_SECONDS, 2 * limits.wall_seconds)
    for entry in os.scandir(state):
        if not entry.name.startswith("run-"):
            continue
        try:
            modified = entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:  # a run that just finished removed its own directory
            continue
        if modified < cutoff:
            shutil.rmtree(entry.path, ignore_errors=True)  # another process may be at it too


def _signal_of(kind: SandboxKind, returncode: int) -> int | None:
    if returncode < 0:
        return -returncode
    if kind == "bwrap" and 128 < returncode <= 128 + 64:
        # bwrap reports a program killed by signal N as exit status 128 + N, like a shell, so
        # a program calling sys.exit(129..192) reads as killed. No exercise does that.
        return returncode - 128
    return None


def _result(outcome: ProcessOutcome, *, kind: SandboxKind, limits: Limits) -> RunResult:
    killed_by = _signal_of(kind, outcome.returncode)
    exit_code = None if killed_by is not None else outcome.returncode
    # bwrap's init reaps the program but its own usage is never collected: no CPU figure there.
    cpu = outcome.cpu_seconds if kind == "fallback" else None
    stderr = outcome.stderr.decode("utf-8", "replace")
    reason: Reason = "exited"
    if outcome.wall_timed_out:
        reason = "wall_time_limit"
    elif killed_by == signal.SIGXCPU or (
        killed_by == signal.SIGKILL and cpu is not None and cpu >= limits.cpu_seconds
    ):
        reason = "cpu_time_limit"
    elif killed_by is not None:
        reason = "signal"
    elif exit_code and stderr.rstrip().rsplit("\n", 1)[-1].startswith("MemoryError"):
        reason = "memory_limit"
    stdout = outcome.stdout.decode("utf-8", "replace")
    notice = f"\n[output truncated after {limits.max_output_bytes} bytes]\n"
    return RunResult(
        stdout=stdout + notice if outcome.stdout_truncated else stdout,
        stderr=stderr + notice if outcome.stderr_truncated else stderr,
        exit_code=exit_code,
        duration_seconds=outcome.duration_seconds,
        cpu_seconds=cpu,
        timed_out=reason in ("wall_time_limit", "cpu_time_limit"),
        stdout_truncated=outcome.stdout_truncated,
        stderr_truncated=outcome.stderr_truncated,
        killed_by_signal=killed_by,
        reason=reason,
        sandbox=kind,
    )


def run_python(
    files: Mapping[str, str],
    entry: str,
    *,
    limits: Limits | None = None,
    argv: Sequence[str] = (),
    stdin: str = "",
    config: RunnerConfig | None = None,
    tag: str = "",
    queue_timeout: float | None = None,
) -> RunResult:
    """Run ``python entry *argv`` on ``files`` (relative path -> text) in a fresh sandbox.

    Blocks until a run slot is free, at most ``config.queue_timeout_seconds``; if none frees up
    the result has ``reason="queue_timeout"`` and nothing ran. The run's directory is gone when
    this returns. Raises InvalidRun for unacceptable file names and SandboxUnavailable when the
    configured sandbox cannot work on this machine. Runs with the same ``tag`` (one
    participant) go one at a time; ``queue_timeout`` overrides the configured wait
    (``math.inf``: wait for ever)."""
    limits = limits or Limits()
    config = config or RunnerConfig.from_env()
    paths = _check_input(files, entry, argv)
    status, as_root, state, pool = _machine(config, limits)
    try:
        with pool.acquire(timeout=_wait(config, queue_timeout), tag=tag) as slot:
            outcome = _run_in_slot(
                _Run(files=files, paths=paths, entry=entry, argv=argv, stdin=stdin),
                config=config,
                kind=status.kind,
                limits=limits,
                uid=slot.number if as_root else None,
                state=state,
            )
    except QueueTimeout:
        _log_refusal(pool, config)
        return dataclasses.replace(_REFUSED, sandbox=status.kind)
    return _result(outcome, kind=status.kind, limits=limits)


@dataclass(frozen=True)
class _Run:
    files: Mapping[str, str]
    paths: list[PurePosixPath]
    entry: str
    argv: Sequence[str]
    stdin: str
    channel_fds: Sequence[int] = ()
    on_started: Callable[[], None] | None = None
    cancel_fd: int | None = None


def _machine(config: RunnerConfig, limits: Limits) -> tuple[SandboxStatus, bool, Path, SlotPool]:
    """The sandbox in use, whether we are root, the state directory (cleaned of leftovers of a
    killed server) and the machine's slot pool."""
    status = sandbox_status(config)
    if status.kind == "fallback":
        _warn_fallback_once(status)
    as_root = _running_as_root()
    state = Path(config.state_dir)
    ensure_private_dir(state, 0o711)
    _remove_stale_runs(state, limits)
    pool = SlotPool(
        Path(config.lock_dir),
        config.max_concurrent,
        first=config.uid_base if as_root else 0,
        always=config.cpu_slots,
        admit_extra=_room_for_more(config, as_root),
    )
    return status, as_root, state, pool


def _room_for_more(config: RunnerConfig, as_root: bool) -> Callable[[], bool]:
    """Whether a run may take a slot beyond one per CPU: while the sandboxed programs (as root:
    the processes of the slots' uids; else the whole machine) leave ``min_idle`` of the CPUs."""
    meter = (
        runs_meter(range(config.uid_base, config.uid_base + 2 * config.max_concurrent))
        if as_root
        else machine_meter()
    )

    def room() -> bool:
        busy = meter.busy_fraction()
        return busy is not None and busy <= 1 - config.min_idle

    return room


def _wait(config: RunnerConfig, queue_timeout: float | None) -> float:
    return config.queue_timeout_seconds if queue_timeout is None else queue_timeout


def queue_position(tag: str, config: RunnerConfig | None = None) -> int | None:
    """Runs ahead of ``tag``'s waiting run on this machine (0: next), None if none waits."""
    config = config or RunnerConfig.from_env()
    return slots.queue_position(Path(config.lock_dir), tag)


def _log_refusal(pool: SlotPool, config: RunnerConfig) -> None:
    logger.warning(
        "code run refused: all %d run slots stayed busy for %g s",
        pool.size,
        config.queue_timeout_seconds,
    )


def _run_in_slot(
    run: _Run,
    *,
    config: RunnerConfig,
    kind: SandboxKind,
    limits: Limits,
    uid: int | None,
    state: Path,
) -> ProcessOutcome:
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=state))
    try:
        work = run_dir / "work"
        work.mkdir(mode=0o700)
        _write_files(work, run.files)
        if kind == "bwrap":
            return run_bwrap(
                config=config,
                limits=limits,
                uid=uid,
                files_dir=work,
                paths=run.paths,
                entry=run.entry,
                argv=run.argv,
                stdin=run.stdin,
                channel_fds=run.channel_fds,
                on_started=run.on_started,
                cancel_fd=run.cancel_fd,
            )
        return run_fallback(
            config=config,
            limits=limits,
            uid=uid,
            run_dir=run_dir,
            entry=run.entry,
            argv=run.argv,
            stdin=run.stdin,
            channel_fds=run.channel_fds,
            on_started=run.on_started,
            cancel_fd=run.cancel_fd,
        )
    finally:
        _remove_tree(run_dir)


@dataclass(frozen=True)
class PairResult:
    program: RunResult
    """The participant's program (the agent), whose output nobody trusts."""
    checker: RunResult
    """The trusted checker; its stdout is the verdict."""


class _Pipes:
    """The two pipes between the program and the checker, and the pipe that cancels the
    program; each end is closed once, by whichever comes first (the process having started
    with its copy, or the end of the pair)."""

    def __init__(self) -> None:
        self.to_checker_r, self.to_checker_w = os.pipe()
        self.to_program_r, self.to_program_w = os.pipe()
        self.cancel_r, self.cancel_w = os.pipe()
        self._open = {self.to_checker_r, self.to_checker_w, self.to_program_r, self.to_program_w}

    def closer(self, *fds: int) -> Callable[[], None]:
        def close() -> None:
            for fd in fds:
                if fd in self._open:
                    self._open.discard(fd)
                    os.close(fd)

        return close

    def close_all(self) -> None:
        os.close(self.cancel_w)
        os.close(self.cancel_r)
        self.closer(*list(self._open))()


def _start_program(
    pipes: _Pipes,
    run: Callable[[_Run], ProcessOutcome],
    files: Mapping[str, str],
    paths: list[PurePosixPath],
    entry: str,
) -> tuple[threading.Thread, dict[str, ProcessOutcome | BaseException]]:
    """Run the participant's program in a thread; its outcome or error lands in the box."""
    box: dict[str, ProcessOutcome | BaseException] = {}
    close_ends = pipes.closer(pipes.to_program_r, pipes.to_checker_w)

    def target() -> None:
        try:
            box["outcome"] = run(
                _Run(
                    files=files,
                    paths=paths,
                    entry=entry,
                    argv=[str(pipes.to_program_r), str(pipes.to_checker_w)],
                    stdin="",
                    channel_fds=(pipes.to_program_r, pipes.to_checker_w),
                    on_started=close_ends,
                    cancel_fd=pipes.cancel_r,
                )
            )
        except BaseException as exc:
            box["error"] = exc
            close_ends()

    thread = threading.Thread(target=target, name="skilltrial-program", daemon=True)
    thread.start()
    return thread, box


def run_pair(
    *,
    program_files: Mapping[str, str],
    program_entry: str,
    checker_files: Mapping[str, str],
    checker_entry: str,
    checker_stdin: str,
    limits: Limits | None = None,
    checker_limits: Limits | None = None,
    config: RunnerConfig | None = None,
    tag: str = "",
    queue_timeout: float | None = None,
) -> PairResult:
    """Run two programs at once in two separate sandboxes joined only by two pipes: the
    participant's program gets ``argv = [read_fd, write_fd]`` of its ends, and so does the
    checker. Both take one run slot together; as root the checker runs as a uid of its own
    (``uid_base + max_concurrent + slot``), so the program cannot signal, trace or read it even
    in the fallback. The program is stopped as soon as the checker ends."""
    limits = limits or Limits()
    checker_limits = checker_limits or limits
    config = config or RunnerConfig.from_env()
    program_paths = _check_input(program_files, program_entry, ())
    checker_paths = _check_input(checker_files, checker_entry, ())
    status, as_root, state, pool = _machine(config, limits)
    try:
        with pool.acquire(timeout=_wait(config, queue_timeout), tag=tag) as slot:
            pipes = _Pipes()

            def run_program(run: _Run) -> ProcessOutcome:
                uid = slot.number if as_root else None
                return _run_in_slot(
                    run, config=config, kind=status.kind, limits=limits, uid=uid, state=state
                )

            thread: threading.Thread | None = None
            try:
                thread, program_box = _start_program(
                    pipes, run_program, program_files, program_paths, program_entry
                )
                checker = _run_in_slot(
                    _Run(
                        files=checker_files,
                        paths=checker_paths,
                        entry=checker_entry,
                        argv=[str(pipes.to_checker_r), str(pipes.to_program_w)],
                        stdin=checker_stdin,
                        channel_fds=(pipes.to_checker_r, pipes.to_program_w),
                        on_started=pipes.closer(pipes.to_checker_r, pipes.to_program_w),
                    ),
                    config=config,
                    kind=status.kind,
                    limits=checker_limits,
                    uid=slot.number + config.max_concurrent if as_root else None,
                    state=state,
                )
            finally:
                os.write(pipes.cancel_w, b"x")
                if thread is not None:
                    thread.join()
                pipes.close_all()
    except QueueTimeout:
        _log_refusal(pool, config)
        refused = dataclasses.replace(_REFUSED, sandbox=status.kind)
        return PairResult(program=refused, checker=refused)
    if "error" in program_box:
        raise program_box["error"]  # type: ignore[misc]
    program = program_box["outcome"]
    assert isinstance(program, ProcessOutcome)
    return PairResult(
        program=_result(program, kind=status.kind, limits=limits),
        checker=_result(checker, kind=status.kind, limits=checker_limits),
    )


_REFUSED = RunResult(
    stdout="",
    stderr="",
    exit_code=None,
    duration_seconds=0.0,
    cpu_seconds=None,
    timed_out=False,
    stdout_truncated=False,
    stderr_truncated=False,
    killed_by_signal=None,
    reason="queue_timeout",
    sandbox="bwrap",
)
