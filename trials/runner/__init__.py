"""The code runner: participant programs in a sandbox with limits. Pure Python without Django;
the settings decide the ``RunnerConfig`` and the views call ``run_python``."""

from trials.runner.config import (
    ENV_SANDBOX,
    InvalidRun,
    RunnerConfig,
    SandboxMode,
    SandboxUnavailable,
)
from trials.runner.limits import Limits
from trials.runner.packages import PackageNotInstalled
from trials.runner.result import Reason, RunResult, SandboxKind
from trials.runner.sandbox import (
    PairResult,
    SandboxStatus,
    queue_position,
    run_pair,
    run_python,
    sandbox_kind,
    sandbox_status,
)

__all__ = [
    "ENV_SANDBOX",
    "InvalidRun",
    "Limits",
    "PackageNotInstalled",
    "PairResult",
    "Reason",
    "RunResult",
    "RunnerConfig",
    "SandboxKind",
    "SandboxMode",
    "SandboxStatus",
    "SandboxUnavailable",
    "queue_position",
    "run_pair",
    "run_python",
    "sandbox_kind",
    "sandbox_status",
]
