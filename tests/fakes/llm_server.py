"""A real HTTP server on loopback that stands in for an LLM provider in tests.

It speaks the Anthropic Messages API (``POST /v1/messages``) and OpenAI chat completions
(``POST /v1/chat/completions``), streamed as server-sent events in the providers' own event
order, or as one JSON body when the request does not ask for a stream. It records every
request and can be scripted per test::

    with FakeLLMServer() as server:           # or the ``llm_server`` pytest fixture
        server.default = Reply("Hello there, participant.", chunk_words=1)
        server.script(Status(429, retry_after=0), Reply("after the wait"))
        ...  # point an SDK at server.anthropic_base_url / server.openai_base_url
        server.requests[0].headers["authorization"]
        server.requests[0].body["messages"]

Each request takes the next scripted behaviour, or ``server.default`` when the script is
empty. Behaviours: :class:`Reply` (text, chunking, delay, stop reason, token counts, usage or
not), :class:`Status` (an error status with the provider's error body and headers such as
``retry-after``), :class:`Malformed` (invalid JSON in an event, a stream cut short or dropped
mid-chunk, the wrong content type, a mid-stream error event) and :class:`Hang` (no answer, or
a stream that stalls after some chunks, until the server stops). ``hang_ups`` counts answers
the client stopped reading (a closed stream, a time-out). Stopping the server releases every
hanging handler and joins all its threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import pytest

ANTHROPIC_PATH = "/v1/messages"
OPENAI_PATH = "/v1/chat/completions"
Protocol = Literal["anthropic", "openai"]

# How long a hanging handler waits at most if nobody stops the server (a safety net: the
# context manager and the fixture always stop it).
MAX_HANG_SECONDS = 30.0


@dataclass(frozen=True)
class Reply:
    """A successful answer. ``chunks`` fixes the text pieces exactly; otherwise the text is
    cut into pieces of ``chunk_words`` words (whitespace kept). ``delay`` seconds pass
    before each piece. Token counts default to 25 in and one per piece out. ``usage=False``
    imitates an OpenAI-compatible server that never reports usage."""

    text: str = "Hello from the fake model."
    chunks: tuple[str, ...] | None = None
    chunk_words: int = 2
    delay: float = 0.0
    stop_reason: str = "end_turn"  # Anthropic's word; mapped for OpenAI (end_turn -> stop)
    input_tokens: int = 25
    output_tokens: int | None = None
    model: str | None = None  # None: echo the requested model
    usage: bool = True

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        words = self.text.split(" ")
        out = []
        for i in range(0, len(words), self.chunk_words):
            piece = " ".join(words[i : i + self.chunk_words])
            out.append(piece if i == 0 else " " + piece)
        return out


@dataclass(frozen=True)
class Status:
    """An error answer: ``status`` with the provider's JSON error body. ``error_type``
    defaults to what the provider uses for that status (e.g. 529 -> ``overloaded_error``)."""

    status: int
    message: str = "scripted failure"
    error_type: str | None = None
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # raw body instead of the JSON error


MalformedKind = Literal[
    "invalid_json",  # an event whose data is not JSON, after a first piece of text
    "invalid_json_first",  # the same, before any text
    "truncated",  # the stream ends cleanly after a piece of text, without its final events
    "disconnect",  # the connection drops in the middle of a chunk, after a piece of text
    "wrong_content_type",  # 200 with text/html instead of an event stream
    "error_event",  # a mid-stream error event (Anthropic: overloaded_error) after some text
]


@dataclass(frozen=True)
class Malformed:
    kind: MalformedKind
    text: str = "Partial answer"


@dataclass(frozen=True)
class Hang:
    """Never answer (``after_chunks`` None), or send the start of a stream and that many
    pieces of ``text``, then stall, until the server stops."""

    after_chunks: int | None = None
    text: str = "This answer stalls half way"


Behaviour = Reply | Status | Malformed | Hang


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or the raw text when it is not JSON
    protocol: Protocol | None
    time: float


class FakeLLMServer:
    """A threaded HTTP server on 127.0.0.1 and a random free port; see the module doc."""

    def __init__(self) -> None:
        self.default: Behaviour = Reply()
        self._script: deque[Behaviour] = deque()
        self._requests: list[RecordedRequest] = []
        self._hang_ups = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging handlers, stop serving, close the socket and join every thread."""
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()  # joins the handler threads (block_on_close)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake LLM server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def anthropic_base_url(self) -> str:
        """For ``anthropic.Anthropic(base_url=...)`` (it appends ``/v1/messages``)."""
        return self.url

    @property
    def openai_base_url(self) -> str:
        """For ``openai.OpenAI(base_url=...)`` (it appends ``/chat/completions``)."""
        return self.url + "/v1"

    # scripting ---------------------------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, in order (after any already queued)."""
        with self._lock:
            self._script.extend(behaviours)

    def fail_next(self, status: int, *, times: int = 1, **kwargs: Any) -> None:
        self.script(*[Status(status, **kwargs) for _ in range(times)])

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                break
            time.sleep(0.01)
        return self.requests

    # used by the handler -----------------------------------------------------------------

    def _take(self, request: RecordedRequest) -> Behaviour:
        with self._lock:
            self._requests.append(request)
            return self._script.popleft() if self._script else self.default

    def _hung_up(self) -> None:
        with self._lock:
            self._hang_ups += 1

    @property
    def hang_ups(self) -> int:
        """How many answers the client stopped reading before they were complete."""
        with self._lock:
            return self._hang_ups

    def _stall(self) -> None:
        self._stop.wait(MAX_HANG_SECONDS)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()


class _Server(ThreadingHTTPServer):
    # server_close() joins the handler threads, but only non-daemon ones.
    daemon_threads = False
    block_on_close = True
    fake: FakeLLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (time-out, stop button) is normal here, not a test failure.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10  # a socket that sends nothing does not keep a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send_json(404, {"error": {"type": "not_found_error", "message": "no such path"}})

    def do_POST(self) -> None:
        # One request per connection: a handler never waits for a next request on a kept-alive
        # connection, so stopping the server never waits for a client to go away.
        self.close_connection = True
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        path = self.path.split("?", 1)[0]
        protocol: Protocol | None = (
            "anthropic" if path == ANTHROPIC_PATH else "openai" if path == OPENAI_PATH else None
        )
        fake = self.server.fake
        behaviour = fake._take(
            RecordedRequest(
                method="POST",
                path=path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                protocol=protocol,
                time=time.time(),
            )
        )
        if protocol is None:
            self._send_json(404, {"error": {"type": "not_found_error", "message": "no such path"}})
            return
        wants_stream = isinstance(body, dict) and body.get("stream") is True
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        include_usage = (
            isinstance(body, dict)
            and isinstance(body.get("stream_options"), dict)
            and body["stream_options"].get("include_usage") is True
        )
        try:
            self._answer(behaviour, protocol, wants_stream, model, include_usage)
        except OSError:  # the client hung up (stop button, time-out)
            fake._hung_up()

    # answers -----------------------------------------------------------------------------

    def _answer(
        self,
        behaviour: Behaviour,
        protocol: Protocol,
        stream: bool,
        model: str,
        include_usage: bool,
    ) -> None:
        fake = self.server.fake
        if isinstance(behaviour, Status):
            self._send_status(behaviour, protocol)
        elif isinstance(behaviour, Hang):
            if behaviour.after_chunks is None:
                fake._stall()
                return
            reply = Reply(behaviour.text, chunk_words=1, model=model)
            self._start_stream()
            events = _events(reply, protocol, model, include_usage)
            for _ in range(_head_length(protocol) + behaviour.after_chunks):
                self._chunk(next(events))
            fake._stall()
        elif isinstance(behaviour, Malformed):
            self._send_malformed(behaviour, protocol, model)
        elif stream:
            self._start_stream()
            for event in _events(behaviour, protocol, model, include_usage, delay=behaviour.delay):
                if fake.stopping:
                    return
                self._chunk(event)
            self._end_stream()
        else:
            self._send_json(200, _full_body(behaviour, protocol, model))

    def _send_status(self, status: Status, protocol: Protocol) -> None:
        headers = dict(status.headers)
        if status.retry_after is not None:
            headers.setdefault("retry-after", f"{status.retry_after:g}")
        if status.body is not None:
            self._send_raw(status.status, status.body.encode(), "application/json", headers)
            return
        error_type = status.error_type or _error_type(status.status, protocol)
        if protocol == "anthropic":
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": error_type, "message": status.message},
            }
        else:
            payload = {
                "error": {
                    "message": status.message,
                    "type": error_type,
                    "param": None,
                    "code": None,
                }
            }
        self._send_json(status.status, payload, headers)

    def _send_malformed(self, malformed: Malformed, protocol: Protocol, model: str) -> None:
        kind = malformed.kind
        if kind == "wrong_content_type":
            self._send_raw(200, b"<html><body>Gateway says hello</body></html>", "text/html")
            return
        reply = Reply(malformed.text, chunk_words=100, model=model)
        events = _events(reply, protocol, model, include_usage=True)
        head = [next(events) for _ in range(_head_length(protocol))]
        first_text = next(events)
        self._start_stream()
        for event in head:
            self._chunk(event)
        if kind == "invalid_json_first":
            self._chunk(_sse(protocol, "content_block_delta", raw="{not json"))
            self._end_stream()
            return
        self._chunk(first_text)
        if kind == "invalid_json":
            self._chunk(
                _sse(protocol, "content_block_delta", raw='{"type": "content_block_delta", ')
            )
            self._end_stream()
        elif kind == "truncated":
            self._end_stream()
        elif kind == "disconnect":
            # Announce a chunk longer than what follows, then drop the connection.
            self.wfile.write(b"400\r\nevent: content_blo")
            self.wfile.flush()
            self.close_connection = True
        elif kind == "error_event":
            error = {"type": "overloaded_error", "message": "Overloaded"}
            if protocol == "anthropic":
                self._chunk(_sse(protocol, "error", {"type": "error", "error": error}))
            else:
                self._chunk(_sse(protocol, None, {"error": {**error, "code": None}}))
            self._end_stream()

    # low-level writing -------------------------------------------------------------------

    def _send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _error_type(status: int, protocol: Protocol) -> str:
    if protocol == "anthropic":
        return {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            413: "request_too_large",
            429: "rate_limit_error",
            529: "overloaded_error",
        }.get(status, "api_error")
    if status == 429:
        return "rate_limit_exceeded"
    return "server_error" if status >= 500 else "invalid_request_error"


def _sse(
    protocol: Protocol, event: str | None, data: object = None, *, raw: str | None = None
) -> bytes:
    text = raw if raw is not None else json.dumps(data)
    if protocol == "anthropic" and event is not None:
        return f"event: {event}\ndata: {text}\n\n".encode()
    return f"data: {text}\n\n".encode()


def _head_length(protocol: Protocol) -> int:
    """How many events come before the first text event."""
    return 3 if protocol == "anthropic" else 1


def _events(
    reply: Reply, protocol: Protocol, model: str, include_usage: bool, *, delay: float = 0.0
) -> Iterator[bytes]:
    pieces = reply.pieces()
    output_tokens = reply.output_tokens if reply.output_tokens is not None else len(pieces)
    model = reply.model or model
    if protocol == "anthropic":
        yield _sse(
            protocol,
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake01",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1},
                },
            },
        )
        yield _sse(
            protocol,
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        yield _sse(protocol, "ping", {"type": "ping"})
        for piece in pieces:
            if delay:
                time.sleep(delay)
            yield _sse(
                protocol,
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        yield _sse(protocol, "content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _sse(
            protocol,
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        yield _sse(protocol, "message_stop", {"type": "message_stop"})
        return

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake01",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    yield _sse(protocol, None, chunk({"role": "assistant", "content": ""}))
    for piece in pieces:
        if delay:
            time.sleep(delay)
        yield _sse(protocol, None, chunk({"content": piece}))
    yield _sse(protocol, None, chunk({}, _openai_finish(reply.stop_reason)))
    if include_usage and reply.usage:
        yield _sse(
            protocol,
            None,
            {
                "id": "chatcmpl-fake01",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": reply.input_tokens,
                    "completion_tokens": output_tokens,
                    "total_tokens": reply.input_tokens + output_tokens,
                },
            },
        )
    yield b"data: [DONE]\n\n"


def _openai_finish(stop_reason: str) -> str:
    return {"end_turn": "stop", "max_tokens": "length"}.get(stop_reason, stop_reason)


def _full_body(reply: Reply, protocol: Protocol, model: str) -> dict[str, Any]:
    pieces = reply.pieces()
    text = "".join(pieces)
    output_tokens = reply.output_tokens if reply.output_tokens is not None else len(pieces)
    model = reply.model or model
    if protocol == "anthropic":
        return {
            "id": "msg_fake01",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": output_tokens},
        }
    body: dict[str, Any] = {
        "id": "chatcmpl-fake01",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": _openai_finish(reply.stop_reason),
            }
        ],
    }
    if reply.usage:
        body["usage"] = {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": reply.input_tokens + output_tokens,
        }
    return body


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    """A running :class:`FakeLLMServer`, stopped (threads joined) after the test. Import it
    into a conftest (``from tests.fakes.llm_server import llm_server``) to use it."""
    with FakeLLMServer() as server:
        yield server
