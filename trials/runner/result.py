"""What one run produced, in terms the participant pages and the event log can use."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Literal

__all__ = ["Reason", "RunResult", "SandboxKind"]

SandboxKind = Literal["bwrap", "fallback"]

Reason = Literal[
    "exited",  # the program ended by itself (exit_code says how)
    "wall_time_limit",  # killed by the server after Limits.wall_seconds
    "cpu_time_limit",  # killed by the kernel after Limits.cpu_seconds of CPU time
    "memory_limit",  # ended with a MemoryError (the address-space limit)
    "signal",  # killed by some other signal
    "queue_timeout",  # never started: every run slot stayed busy for the whole queue wait
]

_MESSAGES: dict[str, str] = {
    "exited": "",
    "wall_time_limit": "The program ran for too long and was stopped.",
    "cpu_time_limit": "The program used too much CPU time and was stopped.",
    "memory_limit": "The program tried to use too much memory.",
    "signal": "The program was stopped by the system.",
    "queue_timeout": "The server is busy; the program was not run. Please try again.",
}


@dataclass(frozen=True)
class RunResult:
    stdout: str
    stderr: str
    exit_code: int | None
    """The program's exit status; None when it was killed by a signal or never started."""
    duration_seconds: float
    """Wall time from starting the sandbox until it was gone (sandbox start-up included)."""
    cpu_seconds: float | None
    """User plus system CPU time of the run's processes, where it can be measured (the
    fallback); None on the bwrap path, whose init process does not pass it on."""
    timed_out: bool
    """Stopped by the wall-time or the CPU-time limit."""
    stdout_truncated: bool
    stderr_truncated: bool
    killed_by_signal: int | None
    reason: Reason
    sandbox: SandboxKind

    @property
    def ok(self) -> bool:
        return self.reason == "exited" and self.exit_code == 0

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated

    @property
    def message(self) -> str:
        """A short sentence for the participant when the run did not simply end by itself."""
        text = _MESSAGES[self.reason]
        if self.reason == "signal" and self.killed_by_signal is not None:
            try:
                name = signal.Signals(self.killed_by_signal).name
            except ValueError:
                name = str(self.killed_by_signal)
            text = f"The program was stopped by the system ({name})."
        return text
