"""Audit: every export is a DataExport row (who, what, when, identified or not, row counts,
checksums), kept up to date while it runs; and who may export identifiers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, PermissionsMixin
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.utils import timezone

from analysis.exports.writer import RowCounter
from analysis.models import DataExport
from trials.models import Trial

IDENTIFIERS_PERMISSION = "analysis.export_identifiers"
PROGRESS_EVERY_SECONDS = 1.0

Progress = Callable[[int, int, str], None]
User = AbstractBaseUser | AnonymousUser | None


def can_export_identifiers(user: User) -> bool:
    if user is None or not user.is_authenticated:
        return False
    return isinstance(user, PermissionsMixin) and user.has_perm(IDENTIFIERS_PERMISSION)


def check_identified(identified: bool, user: User) -> None:
    # user None is the operator at the command line, who has the database anyway.
    if identified and user is not None and not can_export_identifiers(user):
        raise PermissionDenied("exporting identifiers needs the export_identifiers permission")


def open_record(
    trial: Trial, fmt: str, *, identified: bool, user: User, channel: str, rows_total: int
) -> DataExport:
    return DataExport.objects.create(
        trial=trial,
        user_id=user.pk if user is not None and user.is_authenticated else None,
        format=fmt,
        identified=identified,
        channel=channel,
        rows_total=rows_total,
    )


def finish_record(record: DataExport, manifest: dict[str, Any], size: int | None) -> None:
    DataExport.objects.filter(pk=record.pk).update(
        status=DataExport.Status.DONE,
        finished_at=timezone.now(),
        row_counts=manifest["row_counts"],
        manifest=manifest,
        size_bytes=size,
        rows_done=sum(manifest["row_counts"].values()),
        rows_total=sum(manifest["row_counts"].values()),
    )
    record.refresh_from_db()


def fail_record(record: DataExport, error: BaseException) -> None:
    message = f"{type(error).__name__}: {error}"[:500]
    if isinstance(error, GeneratorExit):
        message = "interrupted (the download was cancelled or the connection lost)"
    DataExport.objects.filter(pk=record.pk).update(
        status=DataExport.Status.FAILED, finished_at=timezone.now(), error=message
    )


class Tracker:
    """Counts rows as renderers finish chunks; reports to the caller's progress callback and,
    at most once a second, to the DataExport row (so the web page can show progress)."""

    def __init__(self, record: DataExport, totals: dict[str, int], progress: Progress | None):
        self.record = record
        self.totals = totals
        self.done: dict[str, int] = dict.fromkeys(totals, 0)
        self.progress = progress
        self._saved_at = 0.0
        self._unsaved = 0

    def counter(self, dataset: str) -> RowCounter:
        def count(n: int) -> None:
            self.done[dataset] = self.done.get(dataset, 0) + n
            self._unsaved += n
            if self.progress is not None:
                self.progress(self.done[dataset], self.totals.get(dataset, 0), dataset)
            now = time.monotonic()
            if now - self._saved_at >= PROGRESS_EVERY_SECONDS:
                self.save()
                self._saved_at = now

        return count

    def rows_of(self, dataset: str) -> Callable[[], int]:
        return lambda: self.done.get(dataset, 0)

    def save(self) -> None:
        if self._unsaved:
            DataExport.objects.filter(pk=self.record.pk).update(
                rows_done=F("rows_done") + self._unsaved
            )
            self._unsaved = 0


def recent_exports(trial: Trial, *, limit: int = 20) -> list[DataExport]:
    return list(DataExport.objects.filter(trial=trial).select_related("user")[:limit])
