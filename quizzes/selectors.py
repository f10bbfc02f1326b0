"""Reads for quizzes: scores (final or provisional), grading queues that reveal neither
identity nor arm, agreement between graders, and item quality."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from django.contrib.auth.models import User
from django.db.models import Count, Q, QuerySet

from quizzes import grading
from quizzes import reliability as rel
from quizzes.models import AnswerKeyChange, HumanGrade, ItemResponse
from quizzes.quizfile import Question, Quiz
from quizzes.quizfile import quiz_from_source as _quiz_from_source
from trials.models import Participant, Stage, Trial

GRADER_FIELDS = ("blind_id", "question_key", "response", "max_points", "status", "stage_id")


def stage_quiz(trial: Trial, stage: Stage) -> Quiz:
    """The quiz of a stage as in the frozen files, with any later key corrections applied."""
    source = stage.config["quiz"]
    quiz = _quiz_from_source(trial.files[source], source)
    changes = AnswerKeyChange.objects.filter(trial=trial).order_by("changed_at", "id")
    latest = {change.question_key: change.new_key for change in changes}
    if not latest:
        return quiz
    questions = tuple(
        dataclasses.replace(q, **key_fields(latest[q.key])) if q.key in latest else q
        for q in quiz.questions
    )
    return dataclasses.replace(quiz, questions=questions)


def key_fields(key: dict[str, Any]) -> dict[str, Any]:
    """A stored key (JSON lists) as Question fields (tuples)."""
    out: dict[str, Any] = {}
    for name, value in key.items():
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def participant_seed(participant: Participant) -> str:
    # Derived from the secret trial seed, so orders cannot be predicted, yet replayable.
    material = f"{participant.trial.randomization_seed}:quiz:{participant.pk}"
    return hashlib.sha256(material.encode()).hexdigest()


def participant_quiz_score(participant: Participant) -> grading.QuizScore | None:
    """The participant's quiz score over all their recorded responses; provisional while any
    answer waits for graders or the sandbox (``pending``)."""
    items = list(ItemResponse.objects.filter(participant=participant))
    if not items:
        return None
    grades = {
        item.question_key: grading.Grade(
            points=item.points,
            max_points=item.max_points,
            status="needs_human" if item.pending else "auto",
            correct=item.correct,
        )
        for item in items
    }
    by_key: dict[str, Question] = {}
    for stage_id in {item.stage_id for item in items}:
        stage = Stage.objects.get(pk=stage_id)
        for question in stage_quiz(participant.trial, stage).questions:
            by_key[question.key] = question
    return grading.total_score(grades, [by_key[k] for k in grades if k in by_key])


def grading_queue(grader: User) -> QuerySet[ItemResponse]:
    """Free-text answers this grader may grade now: waiting for grades, not yet graded by
    them, and short of the grades they need. Ordered by the random blind id, so the order
    says nothing about who answered or when."""
    return (
        ItemResponse.objects.filter(status=ItemResponse.Status.NEEDS_HUMAN)
        .exclude(human_grades__grader=grader)
        .annotate(n_grades=Count("human_grades", filter=Q(human_grades__is_adjudication=False)))
        .filter(Q(n_grades=0) | Q(needs_double_grading=True, n_grades__lt=2))
        .order_by("blind_id")
        .only(*GRADER_FIELDS)
    )


def adjudication_queue(user: User) -> QuerySet[ItemResponse]:
    return (
        ItemResponse.objects.filter(status=ItemResponse.Status.NEEDS_ADJUDICATION)
        .exclude(human_grades__grader=user)
        .order_by("blind_id")
        .only(*GRADER_FIELDS)
    )


@dataclass(frozen=True)
class GradingItem:
    """Everything a grader sees of one answer: nothing about the participant or the arm."""

    blind_id: str
    question: Question
    response: Any
    max_points: float
    status: str
    levels: list[float]
    earlier_grades: list[float]


def grading_item(blind_id: str) -> GradingItem | None:
    item = (
        ItemResponse.objects.select_related("stage", "stage__trial")
        .filter(blind_id=blind_id)
        .first()
    )
    if item is None:
        return None
    question = stage_quiz(item.stage.trial, item.stage).question(item.question_key)
    levels = (
        [level.points for level in question.rubric.levels]
        if question.rubric and question.rubric.levels
        else [i / 2 for i in range(int(question.points * 2) + 1)]
    )
    earlier = list(
        HumanGrade.objects.filter(response=item, is_adjudication=False).values_list(
            "points", flat=True
        )
    )
    return GradingItem(
        blind_id=item.blind_id,
        question=question,
        response=item.response,
        max_points=item.max_points,
        status=item.status,
        levels=levels,
        earlier_grades=earlier if item.status == ItemResponse.Status.NEEDS_ADJUDICATION else [],
    )


@dataclass(frozen=True)
class QuestionAgreement:
    question_key: str
    agreement: rel.GraderAgreement


def agreement_by_question(trial: Trial) -> list[QuestionAgreement]:
    """Agreement between the first two graders of double-graded answers, per question."""
    pairs: dict[str, tuple[list[float], list[float]]] = {}
    items = ItemResponse.objects.filter(
        stage__trial=trial, needs_double_grading=True
    ).prefetch_related("human_grades")
    levels: dict[str, list[float]] = {}
    for item in items:
        marks = [g.points for g in item.human_grades.all() if not g.is_adjudication][:2]
        if len(marks) < 2:
            continue
        first, second = pairs.setdefault(item.question_key, ([], []))
        first.append(marks[0])
        second.append(marks[1])
        levels.setdefault(item.question_key, [i / 2 for i in range(int(item.max_points * 2) + 1)])
    return [
        QuestionAgreement(key, rel.grader_agreement(first, second, levels=levels[key]))
        for key, (first, second) in sorted(pairs.items())
    ]


@dataclass(frozen=True)
class QuizQuality:
    n_participants: int
    n_final: int
    items: list[rel.ItemStats]
    reliability: rel.QuizReliability
    attention: rel.AttentionFailures | None
    agreement: list[QuestionAgreement]
    pending: int
    texts: dict[str, str] = field(default_factory=dict)  # question key -> question text

    @property
    def item_rows(self) -> list[tuple[rel.ItemStats, str]]:
        return [(item, self.texts.get(item.key, "")) for item in self.items]

    @property
    def attention_rows(self) -> list[tuple[str, str, int, int]]:
        """(key, text, failed, answered) per attention check."""
        if self.attention is None:
            return []
        return [
            (key, self.texts.get(key, ""), failed, answered)
            for key, (failed, answered) in self.attention.per_check_counts.items()
        ]


def quiz_quality(trial: Trial, stage: Stage) -> QuizQuality:
    """Item difficulty, discrimination, "I don't know" rate and flags, alpha / KR-20 overall
    and per category, attention-check failures — over participants whose scores are final."""
    quiz = stage_quiz(trial, stage)
    rows = list(
        ItemResponse.objects.filter(stage=stage).values(
            "participant_id", "question_key", "points", "status", "is_attention_check", "correct"
        )
    )
    frame = pd.DataFrame(
        rows,
        columns=[
            "participant_id",
            "question_key",
            "points",
            "status",
            "is_attention_check",
            "correct",
        ],
    )
    pending_statuses = {"needs_human", "needs_adjudication", "needs_sandbox"}
    pending_people = set(frame.loc[frame["status"].isin(pending_statuses), "participant_id"])
    final = frame[~frame["participant_id"].isin(pending_people)]
    scored = final[~final["is_attention_check"]]
    points = scored.pivot_table(
        index="participant_id", columns="question_key", values="points", aggfunc="first"
    )
    idk = scored.assign(idk=scored["status"] == "idk").pivot_table(
        index="participant_id", columns="question_key", values="idk", aggfunc="first"
    )
    scored_keys = [q.key for q in quiz.scored_questions if q.key in points.columns]
    points = points.reindex(columns=scored_keys)
    idk = idk.reindex(columns=scored_keys).fillna(False).astype(bool)
    max_points = {q.key: q.points for q in quiz.scored_questions}
    categories: dict[str, list[str]] = {}
    for question in quiz.scored_questions:
        for category in question.categories:
            categories.setdefault(category, []).append(question.key)
    items = rel.item_analysis(points, max_points, idk=idk) if len(points) else []
    quiz_rel = rel.quiz_reliability(points, max_points, categories)
    checks = final[final["is_attention_check"]]
    attention = None
    if len(checks):
        # An answer that is not right (wrong, blank, "I don't know") fails the check; a check
        # with no answer row at all was never reached and stays NaN, so it counts neither way.
        passed = checks.assign(passed=checks["correct"].eq(True).astype(float)).pivot_table(
            index="participant_id", columns="question_key", values="passed", aggfunc="first"
        )
        attention = rel.attention_failures(passed)
    return QuizQuality(
        n_participants=frame["participant_id"].nunique(),
        n_final=points.shape[0],
        items=items,
        reliability=quiz_rel,
        attention=attention,
        agreement=agreement_by_question(trial),
        pending=int(frame["status"].isin(pending_statuses).sum()),
        texts={q.key: q.text for q in quiz.questions},
    )
