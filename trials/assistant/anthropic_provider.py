"""Claude through the Anthropic Messages API (the ``anthropic`` SDK), streamed.

Reads the raw server-sent events of ``messages.create(stream=True)``: ``message_start`` (model,
input tokens), ``content_block_delta`` with ``text_delta`` (the text), ``message_delta``
(stop reason, output tokens), ``message_stop`` (the end: a stream without it was cut off).
The SDK's own retries are off (``max_retries=0``): :func:`stream_with_retries` retries,
so that waits stay bounded and each attempt is counted for the log.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Generator, Iterator, Sequence

import anthropic
import httpx2
from anthropic.types import (
    MessageParam,
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
)

from trials.assistant.base import (
    AttemptFailed,
    AttemptResult,
    ChatMessage,
    FailureKind,
    StreamEvent,
    connection_failure,
    malformed_failure,
    parse_retry_after,
    status_kind,
    stream_with_retries,
    timeout_failure,
)
from trials.assistant.settings import AssistantSettings

# The error types of Anthropic's error bodies (also sent mid-stream as an ``error`` event,
# with status 200, so the status code alone cannot classify them).
ERROR_TYPE_KIND: dict[str, FailureKind] = {
    "rate_limit_error": "rate_limited",
    "overloaded_error": "server_error",
    "api_error": "server_error",
    "timeout_error": "timeout",
    "authentication_error": "auth",
    "permission_error": "auth",
    "billing_error": "auth",
    "invalid_request_error": "config",
    "not_found_error": "config",
    "request_too_large": "config",
}


class AnthropicProvider:
    name = "anthropic"

    def stream(
        self, system: str, messages: Sequence[ChatMessage], settings: AssistantSettings
    ) -> Iterator[StreamEvent]:
        started = time.monotonic()
        variable = settings.api_key_variable or "ANTHROPIC_API_KEY"
        key = os.environ.get(variable, "")

        def attempt(result: AttemptResult) -> Generator[str, None, None]:
            if not key:
                raise AttemptFailed(
                    "config", f"the environment variable {variable} holding the API key is not set"
                )
            yield from _attempt(key, system, messages, settings, result)

        return stream_with_retries(
            attempt, settings, system=system, messages=messages, started=started, secret=key
        )


def _attempt(
    key: str,
    system: str,
    messages: Sequence[ChatMessage],
    settings: AssistantSettings,
    result: AttemptResult,
) -> Generator[str, None, None]:
    sent: list[MessageParam] = []
    for m in messages:
        if m["role"] == "user":
            sent.append({"role": "user", "content": m["content"]})
        else:
            sent.append({"role": "assistant", "content": m["content"]})
    opened = stopped = False
    try:
        client = _client(key, settings.base_url, settings.timeout_seconds)
        with (
            client.messages.create(
                model=settings.model,
                max_tokens=settings.max_tokens,
                messages=sent,
                system=system or anthropic.omit,
                stream=True,
            ) as events,
        ):
            opened = True
            content_type = events.response.headers.get("content-type", "")
            if not content_type.startswith("text/event-stream"):
                raise AttemptFailed(
                    "bad_response",
                    f"expected a text/event-stream answer, got {content_type or 'none'!r}",
                    status_code=events.response.status_code,
                )
            for event in events:
                if isinstance(event, RawMessageStartEvent):
                    usage = getattr(event.message, "usage", None)
                    result.model = str(getattr(event.message, "model", "") or "")
                    result.input_tokens = _input_tokens(usage)
                    result.output_tokens = _int_or_none(getattr(usage, "output_tokens", None))
                elif isinstance(event, RawContentBlockDeltaEvent):
                    if getattr(event.delta, "type", None) == "text_delta":
                        yield str(getattr(event.delta, "text", ""))
                elif isinstance(event, RawMessageDeltaEvent):
                    result.stop_reason = str(getattr(event.delta, "stop_reason", "") or "")
                    usage = getattr(event, "usage", None)
                    output_tokens = _int_or_none(getattr(usage, "output_tokens", None))
                    if output_tokens is not None:
                        result.output_tokens = output_tokens
                    # Newer API versions repeat the (cumulative) input count here.
                    input_tokens = _input_tokens(usage)
                    if input_tokens:
                        result.input_tokens = input_tokens
                elif isinstance(event, RawMessageStopEvent):
                    stopped = True
    except AttemptFailed:
        raise
    except (
        anthropic.APIStatusError,
        anthropic.APIConnectionError,
        anthropic.APIResponseValidationError,
        httpx2.TimeoutException,
        httpx2.TransportError,
        ValueError,
    ) as exc:
        raise _failure(exc, settings, opened=opened) from None
    if not stopped:
        raise AttemptFailed("bad_response", "the answer stream ended before message_stop")


@functools.lru_cache(maxsize=8)
def _client(key: str, base_url: str | None, timeout: float) -> anthropic.Anthropic:
    # Building a client costs tens of milliseconds (an SSL context) and a new connection a
    # TLS handshake: arms share clients (thread-safe), keyed by what configures them.
    return anthropic.Anthropic(api_key=key, base_url=base_url, timeout=timeout, max_retries=0)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _input_tokens(usage: object) -> int | None:
    """All input tokens: uncached plus those written to and read from the prompt cache."""
    if usage is None:
        return None
    counts = [
        getattr(usage, name, None)
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    if _int_or_none(counts[0]) is None:
        return None
    return sum(c for c in counts if isinstance(c, int))


def _status_failure(exc: anthropic.APIStatusError) -> AttemptFailed:
    error_type = getattr(exc, "type", None)
    if error_type is None and isinstance(exc.body, dict):
        error = exc.body.get("error")
        error_type = error.get("type") if isinstance(error, dict) else None
    status = exc.status_code
    kind = ERROR_TYPE_KIND.get(str(error_type)) if error_type else None
    if kind is None:
        kind = status_kind(status) if status >= 400 else "server_error"
    detail = getattr(exc, "api_message", None)
    if not isinstance(detail, str) or not detail:
        detail = exc.message
    if status < 400:
        # An error event inside a stream that had started with 200.
        text = f"the provider reported {error_type or 'an error'} mid-stream: {detail}"
    else:
        label = f"{status} {error_type}" if error_type else str(status)
        text = f"the provider answered {label}: {detail}"
    return AttemptFailed(
        kind,
        text,
        status_code=status if status >= 400 else None,
        retry_after_seconds=parse_retry_after(exc.response.headers),
    )


def _failure(exc: Exception, settings: AssistantSettings, *, opened: bool) -> AttemptFailed:
    """What an SDK or transport exception means for the participant's question."""
    if isinstance(exc, anthropic.APIStatusError):
        return _status_failure(exc)
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return timeout_failure(settings)
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return connection_failure(exc, opened=opened)
    return malformed_failure(exc)  # ValueError: an event whose data is not JSON
