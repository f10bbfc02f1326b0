"""Work that must not hold a participant's request (grading quiz code in the sandbox, ...),
started once the transaction that asked for it has committed.

``JOBS_BACKEND``:

- ``thread`` (the default, and the embedded one): a small pool of threads in this process.
  Nothing to install; a job lost to a restart leaves its rows pending, and
  ``manage.py grade_pending_code`` finishes them.
- ``inline``: run at once, in the caller, after commit (tests, management commands).

Jobs are given ids, never model instances, and reload what they need, so running one twice
is harmless (each job only finishes rows still pending, compare-and-set).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction

__all__ = ["enqueue_on_commit"]

logger = logging.getLogger("skilltrial.jobs")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=getattr(settings, "JOBS_THREADS", 2), thread_name_prefix="job"
            )
        return _pool


def _run(job: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    close_old_connections()
    try:
        job(**kwargs)
    except Exception:
        logger.exception("job %s(%s) failed; its rows stay pending", job.__qualname__, kwargs)
    finally:
        close_old_connections()


def enqueue_on_commit(job: Callable[..., Any], /, **kwargs: Any) -> None:
    """Run ``job(**kwargs)`` once the current transaction commits, off this request."""
    backend = getattr(settings, "JOBS_BACKEND", "thread")
    if backend == "inline":
        transaction.on_commit(lambda: job(**kwargs))
    elif backend == "thread":
        transaction.on_commit(lambda: _executor().submit(_run, job, kwargs))
    else:
        raise ValueError(f"unknown JOBS_BACKEND {backend!r} (thread or inline)")
