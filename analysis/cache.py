"""The analysis of a trial, computed once per state of its data and kept in Django's cache.

Building the data sets and running the analysis takes ~40 s for 10,000 participants, and
rendering the report's plots another ~2 s: far too long to repeat on every page load (and
longer than gunicorn's default 30 s worker timeout). :func:`cached_analysis` and
:func:`cached_report_html` therefore reuse the last result for as long as nothing it depends
on has changed.

What the result depends on is summarised by :func:`fingerprint`: the trial row (pk, creation,
last change, status, launch and close times, protocol and definition hashes), the later
versions of the trial (their plan is compared in the report's notes), the seed, and a dozen
aggregate queries (counts, largest ids, latest times, sums) over the trial's participants,
allocations, stage records, task states, item responses, human grades, answer-key changes,
erroneous code runs, assistant turns and the paste/focus/blur events the data sets read, plus
the number of open stages whose time limit has passed by now (they count as censored from
then on). Any new participant, grade, submission or correction changes it, and the next
request computes afresh. Autosaved drafts are left out: they never enter the results.

Each trial and seed has one slot in the cache holding the newest result with its
fingerprint (a stale one is overwritten, so a live trial does not fill the cache with old
copies); the rendered report has one slot per trial, seed and kind (page or self-contained
file). The fingerprint is taken *before* the data are read, so a change made while the
analysis runs at worst causes one more recomputation. ``meta.snapshot.taken_at`` of a cached
result is when it was computed, which the report shows as the data snapshot's time.

:func:`report_parts` gives both kinds of the report in steps, for the report job
(:mod:`analysis.work`), which keeps them in the database for every app server.

The cache is ``caches["default"]`` (a per-process ``LocMemCache`` unless settings say
otherwise); ``ANALYSIS_CACHE_TIMEOUT`` (seconds, default a day) bounds how long an entry is
kept. Failures are not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import caches

from analysis import analyze
from analysis.datasets import analysis_input, reads
from analysis.inputs import AnalysisInput

if TYPE_CHECKING:
    from trials.models import Trial

log = logging.getLogger(__name__)

# Bump when the analysis or the report changes in a way that makes stored results wrong
# (only matters for a cache shared across deployments; LocMemCache empties on restart).
CACHE_VERSION = 1
DEFAULT_TIMEOUT = 24 * 60 * 60

_PREFIX = f"skilltrial:analysis:v{CACHE_VERSION}"


def _cache() -> Any:
    return caches["default"]


def _timeout() -> int:
    return int(getattr(settings, "ANALYSIS_CACHE_TIMEOUT", DEFAULT_TIMEOUT))


def _data_state(trial: Trial) -> dict[str, Any]:
    """Cheap aggregates over everything the trial's analysis reads (module docstring)."""
    return reads.data_state(trial)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)  # sums of floats may differ in the last bits between runs
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def fingerprint(trial: Trial, *, seed: int = 0) -> str:
    """A SHA-256 of everything that determines the trial's analysis with this seed."""
    state = {
        "version": CACHE_VERSION,
        "seed": seed,
        "trial": [
            trial.pk,
            trial.created_at,
            trial.updated_at,
            trial.status,
            trial.launched_at,
            trial.closed_at,
            trial.protocol_hash,
            trial.definition_hash,
        ],
        "data": _data_state(trial),
    }
    text = json.dumps(state, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def _analysis_slot(trial: Trial, seed: int) -> str:
    return f"{_PREFIX}:results:{trial.pk}:{seed}"


def _report_slot(trial: Trial, seed: int, self_contained: bool) -> str:
    kind = "file" if self_contained else "page"
    return f"{_PREFIX}:report:{trial.pk}:{seed}:{kind}"


def _store(key: str, value: dict[str, Any]) -> None:
    try:
        _cache().set(key, value, timeout=_timeout())
    except Exception:  # an unpicklable value or an unreachable cache: serve uncached
        log.exception("could not cache %s", key)


def _analysis(
    trial: Trial, seed: int, current: str
) -> tuple[AnalysisInput, analyze.AnalysisResults]:
    key = _analysis_slot(trial, seed)
    entry = _cache().get(key)
    if isinstance(entry, dict) and entry.get("fingerprint") == current:
        return entry["input"], entry["results"]
    inp = analysis_input(trial)
    results = analyze.run_analysis(inp, seed=seed)  # raises AnalysisError: nothing is cached
    _store(key, {"fingerprint": current, "input": inp, "results": results})
    return inp, results


def cached_analysis(
    trial: Trial, *, seed: int = 0
) -> tuple[AnalysisInput, analyze.AnalysisResults]:
    """The trial's analysis input and results, computed only if its data changed since the
    last call (see the module docstring). Raises :class:`analysis.analyze.AnalysisError` like
    :func:`analysis.analyze.run_analysis`. Treat the objects returned as read-only."""
    return _analysis(trial, seed, fingerprint(trial, seed=seed))


def _report_html(
    trial: Trial,
    seed: int,
    current: str,
    *,
    self_contained: bool,
    links: Sequence[tuple[str, str]],
) -> str:
    links = [(str(label), str(href)) for label, href in links]
    key = _report_slot(trial, seed, self_contained)
    entry = _cache().get(key)
    if (
        isinstance(entry, dict)
        and entry.get("fingerprint") == current
        and entry.get("links") == links
    ):
        return str(entry["html"])
    # deferred: the report loads matplotlib (analysis.plots), needed only to render a report
    from analysis.report import render_report

    inp, results = _analysis(trial, seed, current)
    html = render_report(inp, results, self_contained=self_contained, links=links)
    _store(key, {"fingerprint": current, "links": links, "html": html})
    return html


def cached_report_html(
    trial: Trial,
    *,
    self_contained: bool,
    links: Sequence[tuple[str, str]] = (),
    seed: int = 0,
) -> str:
    """:func:`analysis.report.render_report` of :func:`cached_analysis`, itself cached: the
    rendered text is reused while the data and the links are unchanged."""
    current = fingerprint(trial, seed=seed)
    return _report_html(trial, seed, current, self_contained=self_contained, links=links)


@dataclass(frozen=True)
class ReportParts:
    """The report of one state of a trial's data: the web page and the self-contained file."""

    fingerprint: str
    page: str
    file: str


REPORT_STEPS = (
    "reading the state of the data",
    "building the data sets and running the analysis",
    "rendering the report page",
    "rendering the self-contained file",
)


def report_parts(
    trial: Trial,
    *,
    links: Sequence[tuple[str, str]] = (),
    seed: int = 0,
    on_step: Callable[[int, str], None] | None = None,
) -> tuple[str, ReportParts | analyze.AnalysisError]:
    """The fingerprint and the report's page (with ``links``) and file, through the cache,
    calling ``on_step(index, name)`` as each of :data:`REPORT_STEPS` begins. An analysis
    that cannot run gives its :class:`~analysis.analyze.AnalysisError` instead of the parts
    (an answer about this state of the data, not a failure of the job)."""

    def step(index: int) -> None:
        if on_step is not None:
            on_step(index, REPORT_STEPS[index])

    step(0)
    current = fingerprint(trial, seed=seed)
    step(1)
    try:
        _analysis(trial, seed, current)
    except analyze.AnalysisError as exc:
        return current, exc
    step(2)
    page = _report_html(trial, seed, current, self_contained=False, links=links)
    step(3)
    file = _report_html(trial, seed, current, self_contained=True, links=())
    return current, ReportParts(current, page, file)
