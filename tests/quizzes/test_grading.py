from __future__ import annotations

import math

import pytest

from quizzes.grading import (
    Grade,
    code_test_plan,
    grade,
    grade_code_tests,
    grade_human,
    normalise_output,
    parse_number,
    total_score,
)
from quizzes.quizfile import (
    Choice,
    PartialCredit,
    Question,
    Rubric,
    RubricLevel,
    load_quiz,
)

ABCD = tuple(Choice(v, v.upper()) for v in "abcd")


def single(**kwargs: object) -> Question:
    fields: dict[str, object] = {
        "key": "pick",
        "type": "single_choice",
        "text": "?",
        "points": 2.0,
        "choices": ABCD,
        "answer": "b",
        "categories": ("conceptual",),
    }
    fields.update(kwargs)
    return Question(**fields)  # type: ignore[arg-type]


def multi(
    rule: PartialCredit, points: float = 2.0, answers: tuple[str, ...] = ("a", "b")
) -> Question:
    return Question(
        key="many",
        type="multi_choice",
        text="?",
        points=points,
        choices=ABCD,
        answers=answers,
        partial_credit=rule,
        categories=("code_reading",),
    )


# --- single choice, "I don't know", blanks ------------------------------------------------------


def test_single_choice_right_and_wrong():
    assert grade(single(), "b") == Grade(2.0, 2.0, "auto", True, "chose 'b'")
    wrong = grade(single(), "a")
    assert (wrong.points, wrong.correct, wrong.status) == (0.0, False, "auto")
    assert grade(single(), ["b"]).correct is True  # a form may send a one-item list
    assert grade(single(), " b ").correct is True


def test_single_choice_value_that_is_not_a_choice_scores_zero():
    result = grade(single(), "z")
    assert result.points == 0 and result.correct is False
    assert "not one of the choices" in result.detail
    assert grade(single(), ["a", "b"]).points == 0


def test_i_dont_know_scores_zero_and_is_recorded_as_such():
    result = grade(single(idk=True), "idk")
    assert (result.points, result.max_points, result.status, result.correct) == (
        0.0,
        2.0,
        "idk",
        False,
    )
    # Without the option, "idk" is just a value that is not a choice.
    assert grade(single(), "idk").status == "auto"
    numeric = Question(
        key="n", type="numeric", text="?", points=1, answer=3.0, idk=True, categories=("x",)
    )
    assert grade(numeric, "idk").status == "idk"
    assert (
        grade(
            multi("per_option").__class__(**{**multi("per_option").__dict__, "idk": True}),
            ["a", "idk"],
        ).status
        == "idk"
    )


@pytest.mark.parametrize("response", [None, "", "   ", [], ["", " "]])
def test_blank_answers_score_zero_with_their_own_status(response):
    for question in (single(), multi("per_option")):
        result = grade(question, response)
        assert (result.points, result.status, result.correct) == (0.0, "blank", False)


# --- select all that apply ----------------------------------------------------------------------


def test_all_or_nothing_needs_exactly_the_keyed_set():
    question = multi("all_or_nothing")
    assert grade(question, ["b", "a"]).points == 2
    assert grade(question, ["a"]).points == 0
    assert grade(question, ["a", "b", "c"]).points == 0


def test_per_option_counts_each_option_judged_right():
    question = multi("per_option")  # key {a, b} of {a, b, c, d}; 2 points, 0.5 per option
    assert grade(question, ["a", "b"]).points == 2
    # a: selected and keyed (right); b: keyed, not selected (wrong); c: selected, not keyed
    # (wrong); d: neither (right) -> 2 of 4 judged right -> 2 * 2/4 = 1 point.
    assert grade(question, ["a", "c"]).points == 1
    assert grade(question, ["a"]).points == 1.5  # a, c, d right
    assert grade(question, ["c", "d"]).points == 0
    assert grade(question, ["a", "c"]).correct is False


def test_right_minus_wrong_is_floored_at_zero():
    question = multi("right_minus_wrong")  # 2 correct options; each right +1/2, each wrong -1/2
    assert grade(question, ["a", "b"]).points == 2
    assert grade(question, ["a"]).points == 1
    assert grade(question, ["a", "b", "c"]).points == 1  # (2 - 1) / 2
    assert grade(question, ["a", "c"]).points == 0  # (1 - 1) / 2
    assert grade(question, ["a", "c", "d"]).points == 0  # (1 - 2) / 2 floored at 0
    assert grade(question, ["a", "b", "c", "d"]).points == 0  # selecting everything earns nothing


def test_unknown_values_in_a_selection_are_ignored_and_reported():
    result = grade(multi("all_or_nothing"), ["a", "b", "zz"])
    assert result.points == 2
    assert "'zz'" in result.detail


def test_half_points_come_out_exactly():
    question = multi("per_option", points=2.5, answers=("a",))
    # Five judgements would be needed for 0.5 each; with four options each is worth 0.625.
    assert grade(question, ["a", "b"]).points == pytest.approx(1.875)
    five = Question(
        key="five",
        type="multi_choice",
        text="?",
        points=2.5,
        choices=(*ABCD, Choice("e", "E")),
        answers=("b", "d"),
        partial_credit="per_option",
        categories=("debugging",),
    )
    assert grade(five, ["b"]).points == 2.0  # 4 of 5 judged right, 0.5 each
    assert grade(five, ["b", "c"]).points == 1.5
    assert grade(single(points=1.5), "b").points == 1.5


# --- numeric, short answer, predict the output --------------------------------------------------


def numeric(answer: float = 7.0, tolerance: float = 0.0) -> Question:
    return Question(
        key="when",
        type="numeric",
        text="?",
        points=1.5,
        answer=answer,
        tolerance=tolerance,
        categories=("code_reading",),
    )


def test_numeric_answer_within_the_tolerance():
    assert grade(numeric(), "7").points == 1.5
    assert grade(numeric(), "7.0").correct is True
    assert grade(numeric(), "7.01").correct is False
    assert grade(numeric(2.5, 0.1), "2,45").correct is True  # decimal comma
    assert grade(numeric(2.5, 0.1), "2.61").correct is False
    assert grade(numeric(0.3), str(0.1 + 0.2)).correct is True  # float noise is not an error
    assert grade(numeric(), 7).correct is True


def test_numeric_answer_that_is_not_a_number_scores_zero():
    result = grade(numeric(), "seven")
    assert result.points == 0 and "not a number" in result.detail
    assert parse_number("7 s") is None
    assert parse_number(" -1e3 ") == -1000
    assert parse_number(".5") == 0.5


def short(**kwargs: object) -> Question:
    fields: dict[str, object] = {
        "key": "word",
        "type": "short_answer",
        "text": "?",
        "points": 1.0,
        "accepted": ("start_soon", "nursery start soon"),
        "patterns": (r"nursery\.start_soon(\(\))?",),
        "categories": ("conceptual",),
    }
    fields.update(kwargs)
    return Question(**fields)  # type: ignore[arg-type]


def test_short_answer_normalises_case_and_whitespace():
    assert grade(short(), "  Start_Soon ").correct is True
    assert grade(short(), "nursery   start\tsoon").correct is True
    assert grade(short(), "start").correct is False
    assert grade(short(case_sensitive=True), "Start_Soon").correct is False
    assert grade(short(normalise_whitespace=False), "nursery  start soon").correct is False


def test_short_answer_patterns_must_match_the_whole_answer():
    assert grade(short(), "nursery.start_soon()").correct is True
    assert grade(short(), "NURSERY.START_SOON").correct is True
    assert grade(short(), "use nursery.start_soon here").correct is False


def predict(expected: str = "a\n  b\n\nc\n") -> Question:
    return Question(
        key="prints",
        type="predict_output",
        text="?",
        points=2.0,
        expected=expected,
        categories=("code_reading",),
    )


def test_predict_output_ignores_trailing_spaces_line_endings_and_outer_blank_lines():
    assert grade(predict(), "a  \r\n  b\r\n\r\nc").correct is True
    assert grade(predict(), "\na\n  b\n\nc\n\n\n").correct is True
    assert grade(predict(), "a\nb\n\nc").correct is False  # indentation counts
    assert grade(predict(), "a\n  b\nc").correct is False  # a blank line inside counts
    assert grade(predict(), "c\n  b\n\na").correct is False
    assert normalise_output("x \r\ny\r") == "x\ny"


# --- people and the sandbox ---------------------------------------------------------------------


def free_text(levels: tuple[RubricLevel, ...] = ()) -> Question:
    return Question(
        key="explain",
        type="free_text",
        text="?",
        points=2.0,
        rubric=Rubric("guidance", levels),
        idk=True,
        categories=("debugging", "conceptual"),
    )


def test_free_text_goes_to_people():
    result = grade(free_text(), "It never ran.")
    assert (result.status, result.points, result.correct, result.pending) == (
        "needs_human",
        0.0,
        None,
        True,
    )
    assert grade(free_text(), "").status == "blank"
    assert grade(free_text(), "idk").status == "idk"


def test_a_person_awards_half_points_within_the_maximum_and_the_rubric_levels():
    assert grade_human(free_text(), 1.5) == Grade(1.5, 2.0, "human", None, "graded by a person")
    for bad in (-0.5, 2.5, 0.75):
        with pytest.raises(ValueError, match=r"multiple of 0\.5"):
            grade_human(free_text(), bad)
    levels = (RubricLevel(0, "none"), RubricLevel(1, "half"), RubricLevel(2, "all"))
    assert grade_human(free_text(levels), 1).points == 1
    with pytest.raises(ValueError, match="rubric levels"):
        grade_human(free_text(levels), 0.5)
    with pytest.raises(ValueError, match="not graded by people"):
        grade_human(single(), 1)


def code(credit: str = "all_or_nothing") -> Question:
    return Question(
        key="write",
        type="code_writing",
        text="?",
        points=3.0,
        code="def f():\n    pass\n",
        tests="def test_f():\n    assert f() == 1\n",
        code_credit=credit,  # type: ignore[arg-type]
        categories=("code_writing",),
    )


def test_code_writing_asks_for_the_sandbox():
    result = grade(code(), "def f():\n    return 1\n")
    assert (result.status, result.correct, result.pending) == ("needs_sandbox", None, True)
    assert grade(code(), "def f():\n    pass\n").status == "blank"  # starter left unchanged
    plan = code_test_plan(code("proportional"), "def f():\n    return 1\n")
    assert plan.tests == code().tests and plan.code.startswith("def f")
    assert plan.credit == "proportional"
    with pytest.raises(ValueError):
        code_test_plan(single(), "x")


def test_test_results_become_points():
    assert grade_code_tests(code(), passed=4, total=4).points == 3
    assert grade_code_tests(code(), passed=3, total=4).points == 0
    assert grade_code_tests(code("proportional"), passed=3, total=4).points == 2.25
    assert grade_code_tests(code("proportional"), passed=3, total=4).correct is False
    none_ran = grade_code_tests(code("proportional"), passed=0, total=0)
    assert none_ran.points == 0 and none_ran.detail == "no tests ran"
    with pytest.raises(ValueError):
        grade_code_tests(code(), passed=5, total=4)


# --- attention checks and totals ----------------------------------------------------------------


QUIZ = """
title = "T"

[[questions]]
key = "one"
type = "single_choice"
text = "?"
choices = ["a", "b"]
answer = "a"
points = 1
categories = ["conceptual"]

[[questions]]
key = "both"
type = "numeric"
text = "?"
answer = 2
points = 2.5
categories = ["debugging", "code_reading"]

[[questions]]
key = "check"
type = "single_choice"
text = "Choose b"
choices = ["a", "b"]
answer = "b"
attention_check = true

[[questions]]
key = "essay"
type = "free_text"
text = "?"
rubric = "One point per idea"
points = 2
categories = ["debugging"]
"""


def test_attention_check_is_marked_but_never_scored():
    quiz, found = load_quiz(QUIZ, "quiz.toml")
    assert found == []
    check = quiz.question("check")
    assert grade(check, "b") == Grade(0.0, 0.0, "auto", True, "chose 'b'")
    assert grade(check, "a").correct is False
    passed = total_score({"check": grade(check, "b")}, quiz)
    failed = total_score({"check": grade(check, "a")}, quiz)
    assert passed.points == failed.points == 0
    assert passed.max_points == failed.max_points == 5.5
    assert passed.attention_checks == {"check": True} and passed.passed_attention_checks
    assert failed.attention_checks == {"check": False} and not failed.passed_attention_checks


def test_total_counts_a_question_in_two_categories_in_both():
    quiz, _ = load_quiz(QUIZ, "quiz.toml")
    grades = {
        "one": grade(quiz.question("one"), "a"),
        "both": grade(quiz.question("both"), "2"),
        "check": grade(quiz.question("check"), "a"),
        "essay": grade_human(quiz.question("essay"), 1.5),
    }
    score = total_score(grades, quiz)
    assert (score.points, score.max_points) == (5.0, 5.5)
    assert score.percent == pytest.approx(100 * 5 / 5.5)
    assert {c: (s.points, s.max_points) for c, s in score.by_category.items()} == {
        "conceptual": (1, 1),
        "debugging": (4, 4.5),
        "code_reading": (2.5, 2.5),
    }
    assert score.final


def test_a_score_is_provisional_while_anything_waits_for_people():
    quiz, _ = load_quiz(QUIZ, "quiz.toml")
    grades = {"one": grade(quiz.question("one"), "a"), "essay": grade(quiz.question("essay"), "x")}
    score = total_score(grades, quiz)
    # "both" has no grade: unanswered, 0 points, but not pending.
    assert (score.points, score.pending, score.final) == (1.0, ("essay",), False)
    assert total_score({}, quiz.questions).points == 0
    assert math.isnan(total_score({}, []).percent)
