from __future__ import annotations

from django.contrib import admin

from quizzes.models import AnswerKeyChange, HumanGrade, ItemResponse, QuizAttempt
from trials.admin import ReadOnlyAdmin


@admin.register(ItemResponse)
class ItemResponseAdmin(ReadOnlyAdmin):
    list_display = ("blind_id", "participant", "question_key", "status", "points", "max_points")
    list_filter = ("status", "stage__trial", "question_key")


@admin.register(HumanGrade)
class HumanGradeAdmin(ReadOnlyAdmin):
    list_display = ("response", "grader", "points", "is_adjudication", "created_at")


@admin.register(AnswerKeyChange)
class AnswerKeyChangeAdmin(ReadOnlyAdmin):
    list_display = ("trial", "question_key", "changed_by", "changed_at", "regraded")


@admin.register(QuizAttempt)
class QuizAttemptAdmin(ReadOnlyAdmin):
    list_display = ("participant", "stage", "created_at", "submitted_at")
