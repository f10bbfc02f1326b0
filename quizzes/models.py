"""Quiz responses and their grading. The quiz itself (questions, keys, rubrics) lives in the
trial's frozen files; corrections of a key after launch are stored here with an audit trail."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

from trials.models import Participant, Stage, Trial


def new_blind_id() -> str:
    # What graders see instead of anything that could identify a participant or an arm.
    return "R" + secrets.token_hex(6).upper()


class QuizAttempt(models.Model):
    """The order in which one participant saw the questions and options (seeded, recorded)."""

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="quiz_attempts"
    )
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    seed = models.CharField(max_length=128)
    question_order = models.JSONField(default=list)
    option_order = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "stage"], name="quiz_attempt_unique")
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}:{self.stage_id}"


class ItemResponse(models.Model):
    """One participant's answer to one question, and its current grade."""

    class Status(models.TextChoices):
        AUTO = "auto", "Graded automatically"
        IDK = "idk", "I don't know"
        BLANK = "blank", "Not answered"
        NEEDS_HUMAN = "needs_human", "Waiting for graders"
        NEEDS_ADJUDICATION = "needs_adjudication", "Graders disagree"
        NEEDS_SANDBOX = "needs_sandbox", "Waiting for the hidden tests"
        HUMAN = "human", "Graded by people"

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="item_responses"
    )
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    question_key = models.CharField(max_length=80)
    position = models.PositiveIntegerField(
        default=0, help_text="0-based place in this participant's order"
    )
    response = models.JSONField(null=True, blank=True)
    points = models.FloatField(default=0)
    max_points = models.FloatField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices)
    correct = models.BooleanField(null=True)
    is_attention_check = models.BooleanField(default=False)
    categories = models.JSONField(default=list)
    detail = models.CharField(max_length=300, blank=True)
    blind_id = models.CharField(max_length=16, unique=True, default=new_blind_id)
    needs_double_grading = models.BooleanField(default=False)
    graded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["participant", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "stage", "question_key"], name="item_response_unique"
            )
        ]
        indexes = [models.Index(fields=["status"]), models.Index(fields=["question_key"])]

    def __str__(self) -> str:
        return f"{self.blind_id}:{self.question_key}"

    @property
    def pending(self) -> bool:
        return self.status in (
            self.Status.NEEDS_HUMAN,
            self.Status.NEEDS_ADJUDICATION,
            self.Status.NEEDS_SANDBOX,
        )


class HumanGrade(models.Model):
    """One grader's mark for a free-text response. Graders never see who or which arm."""

    response = models.ForeignKey(
        ItemResponse, on_delete=models.CASCADE, related_name="human_grades"
    )
    grader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    points = models.FloatField()
    comment = models.TextField(blank=True)
    is_adjudication = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["response", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["response", "grader"], name="one_grade_per_grader"),
            models.UniqueConstraint(
                fields=["response"], condition=Q(is_adjudication=True), name="one_adjudication"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.response_id} by {self.grader_id}: {self.points}"


class AnswerKeyChange(models.Model):
    """A correction of a question's key after launch: who, when, old and new key. The newest
    change of a question is the key in force; every response to it is re-graded."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="answer_key_changes")
    question_key = models.CharField(max_length=80)
    old_key = models.JSONField()
    new_key = models.JSONField()
    reason = models.TextField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    regraded = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["trial", "changed_at", "id"]

    def __str__(self) -> str:
        return f"{self.trial.slug}:{self.question_key} at {self.changed_at:%Y-%m-%d %H:%M}"
