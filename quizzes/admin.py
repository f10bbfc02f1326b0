from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from quizzes.models import AnswerKeyChange, HumanGrade, ItemResponse, QuizAttempt


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ItemResponse)
class ItemResponseAdmin(ReadOnly):
    list_display = ("blind_id", "participant", "question_key", "status", "points", "max_points")
    list_filter = ("status", "stage__trial", "question_key")


@admin.register(HumanGrade)
class HumanGradeAdmin(ReadOnly):
    list_display = ("response", "grader", "points", "is_adjudication", "created_at")


@admin.register(AnswerKeyChange)
class AnswerKeyChangeAdmin(ReadOnly):
    list_display = ("trial", "question_key", "changed_by", "changed_at", "regraded")


@admin.register(QuizAttempt)
class QuizAttemptAdmin(ReadOnly):
    list_display = ("participant", "stage", "created_at", "submitted_at")
