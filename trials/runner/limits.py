"""Resource limits of one sandboxed run, and how they become kernel rlimits.

Every limit here is per run. The kernel enforces most of them per *process* (``RLIMIT_AS``,
``RLIMIT_CPU``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``); ``RLIMIT_NPROC`` counts the tasks (processes
*and* threads) of one real user id, which is why the sandbox gives every concurrency slot its own
unprivileged uid (see ``sandbox.py``): then "tasks of this uid" is exactly "tasks of this run".
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Limits", "prlimit_args", "rlimit_preexec"]

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class Limits:
    """What one run may use. The defaults suit a short exercise program written by a learner."""

    cpu_seconds: int = 10
    """CPU time of each process (SIGXCPU at the limit, SIGKILL one second later)."""
    wall_seconds: float = 15.0
    """Real time from start to end, enforced by the server, which kills the whole sandbox."""
    memory_bytes: int = 512 * MiB
    """Address space of each process (``RLIMIT_AS``): a large allocation raises MemoryError."""
    max_processes: int = 64
    """Tasks (processes and threads, the interpreter included) that may exist at once."""
    max_file_bytes: int = 16 * MiB
    """Largest file a process may write (``RLIMIT_FSIZE``): bigger writes fail with EFBIG."""
    max_output_bytes: int = 64 * KiB
    """Bytes of stdout, and separately of stderr, kept; the rest is read and dropped."""
    max_open_files: int = 256
    """File descriptors per process (``RLIMIT_NOFILE``)."""
    workspace_bytes: int = 64 * MiB
    """Size of the writable working directory and, separately, of ``/tmp`` (bwrap path only:
    both are size-capped tmpfs mounts; the fallback writes to the host disk, capped per file)."""

    def __post_init__(self) -> None:
        for name in (
            "cpu_seconds",
            "wall_seconds",
            "memory_bytes",
            "max_processes",
            "max_file_bytes",
            "max_output_bytes",
            "max_open_files",
            "workspace_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")
        if self.max_open_files < 16:
            raise ValueError("Limits.max_open_files below 16 leaves the interpreter unable to run")


def _rlimits(limits: Limits, nproc: int | None) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) triples. The CPU hard limit is one second above the soft one so
    that a program ignoring SIGXCPU is still killed."""
    values = [
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (resource.RLIMIT_FSIZE, limits.max_file_bytes, limits.max_file_bytes),
        (resource.RLIMIT_NOFILE, limits.max_open_files, limits.max_open_files),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if nproc is not None:
        values.append((resource.RLIMIT_NPROC, nproc, nproc))
    return values


_PRLIMIT_NAMES = {
    resource.RLIMIT_CPU: "cpu",
    resource.RLIMIT_AS: "as",
    resource.RLIMIT_FSIZE: "fsize",
    resource.RLIMIT_NOFILE: "nofile",
    resource.RLIMIT_CORE: "core",
    resource.RLIMIT_NPROC: "nproc",
}


def prlimit_args(limits: Limits, *, nproc: int | None) -> list[str]:
    """Options for util-linux ``prlimit``, which sets the limits on itself and then execs the
    interpreter. Used instead of a ``preexec_fn`` because running Python code between fork and
    exec is unsafe in a threaded server (a lock held by another thread at fork time, such as
    malloc's, never gets released in the child)."""
    return [f"--{_PRLIMIT_NAMES[res]}={soft}:{hard}" for res, soft, hard in _rlimits(limits, nproc)]


def rlimit_preexec(limits: Limits, *, nproc: int | None) -> Callable[[], None]:
    """A ``preexec_fn`` setting the same limits, for machines without ``prlimit``."""
    values = _rlimits(limits, nproc)

    def apply() -> None:
        for res, soft, hard in values:
            resource.setrlimit(res, (soft, hard))

    return apply
