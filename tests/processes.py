"""Running test work in several OS processes at once, each with its own database connection.

Shared by the concurrency tests (allocation, assistant budget, code saves). The processes are
spawned, not forked (see tests/spawned.py); each prepares, then waits on a barrier, so the
interesting part starts in every process at the same moment.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.db.models.query import QuerySet

from tests import spawned

# The marks of every race test: SQLite serialises every writer on one file lock, so a race
# cannot happen there.
POSTGRES_ONLY = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="concurrency tests need PostgreSQL (set DATABASE_URL=postgres://...); SQLite "
        "serialises all writers, so a race cannot happen there",
    ),
]

# Far above what the work takes; only there so a hung child fails the test.
TIMEOUT = 60.0

Worker = Callable[[Any, Any], Any]


def run_in_processes(worker: Worker, jobs: list[Any], *, timeout: float = TIMEOUT) -> list[Any]:
    """Run ``worker(job, barrier)`` in one new process per job and return their results in
    job order; a worker that raised fails the test with its traceback."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(jobs), timeout=timeout)
    results = context.Queue()
    db_name = connections["default"].settings_dict["NAME"]
    processes = [
        context.Process(
            target=spawned.run,
            args=(db_name, pickle.dumps((worker, job)), barrier, results, index),
        )
        for index, job in enumerate(jobs)
    ]
    for process in processes:
        process.start()
    collected: dict[int, tuple[bool, Any]] = {}
    try:
        for _ in processes:
            index, ok, payload = results.get(timeout=timeout)
            collected[index] = (ok, payload)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
    crashes = [payload for ok, payload in collected.values() if not ok]
    assert not crashes, "a worker process failed:\n" + "\n".join(crashes)
    return [collected[index][1] for index in range(len(jobs))]


def switch_locks_off() -> None:
    """In a worker process only: ``select_for_update`` does nothing from now on (the control
    runs that show a race test can fail)."""
    QuerySet.select_for_update = lambda self, *a, **k: self  # type: ignore[method-assign]
