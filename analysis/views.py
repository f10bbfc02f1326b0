"""The report page and the results JSON of a trial, and the pages of the long staff jobs
(exports, the report), for experimenters and statisticians.

``/analysis/<slug>/report/`` (``?download=1``: the self-contained file as an attachment) and
``/analysis/<slug>/results.json``; ``?version=N`` picks a version, else the live one, else the
newest. Graders and others get 403; anonymous users go to the login page.

The report is computed by a job (:mod:`analysis.work`) once per state of the trial's data and
kept in the database: the report page serves the job's report while the data are unchanged,
and otherwise starts the job (or joins the one running) and sends the browser to the job's
page, ``/analysis/jobs/<id>/``, which shows its progress and then the report. (With no broker
the job runs in the request and the report is shown at once.) The results JSON
reuses the cached analysis (:mod:`analysis.cache`).

A job's page polls ``/analysis/jobs/<id>/status/`` (JSON: state, done, total, step, error);
a finished export is downloaded from ``/analysis/jobs/<id>/download/``. An export job is
visible to the person who started it only (404 for anyone else).
"""

from __future__ import annotations

import json
import uuid

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse

from analysis import work
from analysis.analyze import AnalysisError
from analysis.cache import cached_analysis, fingerprint
from analysis.exports import can_export_identifiers
from analysis.models import Job
from trials.access import staff_role_required
from trials.models import Trial
from trials.selectors import trial_for_slug


def _trial(slug: str, version: str | None) -> Trial:
    if version and not version.isdigit():
        raise Http404("version must be a number")
    trial = trial_for_slug(slug, int(version) if version else None)
    if trial is None:
        raise Http404("no such trial")
    return trial


def _unavailable(request: HttpRequest, slug: str, message: str) -> HttpResponse:
    return render(
        request, "analysis/unavailable.html", {"slug": slug, "message": message}, status=409
    )


def _show_report(request: HttpRequest, job: Job, *, download: bool) -> HttpResponse:
    """A finished report job's page, or with ``download`` its self-contained file."""
    if "unavailable" in job.result:
        return _unavailable(request, job.trial.slug, str(job.result["unavailable"]))
    html = work.output_text(job, "file.html" if download else "page.html")
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    if download:
        filename = f"{job.trial.slug}-v{job.trial.version}-report.html"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@staff_role_required
def report_view(request: HttpRequest, slug: str) -> HttpResponseBase:
    trial = _trial(slug, request.GET.get("version"))
    job = work.current_report(trial, fingerprint(trial, seed=0))
    if job is None:
        job = work.start_report(trial=trial, user=request.user)
        if job.state != Job.State.DONE:  # with no broker it ran here and is done already
            return redirect("analysis:job", job_id=job.pk)
    return _show_report(request, job, download=bool(request.GET.get("download")))


@staff_role_required
def results_view(request: HttpRequest, slug: str) -> HttpResponse:
    trial = _trial(slug, request.GET.get("version"))
    try:
        _, results = cached_analysis(trial, seed=0)
    except AnalysisError as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return HttpResponse(
        json.dumps(results.to_json(), allow_nan=False),
        content_type="application/json",
    )


def _job(request: HttpRequest, job_id: uuid.UUID) -> Job:
    try:
        return work.job_for(request.user, job_id)
    except Job.DoesNotExist:
        raise Http404("no such job") from None


@staff_role_required
def job_page(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    job = _job(request, job_id)
    if job.kind == Job.Kind.REPORT and job.state == Job.State.DONE:
        return _show_report(request, job, download=False)
    return render(
        request,
        "analysis/job.html",
        {
            "job": job,
            "status": work.job_status(job),
            "back": _back_link(job),
            "downloadable": job.kind == Job.Kind.EXPORT and job.state == Job.State.DONE,
        },
    )


def _back_link(job: Job) -> tuple[str, str]:
    trial = job.trial
    if job.kind == Job.Kind.EXPORT:
        return "Back to the exports", reverse(
            "exports:trial_version", args=[trial.slug, trial.version]
        )
    if job.kind == Job.Kind.REPORT:
        report = reverse("analysis:report", args=[trial.slug])
        return "Try the report again", f"{report}?version={trial.version}"
    return "Trial dashboard", reverse("manage:trial_detail", args=[trial.slug, trial.version])


@staff_role_required
def job_status_view(request: HttpRequest, job_id: uuid.UUID) -> JsonResponse:
    job = _job(request, job_id)
    response = JsonResponse(work.job_status(job))
    response["Cache-Control"] = "no-store"
    return response


@staff_role_required
def job_download(request: HttpRequest, job_id: uuid.UUID) -> HttpResponseBase:
    job = _job(request, job_id)
    if job.kind != Job.Kind.EXPORT or job.state != Job.State.DONE:
        raise Http404("nothing to download (yet)")
    if job.params.get("identified") and not can_export_identifiers(request.user):
        return render(request, "exports/no_identifiers.html", {"trial": job.trial}, status=403)
    if not job.chunks.filter(attempt=job.attempt).exists():
        return render(request, "analysis/job_gone.html", {"job": job}, status=410)
    files = job.result.get("files", {})
    size = files.get("bundle.zip", {}).get("bytes")
    response = StreamingHttpResponse(
        work.output_chunks(job, "bundle.zip"),
        content_type=str(job.result.get("content_type", "application/zip")),
        headers={
            "Content-Disposition": f'attachment; filename="{job.result.get("filename")}"',
            "Cache-Control": "no-store",
        },
    )
    if isinstance(size, int):
        response["Content-Length"] = str(size)
    return response
