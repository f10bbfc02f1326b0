"""The context sent with a question: the system prompt, what the arm lets the assistant see
(the task's instructions, the participant's current code), and the conversation so far.

:func:`build_messages` is deterministic: the same settings and inputs give the same
``(system, messages)``, and that pair is exactly what every provider sends, so it is what the
endpoint logs as "the full context actually sent".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trials.assistant.base import ChatMessage
from trials.assistant.settings import AssistantSettings

# Bounds on what one request carries, so that a pasted megabyte does not become a bill. The
# cut is marked in the text, so the model (and the log) can tell.
MAX_INSTRUCTIONS_CHARS = 20_000
MAX_CODE_CHARS = 30_000
MAX_MESSAGE_CHARS = 20_000
CODE_FILE = "main.py"


def build_messages(
    settings: AssistantSettings,
    *,
    task_title: str,
    task_instructions: str,
    code: str,
    history: Sequence[Mapping[str, str]],
    question: str,
) -> tuple[str, list[ChatMessage]]:
    """The system prompt and messages for one question.

    The system prompt is the arm's ``system_prompt`` followed, when the arm allows, by the
    task (title and instructions) and the participant's current code. ``history`` holds the
    earlier turns as ``{"role": "user"|"assistant", "content": str}``, oldest first; it is
    normalised into strictly alternating question/answer pairs, as the Anthropic API
    requires: a question with no answer after it (its answer failed) is left out, an answer
    with no question before it is joined to the previous answer, empty turns are skipped.
    The question comes last, as a user message.
    """
    parts = [settings.system_prompt.strip()]
    if settings.sees_instructions:
        title = " ".join(task_title.split())
        instructions = _bounded(task_instructions.strip(), MAX_INSTRUCTIONS_CHARS)
        parts.append(
            "The user is working on this task:\n\n"
            f"<task title={_quote(title)}>\n{instructions}\n</task>"
        )
    if settings.sees_code:
        body = code.rstrip()
        shown = _bounded(body, MAX_CODE_CHARS) if body.strip() else "(the editor is empty)"
        parts.append(
            f"The user's current code in the editor ({CODE_FILE}):\n\n<code>\n{shown}\n</code>"
        )
    system = "\n\n".join(p for p in parts if p)

    messages: list[ChatMessage] = []
    pending_question: str | None = None
    for turn in history:
        role = turn.get("role")
        content = _bounded(str(turn.get("content", "")).strip(), MAX_MESSAGE_CHARS)
        if not content:
            continue
        if role == "user":
            pending_question = content
        elif role == "assistant":
            if pending_question is not None:
                messages.append({"role": "user", "content": pending_question})
                messages.append({"role": "assistant", "content": content})
                pending_question = None
            elif messages:
                last = messages[-1]
                messages[-1] = {"role": "assistant", "content": last["content"] + "\n\n" + content}
    messages.append({"role": "user", "content": _bounded(question.strip(), MAX_MESSAGE_CHARS)})
    return system, messages


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... cut: {len(text) - limit} more characters not shown]"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
