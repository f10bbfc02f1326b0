"""The quiz: score, maximum, percentage, grading state, attention checks and categories."""

from __future__ import annotations

from typing import Any

from analysis.datasets.columns.base import Computed, col
from analysis.datasets.people import Person, QuizTally
from analysis.datasets.shape import TrialShape


def _scored(shape: TrialShape, p: Person) -> QuizTally | None:
    # A participant's quiz columns are empty unless they answered and the trial has a quiz.
    return p.quiz if shape.quiz_max is not None else None


def _percent(shape: TrialShape, p: Person) -> float | None:
    quiz = _scored(shape, p)
    if quiz is None or not shape.quiz_max:
        return None
    return 100.0 * quiz.points / shape.quiz_max


def quiz_columns(shape: TrialShape) -> list[Computed]:
    def scored(p: Person) -> QuizTally | None:
        return _scored(shape, p)

    return [
        col(
            "quiz_score",
            "number",
            "Quiz points (attention checks excluded); provisional while quiz_final is false",
            "item_responses.points",
            lambda p: q.points if (q := scored(p)) is not None else None,
            unit="points",
        ),
        col(
            "quiz_max",
            "number",
            "Quiz points possible",
            "quiz definition",
            lambda p: shape.quiz_max if scored(p) is not None else None,
            unit="points",
        ),
        col(
            "quiz_percent",
            "number",
            "quiz_score as a percentage of quiz_max",
            "derived",
            lambda p: _percent(shape, p),
            unit="percent",
        ),
        col(
            "quiz_final",
            "boolean",
            "Every quiz answer is graded (false while some wait for graders or the sandbox)",
            "item_responses.status",
            lambda p: q.pending == 0 if (q := scored(p)) is not None else None,
        ),
        col(
            "quiz_pending",
            "integer",
            "Quiz answers still waiting to be graded",
            "item_responses.status",
            lambda p: q.pending if (q := scored(p)) is not None else None,
            unit="count",
        ),
        col(
            "attention_passed",
            "boolean",
            "Answered every attention check correctly (empty if no quiz answers)",
            "item_responses[is_attention_check]",
            lambda p: p.attention_passed,
        ),
    ]


def _category_columns(shape: TrialShape, c: str) -> list[Computed]:
    def points(p: Person) -> Any:
        return p.quiz.cats.get(c, 0.0) if p.quiz is not None else None

    return [
        col(
            f"quiz_cat_{c}",
            "number",
            f"Quiz points in category {c} (a question in two categories counts in both)",
            "item_responses.points",
            points,
            unit="points",
        ),
        col(
            f"quiz_cat_{c}_max",
            "number",
            f"Quiz points possible in category {c}",
            "quiz definition",
            lambda p: shape.category_max[c] if p.quiz is not None else None,
            unit="points",
        ),
    ]


def category_columns(shape: TrialShape) -> list[Computed]:
    return [column for c in shape.categories for column in _category_columns(shape, c)]
