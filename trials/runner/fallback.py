"""The weak sandbox, for machines without bubblewrap.

What it does: the program runs in a new session, with the same rlimits as on the bwrap path
(``prlimit``), an environment made from scratch, a private working directory and ``TMPDIR``,
and the same allowed packages on ``PYTHONPATH``. When the server is root it runs as the run
slot's own uid with no supplementary groups, so ``RLIMIT_NPROC`` holds, other runs' directories
(mode 0700, other uids) are closed to it, and afterwards every process of that uid is killed,
even one that left the session.

What it does NOT protect:

- the network: the program can connect wherever the machine can, the database port included;
- files readable by "others": the project's source is usually world-readable, and so is an
  SQLite database created with the default umask; only files like ``var/secret_key`` kept at
  mode 0600 (or under a 0700 directory) stay out of reach;
- the interpreter's own site-packages (importable), the process list, and kernel interfaces;
- total disk use: only each file's size is capped, not how many files are written;
- everything, when the server is not root: the uid cannot change, so the program runs as the
  server's user and can read and write whatever the server can, the database and the secret
  key included, and leftover processes outside its session cannot be found. Development only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from trials.runner.config import SYSTEM_PATH, RunnerConfig, SandboxUnavailable
from trials.runner.interpreter import interpreter, others_can_read, program_environment
from trials.runner.limits import Limits, prlimit_args, rlimit_preexec
from trials.runner.packages import package_paths
from trials.runner.process import ProcessOutcome, killpg, run_captured

__all__ = ["kill_all_of_uid", "python_for", "readable_copy", "run_fallback", "tasks_of_uid"]

logger = logging.getLogger("skilltrial.runner")


def python_for(config: RunnerConfig, uid: int | None) -> str:
    """An interpreter the slot uid can execute: the configured one, or else the system's one
    of the same version (a pyenv build under /root is out of an unprivileged uid's reach)."""
    if uid is None or others_can_read(config.python):
        return config.python
    major, minor = interpreter(config.python).version
    for directory in ("/usr/bin", "/usr/local/bin"):
        candidate = os.path.join(directory, f"python{major}.{minor}")
        if os.path.exists(candidate) and others_can_read(candidate):
            return os.path.realpath(candidate)
    raise SandboxUnavailable(
        f"the fallback sandbox runs code as an unprivileged uid, which cannot execute "
        f"{config.python}, and there is no world-readable python{major}.{minor}; install "
        f"bubblewrap"
    )


def readable_copy(path: Path, state: Path) -> Path:
    """``path`` if the slot uid can read it, else a world-readable copy of it under the
    runner's state directory, made once. A virtualenv inside a checkout that other users
    cannot enter (a clone under ``mktemp -d`` or ``/root``) is out of the unprivileged uid's
    reach; the copy holds only the allowed package, never the rest of the environment."""
    if others_can_read(path):
        return path
    stat = path.stat()
    key = hashlib.sha256(f"{path}\0{stat.st_mtime_ns}\0{stat.st_size}".encode()).hexdigest()
    root = state / "packages"
    target = root / key[:24] / path.name
    if target.exists():
        return target
    root.mkdir(mode=0o711, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="stage-", dir=root))
    try:
        copied = staging / path.name
        if path.is_dir():
            shutil.copytree(path, copied, symlinks=False, ignore=shutil.ignore_patterns("*.pyc"))
        else:
            shutil.copy2(path, copied)
        # World-readable on purpose: the slot uid must read it, and it holds only public code.
        for folder, _dirs, files in os.walk(staging):
            os.chmod(folder, 0o755)  # noqa: S103
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
        os.makedirs(target.parent.parent, exist_ok=True)
        try:
            os.rename(staging, target.parent)  # atomic: a racing copy loses, harmlessly
        except OSError:
            if not target.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not others_can_read(target):
        raise SandboxUnavailable(
            f"the fallback sandbox's unprivileged uid cannot read the allowed package {path} "
            f"nor its copy under {root}; install bubblewrap"
        )
    return target


def kill_all_of_uid(uid: int, python: str) -> None:
    """Kill every process of ``uid``, also those that left the run's session: a process running
    as that uid sends SIGKILL to -1, which reaches exactly the processes of its own uid (never
    itself). Only for a slot uid held by the current run. ``python`` must be executable by
    that uid; it is used only where procps' ``kill`` is missing."""
    kill = shutil.which("kill", path=SYSTEM_PATH)
    # procps' kill reads "-KILL -1" as: signal KILL to pid -1 (it refuses "--" before -1).
    python_kill = [python, "-S", "-c", "import os; os.kill(-1, 9)"]
    command = [kill, "-KILL", "-1"] if kill else python_kill
    subprocess.run(
        command,
        user=uid,
        group=uid,
        extra_groups=[],
        env={"PATH": SYSTEM_PATH},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,  # it "fails" when there was nothing to kill
        timeout=60,
        cwd="/",
    )


def _ensure_none_left(uid: int, python: str) -> None:
    """The next run in this slot gets the same uid: check that nothing of this one is left."""
    deadline = time.monotonic() + 2
    while tasks_of_uid(uid):
        if time.monotonic() > deadline:
            logger.error("processes of sandbox uid %d survived the end of their run", uid)
            return
        time.sleep(0.01)
        kill_all_of_uid(uid, python)


def tasks_of_uid(uid: int) -> int:
    """Processes and threads now running as ``uid``."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += len(os.listdir(f"/proc/{entry.name}/task"))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return count


def _give_to(directory: Path, uid: int) -> None:
    for root, dirs, names in os.walk(directory):
        for name in [*dirs, *names]:
            os.chown(os.path.join(root, name), uid, uid)
    os.chown(directory, uid, uid)
    directory.chmod(0o700)


def run_fallback(
    *,
    config: RunnerConfig,
    limits: Limits,
    uid: int | None,
    run_dir: Path,
    entry: str,
    argv: Sequence[str],
    stdin: str,
    channel_fds: Sequence[int] = (),
    on_started: Callable[[], None] | None = None,
    cancel_fd: int | None = None,
) -> ProcessOutcome:
    """Run in ``run_dir / "work"``, where the files already are; ``channel_fds`` stay open in
    the program under the same numbers."""
    python = python_for(config, uid)
    packages = package_paths(config.packages)
    if uid is not None:
        packages = tuple(readable_copy(path, Path(config.state_dir)) for path in packages)
    work, tmp, site = run_dir / "work", run_dir / "tmp", run_dir / "site"
    tmp.mkdir(mode=0o700)
    site.mkdir(mode=0o755)
    for path in packages:
        (site / path.name).symlink_to(path)
    if uid is not None:
        run_dir.chmod(0o711)  # the slot uid may pass through, not list
        _give_to(work, uid)
        _give_to(tmp, uid)
        nproc = limits.max_processes
    else:
        # RLIMIT_NPROC counts every task of the server's user: allow what exists now plus the
        # run's share. Approximate, but it still stops a fork bomb.
        nproc = tasks_of_uid(os.geteuid()) + limits.max_processes
    command = [python, "-s", entry, *argv]
    prlimit = shutil.which("prlimit", path=SYSTEM_PATH)
    preexec = None
    if prlimit:
        command = [prlimit, *prlimit_args(limits, nproc=nproc), "--", *command]
    else:  # pragma: no cover - util-linux is essential on Debian
        preexec = rlimit_preexec(limits, nproc=nproc)

    def kill(pid: int, reaped: bool) -> None:
        if uid is not None:
            if not reaped:
                killpg(pid)
            kill_all_of_uid(uid, python)
        else:
            # Even once the leader is reaped its group id stays reserved while any member is
            # alive, so this reaches what the program left in its session. (With no member
            # left, a new group leader could in theory have taken the id in between: a risk
            # accepted for the non-root fallback, which is for development only.)
            killpg(pid)

    if uid is not None:
        kill_all_of_uid(uid, python)  # leftovers of a server that died in the middle of a run
    try:
        return run_captured(
            command,
            env=program_environment(home=str(work), tmp=str(tmp), site=str(site)),
            cwd=str(work),
            stdin=stdin.encode(),
            max_output_bytes=limits.max_output_bytes,
            wall_seconds=limits.wall_seconds,
            kill=kill,
            user=uid,
            preexec_fn=preexec,
            pass_fds=channel_fds,
            on_started=on_started,
            cancel_fd=cancel_fd,
        )
    finally:
        if uid is not None:
            _ensure_none_left(uid, python)
