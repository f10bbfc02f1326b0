"""Machine-level settings of the runner and its errors (per-run settings are ``Limits``)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ENV_SANDBOX",
    "SYSTEM_PATH",
    "InvalidRun",
    "RunnerConfig",
    "SandboxMode",
    "SandboxUnavailable",
]

ENV_SANDBOX = "SKILLTRIAL_SANDBOX"
SandboxMode = Literal["auto", "bwrap", "fallback"]
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
"""Where the runner finds its helpers (bwrap, setpriv, prlimit, kill) and what the program's
PATH is: never the server's PATH, which may point into the project."""


class SandboxUnavailable(RuntimeError):
    """The configured sandbox cannot work here; the runner never runs code unsandboxed."""


class InvalidRun(ValueError):
    """The files, entry point or arguments of a run are not acceptable."""


def _default_python() -> str:
    # The real interpreter behind the virtualenv: the sandbox adds the allowed packages itself
    # rather than exposing the virtualenv's whole site-packages.
    return os.path.realpath(sys.executable)


def _default_state_dir() -> str:
    return os.path.join(tempfile.gettempdir(), f"skilltrial-runner-{os.geteuid()}")


def _default_lock_dir() -> str:
    return os.path.join(_default_state_dir(), "slots")


def _cpus() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _default_concurrency() -> int:
    return 4 * _cpus()


def _find_bwrap() -> str | None:
    return shutil.which("bwrap", path=SYSTEM_PATH)


@dataclass(frozen=True)
class RunnerConfig:
    mode: SandboxMode = "auto"
    """``auto``: bwrap if usable, else the fallback with a loud warning; ``bwrap``: refuse to
    run without it; ``fallback``: always the fallback (tests, development)."""
    python: str = field(default_factory=_default_python)
    packages: tuple[str, ...] = ("trio",)
    """Distributions participant code may import (their dependencies come along)."""
    max_concurrent: int = field(default_factory=_default_concurrency)
    """Runs at once on this machine, across all server processes (default: 4 per usable CPU;
    ``RUNNER_SLOTS``)."""
    cpu_slots: int = field(default_factory=_cpus)
    """Runs that may start whatever the load (default: one per usable CPU). The slots beyond
    these are taken only while the running programs leave ``min_idle`` of the CPUs to the
    rest (trials/runner/cpu.py), so the cap follows CPU actually used: Checks that mostly
    sleep run side by side, programs that compute do not oversubscribe the CPUs."""
    min_idle: float = 0.25
    """Share of all CPUs (0 .. 1) the running programs must leave before a run beyond
    ``cpu_slots`` starts (``RUNNER_MIN_IDLE``)."""
    queue_timeout_seconds: float = 30.0
    """How long a run waits for a free slot before it is refused."""
    state_dir: str = field(default_factory=_default_state_dir)
    """Where run directories are made; created private to the server."""
    lock_dir: str = field(default_factory=_default_lock_dir)
    """The slot lock files. Every server process on the machine must use the same one: a
    slot's lock is named after its uid, so two pools can never hand out one uid twice."""
    uid_base: int = 64000
    """When the server is root, slot ``i`` runs as uid and gid ``uid_base + i``, and the
    checker of a Check in that slot as ``uid_base + max_concurrent + i``. The range
    ``[uid_base, uid_base + 2 * max_concurrent)`` must belong to no user and own no file."""
    bwrap: str | None = field(default_factory=_find_bwrap)

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "bwrap", "fallback"):
            raise ValueError(f"unknown sandbox mode {self.mode!r} (auto, bwrap or fallback)")
        if self.max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if self.cpu_slots < 1:
            raise ValueError("cpu_slots must be at least 1")
        if not 0 <= self.min_idle <= 1:
            raise ValueError("min_idle must be between 0 and 1")
        if self.queue_timeout_seconds < 0:
            raise ValueError("queue_timeout_seconds cannot be negative")
        if not 1000 <= self.uid_base <= 2**31 - 2 * self.max_concurrent:
            raise ValueError(f"uid_base {self.uid_base} is outside the usable uid range")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RunnerConfig:
        """The defaults, with the mode taken from ``SKILLTRIAL_SANDBOX``, the slot count from
        ``RUNNER_SLOTS``, the idle share for extra slots from ``RUNNER_MIN_IDLE`` and the
        state directory (run directories and slot locks) from ``RUNNER_STATE_DIR``."""
        environ = os.environ if environ is None else environ
        raw = environ.get(ENV_SANDBOX, "").strip().lower() or "auto"
        if raw not in ("auto", "bwrap", "fallback"):
            raise ValueError(f"{ENV_SANDBOX}={raw!r}: use auto, bwrap or fallback")
        sizes: dict[str, int | float] = {}
        for name, attribute, kind in (
            ("RUNNER_SLOTS", "max_concurrent", int),
            ("RUNNER_MIN_IDLE", "min_idle", float),
        ):
            if value := environ.get(name, "").strip():
                try:
                    sizes[attribute] = kind(value)
                except ValueError:
                    raise ValueError(f"{name}={value!r} is not a number") from None
        places: dict[str, str] = {}
        if state := environ.get("RUNNER_STATE_DIR", "").strip():
            places = {"state_dir": state, "lock_dir": os.path.join(state, "slots")}
        return cls(mode=raw, **places, **sizes)  # type: ignore[arg-type]
