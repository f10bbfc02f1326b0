"""The participant's side of a Check: imports ``main.py`` and does what the checker asks over
two pipes (calls its functions, stands in fakes for some of its names), nothing else. It runs
in the participant's sandbox, so participant code can rewrite all of it: the checker trusts
nothing that arrives from here beyond it being a message, and decides every verdict itself.
This file holds no test, no expected value and no test name."""

import builtins
import contextlib
import importlib
import inspect
import io
import os
import select
import sys
import time

import wire

MAX_STDOUT = 64 * 1024


def describe(exc):
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}"[:500] if text else name


class Channel:
    def __init__(self, read_fd, write_fd):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.reader = wire.LineReader()
        self.pending = []
        self.replies = {}
        self.next_id = 0

    def send(self, message):
        data = wire.dumps(message)
        while data:
            written = os.write(self.write_fd, data)
            data = data[written:]

    def _absorb(self, block):
        timeout = None if block else 0
        ready, _, _ = select.select([self.read_fd], [], [], timeout)
        if not ready:
            return
        data = os.read(self.read_fd, 65536)
        if not data:
            os._exit(0)  # the checker is gone: nothing left to do
        for line in self.reader.feed(data):
            message = wire.loads(line)
            if message.get("op") == "reply":
                self.replies[message.get("id")] = message
            else:
                self.pending.append(message)

    def next_request(self):
        while not self.pending:
            self._absorb(block=True)
        return self.pending.pop(0)

    def fake_started(self, name, args, kwargs):
        self.next_id += 1
        self.send(
            {
                "op": "fake",
                "id": self.next_id,
                "name": name,
                "args": [wire.encode(a) for a in args],
                "kwargs": {str(k): wire.encode(v) for k, v in kwargs.items()},
            }
        )
        return self.next_id

    def poll_reply(self, number, block):
        while number not in self.replies:
            self._absorb(block=block)
            if not block:
                break
        return self.replies.pop(number, None)


def reply_value(module, reply):
    if "raise" in reply:
        name = str(reply.get("raise"))
        message = str(reply.get("message", ""))
        cls = getattr(module, name, None)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            builtin = getattr(builtins, name, None)
            is_exception = isinstance(builtin, type) and issubclass(builtin, Exception)
            cls = builtin if is_exception else RuntimeError
        raise cls(message)
    return wire.decode(reply.get("value"))


def make_fake(channel, module, name, kind, runner):
    if kind == "async":
        if runner == "asyncio":
            import asyncio

            sleep = asyncio.sleep
        else:
            import trio

            sleep = trio.sleep

        async def fake(*args, **kwargs):
            number = channel.fake_started(name, args, kwargs)
            try:
                while True:
                    reply = channel.poll_reply(number, block=False)
                    if reply is not None:
                        break
                    await sleep(0.002)
            except BaseException:
                channel.send({"op": "cancel", "id": number})
                raise
            return reply_value(module, reply)

        return fake

    def fake(*args, **kwargs):
        number = channel.fake_started(name, args, kwargs)
        return reply_value(module, channel.poll_reply(number, block=True))

    return fake


def perform(channel, module, request):
    name = str(request.get("name", ""))
    runner = request.get("runner")
    fakes = request.get("fakes") or {}
    target = getattr(module, name, None)
    if not callable(target):
        return {"ok": False, "error": f"main.py has no function named {name!r}", "stdout": ""}
    saved = {}
    out = io.StringIO()
    try:
        for fake_name, kind in dict(fakes).items():
            original = getattr(module, fake_name, None)
            saved[fake_name] = original
            if kind == "auto":
                kind = "async" if inspect.iscoroutinefunction(original) else "sync"
            setattr(module, fake_name, make_fake(channel, module, fake_name, kind, runner))
        args = [wire.decode(a) for a in request.get("args", [])]
        with contextlib.redirect_stdout(out):
            if runner == "trio":
                import trio

                value = trio.run(target, *args)
            elif runner == "asyncio":
                import asyncio

                value = asyncio.run(target(*args))
            else:
                value = target(*args)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"ok": False, "error": describe(exc), "stdout": out.getvalue()[:MAX_STDOUT]}
    finally:
        for fake_name, original in saved.items():
            setattr(module, fake_name, original)
    return {"ok": True, "value": wire.encode(value), "stdout": out.getvalue()[:MAX_STDOUT]}


def main():
    read_fd, write_fd = int(sys.argv[1]), int(sys.argv[2])
    channel = Channel(read_fd, write_fd)
    sys.path.insert(0, os.getcwd())
    sys.argv = ["main.py"]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            module = importlib.import_module("main")
    except BaseException as exc:
        channel.send({"op": "ready", "error": describe(exc)})
        return
    channel.send({"op": "ready"})
    while True:
        request = channel.next_request()
        if request.get("op") != "call":
            continue
        started = time.monotonic()
        answer = perform(channel, module, request)
        answer.update(op="done", call=request.get("call"), seconds=time.monotonic() - started)
        channel.send(answer)


if __name__ == "__main__":
    main()
