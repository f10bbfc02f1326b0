"""The audit log of data exports: who took which data out of which trial, when, in which
format, whether it held identifiers, and what exactly was in it (row counts, checksums); and
the long staff jobs (exports, the report, synthesis) with their progress and output."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

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


class Job(models.Model):
    """One long piece of staff work (an export, the analysis report, a synthesis) run as a
    Celery task on the ``jobs`` queue, whose id is this row's id.

    Its state, progress and output live here, not in a process, so any app server shows
    them. ``attempt`` names the run that owns the row: a redelivered message (its worker
    died) takes the row over with the next number, and every write of progress or output is
    compare-and-set on it, so a stale run can neither move the bar nor finish the job."""

    class Kind(models.TextChoices):
        EXPORT = "export", "Export"
        REPORT = "report", "Analysis report"
        SYNTHESIS = "synthesis", "Synthesis"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    ACTIVE = (State.PENDING, State.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="jobs")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="analysis_jobs",
        help_text="Who started it; empty for the command line",
    )
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempt = models.PositiveIntegerField(default=0)
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    step = models.CharField(max_length=120, blank=True)
    error = models.CharField(max_length=500, blank=True)
    # At most one pending or running job per key (one report computation per trial and seed).
    key = models.CharField(max_length=100, blank=True)
    # The report's data fingerprint (analysis.cache.fingerprint) when it was computed.
    fingerprint = models.CharField(max_length=64, blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["trial", "kind", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                condition=models.Q(state__in=["pending", "running"]) & ~models.Q(key=""),
                name="analysis_job_one_active_per_key",
            ),
            models.CheckConstraint(
                condition=models.Q(done__gte=0, total__gte=0), name="analysis_job_progress"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.pk} ({self.state})"

    @property
    def percent(self) -> int | None:
        if self.state == self.State.DONE:
            return 100
        if not self.total:
            return None
        return min(100, round(100 * self.done / self.total))

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)


class JobChunk(models.Model):
    """A piece of a job's output file (a zip, a report), in order; written as the job goes,
    so neither the worker nor the download holds more than one piece in memory."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    attempt = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    seq = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["job", "attempt", "name", "seq"], name="analysis_jobchunk_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.job_id} {self.name} #{self.seq} (attempt {self.attempt})"
