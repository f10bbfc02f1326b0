"""The ``runs`` queue: participant code in the sandbox as a Celery task.

A request is a JSON object and names everything the run needs. A participant's Run or Check
names its trial by protocol hash and its task by folder: the runner worker fetches the frozen
files once (read-only database access) and keeps them, so hidden tests never travel in a
message and a runner worker needs no other secret. Staff work (quiz code answers, import-time
checks of solutions) sends its sources in the request.

The task only runs code and returns what came out; recording it is the ``results`` queue's
(``trials.work.record_run``). Running a request twice gives the same kind of answer and stores
nothing, so a message requeued after its worker died is harmless.

With no broker (the embedded default) ``sandbox_call`` runs the task in the calling thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict
from typing import Any

from celery import shared_task
from django.conf import settings

from trials import runner
from trials.judge import CheckVerdict, judge_code
from trials.models import Trial
from trials.sandbox_requests import Ran, execute_staff, limits_from, wait_from
from trials.tasks import ENTRY_FILE, load_task

__all__ = ["execute", "sandbox", "sandbox_call", "trial_files"]

_FILES_KEPT = 16
_files: OrderedDict[str, dict[str, str]] = OrderedDict()
_files_lock = threading.Lock()


def trial_files(protocol_hash: str) -> dict[str, str]:
    """The frozen files of the launched trial with this protocol hash (kept per process: a
    frozen protocol never changes). Raises LookupError when no launched trial has it."""
    with _files_lock:
        if protocol_hash in _files:
            _files.move_to_end(protocol_hash)
            return _files[protocol_hash]
    files: dict[str, str] | None = (
        Trial.objects.filter(protocol_hash=protocol_hash)
        .exclude(status=Trial.Status.DRAFT)
        .values_list("files", flat=True)
        .first()
    )
    if files is None:
        raise LookupError(f"no launched trial has protocol hash {protocol_hash}")
    with _files_lock:
        _files[protocol_hash] = files
        while len(_files) > _FILES_KEPT:
            _files.popitem(last=False)
    return files


def _limits(raw: list[float] | None) -> runner.Limits:
    if raw is None:
        return runner.Limits(
            cpu_seconds=settings.RUNNER_CPU_SECONDS,
            wall_seconds=settings.RUNNER_WALL_SECONDS,
            memory_bytes=settings.RUNNER_MEMORY_BYTES,
        )
    return limits_from(raw)


def _verdict(request: dict[str, Any], tests: str, show: str) -> CheckVerdict:
    return judge_code(
        tests_source=tests,
        code=request["code"],
        show=show,
        limits=_limits(request.get("limits")),
        tag=request.get("tag", ""),
        queue_timeout=wait_from(request.get("queue_timeout")),
    )


def _participant_check(request: dict[str, Any]) -> Ran:
    task = load_task(trial_files(request["trial"]), request["task"])
    verdict = _verdict(request, task.tests, task.show)
    tests = [
        {"name": t["name"], "passed": t["passed"], "message": t["message"]} for t in verdict.tests
    ]
    # The participant's program prints nothing a participant needs during a check (the
    # tests call its functions); its errors are shown when there is no verdict.
    return Ran(
        tests=tests,
        status=verdict.status,
        stdout="",
        stderr=verdict.stderr,
        exit_code=None,
        duration=verdict.duration_seconds,
        truncated=False,
        sandbox=verdict.sandbox,
        message=verdict.message,
        all_passed=verdict.all_passed,
    )


def _status(result: runner.RunResult) -> str:
    if result.reason == "queue_timeout":
        return "busy"
    if result.timed_out:
        return "timeout"
    return "ok" if result.ok else "error"


def _participant_run(request: dict[str, Any]) -> Ran:
    result = runner.run_python(
        {ENTRY_FILE: request["code"]},
        ENTRY_FILE,
        limits=_limits(request.get("limits")),
        tag=request.get("tag", ""),
    )
    return Ran(
        tests=[],
        status=_status(result),
        stdout=result.stdout,
        stderr=result.stderr,
        exit_code=result.exit_code,
        duration=result.duration_seconds,
        truncated=result.truncated,
        sandbox=result.sandbox,
        message=result.message,
        all_passed=False,
    )


def execute(request: dict[str, Any]) -> dict[str, Any]:
    """Run one request here and now (what the task does)."""
    op = request.get("op")
    if op == "check":
        return asdict(_participant_check(request))
    if op == "run":
        return asdict(_participant_run(request))
    if op in ("judge", "program"):
        return execute_staff(request)
    raise ValueError(f"unknown sandbox request op {op!r}")


@shared_task(name="trials.sandbox", acks_late=True, reject_on_worker_lost=True)
def sandbox(request: dict[str, Any]) -> dict[str, Any]:
    return execute(request)


def sandbox_call(request: dict[str, Any]) -> dict[str, Any]:
    """Send ``request`` to the ``runs`` queue and wait for its answer (in this thread when
    there is no broker)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # ``apply``, not an eager ``apply_async``: that flips a process-wide flag which threads
        # doing the same at once can leave set ("Never call result.get() within a task").
        answer: dict[str, Any] = sandbox.apply((request,)).get(disable_sync_subtasks=False)
        return answer
    result = sandbox.apply_async((request,))
    answer = result.get(timeout=settings.SANDBOX_WAIT_SECONDS, disable_sync_subtasks=False)
    return answer
