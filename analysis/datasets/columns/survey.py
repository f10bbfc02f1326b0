"""The answers to the survey stages' questions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analysis.datasets.columns.base import Computed, col
from analysis.datasets.people import Person
from analysis.datasets.shape import TrialShape, allowed, question_type


def _answer(key: str) -> Callable[[Person], Any]:
    def compute(p: Person) -> Any:
        return p.survey[key]

    return compute


def survey_columns(shape: TrialShape) -> list[Computed]:
    return [
        col(
            f"survey_{q['key']}",
            question_type(q),
            f"Survey ({s.key}): {q.get('text', q['key'])}",
            f"stage_records[{s.key}].answers.{q['key']}",
            _answer(q["key"]),
            allowed=allowed(q),
        )
        for s, q in shape.survey
    ]
