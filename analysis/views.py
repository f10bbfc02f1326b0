"""The report page and the results JSON of a trial, for experimenters and statisticians.

``/analysis/<slug>/report/`` (``?download=1``: the self-contained file as an attachment) and
``/analysis/<slug>/results.json``; ``?version=N`` picks a version, else the live one, else the
newest. Graders and others get 403; anonymous users go to the login page.

Both reuse the analysis (and the rendered report) while the trial's data are unchanged
(:mod:`analysis.cache`); the data snapshot time they show is when it was computed.
"""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from analysis.analyze import AnalysisError
from analysis.cache import cached_analysis, cached_report_html
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


def _unavailable(request: HttpRequest, slug: str, exc: AnalysisError) -> HttpResponse:
    return render(
        request, "analysis/unavailable.html", {"slug": slug, "message": str(exc)}, status=409
    )


@staff_role_required
def report_view(request: HttpRequest, slug: str) -> HttpResponse:
    trial = _trial(slug, request.GET.get("version"))
    if request.GET.get("download"):
        try:
            html = cached_report_html(trial, self_contained=True, seed=0)
        except AnalysisError as exc:
            return _unavailable(request, slug, exc)
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        filename = f"{trial.slug}-v{trial.version}-report.html"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    query = f"?version={trial.version}"
    links = [
        ("Download (self-contained HTML)", f"{query}&download=1"),
        ("Results as JSON", reverse("analysis:results", args=[trial.slug]) + query),
        (
            "Trial dashboard",
            reverse("manage:trial_detail", args=[trial.slug, trial.version]),
        ),
    ]
    try:
        html = cached_report_html(trial, self_contained=False, links=links, seed=0)
    except AnalysisError as exc:
        return _unavailable(request, slug, exc)
    return HttpResponse(html)


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
