"""What hidden tests import: ``from checker import participant, Fake``.

The tests run in the checker's own sandbox, a separate process that participant code cannot
reach. ``participant`` drives the participant's program over a pipe of plain JSON values: it
asks for one of its functions to be called with arguments chosen here, and gets back the value
(decoded into plain built-in types), what it printed, and how long it took on this side's clock.
A ``Fake`` stands in for a name in the participant's module while a call runs; every call of it
is answered from here, after a delay decided here, so concurrency and cancellation are observed
by this process, never by clocks the participant's process controls.
"""

import heapq
import os
import select
import time

import wire

__all__ = ["CallTimeout", "Fake", "Outcome", "ParticipantError", "ProgramGone", "participant"]


class ParticipantError(AssertionError):
    """The participant's function raised an exception (its message is the participant's own)."""


class CallTimeout(AssertionError):
    """The participant's function did not return in time."""


class ProgramGone(AssertionError):
    """The participant's program ended or broke the connection."""


class Outcome:
    """One call of a participant's function, as seen from the checker."""

    def __init__(self, *, ok, value, error, stdout, seconds):
        self.ok = ok
        self.value = value
        self.error = error
        self.stdout = stdout
        self.seconds = seconds

    @property
    def lines(self):
        return self.stdout.splitlines()


class FakeCall:
    def __init__(self, args, kwargs, started):
        self.args = args
        self.kwargs = kwargs
        self.started = started
        self.ended = None
        self.cancelled = False

    @property
    def seconds(self):
        return None if self.ended is None else self.ended - self.started


def _evaluate(spec, args, kwargs):
    return spec(*args, **kwargs) if callable(spec) else spec


class Fake:
    """Stands in for ``name`` in the participant's module during a call.

    ``delay``: seconds before the answer (a number, or a function of the call's arguments);
    ``returns``: the value returned (or a function of the arguments); ``raises``: a function of
    the arguments giving ``None`` or ``(exception_name, message)``; the participant's module's
    own exception class of that name is raised there (else a built-in one, else RuntimeError).
    ``kind``: "async", "sync", or "auto" (like the name it replaces)."""

    def __init__(self, name, *, delay=0.0, returns=None, raises=None, kind="auto"):
        self.name = name
        self.delay = delay
        self.returns = returns
        self.raises = raises
        self.kind = kind
        self.calls = []

    def reset(self):
        self.calls = []

    @property
    def max_overlap(self):
        """The most calls in flight at the same time, on the checker's clock."""
        points = []
        for call in self.calls:
            end = call.ended if call.ended is not None else float("inf")
            points.append((call.started, 1))
            points.append((end, -1))
        points.sort(key=lambda point: (point[0], point[1]))
        best = current = 0
        for _, step in points:
            current += step
            best = max(best, current)
        return best

    def answer(self, args, kwargs):
        if self.raises is not None:
            raised = self.raises(*args, **kwargs)
            if raised is not None:
                name, message = raised
                return {"raise": str(name), "message": str(message)}
        return {"value": wire.encode(_evaluate(self.returns, args, kwargs))}


class _Connection:
    def __init__(self, read_fd, write_fd):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.reader = wire.LineReader()
        self.inbox = []
        self.gone = None
        self.ready = None
        self.calls = 0
        os.set_blocking(write_fd, False)

    def _fail(self, reason):
        if self.gone is None:
            self.gone = reason
        raise ProgramGone(self.gone)

    def send(self, message):
        data = wire.dumps(message)
        deadline = time.monotonic() + 2.0
        while data:
            try:
                written = os.write(self.write_fd, data)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._fail("your program stopped reading from the checker")
                select.select([], [self.write_fd], [], 0.05)
                continue
            except BrokenPipeError:
                self._fail("your program ended before the test finished")
            data = data[written:]

    def receive(self, timeout):
        """The next message, or None when ``timeout`` passed first."""
        if self.gone is not None:
            raise ProgramGone(self.gone)
        if not self.inbox:
            ready, _, _ = select.select([self.read_fd], [], [], max(0.0, timeout))
            if not ready:
                return None
            try:
                data = os.read(self.read_fd, 65536)
            except OSError:
                data = b""
            if not data:
                self._fail("your program ended before the test finished")
            try:
                for line in self.reader.feed(data):
                    self.inbox.append(wire.loads(line))
            except wire.WireError:
                self._fail("your program broke its connection to the checker")
        return self.inbox.pop(0) if self.inbox else None

    def wait_ready(self, timeout):
        if self.ready is None:
            deadline = time.monotonic() + timeout
            while self.ready is None:
                message = self.receive(deadline - time.monotonic())
                if message is None:
                    if time.monotonic() >= deadline:
                        self._fail(f"your program did not start within {timeout:g} s")
                    continue
                if message.get("op") == "ready":
                    error = message.get("error")
                    loaded = "Your code could not be loaded: " + str(error)[:300]
                    self.ready = loaded if error else ""
        if self.ready:
            raise ParticipantError(self.ready)


class Participant:
    """The participant's program, driven from the checker."""

    def __init__(self):
        self.connection = None
        self.last = None
        self.start_timeout = 10.0

    def run(self, name, *args, fakes=(), timeout=5.0, runner=None):
        """Call ``name(*args)`` in the participant's module (``runner``: None for a plain call,
        "trio" for ``trio.run(name, *args)``, "asyncio" for ``asyncio.run``) and return its
        Outcome; the participant's exceptions are in ``Outcome.error``."""
        if self.connection is None:
            raise RuntimeError("the checker has no participant program")
        connection = self.connection
        connection.wait_ready(self.start_timeout)
        if runner not in (None, "trio", "asyncio"):
            raise ValueError(f"unknown runner {runner!r}")
        by_name = {fake.name: fake for fake in fakes}
        connection.calls += 1
        number = connection.calls
        connection.send(
            {
                "op": "call",
                "call": number,
                "name": str(name),
                "args": [wire.encode(a) for a in args],
                "runner": runner,
                "fakes": {fake.name: fake.kind for fake in fakes},
            }
        )
        started = time.monotonic()
        deadline = started + timeout
        schedule = []  # (due, sequence, id)
        in_flight = {}  # id -> (fake, FakeCall, answer)
        sequence = 0
        while True:
            now = time.monotonic()
            while schedule and schedule[0][0] <= now:
                _, _, ident = heapq.heappop(schedule)
                if ident in in_flight:
                    fake, call, answer = in_flight.pop(ident)
                    call.ended = time.monotonic()
                    connection.send({"op": "reply", "id": ident, **answer})
            if now >= deadline:
                connection.gone = (
                    f"your code did not finish within {timeout:g} s "
                    "(the remaining tests cannot run)"
                )
                raise CallTimeout(f"`{name}` did not finish within {timeout:g} s")
            wake = deadline if not schedule else min(deadline, schedule[0][0])
            message = connection.receive(wake - now)
            if message is None:
                continue
            op = message.get("op")
            if op == "fake":
                fake = by_name.get(message.get("name"))
                ident = message.get("id")
                if fake is None or type(ident) is not int or ident in in_flight:
                    connection._fail("your program broke its connection to the checker")
                try:
                    fargs = [wire.decode(a) for a in message.get("args", [])]
                    raw_kwargs = message.get("kwargs", {})
                    if type(raw_kwargs) is not dict:
                        raise wire.WireError("kwargs")
                    fkwargs = {str(k): wire.decode(v) for k, v in raw_kwargs.items()}
                except wire.WireError:
                    connection._fail("your program broke its connection to the checker")
                call = FakeCall(fargs, fkwargs, time.monotonic())
                fake.calls.append(call)
                try:
                    delay = float(_evaluate(fake.delay, fargs, fkwargs))
                    answer = fake.answer(fargs, fkwargs)
                except Exception as exc:
                    delay = 0.0
                    answer = {"raise": "TypeError", "message": f"{fake.name}(): {exc}"}
                in_flight[ident] = (fake, call, answer)
                sequence += 1
                heapq.heappush(schedule, (call.started + max(0.0, delay), sequence, ident))
            elif op == "cancel":
                entry = in_flight.pop(message.get("id"), None)
                if entry is not None:
                    entry[1].ended = time.monotonic()
                    entry[1].cancelled = True
            elif op == "done" and message.get("call") == number:
                seconds = time.monotonic() - started
                for _fake, call, _ in in_flight.values():
                    call.ended = time.monotonic()
                stdout = message.get("stdout")
                stdout = stdout if type(stdout) is str else ""
                if message.get("ok") is True:
                    try:
                        value = wire.decode(message.get("value"))
                    except wire.WireError:
                        connection._fail("your program broke its connection to the checker")
                    outcome = Outcome(
                        ok=True, value=value, error="", stdout=stdout, seconds=seconds
                    )
                else:
                    error = message.get("error")
                    error = str(error)[:500] if error else "an error"
                    outcome = Outcome(
                        ok=False, value=None, error=error, stdout=stdout, seconds=seconds
                    )
                self.last = outcome
                return outcome
            # anything else is ignored: the participant's side may say what it likes

    def call(self, name, *args, fakes=(), timeout=5.0, runner=None):
        """Like ``run`` but returns the value, and raises ParticipantError when the
        participant's function raised."""
        outcome = self.run(name, *args, fakes=fakes, timeout=timeout, runner=runner)
        if not outcome.ok:
            raise ParticipantError(f"`{name}` raised {outcome.error}")
        return outcome.value

    def trio(self, name, *args, fakes=(), timeout=5.0):
        """``trio.run(name, *args)`` in the participant's program; returns the Outcome."""
        return self.run(name, *args, fakes=fakes, timeout=timeout, runner="trio")


participant = Participant()
