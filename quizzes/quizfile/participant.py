"""What a participant sees of a quiz: the questions without their keys, in an order of their
own (seeded), with "I don't know" offered last. No Django import.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from quizzes.quizfile.model import CHOICE_TYPES, IDK_LABEL, IDK_VALUE, Question, Quiz


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
