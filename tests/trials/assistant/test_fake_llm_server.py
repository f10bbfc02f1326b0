"""The fake provider itself: what other tests (the endpoint's, the browser's) rely on."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading

import anthropic
import openai

from tests.fakes.llm_server import FakeLLMServer, Hang, Reply


def post(server: FakeLLMServer, path: str, body: dict, timeout: float = 5) -> tuple[int, str]:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("POST", path, json.dumps(body), {"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def post_quietly(server: FakeLLMServer, path: str, body: dict) -> None:
    # The answer is cut off when the server stops: that is the point, not an error.
    with contextlib.suppress(http.client.HTTPException, OSError):
        post(server, path, body, timeout=10)


def handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


def test_stopping_releases_hanging_handlers_and_joins_their_threads() -> None:
    server = FakeLLMServer().start()
    server.script(Hang(), Hang(after_chunks=1))
    clients = [
        threading.Thread(
            target=post_quietly,
            args=(server, "/v1/messages", {"stream": True}),
            daemon=True,
        )
        for _ in range(2)
    ]
    for client in clients:
        client.start()
    server.wait_for_requests(2)
    assert len(handler_threads()) >= 2
    server.stop()  # returns with no handler left, although two clients still wait
    assert handler_threads() == []
    for client in clients:
        client.join(timeout=5)
        assert not client.is_alive()


def test_the_anthropic_stream_has_the_real_event_types_in_order(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.default = Reply("Hi there", chunk_words=1)
    status, text = post(llm_server, "/v1/messages", {"model": "m", "stream": True})
    assert status == 200
    events = [
        line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event:")
    ]
    assert events == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_the_openai_stream_ends_with_usage_when_asked_then_done(
    llm_server: FakeLLMServer,
) -> None:
    body = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    _, text = post(llm_server, "/v1/chat/completions", body)
    data = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 25
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    _, text = post(llm_server, "/v1/chat/completions", {"model": "m", "stream": True})
    assert '"usage"' not in text


def test_non_streaming_requests_get_one_json_body_the_sdks_read(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.default = Reply("Whole answer at once.", input_tokens=7, output_tokens=4)
    with anthropic.Anthropic(
        api_key="k", base_url=llm_server.anthropic_base_url, max_retries=0
    ) as claude:
        message = claude.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert message.content[0].type == "text" and message.content[0].text == "Whole answer at once."
    assert message.usage.input_tokens == 7 and message.stop_reason == "end_turn"
    with openai.OpenAI(api_key="k", base_url=llm_server.openai_base_url, max_retries=0) as gpt:
        completion = gpt.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content == "Whole answer at once."
    assert completion.usage is not None and completion.usage.completion_tokens == 4


def test_requests_are_recorded_with_headers_and_body(llm_server: FakeLLMServer) -> None:
    post(llm_server, "/v1/chat/completions", {"model": "m", "messages": []})
    status, _ = post(llm_server, "/elsewhere", {"x": 1})
    first, second = llm_server.requests
    assert first.protocol == "openai" and first.body == {"model": "m", "messages": []}
    assert first.headers["content-type"] == "application/json"
    assert second.protocol is None and status == 404
