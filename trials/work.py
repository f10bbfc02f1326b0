"""Celery tasks of the trials app, and how a participant's Run or Check travels through them.

A Run or Check is a chain of two tasks: ``trials.sandbox`` on the ``runs`` queue (runner
workers: the sandbox, no write access) and ``trials.record_run`` on the ``results`` queue
(stores it once, by its job id). The chain goes on without the app server that started it, so
an app server that dies while its participant waits loses no result: the participant finds it
on their next page. One Run or Check per participant is in flight at a time, whichever app
server and runner worker take it (a lock in the shared cache, given back when it is recorded).

With no broker (eager mode) the same two tasks run in this process: the sandbox in a waiting
thread, the recording where the request's database work runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import fields
from typing import Any

import redis
from celery import chain, shared_task
from celery.result import AsyncResult
from django.conf import settings
from django.core.cache import cache

from trials.models import Participant
from trials.sandbox_requests import Ran
from trials.sandboxing import sandbox
from trials.services import coding

__all__ = [
    "BUSY",
    "eager",
    "give_turn_back",
    "queue_position",
    "record_here",
    "record_run",
    "sandbox_here",
    "send",
    "take_turn",
    "wait",
]

BUSY: dict[str, Any] = {"status": "busy"}
RUNS_QUEUE = "runs"
_RAN_FIELDS = {f.name for f in fields(Ran)}


def eager() -> bool:
    """No broker: tasks run in this process."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


def _in_flight_key(participant_id: object) -> str:
    return f"run-in-flight:{participant_id}"


def _lock_seconds() -> int:
    # Longer than any Run or Check may take once started; a lock left by a lost app server
    # frees itself after this.
    return int(settings.RUNNER_WALL_SECONDS) * 4 + 60


def _answer(outcome: coding.RunOutcome) -> dict[str, Any]:
    run = outcome.run
    return {
        "run": run.pk,
        "kind": run.kind,
        "status": run.status,
        "message": outcome.message,
        "exit_code": run.exit_code,
        "duration_ms": run.duration_ms,
        "version": run.snapshot_version,
        "stdout": run.stdout,
        "stderr": run.stderr,
        "truncated": run.output_truncated,
        "tests": outcome.tests,
        "first_pass": outcome.first_pass,
    }


@shared_task(name="trials.record_run", acks_late=True, reject_on_worker_lost=True)
def record_run(sandbox_answer: dict[str, Any], pending: dict[str, Any]) -> dict[str, Any]:
    """Store what the sandbox answered for ``pending`` (once, whatever the retries), and give
    the participant's turn back."""
    ran = Ran(**{k: v for k, v in sandbox_answer.items() if k in _RAN_FIELDS})
    try:
        outcome = coding.code_run_record(coding.pending_run(pending), ran)
    finally:
        give_turn_back(pending["participant"], pending["job"])
    return _answer(outcome)


def take_turn(participant_id: object, job: str) -> bool:
    """Wait until none of this participant's runs is in flight, and claim the turn for
    ``job`` (False: none came in time). No database: for a waiting thread."""
    key = _in_flight_key(participant_id)
    deadline = time.monotonic() + _lock_seconds()
    while not cache.add(key, job, timeout=_lock_seconds()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def give_turn_back(participant_id: object, job: str) -> None:
    """The run ``job`` will not be recorded (it failed before it was sent)."""
    if cache.get(_in_flight_key(participant_id)) == job:
        cache.delete(_in_flight_key(participant_id))


def send(pending: coding.PendingRun) -> AsyncResult[Any]:
    """Send the Run or Check through the queues: the sandbox, then its recording. Called at
    once after the code is stored, so that a stored Run or Check is always sent. The sandbox
    task's id is the job's (``queue_position`` finds it in the queue by it)."""
    return chain(
        sandbox.s(pending.sandbox_request()).set(task_id=pending.job),
        record_run.s(pending.message()),
    ).apply_async()


_SCAN = 5000  # queue entries looked at, at most, to place a participant's run


def queue_position(participant: Participant) -> int | None:
    """How many runs are ahead of this participant's waiting Run or Check (None: none waits,
    or it is further back than anyone needs to be told)."""
    if eager():
        return coding.queue_position(participant=participant)
    job = cache.get(_in_flight_key(participant.pk))
    if job is None:
        return None
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        # Kombu's Redis queue is a list: new messages on the left, workers take from the right.
        waiting = client.lrange(RUNS_QUEUE, -_SCAN, -1)
    finally:
        client.close()
    for ahead, raw in enumerate(reversed(waiting)):
        try:
            if json.loads(raw)["headers"]["id"] == job:
                return ahead
        except (ValueError, KeyError, TypeError):
            continue
    return None


def wait(result: AsyncResult[Any]) -> dict[str, Any]:
    """Wait until the Run or Check is recorded; the answer is ``record_run``'s. No database:
    for a waiting thread."""
    answer: dict[str, Any] = result.get(
        timeout=settings.SANDBOX_WAIT_SECONDS, disable_sync_subtasks=False
    )
    return answer


def sandbox_here(pending: coding.PendingRun) -> dict[str, Any]:
    """Eager mode, first step: the sandbox task in this thread (no database)."""
    answer: dict[str, Any] = sandbox.apply((pending.sandbox_request(),)).get(
        disable_sync_subtasks=False
    )
    return answer


def record_here(sandbox_answer: dict[str, Any], pending: coding.PendingRun) -> dict[str, Any]:
    """Eager mode, second step: the recording task in this thread."""
    answer: dict[str, Any] = record_run.apply((sandbox_answer, pending.message())).get(
        disable_sync_subtasks=False
    )
    return answer
