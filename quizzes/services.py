"""Writes for quizzes: recording and grading responses, human grading with blinding and
double grading, adjudication, and answer-key corrections that re-grade everything."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from quizzes import grading
from quizzes.models import AnswerKeyChange, HumanGrade, ItemResponse, QuizAttempt
from quizzes.quizfile import IDK_VALUE, Question, order_for_participant, participant_view
from quizzes.selectors import key_fields, participant_seed, stage_quiz
from skilltrial import jobs
from trials.models import Participant, Stage, Trial
from trials.sandbox_requests import dispatch, judge_request, verdict_from
from trials.services.coding import run_tag, runner_limits
from trials.stage_kinds import register_stage_kind

logger = logging.getLogger("skilltrial.quizzes")

KEY_FIELDS = ("answer", "answers", "tolerance", "accepted", "patterns", "expected")
DEFAULT_DOUBLE_GRADING_SHARE = 0.2


class GradingError(Exception):
    """A grading action that is not allowed; the message is safe to show."""


def question_key_of(question: Question) -> dict[str, Any]:
    """The answer key of a question, as JSON (only the fields that are set)."""
    key: dict[str, Any] = {}
    for name in KEY_FIELDS:
        value = getattr(question, name)
        if value in (None, "", ()) or (name == "tolerance" and question.type != "numeric"):
            continue
        key[name] = list(value) if isinstance(value, tuple) else value
    return key


def quiz_attempt(*, participant: Participant, stage: Stage) -> QuizAttempt:
    """The participant's question and option order for this quiz, fixed at first view."""
    existing = QuizAttempt.objects.filter(participant=participant, stage=stage).first()
    if existing is not None:
        return existing
    quiz = stage_quiz(participant.trial, stage)
    seed = participant_seed(participant)
    order, options = order_for_participant(quiz, seed)
    try:
        with transaction.atomic():
            return QuizAttempt.objects.create(
                participant=participant,
                stage=stage,
                seed=seed,
                question_order=order,
                option_order=options,
            )
    except IntegrityError:  # a second tab got there first
        return QuizAttempt.objects.get(participant=participant, stage=stage)


def participant_quiz_questions(*, participant: Participant, stage: Stage) -> list[dict[str, Any]]:
    """What the participant sees, in their recorded order: no keys, rubrics or tests."""
    quiz = stage_quiz(participant.trial, stage)
    attempt = quiz_attempt(participant=participant, stage=stage)
    views = []
    for key in attempt.question_order:
        view = participant_view(quiz.question(key))
        if "choices" in view:
            by_value = {c["value"]: c for c in view["choices"]}
            view["choices"] = [
                by_value[v] for v in attempt.option_order.get(key, []) if v in by_value
            ]
        views.append(view)
    return views


# --- recording and grading responses --------------------------------------------------------


def _double_graded(blind_id: str, share: float) -> bool:
    # Deterministic and independent of arm or identity: a hash of the opaque response id.
    digest = hashlib.sha256(blind_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def _status_for(grade: grading.Grade) -> str:
    return {
        "auto": ItemResponse.Status.AUTO,
        "idk": ItemResponse.Status.IDK,
        "blank": ItemResponse.Status.BLANK,
        "needs_human": ItemResponse.Status.NEEDS_HUMAN,
        "needs_sandbox": ItemResponse.Status.NEEDS_SANDBOX,
        "human": ItemResponse.Status.HUMAN,
    }[grade.status]


def quiz_record_responses(
    *, participant: Participant, stage: Stage, answers: dict[str, Any]
) -> list[ItemResponse]:
    """Store and grade every question of the quiz for this participant (blank when not
    answered). Objective types are graded now; free text waits for graders and code for the
    sandbox (run after the transaction commits). Runs inside the stage transition."""
    quiz = stage_quiz(participant.trial, stage)
    attempt = quiz_attempt(participant=participant, stage=stage)
    share = float(stage.config.get("double_grading", DEFAULT_DOUBLE_GRADING_SHARE))
    now = timezone.now()
    created = []
    for position, key in enumerate(attempt.question_order):
        question = quiz.question(key)
        response = answers.get(key)
        if answers.get(f"{key}__idk"):
            response = IDK_VALUE
        grade = grading.grade(question, response)
        item = ItemResponse(
            participant=participant,
            stage=stage,
            question_key=key,
            position=position,
            response=response,
            points=grade.points,
            max_points=grade.max_points,
            status=_status_for(grade),
            correct=grade.correct,
            is_attention_check=question.attention_check,
            categories=list(question.categories),
            detail=grade.detail[:300],
            graded_at=None if grade.pending else now,
        )
        if item.status == ItemResponse.Status.NEEDS_HUMAN:
            item.needs_double_grading = _double_graded(item.blind_id, share)
        created.append(item)
    ItemResponse.objects.bulk_create(created, ignore_conflicts=True)
    QuizAttempt.objects.filter(pk=attempt.pk).update(submitted_at=now)
    if any(item.status == ItemResponse.Status.NEEDS_SANDBOX for item in created):
        # The answers are stored now; the sandbox runs follow, off the participant's request.
        jobs.enqueue_on_commit(grade_code_job, participant_id=participant.pk, stage_id=stage.pk)
    return created


def grade_code_job(*, participant_id: str, stage_id: int) -> int:
    """The job behind ``grade_code_responses``: ids in, everything reloaded."""
    participant = Participant.objects.select_related("trial").get(pk=participant_id)
    return grade_code_responses(participant=participant, stage=Stage.objects.get(pk=stage_id))


def grade_code_responses(*, participant: Participant, stage: Stage) -> int:
    """Run the hidden tests of code-writing answers in the sandbox; returns how many."""
    quiz = stage_quiz(participant.trial, stage)
    done = 0
    for item in ItemResponse.objects.filter(
        participant=participant, stage=stage, status=ItemResponse.Status.NEEDS_SANDBOX
    ):
        question = quiz.question(item.question_key)
        plan = grading.code_test_plan(question, item.response)
        # On the runs queue, like participants' runs: a job worker runs no participant code.
        verdict = verdict_from(
            dispatch(
                judge_request(
                    tests=plan.tests,
                    code=plan.code,
                    limits=runner_limits(),
                    tag=run_tag(participant),
                )
            )
        )
        if verdict.status in ("busy", "error"):
            # Not the answer's fault: it stays pending for `manage.py grade_pending_code`.
            logger.warning("code answer %s not graded: %s", item.pk, verdict.message)
            continue
        tests = verdict.tests
        passed = sum(1 for t in tests if t["passed"])
        grade = grading.grade_code_tests(
            question, passed=passed, total=len(tests), detail=verdict.message
        )
        ItemResponse.objects.filter(pk=item.pk, status=ItemResponse.Status.NEEDS_SANDBOX).update(
            points=grade.points,
            status=ItemResponse.Status.AUTO,
            correct=grade.correct,
            detail=f"{passed}/{len(tests)} tests passed"[:300],
            graded_at=timezone.now(),
        )
        done += 1
    return done


# --- human grading ---------------------------------------------------------------------------


def _required_grades(item: ItemResponse) -> int:
    return 2 if item.needs_double_grading else 1


def grade_submit(
    *, response: ItemResponse, grader: User, points: float, comment: str = ""
) -> ItemResponse:
    """A grader's mark for a free-text response. With one grade needed it is final; with
    two, agreement makes it final and disagreement sends it to adjudication."""
    quiz = stage_quiz(response.participant.trial, response.stage)
    question = quiz.question(response.question_key)
    try:
        checked = grading.grade_human(question, points, note=comment)
    except ValueError as exc:
        raise GradingError(str(exc)) from None
    with transaction.atomic():
        item = ItemResponse.objects.select_for_update().get(pk=response.pk)
        if item.status != ItemResponse.Status.NEEDS_HUMAN:
            raise GradingError("this answer needs no more grades")
        try:
            with transaction.atomic():
                HumanGrade.objects.create(
                    response=item, grader=grader, points=checked.points, comment=comment
                )
        except IntegrityError:
            raise GradingError("you have already graded this answer") from None
        marks = list(
            item.human_grades.filter(is_adjudication=False).values_list("points", flat=True)
        )
        if len(marks) >= _required_grades(item):
            if len(set(marks)) == 1:
                item.points = marks[0]
                item.status = ItemResponse.Status.HUMAN
                item.correct = marks[0] == item.max_points
                item.graded_at = timezone.now()
            else:
                item.status = ItemResponse.Status.NEEDS_ADJUDICATION
            item.save(update_fields=["points", "status", "correct", "graded_at"])
    return item


def adjudicate(
    *, response: ItemResponse, adjudicator: User, points: float, comment: str = ""
) -> ItemResponse:
    """Settle a disagreement. The adjudicator is not one of the two graders."""
    quiz = stage_quiz(response.participant.trial, response.stage)
    try:
        checked = grading.grade_human(quiz.question(response.question_key), points, note=comment)
    except ValueError as exc:
        raise GradingError(str(exc)) from None
    with transaction.atomic():
        item = ItemResponse.objects.select_for_update().get(pk=response.pk)
        if item.status != ItemResponse.Status.NEEDS_ADJUDICATION:
            raise GradingError("this answer is not waiting for adjudication")
        if item.human_grades.filter(grader=adjudicator).exists():
            raise GradingError("an adjudicator must not be one of the graders of this answer")
        HumanGrade.objects.create(
            response=item,
            grader=adjudicator,
            points=checked.points,
            comment=comment,
            is_adjudication=True,
        )
        item.points = checked.points
        item.status = ItemResponse.Status.HUMAN
        item.correct = checked.points == item.max_points
        item.graded_at = timezone.now()
        item.save(update_fields=["points", "status", "correct", "graded_at"])
    return item


# --- answer-key corrections -------------------------------------------------------------------


def answer_key_correct(
    *,
    trial: Trial,
    question_key: str,
    new_key: dict[str, Any],
    reason: str,
    user: User | None,
) -> AnswerKeyChange:
    """Correct the key of an automatically graded question and re-grade every response to
    it, keeping an audit trail (who, when, old and new key, why)."""
    if not reason.strip():
        raise GradingError("say why the key is corrected (the reason is part of the audit trail)")
    unknown = set(new_key) - set(KEY_FIELDS)
    if unknown:
        raise GradingError(
            f"unknown key field(s) {sorted(unknown)} (allowed: {', '.join(KEY_FIELDS)})"
        )
    quiz_stages = list(trial.stages.filter(type=Stage.Type.QUIZ))
    stage = next((s for s in quiz_stages if _has_question(trial, s, question_key)), None)
    if stage is None:
        raise GradingError(f"no quiz question with key {question_key!r} in this trial")
    question = stage_quiz(trial, stage).question(question_key)
    if question.type not in (
        "single_choice",
        "multi_choice",
        "numeric",
        "short_answer",
        "predict_output",
    ):
        raise GradingError(f"question {question_key!r} is graded by people or tests, not by a key")
    corrected = dataclasses.replace(question, **key_fields(new_key))
    if question.type == "single_choice" and corrected.answer not in question.choice_values:
        raise GradingError(f"{corrected.answer!r} is not a choice of {question_key!r}")
    if question.type == "multi_choice" and not set(corrected.answers) <= set(
        question.choice_values
    ):
        raise GradingError(f"every answer must be a choice of {question_key!r}")
    with transaction.atomic():
        change = AnswerKeyChange.objects.create(
            trial=trial,
            question_key=question_key,
            old_key=question_key_of(question),
            new_key=question_key_of(corrected),
            reason=reason.strip(),
            changed_by=user,
        )
        regraded = 0
        now = timezone.now()
        for item in ItemResponse.objects.select_for_update().filter(
            stage__trial=trial, question_key=question_key
        ):
            grade = grading.grade(corrected, item.response)
            item.points, item.correct = grade.points, grade.correct
            item.status, item.detail, item.graded_at = _status_for(grade), grade.detail[:300], now
            item.save(update_fields=["points", "correct", "status", "detail", "graded_at"])
            regraded += 1
        AnswerKeyChange.objects.filter(pk=change.pk).update(regraded=regraded)
        change.regraded = regraded
    logger.info(
        "key of %s:%s corrected; %d responses re-graded", trial.slug, question_key, regraded
    )
    return change


def _has_question(trial: Trial, stage: Stage, key: str) -> bool:
    try:
        stage_quiz(trial, stage).question(key)
    except KeyError:
        return False
    return True


def register_with_trials() -> None:
    """Plug the quiz stage's runtime hooks into trials' registries (called once from
    ``QuizzesConfig.ready``)."""
    register_stage_kind(
        Stage.Type.QUIZ,
        record_responses=_record_responses,
        questions=_questions,
        staff_urls="quizzes.manage_urls",
    )


def _record_responses(participant: Participant, stage: Stage, answers: dict[str, Any]) -> None:
    quiz_record_responses(participant=participant, stage=stage, answers=answers)


def _questions(participant: Participant, stage: Stage) -> list[dict[str, Any]]:
    return participant_quiz_questions(participant=participant, stage=stage)
