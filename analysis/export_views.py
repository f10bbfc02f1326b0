"""Web download of export bundles at /exports/<slug>/ (login; experimenter or statistician).

Thin views: the page lists the formats with the row counts they will hold, the user's own
export jobs, and the export history (the DataExport audit rows, with progress while one runs).
A download is a POST that starts an export job (``analysis.export`` on the ``jobs`` queue, see
:mod:`analysis.work`) and sends the browser to the job's page, which shows its progress and
then offers the zip. (The REST API still streams ``bundle_stream`` directly.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from analysis import work
from analysis.exports import (
    FORMATS,
    ROW_NOTES,
    can_export_identifiers,
    manifest_bytes,
    recent_exports,
    rows_by_format,
    trial_for_export,
)
from analysis.models import DataExport, Job
from trials.access import staff_role_required
from trials.models import Trial
from trials.selectors import synthetic_count

STALE = timedelta(hours=1)
FORMAT_NOTES = {
    "csv": "One CSV file per data set (UTF-8, RFC 4180, spreadsheet-safe text cells).",
    "parquet": "One Parquet file per data set, typed columns, codebook in the field metadata.",
    "json": "One JSON Lines file per data set (one object per row).",
    "progsnap2": "ProgSnap2 (v6) main event table with code states, for programming-process "
    "research, plus participants and allocations as CSV.",
}


# Channels whose exports are always one zip (bundle_stream); ``export_data`` (the command
# channel) writes either the zip or the bundle's files uncompressed into a folder.
ZIP_CHANNELS = (DataExport.Channel.WEB, DataExport.Channel.API, DataExport.Channel.OTHER)


def _trial(slug: str, version: int | None) -> Trial:
    try:
        return trial_for_export(slug, version)
    except Trial.DoesNotExist as exc:
        raise Http404("no such trial") from exc


def _files_size(export: DataExport) -> int | None:
    """The bundle's files uncompressed (manifest.json aside), from the export's manifest:
    the same measure whether the export was a zip or a folder of files."""
    files = export.manifest.get("files") if isinstance(export.manifest, dict) else None
    if not isinstance(files, list) or not files:
        return None
    sizes = [f.get("bytes") for f in files if isinstance(f, dict)]
    if not all(isinstance(n, int) for n in sizes):
        return None
    return sum(n for n in sizes if isinstance(n, int))


def packaging(export: DataExport) -> str:
    """What ``size_bytes`` measures: ``zip`` (one zip file) or ``files`` (the bundle's files
    written uncompressed into a folder by ``export_data``, whose size is exactly the files
    listed in the manifest plus manifest.json itself)."""
    if export.channel in ZIP_CHANNELS or not export.size_bytes:
        return "zip"
    files = _files_size(export)
    if files is not None and export.size_bytes == files + len(manifest_bytes(export.manifest)):
        return "files"
    return "zip"


def _last_sizes(history: list[DataExport]) -> dict[str, dict[str, int]]:
    """Per format, like with like: ``zip`` the size of the last finished zip download, and
    ``files`` the uncompressed size of the last finished export's files."""
    out: dict[str, dict[str, int]] = {}
    for export in history:  # newest first
        if export.status != DataExport.Status.DONE:
            continue
        sizes = out.setdefault(export.format, {})
        if export.size_bytes and packaging(export) == "zip":
            sizes.setdefault("zip", export.size_bytes)
        files = _files_size(export)
        if files:
            sizes.setdefault("files", files)
    return out


def _formats(trial: Trial, history: list[DataExport]) -> list[dict[str, Any]]:
    """Each format with the rows its tables will hold (with a note where the figure is not
    the file's exact row count) and, as a guide to the download's size, the last zip's size
    and the last export's files uncompressed."""
    sizes = _last_sizes(history)
    return [
        {
            "key": fmt,
            "label": DataExport.Format(fmt).label,
            "note": FORMAT_NOTES[fmt],
            "rows": list(rows.items()),
            "lines": [
                {"table": table, "rows": n, "note": ROW_NOTES.get(fmt, {}).get(table, "")}
                for table, n in rows.items()
            ],
            "total": sum(rows.values()),
            "last_zip": sizes.get(fmt, {}).get("zip"),
            "last_files": sizes.get(fmt, {}).get("files"),
        }
        for fmt, rows in rows_by_format(trial).items()
    ]


@staff_role_required
def export_page(request: HttpRequest, slug: str, version: int | None = None) -> HttpResponse:
    trial = _trial(slug, version)
    history = recent_exports(trial)
    for export in history:  # the history's Size column says what it measures
        setattr(export, "packaging", packaging(export))  # noqa: B010 - not a model field
    return render(
        request,
        "exports/trial_exports.html",
        {
            "trial": trial,
            "formats": _formats(trial, history),
            "history": history,
            "synthetic": synthetic_count(trial),
            # Refresh while an export runs; one stuck for an hour (its worker was killed, say)
            # is not worth refreshing for.
            "running": any(
                e.status == DataExport.Status.RUNNING and e.created_at > timezone.now() - STALE
                for e in history
            ),
            "can_identify": can_export_identifiers(request.user),
            "jobs": work.user_jobs(request.user, trial, Job.Kind.EXPORT)[:5],
        },
    )


@require_POST
@staff_role_required
def export_download(request: HttpRequest, slug: str, version: int) -> HttpResponseBase:
    trial = _trial(slug, version)
    fmt = request.POST.get("format", "")
    if fmt not in FORMATS:
        return HttpResponseBadRequest(f"unknown format; choose one of {', '.join(FORMATS)}")
    identified = request.POST.get("identified") == "1"
    if identified and not can_export_identifiers(request.user):
        return render(request, "exports/no_identifiers.html", {"trial": trial}, status=403)
    job = work.start_export(trial=trial, user=request.user, fmt=fmt, identified=identified)
    return redirect("analysis:job", job_id=job.pk)
