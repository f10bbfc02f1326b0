"""The AI assistant's provider layer: one interface, three providers (scripted, Anthropic,
OpenAI-compatible). No Django import: the endpoint passes settings, task text and history in,
and logs what :func:`build_messages` returns and what the provider's stream yields.

Typical use::

    settings = AssistantSettings.from_table(arm.settings)
    system, messages = build_messages(settings, task_title=..., task_instructions=...,
                                      code=..., history=..., question=...)
    provider = provider_for(settings, material=load_material(trial.files, task.folder))
    for event in provider.stream(system, messages, settings):
        ...  # TextDelta, then one Finished or Failed
"""

from __future__ import annotations

from trials.assistant.base import (
    ChatMessage,
    Failed,
    FailureKind,
    Finished,
    Provider,
    StreamEvent,
    TextDelta,
    estimate_cost,
    estimate_tokens,
)
from trials.assistant.context import build_messages
from trials.assistant.scripted import (
    InvalidMaterial,
    ScriptedAnswer,
    ScriptedMaterial,
    ScriptedProvider,
    is_code_request,
    load_material,
    material_problems,
    parse_material,
)
from trials.assistant.settings import (
    PROVIDERS,
    AssistantSettings,
    InvalidAssistantSettings,
    ProviderName,
    SettingsProblem,
    validate_table,
)

__all__ = [
    "PROVIDERS",
    "AssistantSettings",
    "ChatMessage",
    "Failed",
    "FailureKind",
    "Finished",
    "InvalidAssistantSettings",
    "InvalidMaterial",
    "Provider",
    "ProviderName",
    "ScriptedAnswer",
    "ScriptedMaterial",
    "ScriptedProvider",
    "SettingsProblem",
    "StreamEvent",
    "TextDelta",
    "build_messages",
    "estimate_cost",
    "estimate_tokens",
    "is_code_request",
    "load_material",
    "material_problems",
    "parse_material",
    "provider_for",
    "validate_table",
]


def provider_for(
    settings: AssistantSettings,
    *,
    material: ScriptedMaterial | None = None,
    scripted_chunk_delay: float = 0.0,
) -> Provider:
    """The provider the settings name. ``material`` is the task's scripted material and
    ``scripted_chunk_delay`` the pause between its pieces (both used by the scripted provider
    only; without material the scripted assistant has only its fallback and no solution).
    The SDKs are imported only when their provider is asked for."""
    if settings.provider == "anthropic":
        # deferred: the SDK takes about a second to import; arms without it never pay that
        from trials.assistant.anthropic_provider import AnthropicProvider

        return AnthropicProvider()
    if settings.provider == "openai":
        # deferred: as above, for the openai SDK
        from trials.assistant.openai_provider import OpenAIProvider

        return OpenAIProvider()
    return ScriptedProvider(material, chunk_delay=scripted_chunk_delay)
