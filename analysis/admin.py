from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from analysis.models import DataExport


@admin.register(DataExport)
class DataExportAdmin(admin.ModelAdmin):
    """The export audit log: read-only, like the allocation log."""

    list_display = (
        "created_at",
        "trial",
        "format",
        "identified",
        "user",
        "channel",
        "status",
        "rows_done",
        "size_bytes",
    )
    list_filter = ("format", "identified", "status", "channel", "trial")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in DataExport._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
