"""The real SDK clients (anthropic, openai) against the fake provider on loopback."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from tests.fakes.llm_server import FakeLLMServer, Hang, Malformed, Reply, Status
from tests.trials.assistant.conftest import KEY_ENV
from trials.assistant import (
    AssistantSettings,
    Failed,
    Finished,
    StreamEvent,
    TextDelta,
    build_messages,
    provider_for,
)
from trials.assistant.anthropic_provider import AnthropicProvider
from trials.assistant.openai_provider import OpenAIProvider

PROTOCOLS = ("anthropic", "openai")
HISTORY = [
    {"role": "user", "content": "What is a nursery?"},
    {"role": "assistant", "content": "A nursery runs tasks at the same time."},
]


def settings_for(protocol: str, server: FakeLLMServer, **overrides: object) -> AssistantSettings:
    table: dict[str, object] = {
        "provider": protocol,
        "model": "test-model-1",
        "system_prompt": "You are a careful tutor.",
        "max_tokens": 300,
        "base_url": server.anthropic_base_url
        if protocol == "anthropic"
        else server.openai_base_url,
        "api_key_env": KEY_ENV,
        "timeout_seconds": 1,
        "max_retries": 2,
    }
    table.update(overrides)
    return AssistantSettings.from_table(table)


def context(settings: AssistantSettings) -> tuple[str, list]:
    return build_messages(
        settings,
        task_title="Task 1: two greeters at once",
        task_instructions="Run both greeters in a nursery.",
        code="import trio\n",
        history=HISTORY,
        question="And how do I add a deadline?",
    )


def run(settings: AssistantSettings) -> list[StreamEvent]:
    system, messages = context(settings)
    return list(provider_for(settings).stream(system, messages, settings))


def text_of(events: Sequence[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def last(events: Sequence[StreamEvent]) -> StreamEvent:
    assert events, "the stream yielded nothing"
    assert not any(isinstance(e, Finished | Failed) for e in events[:-1])
    return events[-1]


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_streamed_text_arrives_in_order_and_complete(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    pieces = (
        "Use ",
        "`trio.move_on_after(1)`",
        " around",
        " the nursery",
        ".\n\n```python\nx\n```",
    )
    llm_server.default = Reply(chunks=pieces, input_tokens=321, output_tokens=45)
    events = run(settings_for(protocol, llm_server))
    assert [e.text for e in events if isinstance(e, TextDelta)] == list(pieces)
    finished = last(events)
    assert isinstance(finished, Finished)
    assert (finished.input_tokens, finished.output_tokens) == (321, 45)
    assert finished.stop_reason == "end_turn"
    assert finished.model == "test-model-1"
    assert not finished.usage_estimated
    assert finished.attempts == 1
    assert finished.first_text_ms is not None and finished.first_text_ms <= finished.latency_ms


def test_a_reply_cut_at_the_token_limit_says_max_tokens(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    llm_server.default = Reply("A long answer that was", stop_reason="max_tokens")
    finished = last(run(settings_for(protocol, llm_server)))
    assert isinstance(finished, Finished) and finished.stop_reason == "max_tokens"


def test_the_exact_context_from_build_messages_is_sent(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    settings = settings_for(protocol, llm_server)
    system, messages = context(settings)
    run(settings)
    (request,) = llm_server.requests
    body = request.body
    assert body["model"] == "test-model-1" and body["stream"] is True
    if protocol == "anthropic":
        assert request.path == "/v1/messages"
        assert body["system"] == system
        assert body["messages"] == messages
        assert body["max_tokens"] == 300
        assert "temperature" not in body
    else:
        assert request.path == "/v1/chat/completions"
        assert body["messages"] == [{"role": "system", "content": system}, *messages]
        assert body["max_tokens"] == 300 and "max_completion_tokens" not in body
        assert body["stream_options"] == {"include_usage": True}
        assert "temperature" not in body


def test_the_api_key_is_sent_as_a_bearer_token_read_at_call_time(
    llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    settings = settings_for(protocol, llm_server)
    monkeypatch.setenv(KEY_ENV, "sk-first")
    run(settings)
    monkeypatch.setenv(KEY_ENV, "sk-rotated")
    run(settings)
    first, second = llm_server.requests
    # The anthropic SDK 2.x sends the key as a bearer token too (not x-api-key).
    assert first.headers["authorization"] == "Bearer sk-first"
    assert second.headers["authorization"] == "Bearer sk-rotated"
    if protocol == "anthropic":
        assert first.headers["anthropic-version"]


def test_a_missing_key_fails_as_config_without_a_request(
    llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    failed = last(run(settings_for(protocol, llm_server)))
    assert isinstance(failed, Failed)
    assert failed.kind == "config" and not failed.retryable
    assert KEY_ENV in failed.message
    assert llm_server.requests == []


def test_the_key_never_appears_in_failures_or_reprs(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    # A server that echoes the key in its error message.
    llm_server.script(Status(401, message=f"invalid x-api-key {api_key}"))
    settings = settings_for(protocol, llm_server)
    events = run(settings)
    failed = last(events)
    assert isinstance(failed, Failed) and failed.kind == "auth" and not failed.retryable
    assert failed.status_code == 401
    assert "[redacted]" in failed.message
    for thing in (*events, settings, settings.to_table()):
        assert api_key not in repr(thing)


def test_rate_limited_then_success_is_retried(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    llm_server.script(Status(429, retry_after=0.05), Reply("Done after waiting."))
    events = run(settings_for(protocol, llm_server))
    finished = last(events)
    assert isinstance(finished, Finished) and finished.attempts == 2
    assert text_of(events) == "Done after waiting."
    first, second = llm_server.requests
    assert first.body == second.body
    assert second.time - first.time >= 0.05


def test_a_persistent_server_error_fails_after_the_retries(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    llm_server.fail_next(500, times=5, retry_after=0.01)
    failed = last(run(settings_for(protocol, llm_server, max_retries=2)))
    assert isinstance(failed, Failed)
    assert failed.kind == "server_error" and failed.retryable
    assert failed.status_code == 500 and failed.attempts == 3
    assert len(llm_server.requests) == 3


def test_without_retry_after_the_retry_backs_off(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    llm_server.script(Status(503))
    finished = last(run(settings_for(protocol, llm_server, max_retries=1)))
    assert isinstance(finished, Finished) and finished.attempts == 2
    first, second = llm_server.requests
    # Backoff starts at 0.5 s, minus up to a quarter of jitter.
    assert second.time - first.time >= 0.35


def test_a_retry_after_too_long_to_wait_fails_at_once(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    llm_server.script(Status(429, retry_after=60))
    failed = last(run(settings_for(protocol, llm_server)))
    assert isinstance(failed, Failed)
    assert failed.kind == "rate_limited" and failed.retryable
    assert failed.retry_after_seconds == 60 and failed.attempts == 1


def test_a_refused_request_is_a_config_failure_and_not_retried(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    llm_server.script(Status(404, message="model: test-model-1 not found"))
    failed = last(run(settings_for(protocol, llm_server)))
    assert isinstance(failed, Failed)
    assert failed.kind == "config" and not failed.retryable
    assert "not found" in failed.message and len(llm_server.requests) == 1


@pytest.mark.parametrize(
    "kind", ["invalid_json", "invalid_json_first", "truncated", "disconnect", "wrong_content_type"]
)
def test_a_malformed_answer_fails_as_bad_response(
    llm_server: FakeLLMServer, api_key: str, protocol: str, kind: str
) -> None:
    llm_server.script(Malformed(kind))  # type: ignore[arg-type]
    events = run(settings_for(protocol, llm_server))
    failed = last(events)
    assert isinstance(failed, Failed)
    assert failed.kind == "bad_response" and failed.retryable
    assert len(llm_server.requests) == 1
    if kind in ("invalid_json", "truncated", "disconnect"):
        assert text_of(events) == "Partial answer"  # what came before the break is kept


def test_an_error_event_mid_stream_fails_as_a_server_error(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    llm_server.script(Malformed("error_event"))
    events = run(settings_for(protocol, llm_server))
    failed = last(events)
    assert isinstance(failed, Failed) and failed.kind == "server_error"
    assert "Overloaded" in failed.message
    assert text_of(events) == "Partial answer"
    assert len(llm_server.requests) == 1  # text had arrived: not retried


def test_a_provider_that_never_answers_times_out(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    llm_server.script(Hang())
    failed = last(run(settings_for(protocol, llm_server, timeout_seconds=0.5)))
    assert isinstance(failed, Failed) and failed.kind == "timeout"
    assert failed.attempts == 1  # a time-out is not retried: the participant waited already
    assert len(llm_server.requests) == 1
    assert "within 0.5 s" in failed.message


def test_a_stream_that_stalls_times_out_after_its_text(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    llm_server.script(Hang(after_chunks=2, text="This answer stalls half way"))
    events = run(settings_for(protocol, llm_server, timeout_seconds=0.5))
    failed = last(events)
    assert isinstance(failed, Failed) and failed.kind == "timeout"
    assert text_of(events) == "This answer"


def test_an_unreachable_server_is_a_server_error(api_key: str, protocol: str) -> None:
    with FakeLLMServer() as server:
        settings = settings_for(protocol, server, max_retries=0)
    failed = last(run(settings))  # the server is gone: connection refused
    assert isinstance(failed, Failed) and failed.kind == "server_error" and failed.retryable
    assert "could not reach" in failed.message


def test_closing_the_stream_early_closes_the_connection(
    llm_server: FakeLLMServer, api_key: str, protocol: str
) -> None:
    # The whole answer would take 10 x 0.3 s.
    llm_server.default = Reply("one two three four five six seven eight nine ten", delay=0.3)
    settings = settings_for(protocol, llm_server)
    system, messages = context(settings)
    stream = provider_for(settings).stream(system, messages, settings)
    assert next(iter(stream)) == TextDelta("one two")
    stream.close()  # type: ignore[attr-defined]  # the participant pressed stop
    deadline = time.monotonic() + 1.5
    while llm_server.hang_ups == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert llm_server.hang_ups == 1, "the connection stayed open after the stream was closed"
    llm_server.default = Reply("Fine.")
    assert isinstance(last(run(settings)), Finished)


def test_provider_for_picks_the_sdk_providers(llm_server: FakeLLMServer) -> None:
    assert isinstance(provider_for(settings_for("anthropic", llm_server)), AnthropicProvider)
    assert isinstance(provider_for(settings_for("openai", llm_server)), OpenAIProvider)


# Anthropic only ---------------------------------------------------------------------------


def test_anthropic_overloaded_529_is_retried(llm_server: FakeLLMServer, api_key: str) -> None:
    llm_server.script(Status(529, message="Overloaded", retry_after=0.01))
    finished = last(run(settings_for("anthropic", llm_server)))
    assert isinstance(finished, Finished) and finished.attempts == 2


# OpenAI-compatible only -------------------------------------------------------------------


def test_a_server_without_usage_gets_estimated_counts(
    llm_server: FakeLLMServer, api_key: str
) -> None:
    llm_server.default = Reply("Twelve characters of text....", usage=False)
    settings = settings_for("openai", llm_server)
    finished = last(run(settings))
    assert isinstance(finished, Finished) and finished.usage_estimated
    assert finished.output_tokens == 8  # 29 characters / 4, rounded up
    system, _ = context(settings)
    assert finished.input_tokens >= len(system) // 4


def test_a_local_server_may_need_no_key(
    llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    settings = settings_for("openai", llm_server, api_key_env="", temperature=0.3)
    assert isinstance(last(run(settings)), Finished)
    (request,) = llm_server.requests
    assert request.body["temperature"] == 0.3


def test_openais_own_api_gets_max_completion_tokens(
    llm_server: FakeLLMServer, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No base_url means api.openai.com; the SDK reads OPENAI_BASE_URL, pointing it here.
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.openai_base_url)
    table = settings_for("openai", llm_server).to_table()
    del table["base_url"]
    settings = AssistantSettings.from_table(table)
    assert isinstance(last(run(settings)), Finished)
    (request,) = llm_server.requests
    assert request.body["max_completion_tokens"] == 300 and "max_tokens" not in request.body
