from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from quizzes import quizfile
from quizzes.quizfile import (
    IDK_VALUE,
    Quiz,
    QuizInvalid,
    load_quiz,
    order_for_participant,
    participant_questions,
    participant_view,
    quiz_from_source,
)
from trials.definition import stage_files

# One question of every type, valid.
VALID = """
title = "Every type"
shuffle_questions = true
shuffle_options = true

[[questions]]
key = "pick"
type = "single_choice"
text = "Pick one"
choices = [{ value = "a", label = "A" }, { value = "b", label = "B" }, "c"]
answer = "b"
idk = true
points = 1
categories = ["conceptual"]

[[questions]]
key = "many"
type = "multi_choice"
text = "Pick all that apply"
choices = ["a", "b", "c", "d"]
answers = ["a", "c"]
partial_credit = "per_option"
points = 2
categories = ["code_reading", "conceptual"]
concepts = ["nurseries"]

[[questions]]
key = "when"
type = "numeric"
text = "When?"
answer = 1.5
tolerance = 0.1
unit = "seconds"
points = 1.5
categories = ["code_reading"]

[[questions]]
key = "word"
type = "short_answer"
text = "Which function?"
accepted = ["start_soon"]
patterns = ['nursery\\.start_soon(\\(\\))?']
points = 1
categories = ["conceptual"]

[[questions]]
key = "check"
type = "single_choice"
text = "Choose the green one"
choices = ["red", "green"]
answer = "green"
attention_check = true

[[questions]]
key = "prints"
type = "predict_output"
text = "What does it print?"
code = "print(1)"
expected = "1"
points = 1
categories = ["code_reading"]

[[questions]]
key = "write"
type = "code_writing"
text = "Write it"
code = "def f():\\n    pass\\n"
tests = "def test_f():\\n    assert f() == 1\\n"
code_credit = "proportional"
points = 3
categories = ["code_writing"]

[[questions]]
key = "explain"
type = "free_text"
text = "Explain"
points = 2
categories = ["debugging"]

[questions.rubric]
guidance = "Secret grading guidance"

[[questions.rubric.levels]]
points = 0
description = "Nothing right"

[[questions.rubric.levels]]
points = 2
description = "All of it"
"""


PATTERNS_LINE = next(line for line in VALID.splitlines() if line.startswith("patterns"))


def problems(source: str) -> list[str]:
    return [str(p) for p in load_quiz(source, "quiz.toml")[1]]


def line_of(source: str, needle: str, nth: int = 1) -> int:
    hits = [i + 1 for i, line in enumerate(source.splitlines()) if needle in line]
    assert len(hits) >= nth, f"test setup: {needle!r} not found"
    return hits[nth - 1]


def with_question(body: str) -> str:
    return f'title = "T"\n\n[[questions]]\n{body.strip()}\n'


def test_a_quiz_with_every_type_loads_without_problems():
    quiz, found = load_quiz(VALID, "quiz.toml")
    assert found == []
    assert [q.type for q in quiz.questions] == [
        "single_choice",
        "multi_choice",
        "numeric",
        "short_answer",
        "single_choice",
        "predict_output",
        "code_writing",
        "free_text",
    ]
    assert quiz.max_points == 11.5  # the attention check is not scored
    assert quiz.category_max_points() == {
        "conceptual": 4,
        "code_reading": 4.5,
        "code_writing": 3,
        "debugging": 2,
    }
    pick = quiz.question("pick")
    assert pick.choice_values == ("a", "b", "c")
    assert quiz.question("check").points == 0 and not quiz.question("check").scored
    assert quiz.question("when").answer == 1.5
    explain = quiz.question("explain")
    assert explain.rubric is not None
    assert [level.points for level in explain.rubric.levels] == [0, 2]


def test_quiz_from_source_raises_with_every_problem():
    with pytest.raises(QuizInvalid) as caught:
        quiz_from_source(VALID.replace('type = "numeric"', 'type = "number"'))
    assert len(caught.value.problems) >= 1
    assert quiz_from_source(VALID).title == "Every type"


def test_unknown_type_is_located():
    source = VALID.replace('type = "numeric"', 'type = "essay"')
    line = line_of(source, 'type = "essay"')
    assert f"quiz.toml:{line}: questions[2].type: unknown question type 'essay'" in "\n".join(
        problems(source)
    )


def test_missing_answer_is_located_at_the_question():
    source = VALID.replace('answer = "b"\n', "")
    found = "\n".join(problems(source))
    assert "questions[0]: missing required field 'answer'" in found


def test_points_must_be_a_positive_multiple_of_a_half():
    source = VALID.replace("points = 1.5", "points = 1.25")
    line = line_of(source, "points = 1.25")
    assert (
        f"quiz.toml:{line}: questions[2].points: must be a multiple of 0.5 (got 1.25)"
        in problems(source)
    )
    assert any(
        "questions[0].points: must be positive" in p
        for p in problems(VALID.replace("points = 1\n", "points = 0\n", 1))
    )
    assert any(
        "questions[0].points: must be a number" in p
        for p in problems(VALID.replace("points = 1\n", 'points = "1"\n', 1))
    )


def test_scored_question_needs_points_and_categories():
    source = with_question('key = "q"\ntype = "predict_output"\ntext = "x"\nexpected = "1"')
    found = problems(source)
    assert any("questions[0]: missing required field 'points'" in p for p in found)
    assert any("questions[0]: missing required field 'categories'" in p for p in found)


def test_unknown_and_repeated_categories_are_located():
    source = VALID.replace(
        'categories = ["code_reading", "conceptual"]',
        'categories = ["code_reading", "syntax", "code_reading"]',
    )
    line = line_of(source, '"syntax"')
    found = problems(source)
    assert any(
        p.startswith(f"quiz.toml:{line}: questions[1].categories[1]: unknown category 'syntax'")
        for p in found
    )
    assert any(
        "questions[1].categories[2]: category 'code_reading' is listed twice" in p for p in found
    )
    empty = VALID.replace('categories = ["debugging"]', "categories = []")
    assert any("questions[7].categories: needs at least one category" in p for p in problems(empty))


def test_answer_not_among_the_choices_is_located():
    source = VALID.replace('answer = "b"', 'answer = "z"')
    line = line_of(source, 'answer = "z"')
    assert (
        f"quiz.toml:{line}: questions[0].answer: answer 'z' is not among the choices (a, b, c)"
        in problems(source)
    )
    multi = VALID.replace('answers = ["a", "c"]', 'answers = ["a", "x", "a"]')
    found = problems(multi)
    assert any("questions[1].answers[1]: answer 'x' is not among the choices" in p for p in found)
    assert any("questions[1].answers[2]: answer 'a' is listed twice" in p for p in found)


def test_duplicate_keys_are_located_at_the_second_one():
    source = VALID.replace('key = "many"', 'key = "pick"')
    line = line_of(source, 'key = "pick"', nth=2)
    assert (
        f"quiz.toml:{line}: questions[1].key: duplicate question key 'pick' "
        "(first defined at questions[0].key)" in problems(source)
    )


def test_bad_regex_is_located():
    source = VALID.replace(PATTERNS_LINE, "patterns = ['(unclosed']")
    assert "(unclosed" in source
    line = line_of(source, "(unclosed")
    found = problems(source)
    assert any(
        p.startswith(f"quiz.toml:{line}: questions[3].patterns[0]: invalid regular expression")
        for p in found
    ), found


def test_field_of_another_type_and_unknown_fields_are_reported():
    source = VALID.replace('unit = "seconds"', 'unit = "seconds"\nchoices = ["a", "b"]\ncolour = 1')
    found = problems(source)
    assert any(
        "questions[2].choices: a numeric question does not take 'choices'" in p for p in found
    )
    assert any("questions[2].colour: unknown field 'colour'" in p for p in found)
    top = problems('colour = "blue"\n' + VALID)
    assert any(p.startswith("quiz.toml:1: colour: unknown field 'colour'") for p in top)


def test_idk_is_a_reserved_choice_value():
    source = VALID.replace('"c"]\nanswer = "b"', '"idk"]\nanswer = "b"')
    assert any(
        "questions[0].choices[2]: the value 'idk' is reserved" in p for p in problems(source)
    )


def test_attention_check_is_not_scored():
    source = VALID.replace(
        "attention_check = true", 'attention_check = true\npoints = 1\ncategories = ["debugging"]'
    )
    found = problems(source)
    assert any("questions[4].points: an attention check is not scored" in p for p in found)
    assert any("questions[4].categories: an attention check is not scored" in p for p in found)
    free = VALID.replace('key = "explain"', 'key = "explain"\nattention_check = true')
    assert any(
        "questions[7].attention_check: an attention check must be machine-graded" in p
        for p in problems(free)
    )
    only_checks = with_question(
        'key = "c"\ntype = "single_choice"\ntext = "x"\nchoices = ["a", "b"]\nanswer = "a"\n'
        "attention_check = true"
    )
    assert any("a quiz needs at least one scored question" in p for p in problems(only_checks))


def test_rubric_problems_are_located():
    missing = VALID.split("[questions.rubric]")[0]
    assert any("questions[7]: missing required field 'rubric'" in p for p in problems(missing))
    too_high = VALID.replace(
        'points = 2\ndescription = "All of it"', 'points = 3\ndescription = "All of it"'
    )
    found = problems(too_high)
    line = line_of(too_high, "points = 3", nth=2)
    assert any(
        p.startswith(f"quiz.toml:{line}: questions[7].rubric.levels[1].points: must be between 0")
        for p in found
    ), found
    assert any("no level is worth the question's full 2 points" in p for p in found)
    as_string = VALID.split("[questions.rubric]")[0].replace(
        'categories = ["debugging"]', 'categories = ["debugging"]\nrubric = "One point per idea"'
    )
    assert problems(as_string) == []


def test_rules_that_belong_to_one_type():
    bad_rule = VALID.replace('partial_credit = "per_option"', 'partial_credit = "generous"')
    assert any(
        "questions[1].partial_credit: unknown partial credit rule 'generous'" in p
        for p in problems(bad_rule)
    )
    bad_credit = VALID.replace('code_credit = "proportional"', 'code_credit = "most"')
    assert any(
        "questions[6].code_credit: unknown code credit rule 'most'" in p
        for p in problems(bad_credit)
    )
    no_tests = VALID.replace('tests = "def test_f():\\n    assert f() == 1\\n"\n', "")
    assert any("questions[6]: missing required field 'tests'" in p for p in problems(no_tests))
    negative = VALID.replace("tolerance = 0.1", "tolerance = -1")
    assert any("questions[2].tolerance: must not be negative" in p for p in problems(negative))
    no_key = VALID.replace('accepted = ["start_soon"]\n', "").replace(PATTERNS_LINE, "")
    assert any(
        "questions[3]: a short_answer question needs 'accepted'" in p for p in problems(no_key)
    )
    empty_output = VALID.replace('expected = "1"', 'expected = "  "')
    assert any(
        "questions[5].expected: the expected output must not be empty" in p
        for p in problems(empty_output)
    )


def test_every_problem_is_reported_at_once():
    source = (
        VALID.replace('type = "numeric"', 'type = "essay"')
        .replace('answer = "b"', 'answer = "z"')
        .replace("points = 1.5", "points = 1.25")
        .replace('key = "many"', 'key = "pick"')
    )
    found = problems(source)
    for fragment in (
        "unknown question type",
        "not among the choices",
        "multiple of 0.5",
        "duplicate question key",
    ):
        assert any(fragment in p for p in found), fragment


def test_invalid_toml_and_empty_quiz():
    found = problems('title = "T"\n[[questions]]\nkey = \n')
    assert len(found) == 1 and found[0].startswith("quiz.toml:3: invalid TOML")
    assert any(
        "a quiz needs at least one [[questions]] table" in p for p in problems('title = "T"\n')
    )
    assert any(
        "missing required field 'title'" in p
        for p in problems(VALID.replace('title = "Every type"', ""))
    )


# --- what participants see -----------------------------------------------------------------


SECRETS = ("answer", "answers", "expected", "tests", "rubric", "accepted", "patterns")


def test_participant_view_shows_only_what_a_participant_may_see():
    quiz, _ = load_quiz(VALID, "quiz.toml")
    for question in quiz.questions:
        view = participant_view(question)
        assert set(view) <= {"key", "type", "text", "code", "choices", "idk", "unit"}
        dumped = json.dumps(view)
        for secret in SECRETS:
            assert f'"{secret}"' not in dumped
    pick = participant_view(quiz.question("pick"))
    assert pick["choices"][-1] == {"value": IDK_VALUE, "label": "I don't know"}
    assert [c["value"] for c in pick["choices"]] == ["a", "b", "c", IDK_VALUE]
    assert "Secret grading guidance" not in json.dumps(participant_view(quiz.question("explain")))
    assert "assert f() == 1" not in json.dumps(participant_view(quiz.question("write")))
    assert participant_view(quiz.question("when"))["unit"] == "seconds"
    # An attention check looks like any other question: no flag, no missing points.
    check = participant_view(quiz.question("check"))
    assert set(check) == {"key", "type", "text", "idk", "choices"}


# --- per-participant order -----------------------------------------------------------------


def shuffled_source(
    n: int = 10, *, attention_at: int | None = None, questions: bool = True, options: bool = True
) -> str:
    source = (
        f'title = "T"\nshuffle_questions = {str(questions).lower()}\n'
        f"shuffle_options = {str(options).lower()}\n"
    )
    for i in range(n):
        source += (
            f'\n[[questions]]\nkey = "q{i}"\ntype = "single_choice"\ntext = "x"\n'
            'choices = ["a", "b", "c", "d", "e"]\nanswer = "a"\n'
        )
        if i == attention_at:
            source += "attention_check = true\n"
        else:
            source += 'idk = true\npoints = 1\ncategories = ["conceptual"]\n'
    return source


def shuffled_quiz(**kwargs: Any) -> Quiz:
    quiz, found = load_quiz(shuffled_source(**kwargs), "quiz.toml")
    assert found == []
    return quiz


def test_order_is_the_same_for_the_same_seed_and_differs_between_seeds():
    quiz = shuffled_quiz()
    assert order_for_participant(quiz, "trial-1:P1") == order_for_participant(quiz, "trial-1:P1")
    orders = {tuple(order_for_participant(quiz, f"trial-1:P{i}")[0]) for i in range(20)}
    assert len(orders) > 15
    options = {tuple(order_for_participant(quiz, f"trial-1:P{i}")[1]["q0"]) for i in range(20)}
    assert len(options) > 10


def test_order_is_a_permutation_with_i_dont_know_last():
    quiz = shuffled_quiz()
    keys, options = order_for_participant(quiz, "seed")
    assert sorted(keys) == sorted(q.key for q in quiz.questions)
    assert keys != [q.key for q in quiz.questions]
    for key, values in options.items():
        assert values[-1] == IDK_VALUE
        assert sorted(values[:-1]) == ["a", "b", "c", "d", "e"], key


def test_order_is_fixed_when_shuffling_is_off():
    quiz = shuffled_quiz(questions=False, options=False)
    for seed in ("a", "b", "c"):
        keys, options = order_for_participant(quiz, seed)
        assert keys == [f"q{i}" for i in range(10)]
        assert all(values == ["a", "b", "c", "d", "e", IDK_VALUE] for values in options.values())


def test_a_question_can_keep_its_option_order():
    source = shuffled_source().replace('key = "q3"\n', 'key = "q3"\nshuffle_options = false\n')
    quiz, found = load_quiz(source, "quiz.toml")
    assert found == []
    for seed in ("a", "b", "c", "d"):
        assert order_for_participant(quiz, seed)[1]["q3"] == ["a", "b", "c", "d", "e", IDK_VALUE]


def test_attention_checks_keep_their_place():
    quiz = shuffled_quiz(attention_at=4)
    for i in range(30):
        keys, _ = order_for_participant(quiz, f"P{i}")
        assert keys[4] == "q4"


def test_order_does_not_touch_or_depend_on_the_global_random_state():
    quiz = shuffled_quiz()
    random.seed(1)
    state = random.getstate()
    first = order_for_participant(quiz, "P7")
    assert random.getstate() == state
    random.seed(2)
    assert order_for_participant(quiz, "P7") == first


def test_option_order_of_a_question_does_not_depend_on_other_questions():
    quiz = shuffled_quiz()
    fewer = shuffled_quiz(n=2)
    assert order_for_participant(fewer, "P3")[1]["q0"] == order_for_participant(quiz, "P3")[1]["q0"]


def test_each_option_comes_first_about_equally_often():
    quiz = shuffled_quiz()
    firsts = Counter(order_for_participant(quiz, f"P{i}")[1]["q0"][0] for i in range(1000))
    # 1000 draws, 5 options: expected 200 each, sd about 12.6; 140 is more than 4 sd below.
    assert set(firsts) == {"a", "b", "c", "d", "e"}
    assert min(firsts.values()) > 140


def test_participant_questions_follow_the_participant_order():
    quiz = shuffled_quiz()
    keys, options = order_for_participant(quiz, "P9")
    views = participant_questions(quiz, "P9")
    assert [v["key"] for v in views] == keys
    assert [c["value"] for c in views[0]["choices"]] == options[keys[0]]


def test_registering_with_trials_lets_the_definition_loader_check_quiz_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stage_files, "_formats", {})
    quizfile.register_with_trials()
    source = 'title = "No questions"\nshuffle_questions = "yes"\n'
    problems = stage_files.stage_file("quiz").load(source, "quiz.toml")
    assert problems == load_quiz(source, "quiz.toml")[1]
    assert [p.path for p in problems] == ["shuffle_questions", "questions"]
