"""An arm's assistant settings: the ``[arms.assistant]`` table of a trial definition.

The settings are the treatment as delivered: every participant of an arm gets exactly these.
They hold the *name* of the environment variable that carries an API key, never the key: the
key is read when a request is made and is never stored, logged, returned or put in an event.
No Django import here: the trial validator and the endpoint pass tables in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

ProviderName = Literal["scripted", "anthropic", "openai"]
PROVIDERS: tuple[ProviderName, ...] = get_args(ProviderName)

DEFAULT_API_KEY_ENV: dict[str, str] = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
}
SCRIPTED_MODEL = "scripted"
DEFAULT_SYSTEM_PROMPT = (
    "You are an AI assistant helping a person who is working on a Python programming task "
    "in a browser-based editor. Answer their questions clearly and concisely. Use Markdown, "
    "and put code in fenced code blocks marked as python."
)
# Upper bounds that catch typos (a time-out of 3000 s, 10^6 output tokens) rather than limits
# of any provider.
MAX_TIMEOUT_SECONDS = 600.0
MAX_RETRIES = 10
MAX_OUTPUT_TOKENS = 128_000
# OpenAI-compatible servers take temperatures in [0, 2]. The Anthropic Messages API (version
# 2026-10-21, which the anthropic SDK 2.x sends) refuses every sampling parameter, even 1.0,
# and the SDK no longer has them: a temperature there is a configuration error, not a no-op.
MAX_TEMPERATURE: dict[str, float | None] = {"anthropic": None, "openai": 2.0, "scripted": 2.0}
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class SettingsProblem:
    """One thing wrong with a settings table (or an ``assistant.toml``), located by its field
    path relative to that table, e.g. ``("temperature",)`` or ``("entries", 2, "keywords")``."""

    path: Path_
    message: str

    @property
    def field(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.path else self.message


class InvalidAssistantSettings(ValueError):
    """Raised by :meth:`AssistantSettings.from_table` (and the constructor) with every problem."""

    def __init__(self, problems: list[SettingsProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class AssistantSettings:
    """What an arm's assistant is: provider, model, prompt, sampling, context and limits.

    ``base_url`` points an OpenAI-compatible provider at a hosted service or a local server
    (vLLM, Ollama, llama.cpp), or either SDK at a test server. ``api_key_env`` names the
    environment variable holding the key (default ``ANTHROPIC_API_KEY`` / ``OPENAI_API_KEY``);
    the empty string means "no key" and is allowed only for an OpenAI-compatible server given
    by ``base_url``. ``timeout_seconds`` bounds each wait on the provider (connecting, and each
    silence while reading the answer); ``max_retries`` counts the extra attempts made for
    rate limits and server errors before any text has arrived. ``temperature`` None means the
    provider's default (nothing is sent); the Anthropic API takes none. Prices are per
    million tokens, in the currency the experimenter uses for the spend cap.
    ``solution_on_request`` matters only to the scripted assistant: when false it declines
    to write the code and offers hints instead.
    """

    provider: ProviderName = "scripted"
    model: str = SCRIPTED_MODEL
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    temperature: float | None = None
    max_tokens: int = 1024
    sees_instructions: bool = True
    sees_code: bool = True
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_seconds: float = 30.0
    max_retries: int = 2
    input_price_per_million_tokens: float = 0.0
    output_price_per_million_tokens: float = 0.0
    solution_on_request: bool = True

    def __post_init__(self) -> None:
        problems = _value_problems(self)
        if problems:
            raise InvalidAssistantSettings(problems)

    @property
    def api_key_variable(self) -> str | None:
        """The environment variable to read the key from; None when no key is used."""
        if self.provider == "scripted":
            return None
        if self.api_key_env is None:
            return DEFAULT_API_KEY_ENV[self.provider]
        return self.api_key_env or None

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> AssistantSettings:
        """Settings from an ``[arms.assistant]`` table; raises :class:`InvalidAssistantSettings`
        carrying every problem found (unknown field, wrong type, value out of range, ...)."""
        problems: list[SettingsProblem] = []
        if not isinstance(table, Mapping):
            raise InvalidAssistantSettings(
                [SettingsProblem((), "the assistant settings must be a table")]
            )
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in FIELD_KINDS:
                allowed = ", ".join(sorted(FIELD_KINDS))
                problems.append(
                    SettingsProblem((key,), f"unknown field '{key}' (allowed: {allowed})")
                )
                continue
            kind = FIELD_KINDS[key]
            if not _is_kind(value, kind):
                problems.append(SettingsProblem((key,), f"must be {kind} (got {_describe(value)})"))
                continue
            values[key] = float(value) if kind == "a number" else value
        provider = values.get("provider", "scripted")
        if provider not in PROVIDERS:
            problems.append(
                SettingsProblem(
                    ("provider",),
                    f"unknown provider {provider!r} (allowed: {', '.join(PROVIDERS)})",
                )
            )
            # The other checks depend on the provider: report this one first.
            raise InvalidAssistantSettings(problems)
        if provider == "scripted":
            values.setdefault("model", SCRIPTED_MODEL)
        else:
            # A missing model is reported by the constructor's checks, like an empty one.
            values.setdefault("model", "")
            values.setdefault("api_key_env", DEFAULT_API_KEY_ENV[provider])
        try:
            settings = cls(**values)
        except InvalidAssistantSettings as exc:
            known = {p.path for p in problems}
            problems.extend(p for p in exc.problems if p.path not in known)
            raise InvalidAssistantSettings(problems) from None
        if problems:
            raise InvalidAssistantSettings(problems)
        return settings

    def to_table(self) -> dict[str, Any]:
        """The normalised table: every field with its value, defaults filled in, no None
        (an unset ``temperature``/``base_url`` is left out). ``from_table`` inverts it."""
        table = {key: value for key, value in asdict(self).items() if value is not None}
        if self.provider != "scripted":
            table["api_key_env"] = self.api_key_variable or ""
        return table


def validate_table(table: Mapping[str, Any]) -> list[SettingsProblem]:
    """Every problem of an ``[arms.assistant]`` table; empty when it is valid."""
    try:
        AssistantSettings.from_table(table)
    except InvalidAssistantSettings as exc:
        return exc.problems
    return []


FIELD_KINDS: dict[str, str] = {
    "provider": "a string",
    "model": "a string",
    "system_prompt": "a string",
    "temperature": "a number",
    "max_tokens": "an integer",
    "sees_instructions": "true or false",
    "sees_code": "true or false",
    "base_url": "a string",
    "api_key_env": "a string",
    "timeout_seconds": "a number",
    "max_retries": "an integer",
    "input_price_per_million_tokens": "a number",
    "output_price_per_million_tokens": "a number",
    "solution_on_request": "true or false",
}


def _is_kind(value: object, kind: str) -> bool:
    # TOML booleans are not numbers for our purposes.
    if isinstance(value, bool):
        return kind == "true or false"
    if kind == "a string":
        return isinstance(value, str)
    if kind == "an integer":
        return isinstance(value, int)
    if kind == "a number":
        return isinstance(value, int | float)
    return False


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _value_problems(s: AssistantSettings) -> list[SettingsProblem]:
    problems: list[SettingsProblem] = []

    def bad(field: str, message: str) -> None:
        problems.append(SettingsProblem((field,), message))

    for name, kind in FIELD_KINDS.items():
        value = getattr(s, name)
        if value is None and name in ("temperature", "base_url", "api_key_env"):
            continue
        if not _is_kind(value, kind):
            bad(name, f"must be {kind} (got {_describe(value)})")
    if problems:
        return problems
    if s.provider not in PROVIDERS:
        bad("provider", f"unknown provider {s.provider!r} (allowed: {', '.join(PROVIDERS)})")
        return problems
    if s.provider != "scripted" and not s.model.strip():
        bad("model", f'the {s.provider} provider needs a model (e.g. model = "...")')
    if s.temperature is not None:
        top = MAX_TEMPERATURE[s.provider]
        if top is None:
            bad("temperature", f"the {s.provider} API takes no temperature; remove it")
        elif not (math.isfinite(s.temperature) and 0.0 <= s.temperature <= top):
            bad(
                "temperature",
                f"must be between 0 and {top:g} for {s.provider} (got {s.temperature:g})",
            )
    if not 1 <= s.max_tokens <= MAX_OUTPUT_TOKENS:
        bad("max_tokens", f"must be between 1 and {MAX_OUTPUT_TOKENS} (got {s.max_tokens})")
    if not (math.isfinite(s.timeout_seconds) and 0 < s.timeout_seconds <= MAX_TIMEOUT_SECONDS):
        bad(
            "timeout_seconds",
            f"must be more than 0 and at most {MAX_TIMEOUT_SECONDS:g} (got {s.timeout_seconds:g})",
        )
    if not 0 <= s.max_retries <= MAX_RETRIES:
        bad("max_retries", f"must be between 0 and {MAX_RETRIES} (got {s.max_retries})")
    for name in ("input_price_per_million_tokens", "output_price_per_million_tokens"):
        price = getattr(s, name)
        if not (math.isfinite(price) and price >= 0):
            bad(name, f"must be zero or more (got {price:g})")
    if s.base_url is not None:
        if s.provider == "scripted":
            bad("base_url", "the scripted assistant makes no network requests; remove base_url")
        elif not re.match(r"^https?://[^\s/]+", s.base_url):
            bad("base_url", f"must be an http:// or https:// URL (got {s.base_url[:60]!r})")
    if s.api_key_env is not None:
        if s.provider == "scripted":
            bad("api_key_env", "the scripted assistant uses no API key; remove api_key_env")
        elif s.api_key_env == "":
            if s.provider != "openai" or s.base_url is None:
                bad(
                    "api_key_env",
                    "may be empty (no key) only for an OpenAI-compatible server given by base_url",
                )
        elif not ENV_NAME_RE.match(s.api_key_env):
            bad(
                "api_key_env",
                "must be the name of an environment variable (letters, digits, underscores), "
                "not the key itself",
            )
    return problems
