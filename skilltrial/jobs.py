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
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction

from skilltrial.threads import LazyPool

__all__ = ["enqueue_on_commit"]

logger = logging.getLogger("skilltrial.jobs")

_executor = LazyPool("JOBS_THREADS", 2, "job")


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
