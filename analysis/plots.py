"""The report's plots as SVG text (matplotlib, Agg, no pyplot state; deterministic).

Each function takes plain arrays and labels and returns one ``<svg>`` element to inline in
HTML. Same input, same bytes: no date in the metadata, a fixed hash salt per plot (so the
element ids of several plots on one page do not collide), seeded jitter. Text stays text
(``svg.fonttype = none``). Beyond `RASTERIZE_ABOVE` points a scatter is embedded as a PNG
inside the SVG, so a report of 10,000 participants stays small.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from analysis.stats import KaplanMeierCurve

# Okabe-Ito colours (distinguishable with colour-vision deficiency); the reference arm first.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
RASTERIZE_ABOVE = 2000
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Interval:
    """One row of a forest plot."""

    label: str
    estimate: float
    ci_low: float
    ci_high: float


# Axis labels are wrapped: the browser draws SVG text in its own font (often wider than the
# one matplotlib measured with), so one long line could run past the figure's edge.
LABEL_WIDTH = 42


def _label(text: str) -> str:
    return textwrap.fill(text, LABEL_WIDTH, break_on_hyphens=False)


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _svg(figure: Figure, name: str) -> str:
    """The figure as an inline ``<svg>`` element; ``name`` must be unique on the page."""
    buffer = io.StringIO()
    with matplotlib.rc_context(
        {"svg.hashsalt": f"skilltrial-{name}", "svg.fonttype": "none", "svg.image_inline": True}
    ):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    # Inline in HTML: drop the XML prolog and DOCTYPE, keep the <svg> element.
    start = text.find("<svg")
    svg = text[start:]
    # Scale with the page (the viewBox keeps the proportions) instead of a fixed size in
    # points, which left the plots at a third of the report's width.
    svg = re.sub(
        r'^<svg([^>]*?) width="[\d.]+pt" height="[\d.]+pt"',
        r'<svg\1 width="100%" style="max-width:100%;height:auto"',
        svg,
        count=1,
    )
    # Several plots on one page: make the generic element ids unique per plot.
    return re.sub(
        r'id="(figure|axes|patch|line2d|text|legend|xtick|ytick|matplotlib\.axis|'
        r'PathCollection|LineCollection|PolyCollection|image)_(\d+)"',
        lambda m: f'id="{name}-{m.group(1)}_{m.group(2)}"',
        svg,
    )


def _jitter(n: int, rng: np.random.Generator, width: float = 0.18) -> FloatArray:
    return rng.uniform(-width, width, n)


def scores_by_arm(
    values: Mapping[str, Sequence[float] | FloatArray],
    labels: Mapping[str, str],
    intervals: Mapping[str, tuple[float, float, float]],
    *,
    ylabel: str,
    seed: int = 0,
    maximum: float | None = None,
    name: str = "scores",
) -> str:
    """Every participant's value per arm (jittered), with the arm mean and its CI.

    ``intervals`` maps an arm to (mean, ci_low, ci_high)."""
    rng = np.random.default_rng([seed, 1])
    arms = list(values)
    figure = _figure(max(3.6, 1.6 * len(arms) + 1.4), 3.6)
    ax = figure.add_subplot()
    total = sum(len(v) for v in values.values())
    for i, arm in enumerate(arms):
        points = np.asarray(values[arm], dtype=np.float64)
        points = points[~np.isnan(points)]
        ax.scatter(
            i + _jitter(points.size, rng),
            points,
            s=14 if total <= RASTERIZE_ABOVE else 3,
            alpha=0.55 if total <= RASTERIZE_ABOVE else 0.25,
            color=_color(i),
            edgecolors="none",
            rasterized=total > RASTERIZE_ABOVE,
        )
        if arm in intervals:
            mean, low, high = intervals[arm]
            if math.isfinite(low) and math.isfinite(high):
                ax.errorbar(
                    i + 0.32,
                    mean,
                    yerr=[[mean - low], [high - mean]],
                    fmt="o",
                    color="black",
                    capsize=4,
                    markersize=6,
                )
            else:
                ax.plot([i + 0.32], [mean], "o", color="black")
    ax.set_xticks(range(len(arms)), [f"{labels.get(a, a)}\n(n={len(values[a])})" for a in arms])
    ax.set_xlim(-0.6, len(arms) - 0.4)
    if maximum is not None:
        ax.set_ylim(-0.03 * maximum, maximum * 1.03)
    ax.set_ylabel(_label(ylabel))
    ax.set_title("Each participant (dots); mean and 95% CI (black)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _svg(figure, name)


def forest(rows: Sequence[Interval], *, xlabel: str, title: str, name: str = "forest") -> str:
    """Differences with intervals, one row each, and a line at zero (no difference)."""
    figure = _figure(6.0, 0.5 * len(rows) + 1.3)
    ax = figure.add_subplot()
    positions = np.arange(len(rows))[::-1]
    for y, row in zip(positions, rows, strict=True):
        if math.isfinite(row.ci_low) and math.isfinite(row.ci_high):
            ax.plot([row.ci_low, row.ci_high], [y, y], color=_color(1), linewidth=2)
        ax.plot([row.estimate], [y], "s", color=_color(1), markersize=6)
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(positions, [row.label for row in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(_label(xlabel))
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _svg(figure, name)


def completion_curves(
    curves: Mapping[str, KaplanMeierCurve],
    observations: Mapping[str, tuple[FloatArray, FloatArray]],
    labels: Mapping[str, str],
    *,
    limit: float | None,
    unit: str = "minutes",
    name: str = "km",
) -> str:
    """Kaplan-Meier curves of finishing: the share who had finished by each time, i.e.
    1 - S(t) with S the share still working; censored participants (not finished when they
    were last seen, usually at the limit) are marked with a "+".

    ``observations`` maps an arm to its (times, finished 1/0) arrays."""
    figure = _figure(6.0, 3.6)
    ax = figure.add_subplot()
    for i, arm in enumerate(curves):
        curve = curves[arm]
        times = np.concatenate([[0.0], curve.times])
        finished = np.concatenate([[0.0], 1 - curve.survival])
        end = limit if limit is not None else float(np.max(observations[arm][0], initial=0.0))
        if times[-1] < end:
            times = np.append(times, end)
            finished = np.append(finished, finished[-1])
        ax.step(
            times,
            finished,
            where="post",
            color=_color(i),
            label=f"{labels.get(arm, arm)} ({curve.events} of {curve.n} finished)",
        )
        time, event = observations.get(arm, (np.empty(0), np.empty(0)))
        censored = np.asarray(time, dtype=np.float64)[np.asarray(event) == 0]
        if censored.size:
            # The curve's height at each censoring time: the last step at or before it.
            index = np.searchsorted(curve.times, censored, side="right")
            heights = np.concatenate([[0.0], 1 - curve.survival])[index]
            ax.plot(censored, heights, "+", color=_color(i), markersize=9, markeredgewidth=1.5)
    if limit is not None:
        ax.axvline(limit, color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel(f"Time ({unit})" if unit else "Time")
    ax.set_ylabel("Share finished (1 - Kaplan-Meier S)")
    ax.set_title("Kaplan-Meier: share who had finished; + censored (not finished)", fontsize=9)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _svg(figure, name)


def score_against_time(
    points: Mapping[str, tuple[FloatArray, FloatArray, FloatArray]],
    labels: Mapping[str, str],
    *,
    xlabel: str,
    ylabel: str,
    name: str = "scatter",
) -> str:
    """Outcome against completion time, one colour per arm; hollow markers are censored
    times (the participant had not finished)."""
    figure = _figure(6.0, 3.8)
    ax = figure.add_subplot()
    total = sum(len(p[0]) for p in points.values())
    large = total > RASTERIZE_ABOVE
    for i, (arm, (time, score, finished)) in enumerate(points.items()):
        done = np.asarray(finished) == 1
        ax.scatter(
            time[done],
            score[done],
            s=3 if large else 16,
            alpha=0.3 if large else 0.7,
            color=_color(i),
            edgecolors="none",
            label=f"{labels.get(arm, arm)}",
            rasterized=large,
        )
        if (~done).any():
            ax.scatter(
                time[~done],
                score[~done],
                s=3 if large else 16,
                facecolors="none",
                edgecolors=_color(i),
                alpha=0.5 if large else 0.9,
                label=f"{labels.get(arm, arm)}, not finished",
                rasterized=large,
            )
    ax.set_xlabel(_label(xlabel))
    ax.set_ylabel(_label(ylabel))
    ax.set_title("Each participant; hollow: did not finish (time censored)", fontsize=9)
    # Below the plot, not beside it: the axes keep the figure's width for the labels.
    figure.legend(fontsize=8, frameon=False, loc="outside lower center", ncols=2)
    ax.grid(alpha=0.3)
    return _svg(figure, name)
