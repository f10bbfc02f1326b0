"""Chat completions through the ``openai`` SDK: OpenAI itself, or any OpenAI-compatible server
given by ``base_url`` (vLLM, Ollama, llama.cpp server, hosted gateways), streamed.

Asks for usage with ``stream_options={"include_usage": True}``; a server that sends none gets
estimated counts, flagged ``usage_estimated``. The output limit goes as
``max_completion_tokens`` to OpenAI's own API (where ``max_tokens`` is deprecated and refused
by reasoning models) and as ``max_tokens`` to a server given by ``base_url`` (what vLLM,
Ollama and llama.cpp read). The SDK's own retries are off: :func:`stream_with_retries` retries.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Generator, Iterator, Sequence

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam

from trials.assistant.base import (
    AttemptFailed,
    AttemptResult,
    ChatMessage,
    StreamEvent,
    connection_failure,
    malformed_failure,
    parse_retry_after,
    status_kind,
    stream_with_retries,
    timeout_failure,
)
from trials.assistant.settings import AssistantSettings

# A key the SDK insists on when the server wants none (``api_key_env = ""``).
NO_KEY = "unused"
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


class OpenAIProvider:
    name = "openai"

    def stream(
        self, system: str, messages: Sequence[ChatMessage], settings: AssistantSettings
    ) -> Iterator[StreamEvent]:
        started = time.monotonic()
        variable = settings.api_key_variable
        key = os.environ.get(variable, "") if variable else NO_KEY

        def attempt(result: AttemptResult) -> Generator[str, None, None]:
            if not key:
                raise AttemptFailed(
                    "config", f"the environment variable {variable} holding the API key is not set"
                )
            yield from _attempt(key, system, messages, settings, result)

        return stream_with_retries(
            attempt,
            settings,
            system=system,
            messages=messages,
            started=started,
            secret=key if key != NO_KEY else None,
        )


def _sent_messages(
    system: str, messages: Sequence[ChatMessage]
) -> list[ChatCompletionMessageParam]:
    sent: list[ChatCompletionMessageParam] = []
    if system:
        sent.append({"role": "system", "content": system})
    for m in messages:
        if m["role"] == "user":
            sent.append({"role": "user", "content": m["content"]})
        else:
            sent.append({"role": "assistant", "content": m["content"]})
    return sent


def _read_chunk(chunk: object, result: AttemptResult) -> tuple[str | None, str | None]:
    """(text, finish reason) of the first choice in one streamed chunk; usage and model are
    noted in ``result``. Read with getattr: OpenAI-compatible servers omit fields freely."""
    model = getattr(chunk, "model", None)
    if isinstance(model, str) and model:
        result.model = model
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            result.input_tokens, result.output_tokens = prompt, completion
    text: str | None = None
    finish: str | None = None
    for choice in getattr(chunk, "choices", None) or []:
        if getattr(choice, "index", 0) != 0:
            continue
        content = getattr(getattr(choice, "delta", None), "content", None)
        if isinstance(content, str) and content:
            text = content
        if getattr(choice, "finish_reason", None):
            finish = str(choice.finish_reason)
    return text, finish


def _failure(exc: Exception, settings: AssistantSettings, *, opened: bool) -> AttemptFailed:
    """What an SDK or transport exception means for the participant's question."""
    if isinstance(exc, openai.APIStatusError):
        return _status_failure(exc)
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return timeout_failure(settings)
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
        return connection_failure(exc, opened=opened)
    if isinstance(exc, openai.APIError):
        # An error object sent inside a stream that had started well.
        return AttemptFailed(
            "server_error", f"the provider reported an error mid-stream: {exc.message}"
        )
    return malformed_failure(exc)  # a ValueError: a chunk whose data is not JSON


def _attempt(
    key: str,
    system: str,
    messages: Sequence[ChatMessage],
    settings: AssistantSettings,
    result: AttemptResult,
) -> Generator[str, None, None]:
    official = settings.base_url is None
    opened = False
    finish_reason: str | None = None
    try:
        client = _client(key, settings.base_url, settings.timeout_seconds)
        with (
            client.chat.completions.create(
                model=settings.model,
                messages=_sent_messages(system, messages),
                stream=True,
                stream_options={"include_usage": True},
                temperature=openai.omit if settings.temperature is None else settings.temperature,
                max_completion_tokens=settings.max_tokens if official else openai.omit,
                max_tokens=openai.omit if official else settings.max_tokens,
            ) as chunks,
        ):
            opened = True
            content_type = chunks.response.headers.get("content-type", "")
            if not content_type.startswith("text/event-stream"):
                raise AttemptFailed(
                    "bad_response",
                    f"expected a text/event-stream answer, got {content_type or 'none'!r}",
                    status_code=chunks.response.status_code,
                )
            for chunk in chunks:
                text, finish = _read_chunk(chunk, result)
                if text:
                    yield text
                finish_reason = finish or finish_reason
    except AttemptFailed:
        raise
    except (openai.APIError, httpx2.TimeoutException, httpx2.TransportError, ValueError) as exc:
        raise _failure(exc, settings, opened=opened) from None
    if finish_reason is None:
        raise AttemptFailed("bad_response", "the answer stream ended without a finish_reason")
    result.stop_reason = STOP_REASONS.get(finish_reason, finish_reason)


@functools.lru_cache(maxsize=8)
def _client(key: str, base_url: str | None, timeout: float) -> openai.OpenAI:
    # Building a client costs tens of milliseconds (an SSL context) and a new connection a
    # TLS handshake: arms share clients (thread-safe), keyed by what configures them.
    return openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout, max_retries=0)


def _status_failure(exc: openai.APIStatusError) -> AttemptFailed:
    status = exc.status_code
    detail = exc.message
    if isinstance(exc.body, dict):
        error = exc.body.get("error", exc.body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            detail = error["message"]
    return AttemptFailed(
        status_kind(status),
        f"the provider answered {status}: {detail}",
        status_code=status,
        retry_after_seconds=parse_retry_after(exc.response.headers),
    )
