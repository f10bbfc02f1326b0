"""The quiz file: its format, its validation, and what a participant may see of it.

A quiz is a TOML file in the trial folder (``quiz.toml``), referenced by a quiz stage. It is
read with :func:`load_quiz`, which returns a typed :class:`Quiz` together with *every* problem
found, each located by file, field path (``questions[3].answer``) and line, in the same way
as the rest of the trial definition (:mod:`trials.definition`). No Django import here.

Format::

    title = "What did you learn?"        # required
    shuffle_questions = false            # per-participant order (seeded); attention checks stay
    shuffle_options = false              # per-participant option order of choice questions

    [[questions]]
    key = "nursery_exit"                 # required, lowercase identifier, unique
    type = "single_choice"               # see QUESTION_TYPES
    text = "Markdown shown to the participant"
    code = "optional code block shown with the question"
    choices = [{ value = "a", label = "..." }, ...]   # single_choice / multi_choice
    answer = "a"                         # the key (see below for each type)
    points = 1.5                         # positive, a multiple of 0.5
    categories = ["conceptual"]          # one or more of CATEGORIES
    concepts = ["nurseries"]             # free tags
    idk = true                           # offer "I don't know" (scores 0, recorded as such)
    attention_check = false              # flagged and not scored: no points, no categories

Answer keys by type:

* ``single_choice``: ``answer`` (a choice value); optional ``shuffle_options`` override.
* ``multi_choice`` (select all that apply): ``answers`` (choice values) and ``partial_credit``
  = ``all_or_nothing`` (default) | ``per_option`` | ``right_minus_wrong``.
* ``numeric``: ``answer`` (a number), ``tolerance`` (absolute, default 0), optional ``unit``.
* ``short_answer``: ``accepted`` (strings) and/or ``patterns`` (regular expressions, matched in
  full), ``case_sensitive`` (default false), ``normalise_whitespace`` (default true).
* ``predict_output``: ``expected`` (what the code prints; compared line by line after
  normalising line endings, trailing spaces and blank lines at either end).
* ``code_writing``: ``tests`` (hidden test code run in the sandbox), ``code_credit`` =
  ``all_or_nothing`` (default) | ``proportional``; ``code`` is the starter code.
* ``free_text``: ``rubric`` — a string of guidance for graders, or a table
  ``{ guidance = "...", levels = [{ points = 2, description = "..." }, ...] }``. The maximum
  is the question's ``points``; if levels are given, graders award one of the levels.
"""

from __future__ import annotations

import hashlib
import random
import re
import tomllib
from dataclasses import dataclass
from typing import Any, Literal

from trials.definition import (
    Path_,
    Problem,
    _check_key,
    _Checker,
    _norm_choices,
    _toml_problem,
    _unique,
)

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


# --- reading ------------------------------------------------------------------------------


def load_quiz(source: str, file: str) -> tuple[Quiz, list[Problem]]:
    """Parse and validate a quiz file. Returns the quiz (best effort when there are problems)
    and every problem found; the quiz may only be used when the list is empty."""
    problems: list[Problem] = []
    try:
        raw = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        return Quiz(title="", questions=()), [_toml_problem(file, exc)]
    check = _Checker(file, source, problems)
    check.unknown_keys(raw, (), QUIZ_FIELDS)
    title = check.get(raw, (), "title", str, required=True, default="")
    shuffle_questions = check.get(raw, (), "shuffle_questions", bool, default=False)
    shuffle_options = check.get(raw, (), "shuffle_options", bool, default=False)
    items = check.table_list(raw, (), "questions")
    if raw.get("questions", []) == []:
        check.error(("questions",), "a quiz needs at least one [[questions]] table")
    questions = [_question(check, ("questions", i), item) for i, item in enumerate(items)]
    _unique(
        check,
        [(("questions", i, "key"), q.key) for i, q in enumerate(questions) if q.key],
        "question key",
    )
    if items and not any(q.scored for q in questions):
        check.error(("questions",), "a quiz needs at least one scored question")
    quiz = Quiz(
        title=title,
        questions=tuple(questions),
        shuffle_questions=shuffle_questions,
        shuffle_options=shuffle_options,
    )
    return quiz, problems


def quiz_from_source(source: str, file: str = "quiz.toml") -> Quiz:
    """The quiz of a file already known to be valid (e.g. stored at import); raises
    :class:`QuizInvalid` otherwise."""
    quiz, problems = load_quiz(source, file)
    if problems:
        raise QuizInvalid(problems)
    return quiz


def _half_points(value: float) -> bool:
    return float(value * 2).is_integer()


def _string_list(check: _Checker, table: dict[str, Any], path: Path_, key: str) -> list[str]:
    values = check.get(table, path, key, list, default=[])
    out: list[str] = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            out.append(value)
        else:
            check.error(path + (key, i), f"must be a string (got {value!r})")
    return out


def _question(check: _Checker, path: Path_, raw: dict[str, Any]) -> Question:
    key = check.get(raw, path, "key", str, required=True, default="")
    if key:
        _check_key(check, path + ("key",), key, "question key")
    qtype = check.get(raw, path, "type", str, required=True, default="")
    known_type = qtype in QUESTION_TYPES
    if qtype and not known_type:
        check.error(
            path + ("type",),
            f"unknown question type {qtype!r} (allowed: {', '.join(QUESTION_TYPES)})",
        )
    for name in raw:
        if name not in ALL_FIELDS:
            check.error(
                path + (name,), f"unknown field '{name}' (allowed: {', '.join(ALL_FIELDS)})"
            )
        elif known_type and name not in COMMON_FIELDS and name not in TYPE_FIELDS[qtype]:
            check.error(path + (name,), f"a {qtype} question does not take '{name}'")

    text = check.get(raw, path, "text", str, required=True, default="")
    if "text" in raw and isinstance(raw["text"], str) and not text.strip():
        check.error(path + ("text",), "must not be empty")
    attention = check.get(raw, path, "attention_check", bool, default=False)
    idk = check.get(raw, path, "idk", bool, default=False)

    points = _points(check, path, raw, attention)
    categories = _categories(check, path, raw, attention)
    concepts = _string_list(check, raw, path, "concepts")
    for i, concept in enumerate(concepts):
        if not concept.strip():
            check.error(path + ("concepts", i), "a concept tag must not be empty")

    fields: dict[str, Any] = {}
    if qtype in CHOICE_TYPES:
        fields.update(_choice_fields(check, path, raw, qtype))
    elif qtype == "numeric":
        fields.update(_numeric_fields(check, path, raw))
    elif qtype == "short_answer":
        fields.update(_short_answer_fields(check, path, raw))
    elif qtype == "predict_output":
        expected = check.get(raw, path, "expected", str, required=True, default="")
        if "expected" in raw and isinstance(raw["expected"], str) and not expected.strip():
            check.error(path + ("expected",), "the expected output must not be empty")
        fields["expected"] = expected
    elif qtype == "code_writing":
        fields.update(_code_writing_fields(check, path, raw))
    elif qtype == "free_text":
        fields["rubric"] = _rubric(check, path, raw, points)

    if attention and qtype in ("code_writing", "free_text"):
        check.error(
            path + ("attention_check",),
            "an attention check must be machine-graded (not code_writing or free_text)",
        )

    return Question(
        key=key,
        type=qtype if known_type else "free_text",
        text=text,
        code=check.get(raw, path, "code", str, default=""),
        points=points,
        categories=categories,
        concepts=tuple(concepts),
        idk=idk,
        attention_check=attention,
        **fields,
    )


def _points(check: _Checker, path: Path_, raw: dict[str, Any], attention: bool) -> float:
    if attention:
        if "points" in raw:
            check.error(path + ("points",), "an attention check is not scored: remove 'points'")
        return 0.0
    points = check.get(raw, path, "points", float, required=True, default=None)
    if points is None:
        return 0.0
    if points <= 0:
        check.error(path + ("points",), f"must be positive (got {points})")
        return 0.0
    if not _half_points(points):
        check.error(path + ("points",), f"must be a multiple of 0.5 (got {points})")
    return float(points)


def _categories(
    check: _Checker, path: Path_, raw: dict[str, Any], attention: bool
) -> tuple[str, ...]:
    if attention:
        if "categories" in raw:
            check.error(
                path + ("categories",), "an attention check is not scored: remove 'categories'"
            )
        return ()
    categories = _string_list(check, raw, path, "categories")
    if "categories" not in raw:
        check.error(path, "missing required field 'categories'")
    elif not categories and isinstance(raw["categories"], list):
        check.error(path + ("categories",), "needs at least one category")
    out: list[str] = []
    for i, category in enumerate(categories):
        if category not in CATEGORIES:
            check.error(
                path + ("categories", i),
                f"unknown category {category!r} (allowed: {', '.join(CATEGORIES)})",
            )
        elif category in out:
            check.error(path + ("categories", i), f"category {category!r} is listed twice")
        else:
            out.append(category)
    return tuple(out)


def _choice_fields(check: _Checker, path: Path_, raw: dict[str, Any], qtype: str) -> dict[str, Any]:
    choices = _norm_choices(check, path + ("choices",), raw.get("choices"))
    if 0 < len(choices) < 2:
        check.error(path + ("choices",), "needs at least two choices")
    values = [c["value"] for c in choices]
    for i, value in enumerate(values):
        if value == IDK_VALUE:
            check.error(
                path + ("choices", i),
                f'the value {IDK_VALUE!r} is reserved for "I don\'t know": use idk = true',
            )
        elif not value.strip():
            check.error(path + ("choices", i), "a choice value must not be empty")
    fields: dict[str, Any] = {
        "choices": tuple(Choice(c["value"], c["label"]) for c in choices),
        "shuffle_options": check.get(raw, path, "shuffle_options", bool, default=None),
    }
    if qtype == "single_choice":
        answer = check.get(raw, path, "answer", str, required=True, default=None)
        if answer is not None and values and answer not in values:
            check.error(
                path + ("answer",),
                f"answer {answer!r} is not among the choices ({', '.join(values)})",
            )
        fields["answer"] = answer
    else:
        answers = _string_list(check, raw, path, "answers")
        if "answers" not in raw:
            check.error(path, "missing required field 'answers'")
        elif not answers and isinstance(raw["answers"], list):
            check.error(path + ("answers",), "needs at least one correct choice")
        for i, answer in enumerate(answers):
            if values and answer not in values:
                check.error(
                    path + ("answers", i),
                    f"answer {answer!r} is not among the choices ({', '.join(values)})",
                )
            if answer in answers[:i]:
                check.error(path + ("answers", i), f"answer {answer!r} is listed twice")
        partial = check.get(raw, path, "partial_credit", str, default="all_or_nothing")
        if partial not in PARTIAL_CREDIT:
            check.error(
                path + ("partial_credit",),
                f"unknown partial credit rule {partial!r} (allowed: {', '.join(PARTIAL_CREDIT)})",
            )
            partial = "all_or_nothing"
        fields["answers"] = tuple(dict.fromkeys(answers))
        fields["partial_credit"] = partial
    return fields


def _numeric_fields(check: _Checker, path: Path_, raw: dict[str, Any]) -> dict[str, Any]:
    answer = check.get(raw, path, "answer", float, required=True, default=None)
    tolerance = check.get(raw, path, "tolerance", float, default=0.0)
    if tolerance < 0:
        check.error(path + ("tolerance",), f"must not be negative (got {tolerance})")
        tolerance = 0.0
    return {
        "answer": None if answer is None else float(answer),
        "tolerance": float(tolerance),
        "unit": check.get(raw, path, "unit", str, default=""),
    }


def _short_answer_fields(check: _Checker, path: Path_, raw: dict[str, Any]) -> dict[str, Any]:
    accepted = _string_list(check, raw, path, "accepted")
    patterns = _string_list(check, raw, path, "patterns")
    if "accepted" not in raw and "patterns" not in raw:
        check.error(path, "a short_answer question needs 'accepted' answers or 'patterns'")
    elif not accepted and not patterns:
        check.error(path + ("accepted",), "needs at least one accepted answer or pattern")
    for i, value in enumerate(accepted):
        if not value.strip():
            check.error(path + ("accepted", i), "an accepted answer must not be empty")
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            check.error(path + ("patterns", i), f"invalid regular expression {pattern!r}: {exc}")
    return {
        "accepted": tuple(accepted),
        "patterns": tuple(patterns),
        "case_sensitive": check.get(raw, path, "case_sensitive", bool, default=False),
        "normalise_whitespace": check.get(raw, path, "normalise_whitespace", bool, default=True),
    }


def _code_writing_fields(check: _Checker, path: Path_, raw: dict[str, Any]) -> dict[str, Any]:
    tests = check.get(raw, path, "tests", str, required=True, default="")
    if "tests" in raw and isinstance(raw["tests"], str) and not tests.strip():
        check.error(path + ("tests",), "the hidden tests must not be empty")
    credit = check.get(raw, path, "code_credit", str, default="all_or_nothing")
    if credit not in CODE_CREDIT:
        check.error(
            path + ("code_credit",),
            f"unknown code credit rule {credit!r} (allowed: {', '.join(CODE_CREDIT)})",
        )
        credit = "all_or_nothing"
    return {"tests": tests, "code_credit": credit}


def _rubric(check: _Checker, path: Path_, raw: dict[str, Any], points: float) -> Rubric:
    value = raw.get("rubric")
    rpath = path + ("rubric",)
    if value is None:
        check.error(path, "missing required field 'rubric' (free text is graded against it)")
        return Rubric(guidance="")
    if isinstance(value, str):
        if not value.strip():
            check.error(rpath, "the rubric must not be empty")
        return Rubric(guidance=value)
    if not isinstance(value, dict):
        check.error(rpath, "must be a string or a table { guidance = ..., levels = [...] }")
        return Rubric(guidance="")
    check.unknown_keys(value, rpath, ("guidance", "levels"))
    guidance = check.get(value, rpath, "guidance", str, required=True, default="")
    levels: list[RubricLevel] = []
    for i, item in enumerate(check.table_list(value, rpath, "levels")):
        lpath = rpath + ("levels", i)
        check.unknown_keys(item, lpath, ("points", "description"))
        level_points = check.get(item, lpath, "points", float, required=True, default=None)
        description = check.get(item, lpath, "description", str, required=True, default="")
        if level_points is None:
            continue
        if level_points < 0 or (points and level_points > points):
            check.error(
                lpath + ("points",),
                f"must be between 0 and the question's {points:g} points (got {level_points})",
            )
        elif not _half_points(level_points):
            check.error(lpath + ("points",), f"must be a multiple of 0.5 (got {level_points})")
        if any(level.points == level_points for level in levels):
            check.error(lpath + ("points",), f"two levels are worth {level_points:g} points")
        levels.append(RubricLevel(float(level_points), description))
    if levels and points and not any(level.points == points for level in levels):
        check.error(rpath + ("levels",), f"no level is worth the question's full {points:g} points")
    return Rubric(guidance=guidance, levels=tuple(sorted(levels, key=lambda lv: lv.points)))


# --- what a participant sees --------------------------------------------------------------


def participant_choices(question: Question) -> list[dict[str, str]]:
    """The options a participant picks from, with "I don't know" last when offered."""
    choices = [{"value": c.value, "label": c.label} for c in question.choices]
    if question.idk and question.type in CHOICE_TYPES:
        choices.append({"value": IDK_VALUE, "label": IDK_LABEL})
    return choices


def participant_view(question: Question) -> dict[str, Any]:
    """Only what a participant may see of a question.

    Never the key, accepted answers, expected output, hidden tests, rubric, categories or
    whether it is an attention check. Points are left out too: an attention check carries
    none, so showing points would give it away.
    """
    view: dict[str, Any] = {
        "key": question.key,
        "type": question.type,
        "text": question.text,
        "idk": question.idk,
    }
    if question.code:
        view["code"] = question.code
    if question.type in CHOICE_TYPES:
        view["choices"] = participant_choices(question)
    if question.type == "numeric" and question.unit:
        view["unit"] = question.unit
    return view


def _rng(seed: str, purpose: str) -> random.Random:
    # A generator of its own per participant and purpose: never the global random state, and
    # the option order of one question does not depend on any other question.
    digest = hashlib.sha256(f"{seed}\x00{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def order_for_participant(quiz: Quiz, seed: str) -> tuple[list[str], dict[str, list[str]]]:
    """The question order and the option order (choice questions only, "I don't know" last)
    one participant sees. Deterministic in ``seed``; the identity order when shuffling is off.

    Attention checks keep the position the author gave them: where an attention check sits
    (early, middle, end) affects how many people fail it, so moving it per participant would
    mix position effects into the failure rate. The other questions are permuted among the
    remaining positions.
    """
    keys = [q.key for q in quiz.questions]
    if quiz.shuffle_questions:
        movable = [q.key for q in quiz.questions if not q.attention_check]
        _rng(seed, "questions").shuffle(movable)
        shuffled = iter(movable)
        keys = [q.key if q.attention_check else next(shuffled) for q in quiz.questions]
    options: dict[str, list[str]] = {}
    for question in quiz.questions:
        if question.type not in CHOICE_TYPES:
            continue
        values = list(question.choice_values)
        shuffle = (
            quiz.shuffle_options if question.shuffle_options is None else question.shuffle_options
        )
        if shuffle:
            _rng(seed, f"options:{question.key}").shuffle(values)
        if question.idk:
            values.append(IDK_VALUE)
        options[question.key] = values
    return keys, options


def participant_questions(quiz: Quiz, seed: str) -> list[dict[str, Any]]:
    """Participant views of every question, in this participant's order and option order."""
    keys, options = order_for_participant(quiz, seed)
    views = []
    for key in keys:
        view = participant_view(quiz.question(key))
        if "choices" in view:
            by_value = {c["value"]: c for c in view["choices"]}
            view["choices"] = [by_value[value] for value in options[key]]
        views.append(view)
    return views


__all__ = [
    "CATEGORIES",
    "IDK_VALUE",
    "OBJECTIVE_TYPES",
    "QUESTION_TYPES",
    "Choice",
    "Question",
    "Quiz",
    "QuizInvalid",
    "Rubric",
    "RubricLevel",
    "load_quiz",
    "order_for_participant",
    "participant_choices",
    "participant_questions",
    "participant_view",
    "quiz_from_source",
]


def register_with_trials() -> None:
    """Plug the quiz file format into trials' definition-time registries (called once from
    ``QuizzesConfig.ready``)."""
