"""Reading a quiz file: every field checked, every problem located (file, field path
``questions[3].answer``, line) with the trial definition's checking toolkit
(:mod:`trials.definition.checker`). The format is described in :mod:`quizzes.quizfile`.
No Django import.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from quizzes.quizfile.model import (
    ALL_FIELDS,
    CATEGORIES,
    CHOICE_TYPES,
    CODE_CREDIT,
    COMMON_FIELDS,
    IDK_VALUE,
    PARTIAL_CREDIT,
    QUESTION_TYPES,
    QUIZ_FIELDS,
    TYPE_FIELDS,
    Choice,
    Question,
    Quiz,
    QuizInvalid,
    Rubric,
    RubricLevel,
)
from trials.definition.checker import (
    Checker,
    Path_,
    Problem,
    check_key,
    norm_choices,
    toml_problem,
    unique,
)


def load_quiz(source: str, file: str) -> tuple[Quiz, list[Problem]]:
    """Parse and validate a quiz file. Returns the quiz (best effort when there are problems)
    and every problem found; the quiz may only be used when the list is empty."""
    problems: list[Problem] = []
    try:
        raw = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        return Quiz(title="", questions=()), [toml_problem(file, exc)]
    check = Checker(file, source, problems)
    check.unknown_keys(raw, (), QUIZ_FIELDS)
    title = check.get(raw, (), "title", str, required=True, default="")
    shuffle_questions = check.get(raw, (), "shuffle_questions", bool, default=False)
    shuffle_options = check.get(raw, (), "shuffle_options", bool, default=False)
    items = check.table_list(raw, (), "questions")
    if raw.get("questions", []) == []:
        check.error(("questions",), "a quiz needs at least one [[questions]] table")
    questions = [_question(check, ("questions", i), item) for i, item in enumerate(items)]
    unique(
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


def quiz_file_problems(source: str, file: str) -> list[Problem]:
    """Every problem of a quiz file, as the trial definition loader reports them."""
    _, problems = load_quiz(source, file)
    return problems


def _half_points(value: float) -> bool:
    return float(value * 2).is_integer()


def _string_list(check: Checker, table: dict[str, Any], path: Path_, key: str) -> list[str]:
    values = check.get(table, path, key, list, default=[])
    out: list[str] = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            out.append(value)
        else:
            check.error(path + (key, i), f"must be a string (got {value!r})")
    return out


def _question(check: Checker, path: Path_, raw: dict[str, Any]) -> Question:
    key = check.get(raw, path, "key", str, required=True, default="")
    if key:
        check_key(check, path + ("key",), key, "question key")
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


def _points(check: Checker, path: Path_, raw: dict[str, Any], attention: bool) -> float:
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
    check: Checker, path: Path_, raw: dict[str, Any], attention: bool
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


def _choice_fields(check: Checker, path: Path_, raw: dict[str, Any], qtype: str) -> dict[str, Any]:
    choices = norm_choices(check, path + ("choices",), raw.get("choices"))
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


def _numeric_fields(check: Checker, path: Path_, raw: dict[str, Any]) -> dict[str, Any]:
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


def _short_answer_fields(check: Checker, path: Path_, raw: dict[str, Any]) -> dict[str, Any]:
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


def _code_writing_fields(check: Checker, path: Path_, raw: dict[str, Any]) -> dict[str, Any]:
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


def _rubric(check: Checker, path: Path_, raw: dict[str, Any], points: float) -> Rubric:
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
