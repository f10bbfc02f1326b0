"""What the runs queue is asked, and what it answers: requests as JSON objects, answers as the
fields of the runner's own results. Pure (no Django), so that the protocol checks, which run
without Django too, can send their sandbox work where participants' code runs.

Where a request goes is set once per process: ``TrialsConfig.ready()`` sends staff requests
to the runs queue (``trials.sandboxing.sandbox_call``); with nothing set they run here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from trials import runner
from trials.judge import CheckVerdict, judge_code
from trials.tasks import ENTRY_FILE

__all__ = [
    "Ran",
    "check_request",
    "dispatch",
    "execute_staff",
    "judge_request",
    "limits_from",
    "on_the_runs_queue",
    "program_request",
    "result_from",
    "run_request",
    "send_requests_with",
    "verdict_from",
    "wait_from",
]

Sender = Callable[[dict[str, Any]], dict[str, Any]]
_sender: Sender | None = None


@dataclass(frozen=True)
class Ran:
    """What the sandbox gave back for a participant's Run or Check, in the fields a CodeRun
    stores."""

    tests: list[dict[str, Any]]
    status: str
    stdout: str
    stderr: str
    exit_code: int | None
    duration: float
    truncated: bool
    sandbox: str
    message: str
    all_passed: bool


def check_request(*, protocol_hash: str, task: str, code: str, tag: str) -> dict[str, Any]:
    """A participant's Check: the task's hidden tests against ``code`` (it waits its turn)."""
    return {"op": "check", "trial": protocol_hash, "task": task, "code": code, "tag": tag}


def run_request(*, code: str, tag: str) -> dict[str, Any]:
    """A participant's Run of their program."""
    return {"op": "run", "code": code, "tag": tag}


def _limit_list(limits: runner.Limits) -> list[float]:
    return [limits.cpu_seconds, limits.wall_seconds, limits.memory_bytes]


def limits_from(raw: list[float]) -> runner.Limits:
    cpu, wall, memory = raw
    return runner.Limits(cpu_seconds=int(cpu), wall_seconds=float(wall), memory_bytes=int(memory))


def wait_from(raw: float | None) -> float:
    """A request's wait for a run slot: none given, as long as it takes."""
    return math.inf if raw is None else raw


def judge_request(
    *,
    tests: str,
    code: str,
    show: str = "messages",
    tag: str = "",
    limits: runner.Limits,
    queue_timeout: float | None = None,
) -> dict[str, Any]:
    """Staff work: ``tests`` against ``code``; the answer is a CheckVerdict's fields
    (``verdict_from``). Without ``queue_timeout`` it waits for a run slot as long as it takes."""
    return {
        "op": "judge",
        "tests": tests,
        "code": code,
        "show": show,
        "tag": tag,
        "limits": _limit_list(limits),
        "queue_timeout": queue_timeout,
    }


def program_request(
    *, code: str, limits: runner.Limits, queue_timeout: float | None = None
) -> dict[str, Any]:
    """Staff work: run ``code`` as a program; the answer is a RunResult's fields
    (``result_from``)."""
    return {
        "op": "program",
        "code": code,
        "limits": _limit_list(limits),
        "queue_timeout": queue_timeout,
    }


def execute_staff(request: dict[str, Any]) -> dict[str, Any]:
    """Run a ``judge`` or ``program`` request here and now."""
    limits = limits_from(request["limits"])
    wait = wait_from(request.get("queue_timeout"))
    if request["op"] == "judge":
        verdict = judge_code(
            tests_source=request["tests"],
            code=request["code"],
            show=request.get("show", "messages"),
            limits=limits,
            tag=request.get("tag", ""),
            queue_timeout=wait,
        )
        return asdict(verdict)
    if request["op"] == "program":
        files = {ENTRY_FILE: request["code"]}
        return asdict(runner.run_python(files, ENTRY_FILE, limits=limits, queue_timeout=wait))
    raise ValueError(f"not a staff request: op {request.get('op')!r}")


def verdict_from(answer: dict[str, Any]) -> CheckVerdict:
    """The CheckVerdict a ``judge`` request gave back."""
    return CheckVerdict(**answer)


def result_from(answer: dict[str, Any]) -> runner.RunResult:
    """The RunResult a ``program`` request gave back."""
    return runner.RunResult(**answer)


def on_the_runs_queue(config: runner.RunnerConfig) -> bool:
    """Whether work asked with ``config`` goes to the runs queue: when it is the deployment's
    own configuration (a caller's own, as in the runner's tests, runs here)."""
    return config == runner.RunnerConfig.from_env()


def send_requests_with(sender: Sender | None) -> None:
    """Where ``dispatch`` sends requests from now on (None: here)."""
    global _sender
    _sender = sender


def dispatch(request: dict[str, Any]) -> dict[str, Any]:
    """The answer to a staff request, from the runs queue when one is set up."""
    return (_sender or execute_staff)(request)
