"""Waiting without holding a request worker: for the async views of Run, Check and the assistant.

A Run or Check waits for a sandbox slot and then for the program (seconds); an assistant reply
streams for as long as the model writes. Under the production server (uvicorn's ASGI workers)
those waits happen in threads of one pool per process, the *waiting threads*, while the worker's
event loop goes on serving autosaves, telemetry and pages. The waits touch no database, except a
stream's own bookkeeping (the generator records the turn), which closes its connection when it
ends; the request gives its connection back to the pool before it starts waiting
(``release_connection``), so a hundred waiting runs hold no database connection.

Under WSGI (``make demo``'s runserver, the test client) the same async views run too; Django
drives them with ``async_to_sync``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar, cast

from django.db import connection, connections

from skilltrial.threads import LazyPool

__all__ = ["in_waiting_thread", "iterate_in_thread", "release_connection"]

T = TypeVar("T")

_executor = LazyPool("WAITING_THREADS", 128, "wait")


def release_connection() -> None:
    """Give this thread's database connection back (to the pool, or close it) before a long
    wait. Not inside a transaction (a test's, or an ``atomic`` block): that keeps it."""
    if connection.connection is not None and not connection.in_atomic_block:
        connection.close()


async def in_waiting_thread(function: Callable[..., T], /, *args: object) -> T:
    """``function(*args)`` in a waiting thread; the caller's event loop stays free."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), function, *args)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class _Relay:
    """Items handed from the waiting thread to the event loop: a deque, and one wake-up of the
    loop at a time however many items arrive meanwhile."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: deque[object] = deque()
        self.ready = asyncio.Event()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._wake_pending = False

    def put(self, item: object) -> None:  # in the waiting thread
        with self._lock:
            self.items.append(item)
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is gone: nobody reads any more
            self.stop.set()

    def _wake(self) -> None:  # in the loop
        with self._lock:
            self._wake_pending = False
        self.ready.set()

    def take(self) -> list[object]:  # in the loop
        with self._lock:
            taken = list(self.items)
            self.items.clear()
            self.ready.clear()
        return taken


def _pump(factory: Callable[[], Iterator[T]], relay: _Relay) -> None:
    items = factory()
    try:
        for item in items:
            relay.put(item)
            # Between items the iterator waits (for the model): give its connection back.
            release_connection()
            if relay.stop.is_set():
                break
    except Exception as error:  # handed to the reader, which raises it
        relay.put(_Failed(error))
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()  # the generator's own clean-up (a stopped reply is recorded as stopped)
        connections.close_all()
        relay.put(_END)


async def iterate_in_thread(
    factory: Callable[[], Iterator[T]], *, gather_seconds: float = 0.0
) -> AsyncIterator[list[T]]:
    """Iterate ``factory()`` in a waiting thread; yield its items to the event loop in batches
    of what has arrived, waiting ``gather_seconds`` after each batch so that a fast producer
    (a model streaming tokens) costs a few sends a second, not one per token. When the reader
    stops (the browser went away: the ASGI server cancels the response), the iterator is
    closed after its next item."""
    relay = _Relay(asyncio.get_running_loop())
    relay.loop.run_in_executor(_executor(), _pump, factory, relay)
    try:
        while True:
            await relay.ready.wait()
            batch: list[T] = []
            for item in relay.take():
                if item is _END:
                    if batch:
                        yield batch
                    return
                if isinstance(item, _Failed):
                    raise item.error
                batch.append(cast(T, item))
            if batch:
                yield batch
            if gather_seconds:
                await asyncio.sleep(gather_seconds)
    finally:
        relay.stop.set()
