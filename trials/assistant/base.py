"""The provider interface: what a provider yields while it answers, and the parts every
provider shares (retries with backoff, token estimates, cost, safe error messages).

A provider's ``stream`` never raises for a provider or network problem: it yields
:class:`Failed`. The stream is ``TextDelta*`` then exactly one ``Finished`` or ``Failed``;
text may have arrived before a ``Failed`` (a stream cut off half-way), and the caller decides
what to show. Closing the iterator early (the participant pressed stop) closes the connection.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict

from trials.assistant.settings import AssistantSettings

logger = logging.getLogger(__name__)

Role = Literal["user", "assistant"]
FailureKind = Literal["timeout", "rate_limited", "server_error", "bad_response", "auth", "config"]

# Waiting longer than this between attempts (a server's retry-after, or backoff) keeps the
# participant staring at a spinner: past it we give up and report the wait instead.
MAX_RETRY_WAIT_SECONDS = 10.0
INITIAL_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
MAX_ERROR_MESSAGE = 500
# Jitter spreads the retries of many participants hit by the same rate limit. Its own
# generator, never the global random state.
_jitter = random.Random()


class ChatMessage(TypedDict):
    role: Role
    content: str


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer, in order."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The answer is complete.

    ``stop_reason`` uses one vocabulary for every provider: ``end_turn`` (the model finished),
    ``max_tokens`` (cut at the settings' limit), else the provider's own word (e.g.
    ``stop_sequence``, ``refusal``, ``content_filter``). ``usage_estimated`` is true when the
    token counts are our estimate (the scripted assistant; servers that report no usage).
    ``attempts`` counts requests made, retries included; times are from the call to
    ``stream`` (``first_text_ms`` None when no text came).
    """

    stop_reason: str
    input_tokens: int
    output_tokens: int
    model: str
    latency_ms: int
    usage_estimated: bool = False
    first_text_ms: int | None = None
    attempts: int = 1


@dataclass(frozen=True)
class Failed:
    """The answer could not be (fully) produced.

    ``message`` is for logs and the experimenter: it never contains an API key, and it is
    not meant for the participant (show a calm message of your own). ``retryable`` says
    whether asking again later may work. ``retry_after_seconds`` is the provider's requested
    wait, when it gave one.
    """

    kind: FailureKind
    message: str
    retryable: bool
    status_code: int | None = None
    retry_after_seconds: float | None = None
    latency_ms: int = 0
    attempts: int = 1


StreamEvent = TextDelta | Finished | Failed


class Provider(Protocol):
    name: str

    def stream(
        self, system: str, messages: Sequence[ChatMessage], settings: AssistantSettings
    ) -> Iterator[StreamEvent]: ...


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: about four characters per token for English and code."""
    return math.ceil(len(text) / 4)


def estimate_input_tokens(system: str, messages: Sequence[ChatMessage]) -> int:
    return estimate_tokens(system) + sum(estimate_tokens(m["content"]) for m in messages)


def estimate_cost(settings: AssistantSettings, input_tokens: int, output_tokens: int) -> float:
    """The estimated price of one exchange from the settings' per-million-token prices."""
    return (
        input_tokens * settings.input_price_per_million_tokens
        + output_tokens * settings.output_price_per_million_tokens
    ) / 1_000_000


def elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def safe_message(message: str, secret: str | None) -> str:
    """An error text fit for logs: the key cut out, whatever a server echoed; bounded."""
    if secret:
        message = message.replace(secret, "[redacted]")
    message = " ".join(message.split())
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[: MAX_ERROR_MESSAGE - 1] + "…"
    return message


class AttemptFailed(Exception):
    """Raised inside one attempt; :func:`stream_with_retries` turns it into a retry or a
    :class:`Failed` event."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        retryable: bool | None = None,
        status_code: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.message = message
        self.retryable = kind_is_retryable(kind) if retryable is None else retryable
        self.status_code = status_code
        self.retry_after_seconds = retry_after_seconds


def error_cause(exc: BaseException) -> str:
    """The name of the network error behind an SDK error (never its text: it may hold a
    URL, and names are enough to tell a refused connection from a reset)."""
    cause = exc.__cause__ or exc.__context__
    return type(cause if cause is not None else exc).__name__


def timeout_failure(settings: AssistantSettings) -> AttemptFailed:
    return AttemptFailed(
        "timeout", f"no answer from the provider within {settings.timeout_seconds:g} s"
    )


def connection_failure(exc: BaseException, *, opened: bool) -> AttemptFailed:
    """A connection lost: before the answer began the provider could not be reached (worth a
    retry); after, the answer was cut off."""
    if opened:
        return AttemptFailed("bad_response", f"the answer stream was cut off ({error_cause(exc)})")
    return AttemptFailed("server_error", f"could not reach the provider ({error_cause(exc)})")


def malformed_failure(exc: BaseException) -> AttemptFailed:
    return AttemptFailed(
        "bad_response", f"the provider sent a malformed answer ({type(exc).__name__})"
    )


# Failures worth a new attempt before any text has arrived. Not time-outs: the participant
# has already waited a full time-out for that attempt.
AUTO_RETRY: frozenset[FailureKind] = frozenset({"rate_limited", "server_error"})


@dataclass
class AttemptResult:
    """What an attempt reports when its stream ended well (filled in while streaming)."""

    stop_reason: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str = ""


Attempt = Callable[[AttemptResult], Generator[str, None, None]]


def stream_with_retries(
    attempt: Attempt,
    settings: AssistantSettings,
    *,
    system: str,
    messages: Sequence[ChatMessage],
    started: float,
    secret: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[StreamEvent]:
    """Run ``attempt`` (one request, yielding text pieces and filling an
    :class:`AttemptResult`, raising :class:`AttemptFailed`) with retries and backoff for rate
    limits and server errors until text has arrived, then report ``Finished`` or ``Failed``.

    Exceptions other than ``AttemptFailed`` are defects of ours or an SDK's: they are logged
    and reported as ``bad_response`` rather than raised, so the participant's stage goes on.
    """
    attempts = 0
    first_text_ms: int | None = None
    pieces: list[str] = []
    while True:
        attempts += 1
        result = AttemptResult()
        try:
            # closing(): when the caller stops early (GeneratorExit at our yield), the
            # attempt's response is closed now, not whenever the garbage collector runs.
            with contextlib.closing(attempt(result)) as texts:
                for piece in texts:
                    if not piece:
                        continue
                    if first_text_ms is None:
                        first_text_ms = elapsed_ms(started)
                    pieces.append(piece)
                    yield TextDelta(piece)
        except AttemptFailed as failure:
            wait = _retry_wait(failure, attempts)
            if _should_retry(failure, wait, attempts, settings, streamed=bool(pieces)):
                assert wait is not None
                logger.info(
                    "assistant %s attempt %d failed (%s), retrying in %.2f s",
                    settings.provider,
                    attempts,
                    failure.kind,
                    wait,
                )
                sleep(wait)
                continue
            yield _failed(failure, secret, started, attempts)
            return
        except Exception as exc:
            logger.warning(
                "assistant %s: unexpected %s while streaming",
                settings.provider,
                type(exc).__name__,
                exc_info=True,
            )
            yield Failed(
                kind="bad_response",
                message=safe_message(f"unexpected {type(exc).__name__}: {exc}", secret),
                retryable=True,
                latency_ms=elapsed_ms(started),
                attempts=attempts,
            )
            return
        text = "".join(pieces)
        yield _finished(result, settings, system, messages, text, started, first_text_ms, attempts)
        return


def _should_retry(
    failure: AttemptFailed,
    wait: float | None,
    attempts: int,
    settings: AssistantSettings,
    *,
    streamed: bool,
) -> bool:
    # Never after text has reached the participant: a retry would show a second answer.
    return (
        not streamed
        and failure.kind in AUTO_RETRY
        and attempts <= settings.max_retries
        and wait is not None
    )


def _failed(failure: AttemptFailed, secret: str | None, started: float, attempts: int) -> Failed:
    return Failed(
        kind=failure.kind,
        message=safe_message(failure.message, secret),
        retryable=failure.retryable,
        status_code=failure.status_code,
        retry_after_seconds=failure.retry_after_seconds,
        latency_ms=elapsed_ms(started),
        attempts=attempts,
    )


def _finished(
    result: AttemptResult,
    settings: AssistantSettings,
    system: str,
    messages: Sequence[ChatMessage],
    text: str,
    started: float,
    first_text_ms: int | None = None,
    attempts: int = 1,
) -> Finished:
    """The end of a good stream; token counts the provider did not report are estimated (and
    marked so)."""
    estimated = result.input_tokens is None or result.output_tokens is None
    return Finished(
        stop_reason=result.stop_reason or "end_turn",
        input_tokens=(
            result.input_tokens
            if result.input_tokens is not None
            else estimate_input_tokens(system, messages)
        ),
        output_tokens=(
            result.output_tokens if result.output_tokens is not None else estimate_tokens(text)
        ),
        model=result.model or settings.model,
        latency_ms=elapsed_ms(started),
        usage_estimated=estimated,
        first_text_ms=first_text_ms,
        attempts=attempts,
    )


def _retry_wait(failure: AttemptFailed, attempts: int) -> float | None:
    """Seconds to wait before the next attempt, or None when the wait would be too long."""
    if failure.retry_after_seconds is not None:
        wait = max(failure.retry_after_seconds, 0.0)
    else:
        backoff = min(INITIAL_BACKOFF_SECONDS * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
        wait = backoff * (1 - 0.25 * _jitter.random())
    return wait if wait <= MAX_RETRY_WAIT_SECONDS else None


def parse_retry_after(headers: object) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds; an HTTP date is not
    worth waiting for here), as both SDKs read them."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * scale
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value >= 0:
            return value
    return None


def status_kind(status: int) -> FailureKind:
    """The failure kind an HTTP error status stands for."""
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server_error"
    # 400, 404, 413, 422...: the request the settings produce was refused (unknown model,
    # context too long, bad parameter): only a change of settings helps.
    return "config"


def kind_is_retryable(kind: FailureKind) -> bool:
    return kind in ("timeout", "rate_limited", "server_error", "bad_response")
