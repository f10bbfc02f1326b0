from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from trials.models import (
    Allocation,
    AllocationSequence,
    Arm,
    AssistantTurn,
    CodeRun,
    CodeSnapshot,
    Event,
    Participant,
    Stage,
    StageRecord,
    TaskState,
    Trial,
)


class ArmInline(admin.TabularInline):
    model = Arm
    extra = 0
    fields = ("order", "key", "label", "weight", "tools")


class StageInline(admin.TabularInline):
    model = Stage
    extra = 0
    fields = ("order", "key", "type", "title", "time_limit_seconds", "tools")


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = ("slug", "version", "title", "status", "protocol_hash", "launched_at")
    list_filter = ("status",)
    search_fields = ("slug", "title")
    # The seed is not a field of any admin form (editable=False), so it is never shown.
    readonly_fields = (
        "definition_hash",
        "protocol_hash",
        "status",
        "launched_at",
        "closed_at",
        "randomization_scheme",
    )
    # The files and the normalised definition (with block sizes) are not shown here: see
    # `manage.py export_trial` for the protocol.
    exclude = ("files", "definition")
    inlines = [ArmInline, StageInline]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Allocation)
class AllocationAdmin(ReadOnlyAdmin):
    list_display = (
        "participant",
        "trial",
        "arm",
        "stratum",
        "sequence_number",
        "scheme",
        "created_at",
    )
    list_filter = ("trial", "arm__key", "stratum")


@admin.register(AllocationSequence)
class AllocationSequenceAdmin(ReadOnlyAdmin):
    list_display = ("trial", "stratum", "next_index")


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("public_code", "trial", "status", "current_stage", "stratum", "created_at")
    list_filter = ("trial", "status", "is_synthetic")
    search_fields = ("public_code", "prolific_pid")
    readonly_fields = (
        "id",
        "trial",
        "baseline",
        "eligible",
        "screen_out_reasons",
        "stratum",
        "current_stage",
        "stage_started_at",
        "stage_deadline",
        "completion_code",
        "consented_at",
        "completed_at",
        "created_at",
    )


@admin.register(StageRecord)
class StageRecordAdmin(ReadOnlyAdmin):
    list_display = ("participant", "stage", "started_at", "ended_at", "end_reason")
    list_filter = ("stage__trial", "end_reason")


admin.register(Arm)(admin.ModelAdmin)
admin.register(Stage)(admin.ModelAdmin)


@admin.register(TaskState)
class TaskStateAdmin(ReadOnlyAdmin):
    list_display = ("participant", "task", "latest_version", "first_passed_at", "runs", "checks")


@admin.register(CodeSnapshot)
class CodeSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("participant", "task", "version", "source", "created_at")


@admin.register(CodeRun)
class CodeRunAdmin(ReadOnlyAdmin):
    list_display = ("participant", "task", "kind", "status", "exception_type", "duration_ms")
    list_filter = ("kind", "status", "sandbox")


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("participant", "type", "origin", "client_seq", "server_time")
    list_filter = ("type", "origin")


@admin.register(AssistantTurn)
class AssistantTurnAdmin(ReadOnlyAdmin):
    list_display = ("participant", "task", "status", "model", "input_tokens", "output_tokens")
    list_filter = ("status", "provider")
