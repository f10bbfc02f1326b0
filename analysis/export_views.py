"""Web download of export bundles at /exports/<slug>/ (login; experimenter or statistician).

Thin views: the page lists the formats with the row counts they will hold and the export
history (the DataExport audit rows, with progress while one runs); a download is a POST that
streams ``analysis.exports.bundle_stream`` as a zip attachment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from analysis.exports import (
    FORMATS,
    bundle_filename,
    bundle_stream,
    can_export_identifiers,
    recent_exports,
    rows_by_format,
    trial_for_export,
)
from analysis.models import DataExport
from trials.models import Trial
from trials.roles import EXPERIMENTER, STATISTICIAN, has_role

STALE = timedelta(hours=1)
FORMAT_NOTES = {
    "csv": "One CSV file per data set (UTF-8, RFC 4180, spreadsheet-safe text cells).",
    "parquet": "One Parquet file per data set, typed columns, codebook in the field metadata.",
    "json": "One JSON Lines file per data set (one object per row).",
    "progsnap2": "ProgSnap2 (v6) main event table with code states, for programming-process "
    "research, plus participants and allocations as CSV.",
}


View = Callable[..., HttpResponseBase]


def staff_only(view: View) -> View:
    """Login, then the experimenter or statistician role (as the dashboard): graders and
    everyone else get the dashboard's 403 page."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not has_role(request.user, EXPERIMENTER, STATISTICIAN):
            return render(request, "manage/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return wrapped


def _trial(slug: str, version: int | None) -> Trial:
    try:
        return trial_for_export(slug, version)
    except Trial.DoesNotExist as exc:
        raise Http404("no such trial") from exc


def _formats(trial: Trial, history: list[DataExport]) -> list[dict[str, Any]]:
    """Each format with the rows its tables will hold and, as a guide to the download's
    size, the size of the last finished export in that format."""
    last_size: dict[str, int | None] = {}
    for export in history:  # newest first
        if export.status == DataExport.Status.DONE:
            last_size.setdefault(export.format, export.size_bytes)
    return [
        {
            "key": fmt,
            "label": DataExport.Format(fmt).label,
            "note": FORMAT_NOTES[fmt],
            "rows": list(rows.items()),
            "total": sum(rows.values()),
            "last_size": last_size.get(fmt),
        }
        for fmt, rows in rows_by_format(trial).items()
    ]


@staff_only
def export_page(request: HttpRequest, slug: str, version: int | None = None) -> HttpResponse:
    trial = _trial(slug, version)
    history = recent_exports(trial)
    return render(
        request,
        "exports/trial_exports.html",
        {
            "trial": trial,
            "formats": _formats(trial, history),
            "history": history,
            # Refresh while an export runs; one stuck for an hour (its worker was killed, say)
            # is not worth refreshing for.
            "running": any(
                e.status == DataExport.Status.RUNNING and e.created_at > timezone.now() - STALE
                for e in history
            ),
            "can_identify": can_export_identifiers(request.user),
        },
    )


@require_POST
@staff_only
def export_download(request: HttpRequest, slug: str, version: int) -> HttpResponseBase:
    trial = _trial(slug, version)
    fmt = request.POST.get("format", "")
    if fmt not in FORMATS:
        return HttpResponseBadRequest(f"unknown format; choose one of {', '.join(FORMATS)}")
    identified = request.POST.get("identified") == "1"
    if identified and not can_export_identifiers(request.user):
        return render(request, "exports/no_identifiers.html", {"trial": trial}, status=403)
    stream = bundle_stream(
        trial, fmt, identified=identified, user=request.user, channel=DataExport.Channel.WEB
    )
    name = bundle_filename(trial, fmt, identified=identified)
    return StreamingHttpResponse(
        stream,
        content_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
