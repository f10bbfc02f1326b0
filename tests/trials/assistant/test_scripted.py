from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from trials.assistant import (
    AssistantSettings,
    Finished,
    ScriptedMaterial,
    ScriptedProvider,
    TextDelta,
    build_messages,
    is_code_request,
    load_material,
    material_problems,
    parse_material,
    provider_for,
)
from trials.assistant.scripted import chunks
from trials.definition import load_trial_dir

SAMPLE_DIR = Path(__file__).parents[3] / "studies" / "trio-skill-formation"
TASKS = ("tasks/warmup", "tasks/concurrent_greetings", "tasks/fetch_all")
SETTINGS = AssistantSettings()

MATERIAL = """
fallback = "Ask me about nurseries or deadlines."
[[entries]]
key = "nursery"
keywords = ["nursery", "open_nursery", "at the same time"]
answer = "Use a nursery."
[[entries]]
key = "deadline"
keywords = ["deadline", "move_on_after", "cancel scope"]
answer = "Use move_on_after."
[[entries]]
key = "also_nursery"
keywords = ["nursery"]
answer = "A later entry with the same score."
"""
SOLUTION = "import trio\n\nasync def main():\n    ...\n"


@pytest.fixture(scope="module")
def sample_files() -> dict[str, str]:
    return load_trial_dir(SAMPLE_DIR).files


def ask(provider: ScriptedProvider, question: str, settings: AssistantSettings = SETTINGS):
    system, messages = build_messages(
        settings,
        task_title="Task",
        task_instructions="Do it.",
        code="pass",
        history=[],
        question=question,
    )
    return list(provider.stream(system, messages, settings))


@pytest.mark.parametrize("folder", TASKS)
def test_each_sample_task_has_valid_material_with_its_solution(
    sample_files: dict[str, str], folder: str
) -> None:
    assert material_problems(sample_files[f"{folder}/assistant.toml"]) == []
    material = load_material(sample_files, folder)
    assert len(material.entries) >= 5
    assert material.solution == sample_files[f"{folder}/solution.py"]


@pytest.mark.parametrize(
    ("folder", "question", "source"),
    [
        ("tasks/concurrent_greetings", "How do I run both greeters at the same time?", "nursery"),
        ("tasks/concurrent_greetings", "What is a cancel scope?", "cancel_scope"),
        ("tasks/concurrent_greetings", "How do I know if it timed out?", "cancelled_caught"),
        ("tasks/fetch_all", "One fetch fails and all the others stop", "failures"),
        (
            "tasks/fetch_all",
            "How do I get the return values from start_soon?",
            "collecting_results",
        ),
        ("tasks/warmup", "How do I sort ties alphabetically?", "sorting"),
        ("tasks/warmup", "What's the weather like?", "fallback"),
    ],
)
def test_sample_questions_find_the_prepared_answer(
    sample_files: dict[str, str], folder: str, question: str, source: str
) -> None:
    assert load_material(sample_files, folder).choose(question).source == source


def test_the_best_scoring_entry_wins_and_the_earlier_entry_wins_a_tie() -> None:
    material = parse_material(MATERIAL)
    assert material.choose("How do I open a nursery?").source == "nursery"
    assert material.choose("nursery with a deadline via move_on_after").source == "deadline"
    assert material.choose("Run them at the same time").source == "nursery"
    assert material.choose("tell me a joke").source == "fallback"


def test_words_match_across_underscores_case_and_plurals() -> None:
    material = parse_material(MATERIAL)
    assert material.choose("what does OPEN NURSERY do").source == "nursery"
    assert material.choose("are nurseries like threads?").source == "nursery"
    assert material.choose("what are deadlines").source == "deadline"


@pytest.mark.parametrize(
    "question",
    [
        "Can you write the code for me?",
        "Give me the solution",
        "just show me the full code",
        "fix my code",
        "Please fix this code, it doesn't work",
        "write it for me",
        "solve it",
        "could you complete the function for me?",
        "What's the complete solution?",
        "just the code please",
    ],
)
def test_requests_for_code_are_recognised(question: str) -> None:
    assert is_code_request(question)


@pytest.mark.parametrize(
    "question",
    [
        "What is a nursery?",
        "Can you explain the code in the instructions?",
        "Why does my code print in the wrong order?",
        "How do I fix a TypeError about a coroutine object?",
        "What does start_soon return?",
    ],
)
def test_questions_about_code_are_not_requests_for_it(question: str) -> None:
    assert not is_code_request(question)


def test_a_code_request_gets_the_reference_solution_in_a_python_block() -> None:
    provider = ScriptedProvider(parse_material(MATERIAL, solution=SOLUTION))
    events = ask(provider, "Just write the code for me")
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "```python\n" + SOLUTION.rstrip("\n") + "\n```" in text


def test_an_arm_without_solutions_declines_and_gives_the_best_hint() -> None:
    material = parse_material('decline = "Not the code, but:"\n' + MATERIAL, solution=SOLUTION)
    settings = replace(SETTINGS, solution_on_request=False)
    answer = material.choose("write the code for the nursery", solution_on_request=False)
    assert answer.source == "decline:nursery"
    assert answer.text == "Not the code, but:\n\nUse a nursery."
    events = ask(ScriptedProvider(material), "write the code for the nursery", settings)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert SOLUTION not in text and text == answer.text


def test_without_a_solution_a_code_request_is_answered_from_the_entries() -> None:
    material = parse_material(MATERIAL)
    assert material.choose("write the code for the nursery").source == "nursery"


def test_the_answer_streams_in_small_pieces_then_finishes_as_scripted() -> None:
    provider = ScriptedProvider(parse_material(MATERIAL, solution=SOLUTION))
    events = ask(provider, "give me the solution")
    deltas = [e for e in events if isinstance(e, TextDelta)]
    finished = events[-1]
    assert len(deltas) > 5 and all(len(d.text.split()) <= 3 for d in deltas)
    assert isinstance(finished, Finished) and events[:-1] == deltas
    assert finished.model == "scripted" and finished.stop_reason == "end_turn"
    assert finished.usage_estimated
    assert finished.output_tokens == pytest.approx(len("".join(d.text for d in deltas)) / 4, abs=1)
    assert finished.input_tokens > 0


def test_the_same_question_and_context_give_the_same_answer() -> None:
    one = ask(ScriptedProvider(parse_material(MATERIAL)), "what is a nursery?")
    two = ask(ScriptedProvider(parse_material(MATERIAL)), "what is a nursery?")
    assert [e for e in one if isinstance(e, TextDelta)] == [
        e for e in two if isinstance(e, TextDelta)
    ]
    finished_one, finished_two = one[-1], two[-1]
    assert isinstance(finished_one, Finished) and isinstance(finished_two, Finished)
    assert finished_one.output_tokens == finished_two.output_tokens
    assert finished_one.input_tokens == finished_two.input_tokens


def test_provider_for_gives_the_scripted_provider_with_its_material() -> None:
    material = parse_material(MATERIAL)
    provider = provider_for(SETTINGS, material=material)
    assert isinstance(provider, ScriptedProvider) and provider.material is material
    assert isinstance(provider_for(SETTINGS), ScriptedProvider)


def test_a_task_without_material_still_answers() -> None:
    files = {
        "t/task.toml": 'title = "T"\ninstructions = "i.md"\nsolution = "s.py"\n',
        "t/s.py": SOLUTION,
    }
    material = load_material(files, "t/")
    assert material.entries == () and material.solution == SOLUTION
    assert material.choose("hello").source == "fallback"
    assert material.choose("give me the solution").source == "solution"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "one",
        "  leading space",
        "a b c d e f g",
        "line\n\n  indented\ttab  ",
        "```python\nx\n```",
    ],
)
def test_chunks_join_back_to_exactly_the_text(text: str) -> None:
    assert "".join(chunks(text)) == text


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("fallback = ", "", "not valid TOML"),
        ("colour = 'x'", "colour", "unknown field"),
        ("fallback = ''", "fallback", "non-empty string"),
        ("entries = 3", "entries", "array of tables"),
        ("[[entries]]\nkey='a'\nkeywords=['x']", "entries[0].answer", "non-empty string"),
        ("[[entries]]\nkey='a'\nkeywords=[]\nanswer='x'", "entries[0].keywords", "non-empty"),
        ("[[entries]]\nkey='a'\nkeywords=['!!']\nanswer='x'", "entries[0].keywords", "words"),
        ("[[entries]]\nkey='A b'\nkeywords=['x']\nanswer='x'", "entries[0].key", "lower-case"),
        (
            "[[entries]]\nkey='a'\nkeywords=['x']\nanswer='x'\n"
            "[[entries]]\nkey='a'\nkeywords=['y']\nanswer='y'",
            "entries[1].key",
            "used already",
        ),
        ("[[entries]]\nkey='solution'\nkeywords=['x']\nanswer='x'", "entries[0].key", "used"),
        (
            "[[entries]]\nkey='a'\nkeywords=['x']\nanswer='x'\nhint='y'",
            "entries[0].hint",
            "unknown",
        ),
    ],
)
def test_material_problems_are_located(text: str, field: str, words: str) -> None:
    found = {p.field: p.message for p in material_problems(text)}
    assert field in found, found
    assert words in found[field]


def test_the_default_material_has_a_fallback() -> None:
    assert ScriptedMaterial().choose("anything").text
