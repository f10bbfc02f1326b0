"""The quiz as data: question types, the dataclasses a quiz file is read into, and the rules
of the format that grading shares (what "I don't know" is recorded as, how printed output is
compared). No Django import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trials.definition.checker import Problem

QuestionType = Literal[
    "single_choice",
    "multi_choice",
    "numeric",
    "short_answer",
    "predict_output",
    "code_writing",
    "free_text",
]
QUESTION_TYPES: tuple[QuestionType, ...] = (
    "single_choice",
    "multi_choice",
    "numeric",
    "short_answer",
    "predict_output",
    "code_writing",
    "free_text",
)
CHOICE_TYPES = ("single_choice", "multi_choice")
# Types a machine can mark on submission; the other two need people or the sandbox.
OBJECTIVE_TYPES = ("single_choice", "multi_choice", "numeric", "short_answer", "predict_output")
CATEGORIES = ("debugging", "code_reading", "conceptual", "code_writing")
PartialCredit = Literal["all_or_nothing", "per_option", "right_minus_wrong"]
PARTIAL_CREDIT: tuple[PartialCredit, ...] = ("all_or_nothing", "per_option", "right_minus_wrong")
CodeCredit = Literal["all_or_nothing", "proportional"]
CODE_CREDIT: tuple[CodeCredit, ...] = ("all_or_nothing", "proportional")

# The value an "I don't know" answer is recorded as; no choice may use it.
IDK_VALUE = "idk"
IDK_LABEL = "I don't know"

QUIZ_FIELDS = ("title", "shuffle_questions", "shuffle_options", "questions")
COMMON_FIELDS = (
    "key",
    "type",
    "text",
    "code",
    "points",
    "categories",
    "concepts",
    "idk",
    "attention_check",
)
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "single_choice": ("choices", "answer", "shuffle_options"),
    "multi_choice": ("choices", "answers", "partial_credit", "shuffle_options"),
    "numeric": ("answer", "tolerance", "unit"),
    "short_answer": ("accepted", "patterns", "case_sensitive", "normalise_whitespace"),
    "predict_output": ("expected",),
    "code_writing": ("tests", "code_credit"),
    "free_text": ("rubric",),
}
ALL_FIELDS = tuple(dict.fromkeys(COMMON_FIELDS + sum(TYPE_FIELDS.values(), ())))


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class RubricLevel:
    points: float
    description: str


@dataclass(frozen=True)
class Rubric:
    """How people grade a free-text answer; never shown to participants."""

    guidance: str
    levels: tuple[RubricLevel, ...] = ()


@dataclass(frozen=True)
class Question:
    key: str
    type: QuestionType
    text: str
    points: float  # 0 for an attention check, which is not scored
    code: str = ""
    choices: tuple[Choice, ...] = ()
    # The key: a choice value (single choice) or a number (numeric); see the module docstring.
    answer: str | float | None = None
    answers: tuple[str, ...] = ()
    tolerance: float = 0.0
    unit: str = ""
    accepted: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    case_sensitive: bool = False
    normalise_whitespace: bool = True
    expected: str = ""
    tests: str = ""
    code_credit: CodeCredit = "all_or_nothing"
    rubric: Rubric | None = None
    categories: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()
    idk: bool = False
    attention_check: bool = False
    partial_credit: PartialCredit = "all_or_nothing"
    shuffle_options: bool | None = None  # None: follow the quiz

    @property
    def scored(self) -> bool:
        return not self.attention_check

    @property
    def choice_values(self) -> tuple[str, ...]:
        return tuple(c.value for c in self.choices)


@dataclass(frozen=True)
class Quiz:
    title: str
    questions: tuple[Question, ...]
    shuffle_questions: bool = False
    shuffle_options: bool = False

    def question(self, key: str) -> Question:
        for question in self.questions:
            if question.key == key:
                return question
        raise KeyError(key)

    @property
    def scored_questions(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.scored)

    @property
    def attention_checks(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.attention_check)

    @property
    def max_points(self) -> float:
        return sum(q.points for q in self.scored_questions)

    def category_max_points(self) -> dict[str, float]:
        """Points available per category; a question in two categories counts in both."""
        totals: dict[str, float] = {}
        for question in self.scored_questions:
            for category in question.categories:
                totals[category] = totals.get(category, 0.0) + question.points
        return totals


class QuizInvalid(ValueError):
    """The quiz file has problems; ``problems`` lists all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the quiz:\n{lines}")


def normalise_output(text: str) -> str:
    """Program output as compared for predict-the-output: line endings unified, trailing
    spaces dropped from every line, blank lines at either end dropped. Indentation and blank
    lines in between still count."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)
