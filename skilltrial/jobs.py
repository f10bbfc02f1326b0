"""Work that must not hold a participant's request (grading quiz code in the sandbox, ...),
started once the transaction that asked for it has committed, as the Celery task
``skilltrial.job`` on the ``jobs`` queue.

With no broker (the embedded default) the same task runs in this process, by ``JOBS_BACKEND``:

- ``thread`` (the default): in a small pool of threads, off the request. A job lost to a
  restart leaves its rows pending, and ``manage.py grade_pending_code`` finishes them.
- ``inline``: at once, in the caller, after commit (tests, management commands).

A job is named by its import path and given ids, never model instances, and reloads what it
needs, so running it twice is harmless (each job only finishes rows still pending,
compare-and-set): a requeued message after a worker died is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils.module_loading import import_string

from skilltrial.threads import LazyPool

__all__ = ["enqueue_on_commit", "job"]

logger = logging.getLogger("skilltrial.jobs")

_executor = LazyPool("JOBS_THREADS", 2, "job")


@shared_task(name="skilltrial.job", acks_late=True, reject_on_worker_lost=True)
def job(path: str, kwargs: dict[str, Any]) -> Any:
    """Run the function at import ``path`` with ``kwargs``."""
    return import_string(path)(**kwargs)


def _in_thread(path: str, kwargs: dict[str, Any]) -> None:
    close_old_connections()
    try:
        job.apply((path, kwargs)).get(disable_sync_subtasks=False)
    except Exception:
        logger.exception("job %s(%s) failed; its rows stay pending", path, kwargs)
    finally:
        close_old_connections()


def enqueue_on_commit(function: Callable[..., Any], /, **kwargs: Any) -> None:
    """Run ``function(**kwargs)`` once the current transaction commits, off this request."""
    path = f"{function.__module__}.{function.__qualname__}"
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        transaction.on_commit(lambda: job.apply_async((path, kwargs)))
        return
    backend = getattr(settings, "JOBS_BACKEND", "thread")
    if backend == "inline":
        transaction.on_commit(lambda: job.apply((path, kwargs)).get(disable_sync_subtasks=False))
    elif backend == "thread":
        transaction.on_commit(lambda: _executor().submit(_in_thread, path, kwargs))
    else:
        raise ValueError(f"unknown JOBS_BACKEND {backend!r} (thread or inline)")
