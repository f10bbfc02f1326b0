"""The strong sandbox: bubblewrap.

Each run gets fresh pid, network, IPC, UTS, mount and cgroup namespaces (and, when the server is
not root, a user namespace). Its filesystem is an empty read-only root holding only:

- ``/usr``, the ``/bin`` and ``/lib*`` links, ``/etc/ld.so.cache``;
- the interpreter's installation, read-only, with its own site-packages hidden under an empty
  read-only mount;
- the trial's allowed packages, read-only, under ``/opt/skilltrial/site`` (``PYTHONPATH``);
- a fresh ``/proc`` (showing only the run's processes) and a minimal ``/dev``;
- two size-capped tmpfs mounts: ``/tmp`` and the working directory ``/sandbox``, into which
  bwrap copies the run's files. Both vanish with the mount namespace.

Nothing of the project, the database, the server's environment or another run is mounted, and
there is no network interface but an unconfigured loopback.

When the server is root, bwrap runs without a user namespace (one made by root would map the
program to uid 0, where ``RLIMIT_NPROC`` does nothing) and ``setpriv`` switches the program to
the run slot's own uid with no supplementary groups, no capabilities (bounding and inheritable
sets emptied) and ``no_new_privs`` (set by bwrap), so nothing can raise it back. ``prlimit``
then sets the rlimits and execs the interpreter. When the server is not root, bwrap's user
namespace keeps the program unprivileged, and ``RLIMIT_NPROC`` set inside that namespace counts
only the run's own tasks.

Stopping: bwrap is the leader of its own process group; killing it makes its init process in
the pid namespace die (``--die-with-parent``), and the kernel then kills everything inside.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from trials.runner.config import SYSTEM_PATH, RunnerConfig
from trials.runner.interpreter import interpreter, program_environment
from trials.runner.limits import Limits, prlimit_args
from trials.runner.packages import package_paths
from trials.runner.process import ProcessOutcome, killpg, run_captured
from trials.runner.seccomp import UnsupportedArchitecture, no_user_namespaces_filter

__all__ = ["WORKDIR", "bwrap_problem", "run_bwrap"]

logger = logging.getLogger("skilltrial.runner")

WORKDIR = "/sandbox"
SITE_DIR = "/opt/skilltrial/site"
SANDBOX_TMP = "/tmp"  # noqa: S108 - a private tmpfs inside the sandbox, not the host's /tmp


def _system_binds() -> list[str]:
    """``/usr``, and the top-level ``/bin``, ``/lib*`` entries mirrored (symlinks on a merged-
    /usr system, directories elsewhere)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--perms", "0755", "--dir", "/etc"]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def _namespace_args(as_root: bool) -> list[str]:
    if as_root:
        return [
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
            # Only for setpriv, which drops them all before the interpreter starts.
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
            "--cap-add",
            "CAP_SETPCAP",
        ]
    return ["--unshare-all", "--unshare-user", "--disable-userns"]


@functools.lru_cache(maxsize=8)
def bwrap_problem(bwrap: str, as_root: bool) -> str | None:
    """Try a trivial sandbox made the way runs are made: None if it works, else what failed
    (for example unprivileged user namespaces disabled by the kernel or by AppArmor)."""
    true = shutil.which("true", path=SYSTEM_PATH) or "/bin/true"
    argv = [bwrap, *_namespace_args(as_root), "--die-with-parent", *_system_binds()]
    argv += ["--proc", "/proc", "--dev", "/dev", "--", true]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False, env={})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} could not be started: {exc}"
    if done.returncode != 0:
        return done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
    return None


class _Tree:
    """bwrap arguments building the sandbox's directory tree. Missing parents are created
    explicitly with the given mode; bwrap would otherwise make them 0700 when run as root,
    and the program, running as another uid, could not get through them."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.dirs: set[str] = {"/"}

    def parents(self, dest: str, mode: str = "0755") -> None:
        for parent in reversed(PurePosixPath(dest).parents):
            if str(parent) not in self.dirs:
                self.dirs.add(str(parent))
                self.args += ["--perms", mode, "--dir", str(parent)]

    def add(self, *args: str, dest: str) -> None:
        self.parents(dest)
        self.args += args
        self.dirs.add(dest)


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def bwrap_argv(
    *,
    config: RunnerConfig,
    limits: Limits,
    uid: int | None,
    file_fds: Sequence[tuple[int, PurePosixPath]],
    entry: str,
    argv: Sequence[str],
    seccomp_fd: int | None = None,
) -> list[str]:
    """The full command line; ``file_fds`` are open descriptors of the run's files, which bwrap
    copies into the working directory and closes; ``seccomp_fd`` holds the filter of
    ``seccomp.py`` (as root, where there is no user namespace to disable them in)."""
    assert config.bwrap is not None
    python = interpreter(config.python)
    tree = _Tree()
    tree.args += _system_binds()
    tree.dirs.update(["/usr", "/etc"])
    bound = ["/usr"]
    for prefix in python.prefixes:
        if not _under(prefix, bound):
            tree.add("--ro-bind", prefix, prefix, dest=prefix)
            bound.append(prefix)
    for site in python.site_packages:
        if os.path.isdir(site) and _under(site, bound):
            tree.args += ["--tmpfs", site, "--remount-ro", site]
    for path in package_paths(config.packages):
        dest = f"{SITE_DIR}/{path.name}"
        tree.add("--ro-bind", str(path), dest, dest=dest)
    tree.args += ["--proc", "/proc", "--dev", "/dev"]
    size = str(limits.workspace_bytes)
    tree.args += ["--size", size, "--perms", "1777", "--tmpfs", SANDBOX_TMP]
    tree.add("--size", size, "--perms", "0777", "--tmpfs", WORKDIR, dest=WORKDIR)
    for fd, relative in file_fds:
        dest = f"{WORKDIR}/{relative}"
        # Files and directories made by a root bwrap belong to root: open them to the program.
        tree.parents(dest, mode="0777")
        tree.args += ["--perms", "0666", "--file", str(fd), dest]

    command = [config.bwrap, *_namespace_args(uid is not None)]
    command += ["--die-with-parent", "--new-session", "--hostname", "sandbox", "--clearenv"]
    if seccomp_fd is not None:
        command += ["--seccomp", str(seccomp_fd)]
    for key, value in program_environment(home=WORKDIR, tmp=SANDBOX_TMP, site=SITE_DIR).items():
        command += ["--setenv", key, value]
    command += [*tree.args, "--chdir", WORKDIR, "--"]
    if uid is not None:
        setpriv = shutil.which("setpriv", path=SYSTEM_PATH) or "/usr/bin/setpriv"
        command += [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        command += ["--inh-caps=-all", "--bounding-set=-all", "--"]
    prlimit = shutil.which("prlimit", path=SYSTEM_PATH) or "/usr/bin/prlimit"
    command += [prlimit, *prlimit_args(limits, nproc=limits.max_processes), "--"]
    command += [python.executable, "-s", entry, *argv]
    return command


def _seccomp_fd() -> int | None:
    try:
        program = no_user_namespaces_filter()
    except UnsupportedArchitecture as exc:
        logger.warning("sandboxed code may create user namespaces: %s", exc)
        return None
    fd = os.memfd_create("seccomp", os.MFD_CLOEXEC)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def run_bwrap(
    *,
    config: RunnerConfig,
    limits: Limits,
    uid: int | None,
    files_dir: Path,
    paths: Sequence[PurePosixPath],
    entry: str,
    argv: Sequence[str],
    stdin: str,
    channel_fds: Sequence[int] = (),
    on_started: Callable[[], None] | None = None,
    cancel_fd: int | None = None,
) -> ProcessOutcome:
    """``channel_fds`` stay open in the program under the same numbers."""
    fds: list[tuple[int, PurePosixPath]] = []
    seccomp_fd = None
    try:
        for relative in paths:
            fds.append((os.open(files_dir / relative, os.O_RDONLY | os.O_CLOEXEC), relative))
        if uid is not None:
            # As root there is no user namespace whose nesting bwrap could disable: a seccomp
            # filter refuses new user namespaces instead.
            seccomp_fd = _seccomp_fd()
        command = bwrap_argv(
            config=config,
            limits=limits,
            uid=uid,
            file_fds=fds,
            entry=entry,
            argv=argv,
            seccomp_fd=seccomp_fd,
        )

        def kill(pid: int, reaped: bool) -> None:
            if not reaped:
                killpg(pid)

        return run_captured(
            command,
            env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
            cwd="/",
            stdin=stdin.encode(),
            max_output_bytes=limits.max_output_bytes,
            wall_seconds=limits.wall_seconds,
            kill=kill,
            pass_fds=[
                *(fd for fd, _ in fds),
                *channel_fds,
                *([seccomp_fd] if seccomp_fd is not None else []),
            ],
            on_started=on_started,
            cancel_fd=cancel_fd,
        )
    finally:
        if seccomp_fd is not None:
            os.close(seccomp_fd)
        for fd, _ in fds:
            os.close(fd)
