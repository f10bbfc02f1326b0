"""Grading rules for quiz answers: pure functions, no Django import.

:func:`grade` marks one response to one question. Objective types (choice, numeric, short
answer, predict-the-output) are marked at once; free text goes to people
(``status="needs_human"``, then :func:`grade_human`), code writing to the sandbox
(``status="needs_sandbox"``: run :func:`code_test_plan`, then :func:`grade_code_tests`).
:func:`total_score` adds up a participant's grades, without attention checks, overall and per
category.

Responses come from the participant's form: a string, a list of strings (select all that
apply), or nothing. The value ``"idk"`` (or a list holding it) is an "I don't know" answer when
the question offers one; it scores 0 and is recorded as such, apart from a wrong answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from quizzes.quizfile import IDK_VALUE, Question, Quiz

# How printed output is compared is a rule of the quiz format, kept with it: the protocol check
# of a quiz file (quizzes.quizfile.sandbox) compares the same way, and the quiz file package
# cannot import this module (which builds on it). Re-exported: callers know it as a grading rule.
from quizzes.quizfile import normalise_output as normalise_output

# auto: marked by rule (or by the sandbox's tests); human: marked by a person.
Status = Literal["auto", "human", "needs_human", "needs_sandbox", "idk", "blank"]
Response = str | float | Sequence[str] | None
# Statuses whose points are not known yet: the score that includes them is provisional.
PENDING: tuple[Status, ...] = ("needs_human", "needs_sandbox")


@dataclass(frozen=True)
class Grade:
    """The mark for one response. ``correct`` is None while people or the sandbox have not
    graded it (and for free text, where there is no single right answer)."""

    points: float
    max_points: float
    status: Status
    correct: bool | None
    detail: str = ""

    @property
    def pending(self) -> bool:
        return self.status in PENDING


@dataclass(frozen=True)
class CategoryScore:
    points: float
    max_points: float

    @property
    def percent(self) -> float:
        return 100.0 * self.points / self.max_points if self.max_points else math.nan


@dataclass(frozen=True)
class QuizScore:
    """A participant's quiz score. Provisional while ``pending`` lists ungraded questions
    (counted as 0 until graded)."""

    points: float
    max_points: float
    by_category: dict[str, CategoryScore]
    pending: tuple[str, ...] = ()
    attention_checks: dict[str, bool] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return not self.pending

    @property
    def percent(self) -> float:
        return 100.0 * self.points / self.max_points if self.max_points else math.nan

    @property
    def passed_attention_checks(self) -> bool:
        return all(self.attention_checks.values())


@dataclass(frozen=True)
class CodeTestPlan:
    """What the sandbox must run for a code-writing answer: the participant's code and the
    question's hidden tests. Report back with :func:`grade_code_tests`."""

    question_key: str
    code: str
    tests: str
    credit: str


# --- normalising responses ----------------------------------------------------------------


def _as_list(response: Response) -> list[str]:
    if response is None:
        return []
    if isinstance(response, str):
        return [response] if response.strip() else []
    if isinstance(response, int | float):
        return [str(response)]
    return [str(r) for r in response if str(r).strip()]


def _as_text(response: Response) -> str:
    if response is None:
        return ""
    if isinstance(response, str):
        return response
    if isinstance(response, int | float):
        return str(response)
    items = [str(r) for r in response]
    return items[0] if len(items) == 1 else "\n".join(items)


def is_blank(response: Response) -> bool:
    return not _as_list(response) or not _as_text(response).strip()


def is_idk(question: Question, response: Response) -> bool:
    return question.idk and any(r.strip() == IDK_VALUE for r in _as_list(response))


def normalise_short_answer(question: Question, text: str) -> str:
    text = text.strip()
    if question.normalise_whitespace:
        text = re.sub(r"\s+", " ", text)
    if not question.case_sensitive:
        text = text.casefold()
    return text


_NUMBER_RE = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


def parse_number(text: str) -> float | None:
    """A number as a person types it: ``3``, ``2.5``, ``2,5`` (decimal comma), ``-1e3``."""
    text = text.strip().replace(" ", "")
    if not _NUMBER_RE.match(text):
        return None
    return float(text.replace(",", "."))


# --- grading ------------------------------------------------------------------------------


def _points(question: Question, fraction: Fraction) -> float:
    return float(Fraction(question.points) * fraction)


def _auto(question: Question, fraction: Fraction, detail: str) -> Grade:
    return Grade(
        points=_points(question, fraction),
        max_points=question.points,
        status="auto",
        correct=fraction == 1,
        detail=detail,
    )


def grade(question: Question, response: Response) -> Grade:
    """Mark one response. Blank and "I don't know" answers score 0 (correct=False) and are
    recorded with their own status. Attention checks are marked like any other question of
    their type but carry 0 points; ``correct`` says whether the check was passed."""
    if is_idk(question, response):
        return Grade(0.0, question.points, "idk", False, 'answered "I don\'t know"')
    if is_blank(response):
        return Grade(0.0, question.points, "blank", False, "no answer")
    if question.type == "single_choice":
        return _grade_single(question, response)
    if question.type == "multi_choice":
        return _grade_multi(question, response)
    if question.type == "numeric":
        return _grade_numeric(question, response)
    if question.type == "short_answer":
        return _grade_short(question, response)
    if question.type == "predict_output":
        ok = normalise_output(_as_text(response)) == normalise_output(question.expected)
        return _auto(
            question, Fraction(int(ok)), "output matches" if ok else "output does not match"
        )
    if question.type == "code_writing":
        if _as_text(response).strip() == question.code.strip():
            return Grade(0.0, question.points, "blank", False, "starter code left unchanged")
        return Grade(0.0, question.points, "needs_sandbox", None, "run the hidden tests")
    return Grade(0.0, question.points, "needs_human", None, "to be graded against the rubric")


def _grade_single(question: Question, response: Response) -> Grade:
    chosen = _as_list(response)
    if len(chosen) != 1:
        return _auto(question, Fraction(0), f"expected one choice, got {len(chosen)}")
    value = chosen[0].strip()
    if value not in question.choice_values:
        return _auto(question, Fraction(0), f"{value!r} is not one of the choices")
    ok = value == question.answer
    return _auto(question, Fraction(int(ok)), f"chose {value!r}")


def _grade_multi(question: Question, response: Response) -> Grade:
    values = set(question.choice_values)
    raw = {r.strip() for r in _as_list(response)}
    chosen = raw & values
    ignored = sorted(raw - values)
    keyed = set(question.answers)
    right = len(chosen & keyed)  # correct options selected
    wrong = len(chosen - keyed)  # incorrect options selected
    judged_right = sum((value in chosen) == (value in keyed) for value in values)
    if question.partial_credit == "per_option":
        # Every option is a true/false judgement; each one judged right earns its share.
        fraction = Fraction(judged_right, len(values))
    elif question.partial_credit == "right_minus_wrong":
        # Each correct option selected earns 1/(number of correct options), each incorrect one
        # selected takes the same away; never below zero.
        fraction = max(Fraction(0), Fraction(right - wrong, len(keyed)))
    else:
        fraction = Fraction(int(chosen == keyed))
    detail = f"{right} of {len(keyed)} correct options selected, {wrong} incorrect"
    if ignored:
        detail += f"; ignored unknown {', '.join(map(repr, ignored))}"
    return _auto(question, fraction, detail)


def _grade_numeric(question: Question, response: Response) -> Grade:
    text = _as_text(response)
    value = parse_number(text)
    if value is None or not isinstance(question.answer, int | float):
        return _auto(question, Fraction(0), f"{text.strip()!r} is not a number")
    key = float(question.answer)
    # A hair of slack so that 0.1 + 0.2 style float noise never marks a right answer wrong.
    slack = question.tolerance + 1e-9 * max(1.0, abs(key))
    ok = abs(value - key) <= slack
    return _auto(question, Fraction(int(ok)), f"answered {value:g}")


def _grade_short(question: Question, response: Response) -> Grade:
    text = normalise_short_answer(question, _as_text(response))
    accepted = {normalise_short_answer(question, a) for a in question.accepted}
    flags = 0 if question.case_sensitive else re.IGNORECASE
    ok = text in accepted or any(re.fullmatch(p, text, flags) for p in question.patterns)
    return _auto(question, Fraction(int(ok)), "accepted" if ok else "not accepted")


def grade_human(question: Question, awarded: float, *, note: str = "") -> Grade:
    """A person's mark for a free-text answer. Must be a multiple of 0.5 between 0 and the
    question's points, and one of the rubric's levels when it has levels."""
    if question.type != "free_text":
        raise ValueError(f"question {question.key!r} is not graded by people")
    if not 0 <= awarded <= question.points or not float(awarded * 2).is_integer():
        raise ValueError(
            f"points must be a multiple of 0.5 between 0 and {question.points:g} (got {awarded})"
        )
    levels = question.rubric.levels if question.rubric else ()
    if levels and not any(level.points == awarded for level in levels):
        allowed = ", ".join(f"{level.points:g}" for level in levels)
        raise ValueError(f"points must be one of the rubric levels ({allowed})")
    return Grade(
        points=float(awarded),
        max_points=question.points,
        status="human",
        correct=None,
        detail=note or "graded by a person",
    )


def code_test_plan(question: Question, response: Response) -> CodeTestPlan:
    """What to run in the sandbox for a code-writing answer."""
    if question.type != "code_writing":
        raise ValueError(f"question {question.key!r} is not a code-writing question")
    return CodeTestPlan(
        question_key=question.key,
        code=_as_text(response),
        tests=question.tests,
        credit=question.code_credit,
    )


def grade_code_tests(question: Question, *, passed: int, total: int, detail: str = "") -> Grade:
    """Points from the hidden tests' results: full points when all pass; with
    ``code_credit = "proportional"``, the share of tests passed. No tests run (a crash before
    collection, a time-out) scores 0."""
    if question.type != "code_writing":
        raise ValueError(f"question {question.key!r} is not a code-writing question")
    if not 0 <= passed <= total:
        raise ValueError(f"passed ({passed}) must be between 0 and total ({total})")
    if total == 0:
        return Grade(0.0, question.points, "auto", False, detail or "no tests ran")
    if question.code_credit == "proportional":
        fraction = Fraction(passed, total)
    else:
        fraction = Fraction(int(passed == total))
    return _auto(question, fraction, detail or f"{passed} of {total} tests passed")


# --- totals -------------------------------------------------------------------------------


def total_score(grades: Mapping[str, Grade], questions: Quiz | Iterable[Question]) -> QuizScore:
    """Add up a participant's grades (keyed by question key). Attention checks are left out
    of every total and reported in ``attention_checks``; a question missing from ``grades``
    counts as unanswered; pending grades count 0 and make the score provisional. A question in
    two categories counts in both category totals."""
    items = questions.questions if isinstance(questions, Quiz) else tuple(questions)
    points = Fraction(0)
    max_points = Fraction(0)
    category_points: dict[str, Fraction] = {}
    category_max: dict[str, Fraction] = {}
    pending: list[str] = []
    attention: dict[str, bool] = {}
    for question in items:
        result = grades.get(question.key) or grade(question, None)
        if question.attention_check:
            attention[question.key] = bool(result.correct)
            continue
        if result.pending:
            pending.append(question.key)
        earned = Fraction(result.points)
        available = Fraction(question.points)
        points += earned
        max_points += available
        for category in question.categories:
            category_points[category] = category_points.get(category, Fraction(0)) + earned
            category_max[category] = category_max.get(category, Fraction(0)) + available
    return QuizScore(
        points=float(points),
        max_points=float(max_points),
        by_category={
            c: CategoryScore(float(category_points[c]), float(category_max[c]))
            for c in category_max
        },
        pending=tuple(pending),
        attention_checks=attention,
    )
