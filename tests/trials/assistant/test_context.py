from __future__ import annotations

from dataclasses import replace

from trials.assistant import AssistantSettings, build_messages
from trials.assistant.context import MAX_CODE_CHARS

SETTINGS = AssistantSettings(system_prompt="You are a tutor.")
CODE = "import trio\n\nasync def main():\n    pass\n"


def build(settings: AssistantSettings = SETTINGS, **overrides: object) -> tuple[str, list]:
    arguments: dict = {
        "task_title": "Task 1: two greeters at once",
        "task_instructions": "# Task 1\n\nRun both greeters in a nursery.",
        "code": CODE,
        "history": [],
        "question": "What is a nursery?",
    }
    arguments.update(overrides)
    return build_messages(settings, **arguments)


def test_the_system_prompt_carries_the_task_and_the_current_code() -> None:
    system, messages = build()
    assert system.startswith("You are a tutor.")
    assert '<task title="Task 1: two greeters at once">' in system
    assert "Run both greeters in a nursery." in system
    assert "<code>\n" + CODE.rstrip() + "\n</code>" in system
    assert messages == [{"role": "user", "content": "What is a nursery?"}]


def test_an_arm_that_does_not_see_code_or_instructions_sends_neither() -> None:
    blind = replace(SETTINGS, sees_code=False, sees_instructions=False)
    system, _ = build(blind)
    assert system == "You are a tutor."
    code_only = replace(SETTINGS, sees_instructions=False)
    system, _ = build(code_only)
    assert "nursery" not in system and "<code>" in system


def test_the_same_inputs_give_the_same_context() -> None:
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert build(history=history) == build(history=list(history))


def test_an_empty_editor_is_said_so() -> None:
    system, _ = build(code="   \n")
    assert "(the editor is empty)" in system


def test_history_becomes_alternating_question_answer_pairs() -> None:
    history = [
        {"role": "assistant", "content": "a greeting nobody asked for"},
        {"role": "user", "content": "first question, its answer failed"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "answer part one"},
        {"role": "assistant", "content": "answer part two"},
        {"role": "user", "content": "   "},
        {"role": "user", "content": "third question, unanswered"},
    ]
    _, messages = build(history=history, question="  now?  ")
    assert messages == [
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "answer part one\n\nanswer part two"},
        {"role": "user", "content": "now?"},
    ]


def test_huge_code_is_cut_and_the_cut_is_marked() -> None:
    code = "x = 1\n" * (MAX_CODE_CHARS // 3)
    system, _ = build(code=code)
    assert len(system) < MAX_CODE_CHARS + 2000
    assert "more characters not shown]" in system


def test_a_quote_in_the_title_cannot_break_the_task_tag() -> None:
    system, _ = build(task_title='Say "hi"')
    assert '<task title="Say \\"hi\\"">' in system
