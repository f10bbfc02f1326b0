from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from trials.assistant import (
    AssistantSettings,
    InvalidAssistantSettings,
    estimate_cost,
    validate_table,
)
from trials.assistant.settings import DEFAULT_SYSTEM_PROMPT

SAMPLE_TRIAL = Path(__file__).parents[3] / "studies" / "trio-skill-formation" / "trial.toml"


def problems(table: dict[str, Any]) -> dict[str, str]:
    return {p.field: p.message for p in validate_table(table)}


def test_the_sample_trials_assistant_table_is_valid_and_scripted() -> None:
    trial = tomllib.loads(SAMPLE_TRIAL.read_text())
    tables = [arm["assistant"] for arm in trial["arms"] if "assistant" in arm]
    assert tables
    for table in tables:
        settings = AssistantSettings.from_table(table)
        assert settings.provider == "scripted"
        assert settings.model == "scripted"
        assert settings.sees_code and settings.sees_instructions


def test_an_empty_table_means_the_scripted_assistant_with_defaults() -> None:
    settings = AssistantSettings.from_table({})
    assert settings == AssistantSettings()
    assert settings.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert settings.api_key_variable is None


def test_real_providers_default_to_their_usual_key_variable() -> None:
    anthropic = AssistantSettings.from_table({"provider": "anthropic", "model": "claude-x"})
    openai = AssistantSettings.from_table({"provider": "openai", "model": "gpt-x"})
    assert anthropic.api_key_env == "ANTHROPIC_API_KEY"
    assert openai.api_key_env == "OPENAI_API_KEY"


@pytest.mark.parametrize(
    "table",
    [
        {},
        {"provider": "scripted", "sees_code": False, "solution_on_request": False},
        {
            "provider": "anthropic",
            "model": "claude-x",
            "system_prompt": "Explain, never write code.",
            "max_tokens": 800,
            "timeout_seconds": 20,
            "max_retries": 1,
            "input_price_per_million_tokens": 3,
            "output_price_per_million_tokens": 15.5,
        },
        {
            "provider": "openai",
            "model": "qwen2.5-coder",
            "base_url": "http://127.0.0.1:11434/v1",
            "api_key_env": "",
            "temperature": 0.2,
        },
    ],
)
def test_to_table_round_trips_and_fills_every_default(table: dict[str, Any]) -> None:
    settings = AssistantSettings.from_table(table)
    normalised = settings.to_table()
    assert AssistantSettings.from_table(normalised) == settings
    assert None not in normalised.values()
    assert {"provider", "model", "system_prompt", "max_tokens", "sees_code"} <= normalised.keys()
    assert normalised == AssistantSettings.from_table(normalised).to_table()


@pytest.mark.parametrize(
    ("table", "field", "words"),
    [
        ({"provider": "gemini"}, "provider", "unknown provider 'gemini'"),
        ({"provider": "anthropic"}, "model", "needs a model"),
        ({"provider": "openai", "model": " "}, "model", "needs a model"),
        (
            {"temperature": 2.5, "provider": "openai", "model": "m"},
            "temperature",
            "between 0 and 2",
        ),
        ({"temperature": -0.1, "provider": "openai", "model": "m"}, "temperature", "between 0"),
        (
            {"temperature": 0.5, "provider": "anthropic", "model": "m"},
            "temperature",
            "no temperature",
        ),
        ({"temperature": "hot"}, "temperature", "must be a number"),
        ({"max_tokens": 0}, "max_tokens", "between 1 and"),
        ({"max_tokens": 1.5}, "max_tokens", "must be an integer"),
        ({"max_tokens": True}, "max_tokens", "must be an integer (got true)"),
        ({"sees_code": "yes"}, "sees_code", "must be true or false"),
        ({"timeout_seconds": 0}, "timeout_seconds", "more than 0"),
        ({"timeout_seconds": 9000}, "timeout_seconds", "at most 600"),
        ({"max_retries": -1}, "max_retries", "between 0 and 10"),
        (
            {"output_price_per_million_tokens": -1},
            "output_price_per_million_tokens",
            "zero or more",
        ),
        ({"colour": "blue"}, "colour", "unknown field 'colour'"),
        ({"base_url": "http://x"}, "base_url", "makes no network requests"),
        (
            {"provider": "openai", "model": "m", "base_url": "localhost:8000"},
            "base_url",
            "http:// or https:// URL",
        ),
        (
            {"provider": "anthropic", "model": "m", "api_key_env": "sk-ant-abc-123"},
            "api_key_env",
            "not the key itself",
        ),
        ({"provider": "openai", "model": "m", "api_key_env": ""}, "api_key_env", "only for"),
        ({"api_key_env": "X"}, "api_key_env", "uses no API key"),
    ],
)
def test_invalid_tables_are_reported_by_field(
    table: dict[str, Any], field: str, words: str
) -> None:
    found = problems(table)
    assert field in found, found
    assert words in found[field]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {"provider": "openai", "temperature": 3, "max_tokens": 0, "sees_code": 1, "extra": 1}
    )
    assert set(found) == {"model", "temperature", "max_tokens", "sees_code", "extra"}


def test_a_key_pasted_into_api_key_env_is_not_repeated_in_the_problem() -> None:
    key = "sk-ant-api03-secretsecret"
    with pytest.raises(InvalidAssistantSettings) as caught:
        AssistantSettings.from_table({"provider": "anthropic", "model": "m", "api_key_env": key})
    assert key not in str(caught.value)


def test_the_constructor_checks_values_too() -> None:
    with pytest.raises(InvalidAssistantSettings, match="max_retries"):
        AssistantSettings(max_retries=99)


def test_problem_fields_name_nested_paths() -> None:
    from trials.assistant import SettingsProblem

    assert SettingsProblem(("entries", 2, "keywords"), "x").field == "entries[2].keywords"
    assert str(SettingsProblem(("model",), "needed")) == "model: needed"


def test_estimated_cost_uses_the_prices_per_million_tokens() -> None:
    settings = AssistantSettings(
        provider="anthropic",
        model="m",
        input_price_per_million_tokens=3.0,
        output_price_per_million_tokens=15.0,
    )
    assert estimate_cost(settings, 1_000_000, 0) == pytest.approx(3.0)
    assert estimate_cost(settings, 2000, 500) == pytest.approx(0.006 + 0.0075)
    assert estimate_cost(AssistantSettings(), 5000, 5000) == 0.0
