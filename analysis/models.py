"""The audit log of data exports: who took which data out of which trial, when, in which
format, whether it held identifiers, and what exactly was in it (row counts, checksums)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from trials.models import Trial


class DataExport(models.Model):
    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        PARQUET = "parquet", "Parquet"
        JSON = "json", "JSON Lines"
        PROGSNAP2 = "progsnap2", "ProgSnap2"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed or interrupted"

    class Channel(models.TextChoices):
        WEB = "web", "Web download"
        COMMAND = "command", "Management command"
        API = "api", "REST API"
        OTHER = "other", "Other"

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="exports")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="data_exports",
        help_text="Empty for exports run by an operator (management command)",
    )
    format = models.CharField(max_length=10, choices=Format.choices)
    identified = models.BooleanField(
        default=False, help_text="Held participant identifiers (external ids, completion codes)"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.OTHER)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows_done = models.BigIntegerField(default=0)
    rows_total = models.BigIntegerField(default=0)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    row_counts = models.JSONField(default=dict, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["trial", "-created_at"])]
        permissions = [
            (
                "export_identifiers",
                "Can export participant identifiers (external ids, completion codes)",
            )
        ]

    def __str__(self) -> str:
        return f"{self.trial.slug} v{self.trial.version} {self.format} ({self.status})"

    @property
    def percent(self) -> int | None:
        if not self.rows_total:
            return None
        return min(100, round(100 * self.rows_done / self.rows_total))
