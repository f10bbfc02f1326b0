"""A thread pool per server process, made on first use and sized by a setting: the off-request
jobs (``jobs.py``) and the waiting threads (``waiting.py``) each have one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

__all__ = ["LazyPool"]


class LazyPool:
    def __init__(self, setting: str, default: int, prefix: str) -> None:
        self.setting, self.default, self.prefix = setting, default, prefix
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __call__(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=getattr(settings, self.setting, self.default),
                    thread_name_prefix=self.prefix,
                )
            return self._pool
