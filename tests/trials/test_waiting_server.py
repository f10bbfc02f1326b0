"""A participant waiting on the sandbox or on the LLM holds no worker: tested against real
servers on loopback, with real HTTP.

``asgi``: the production shape (the ASGI application under uvicorn, one worker: one event
loop, so anything that blocked it would block everyone). ``one-thread``: a WSGI server that
answers one request at a time, i.e. one gunicorn sync worker: the control, in which the same
waits DO hold up everyone else, proving that the tests can see what they look for.

What is checked: an autosave is answered while another participant's assistant reply is still
streaming; while every sandbox slot is taken, Checks wait (queued, none refused, none lost),
an autosave is answered meanwhile, and once the slot frees every Check gets its verdict and is
stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import uvicorn
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application
from django.test import Client

from tests.builders import ELIGIBLE
from tests.fakes.llm_server import FakeLLMServer, Reply
from trials import runner
from trials.models import CodeRun, CodeSnapshot, Participant, Trial
from trials.runner.slots import SlotPool

# The servers' request threads need their own connections to the test database: a file, as
# in the browser tests (tests/e2e/conftest.py), not SQLite's shared in-memory database.
_db = settings.DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3" and not _db.get("TEST", {}).get("NAME"):
    _db.setdefault("TEST", {})["NAME"] = str(
        Path(tempfile.gettempdir()) / f"skilltrial-test-{os.getpid()}.sqlite3"
    )

pytestmark = pytest.mark.django_db(transaction=True)

HOST = "127.0.0.1"
TASK = "tasks/concurrent_greetings"
CSRF = "w" * 32  # an unmasked CSRF secret, sent as cookie and header alike
STREAM = Reply(" ".join(f"word{i}" for i in range(24)), chunk_words=1, delay=0.3)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(params=["asgi", "one-thread"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """(kind, port) of a server on loopback for the test's duration."""
    if request.param == "asgi":
        sock = socket.socket()
        sock.bind((HOST, 0))
        config = uvicorn.Config(get_asgi_application(), log_level="warning", lifespan="off")
        uv = uvicorn.Server(config)
        thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not uv.started:
            time.sleep(0.01)
        yield "asgi", sock.getsockname()[1]
        uv.should_exit = True
        thread.join(timeout=30)
        sock.close()
    else:
        wsgi: WSGIServer = make_server(HOST, 0, get_wsgi_application(), handler_class=_Quiet)
        thread = threading.Thread(target=wsgi.serve_forever, daemon=True)
        thread.start()
        yield "one-thread", wsgi.server_port
        wsgi.shutdown()
        wsgi.server_close()


def _trial(tmp_path: Path, llm: FakeLLMServer | None = None) -> Trial:
    from tests.trials.test_chat import variant  # deferred: the chat tests' trial builder

    table = (
        'provider = "anthropic"\nmodel = "claude-test"\n'
        f'base_url = "{llm.anthropic_base_url}"\n'
        'api_key_env = "SKILLTRIAL_TEST_ANTHROPIC_KEY"\ntimeout_seconds = 20\n'
        if llm
        else 'provider = "scripted"\n'
    )
    return variant(tmp_path, table)


def _in_task_stage(trial: Trial, arm: str | None = None) -> tuple[dict[str, str], Participant]:
    """A participant at the main tasks, enrolled through the pages; their cookies."""
    for _ in range(16):
        client = Client()
        client.get(f"/t/{trial.slug}/?PROLIFIC_PID=p{time.time_ns()}")
        client.post(f"/t/{trial.slug}/s/consent/", {"decision": "agree", "agree": "on"})
        client.post(f"/t/{trial.slug}/s/screening/", ELIGIBLE)
        participant = Participant.objects.order_by("-created_at").first()
        assert participant is not None
        if arm is None or participant.allocation.arm.key == arm:
            assert client.post(f"/t/{trial.slug}/s/warmup/", {}).status_code == 302
            cookies = {name: morsel.value for name, morsel in client.cookies.items()}
            return cookies, participant
    raise AssertionError(f"no participant in arm {arm!r} after 16 enrollments")


@contextlib.contextmanager
def _post(
    port: int, trial: Trial, cookies: dict[str, str], path: str, body: dict[str, Any], **kw: Any
) -> Iterator[http.client.HTTPResponse]:
    conn = http.client.HTTPConnection(HOST, port, timeout=kw.get("timeout", 60))
    try:
        cookie = "; ".join(f"{k}={v}" for k, v in {**cookies, "csrftoken": CSRF}.items())
        conn.request(
            "POST",
            f"/t/{trial.slug}/api/{path}/",
            body=json.dumps(body),
            headers={"Content-Type": "application/json", "Cookie": cookie, "X-CSRFToken": CSRF},
        )
        yield conn.getresponse()
    finally:
        conn.close()


def _autosave(port: int, trial: Trial, cookies: dict[str, str], code: str, timeout: float) -> int:
    body = {"stage": "main_tasks", "task": TASK, "code": code, "base_version": 0}
    with _post(port, trial, cookies, "save", body, timeout=timeout) as response:
        assert response.status == 200, response.read()
        version: int = json.loads(response.read())["version"]
    return version


def _read_stream(response: http.client.HTTPResponse, done: threading.Event) -> list[dict]:
    messages = []
    for line in response:
        if line.startswith(b"data: "):
            messages.append(json.loads(line[len(b"data: ") :]))
            if messages[-1]["type"] in ("done", "error"):
                done.set()
    done.set()
    return messages


def test_an_autosave_is_answered_while_another_reply_streams(
    server: tuple[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, port = server
    monkeypatch.setenv("SKILLTRIAL_TEST_ANTHROPIC_KEY", "sk-test")
    with FakeLLMServer() as llm:
        llm.default = STREAM  # ~7 s of streaming, one word at a time
        trial = _trial(tmp_path, llm)
        asker, _ = _in_task_stage(trial, "ai")
        saver, saving = _in_task_stage(trial)
        question = {"stage": "main_tasks", "task": TASK, "message": "How do nurseries work?"}
        done = threading.Event()
        result: list[list[dict]] = []

        def read() -> None:
            with _post(port, trial, asker, "assistant", question) as stream:
                result.append(_read_stream(stream, done))

        reader = threading.Thread(target=read)
        reader.start()
        while not llm.requests:  # the reply has started
            time.sleep(0.01)
        if kind == "asgi":
            version = _autosave(port, trial, saver, "print('saved mid-stream')\n", timeout=20)
            still_streaming = not done.is_set()
        else:  # the control: the one worker is busy with the stream until it ends
            with pytest.raises(TimeoutError):
                _autosave(port, trial, saver, "print('saved mid-stream')\n", timeout=1.5)
        reader.join(timeout=60)
    messages = result[0]
    assert messages[-1]["type"] == "done"
    assert "".join(m.get("text", "") for m in messages).split() == STREAM.text.split()
    if kind == "asgi":
        assert still_streaming, "the autosave was answered only after the reply had ended"
        stored = CodeSnapshot.objects.get(participant=saving, version=version)
        assert stored.code == "print('saved mid-stream')\n"


def _queued(tag: str) -> bool:
    return runner.queue_position(tag) is not None


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


def test_checks_wait_for_a_busy_slot_without_holding_the_server(
    server: tuple[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, port = server
    # Its own run state (slot locks, run directories), readable by the sandbox's uids like
    # the default one in /tmp, so that no other run on the machine takes its one slot.
    state = Path(tempfile.mkdtemp(prefix="skilltrial-waiting-"))
    state.chmod(0o711)
    monkeypatch.setenv("RUNNER_STATE_DIR", str(state))
    monkeypatch.setenv("RUNNER_SLOTS", "1")
    trial = _trial(tmp_path)
    checkers = [_in_task_stage(trial) for _ in range(3)]
    saver, _ = _in_task_stage(trial)
    config = runner.RunnerConfig.from_env()
    first = config.uid_base if os.geteuid() == 0 else 0
    pool = SlotPool(Path(config.lock_dir), 1, first=first)
    answers: dict[int, tuple[int, dict[str, Any]]] = {}

    def check(cookies: dict[str, str], participant: Participant) -> None:
        body = {"stage": "main_tasks", "task": TASK, "code": "import trio\n"}
        with _post(port, trial, cookies, "check", body) as response:
            answers[participant.pk] = (response.status, json.loads(response.read()))

    with pool.acquire(timeout=10):  # the machine's only slot is busy
        threads = [threading.Thread(target=check, args=c) for c in checkers]
        for thread in threads:
            thread.start()
        if kind == "asgi":
            for _, participant in checkers:
                _wait_for(lambda p=participant: _queued(f"p{p.pk}"), "every Check queued")
            _autosave(port, trial, saver, "x = 1\n", timeout=20)
            assert not answers, "a Check was answered while the only slot was busy"
        else:  # the control: the one worker waits on the slot; nobody else is served
            with pytest.raises(TimeoutError):
                _autosave(port, trial, saver, "x = 1\n", timeout=1.5)
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(answers) == sorted(p.pk for _, p in checkers)
    for status, body in answers.values():
        assert status == 200, body
        assert body["total"] > 0 and body["passed"] < body["total"]  # the starter fails
    runs = CodeRun.objects.filter(kind=CodeRun.Kind.CHECK)
    assert sorted(runs.values_list("participant_id", flat=True)) == sorted(answers)
    assert not runs.filter(status="busy").exists()


def test_the_stream_bridge_closes_the_reply_when_the_reader_goes_away() -> None:
    """A browser that stops reading (Stop, a closed tab): the reply's generator is closed,
    so it records the turn as stopped instead of running on."""
    from skilltrial.waiting import iterate_in_thread  # deferred: needs settings configured

    closed = threading.Event()

    def reply() -> Iterator[str]:
        try:
            for i in range(1000):
                time.sleep(0.01)
                yield f"piece {i}"
        finally:
            closed.set()

    async def read_two() -> list[str]:
        stream = iterate_in_thread(reply)
        got: list[str] = []
        while len(got) < 2:
            got += await anext(stream)
        await stream.aclose()
        return got[:2]

    # An event loop of its own, in a thread of its own: the browser tests of the same session
    # keep one running on this thread.
    with ThreadPoolExecutor(1) as thread:
        assert thread.submit(lambda: asyncio.run(read_two())).result() == ["piece 0", "piece 1"]
    assert closed.wait(timeout=10), "the reply was not closed after the reader left"


def test_the_stream_bridge_hands_over_every_item_in_order_in_few_batches() -> None:
    """A model streaming faster than the gathering pause: every piece arrives, in order, in
    fewer sends than pieces."""
    from skilltrial.waiting import iterate_in_thread  # deferred: needs settings configured

    def reply() -> Iterator[int]:
        for i in range(200):
            if i % 20 == 0:
                time.sleep(0.01)
            yield i

    async def read_all() -> list[list[int]]:
        return [batch async for batch in iterate_in_thread(reply, gather_seconds=0.02)]

    with ThreadPoolExecutor(1) as thread:
        batches = thread.submit(lambda: asyncio.run(read_all())).result()
    assert [i for batch in batches for i in batch] == list(range(200))
    assert len(batches) < 100
