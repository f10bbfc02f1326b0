"""The trial report: one HTML page from an `AnalysisInput` and its `AnalysisResults`.

`render_report` builds every string the template shows (numbers are formatted here, the
template only lays them out) and renders ``analysis/report.html``. The page has inline CSS
and inline SVG only; with ``self_contained=True`` it also leaves out the links back into the
site, so the file can be archived or e-mailed and still reads the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from analysis import plots
from analysis.analyze import (
    ARM,
    NO_COMPARISONS,
    AnalysisResults,
    ArmSummary,
    Finding,
    finished_column,
    outcome_column,
    software_versions,
)
from analysis.consort import consort_svg, consort_table
from analysis.inputs import AnalysisInput, OutcomeSpec, plan_outcome_name
from analysis.stats import CENSORED_T_TEST_NOTE

MINUS, DASH, TIMES, ALPHA = (
    "\u2212",
    "\u2013",
    "\u00d7",
    "\u03b1",
)  # typographic minus, dash, times, alpha
METHOD_LABELS = {
    "welch_t": "Welch t-test",
    "student_t": "Student t-test (pooled variance)",
    "hedges_g": "Hedges' g",
    "mann_whitney": "Mann-Whitney (Hodges-Lehmann shift)",
    "permutation": "Permutation test",
    "bootstrap": "Bootstrap interval",
    "ancova": "ANCOVA (OLS, HC3)",
    "interaction": f"Arm {TIMES} covariate interaction",
    "anova": "One-way ANOVA (all arms)",
    "kruskal": "Kruskal-Wallis (all arms)",
    "km_median": "Kaplan-Meier median",
    "logrank": "Log-rank test (all arms)",
    "cox": "Cox hazard ratio of finishing",
    "rmst": "Restricted mean time, difference",
    "tost": "Equivalence (TOST)",
    "gee_logistic": "Item-level logistic GEE, odds ratio",
    "proportion_difference": "Difference in proportions",
}
OUTCOME_LABELS = {
    "quiz_score": "Quiz score",
    "quiz_percent": "Quiz score (%)",
    "completion_time": "Completion time",
    "task_completed": "Tasks completed",
    "category_scores": "Quiz score by category",
    "warmup_time": "Warm-up time",
    "errors": "Errors while coding",
    "survey": "Survey",
    "quiz_items": "Quiz items (correct answers)",
}


# --------------------------------------------------------------------------------------------
# Number formatting
# --------------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for people: fixed decimals, a real minus sign, '-' for missing, ∞ spelled."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if math.isinf(value):
        return "∞" if value > 0 else f"{MINUS}∞"
    text = f"{value:,.{digits}f}"
    return text.replace("-", MINUS)


def fmt_p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return DASH
    if value < 0.001:
        return "< 0.001"
    return f"{value:.3f}"


def p_phrase(value: float | None, name: str = "p") -> str:
    """``p = 0.012`` or ``p < 0.001``, for sentences."""
    text = fmt_p(value)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def fmt_ci(low: float, high: float, digits: int = 2) -> str:
    if math.isnan(low) and math.isnan(high):
        return DASH
    return f"{fmt(low, digits)} to {fmt(high, digits)}"


def _digits(value: float) -> int:
    """Decimals that show a number to about three significant figures."""
    if not math.isfinite(value) or value == 0:
        return 2
    magnitude = math.floor(math.log10(abs(value)))
    return int(min(4, max(0, 2 - magnitude)))


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    method: str
    groups: str
    n: str
    estimate: str
    ci: str
    p: str
    adjusted: str
    effect: str
    notes: str
    warning: bool = False


@dataclass
class Section:
    key: str
    title: str
    role: str
    description: str
    rows: list[Row]
    plots: list[SafeString] = field(default_factory=list)
    descriptives: list[list[str]] = field(default_factory=list)
    descriptive_header: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


def outcome_label(name: str, spec: OutcomeSpec | None = None) -> str:
    if spec is not None and spec.label:
        return spec.label
    base, _, detail = name.partition(":")
    label = OUTCOME_LABELS.get(base, base.replace("_", " ").capitalize())
    return f"{label}: {detail.replace('_', ' ')}" if detail else label


def _unit(results: AnalysisResults, outcome: str) -> str:
    spec = results.specs.get(outcome)
    if spec is not None and spec.unit:
        return spec.unit
    base = plan_outcome_name(outcome)
    if base == "category_scores":
        parent = results.specs.get(base)
        part = parent.categories.get(outcome.partition(":")[2]) if parent else None
        has_max = part is not None and (part.max_points or part.max_column)
        return "percentage points" if has_max else "points"
    if spec is not None and spec.kind == "time":
        return "minutes"
    return "points" if base in ("quiz_score",) else ""


def _groups(result_groups: Sequence[str], labels: dict[str, str]) -> str:
    names = [labels.get(g, g) for g in result_groups]
    if len(names) == 2:
        return f"{names[0]} vs {names[1]}"
    return ", ".join(names)


def _row(finding: Finding, labels: dict[str, str], outcome_kind: str) -> Row:
    r = finding.result
    method = METHOD_LABELS.get(r.method, r.method)
    censored_t = r.method == "student_t" and CENSORED_T_TEST_NOTE in r.notes
    if censored_t:
        method = "t-test on censored times (biased, for comparison)"
    digits = _digits(r.estimate)
    estimate = fmt(r.estimate, digits)
    if r.method == "km_median" and math.isnan(r.estimate):
        estimate = "not reached"
    effect = ""
    if r.effect_size is not None and r.method != "hedges_g":
        es = r.effect_size
        name = {"cohens_d": "d", "hedges_g": "g", "rank_biserial": "r", "cohens_h": "h"}.get(
            es.name, es.name
        )
        effect = f"{name} = {fmt(es.value)}"
        if not (math.isnan(es.ci_low) and math.isnan(es.ci_high)):
            effect += f" ({fmt_ci(es.ci_low, es.ci_high)})"
    extra = []
    if r.statistic is not None and math.isfinite(r.statistic):
        extra.append(f"statistic {fmt(r.statistic, 3)}")
    if r.df is not None and math.isfinite(r.df):
        extra.append(f"df {fmt(r.df, 1)}")
    if r.covariates:
        extra.append("adjusted for " + ", ".join(r.covariates))
    adjusted = ""
    if r.adjusted_p is not None:
        adjusted = f"Holm {fmt_p(r.adjusted_p)}"
        if finding.adjusted_p_bh is not None:
            adjusted += f"; BH {fmt_p(finding.adjusted_p_bh)}"
    notes = r.notes.replace(CENSORED_T_TEST_NOTE, "Biased: see the note on censoring below.")
    return Row(
        method=method,
        groups=_groups(r.groups, labels),
        n=str(r.n),
        estimate=estimate,
        ci=fmt_ci(r.ci_low, r.ci_high, digits),
        p=fmt_p(r.p_value),
        adjusted=adjusted,
        effect=effect,
        notes="; ".join(extra) + (". " if extra else "") + notes,
        warning=censored_t or "Warning:" in r.notes,
    )


def _descriptive_table(
    summaries: list[ArmSummary], labels: dict[str, str], kind: str, unit: str
) -> tuple[list[str], list[list[str]]]:
    if kind == "time":
        header = ["Arm", "n", "Finished", "Not finished (censored)", "KM median", "Mean (naive)"]
        rows = [
            [
                labels.get(s.arm, s.arm),
                str(s.n),
                str(s.finished if s.finished is not None else DASH),
                str(s.censored if s.censored is not None else DASH),
                "not reached" if math.isnan(s.km_median) else fmt(s.km_median, 1),
                fmt(s.mean, 1),
            ]
            for s in summaries
        ]
        return header, rows
    header = ["Arm", "n", "Missing", "Mean (SD)", "95% CI of mean", "Median [IQR]"]
    show_percent = any(math.isfinite(s.percent_of_max) for s in summaries)
    if show_percent:
        header.append("Mean % of max")
    if kind == "binary":
        header = ["Arm", "n", "Missing", "Proportion", "95% CI"]
    rows = []
    for s in summaries:
        if kind == "binary":
            rows.append(
                [
                    labels.get(s.arm, s.arm),
                    str(s.n),
                    str(s.missing),
                    fmt(s.mean, 3),
                    fmt_ci(s.ci_low, s.ci_high, 3),
                ]
            )
            continue
        row = [
            labels.get(s.arm, s.arm),
            str(s.n),
            str(s.missing),
            f"{fmt(s.mean)} ({fmt(s.sd)})",
            fmt_ci(s.ci_low, s.ci_high),
            f"{fmt(s.median, 1)} [{fmt(s.q1, 1)}, {fmt(s.q3, 1)}]",
        ]
        if show_percent:
            row.append(fmt(s.percent_of_max, 1) + "%")
        rows.append(row)
    return header, rows


# --------------------------------------------------------------------------------------------
# The headline
# --------------------------------------------------------------------------------------------


def summary_sentences(results: AnalysisResults) -> list[str]:
    """One plain sentence per preregistered outcome, primary first (ITT)."""
    labels = results.arm_labels
    sentences = []
    ordered = sorted(
        results.roles, key=lambda o: {"primary": 0, "secondary": 1}.get(results.roles[o], 2)
    )
    for outcome in ordered:
        role = results.roles[outcome]
        if role == "exploratory":
            continue
        spec = results.specs[outcome]
        text = _headline(results, outcome, spec, labels)
        if text:
            prefix = "Primary outcome: " if role == "primary" else ""
            sentences.append(prefix + text)
    return sentences


def _headline(
    results: AnalysisResults, outcome: str, spec: OutcomeSpec, labels: dict[str, str]
) -> str:
    ref = labels.get(results.reference_arm, results.reference_arm)
    label = outcome_label(outcome, spec)
    if spec.kind == "categories":
        found = results.select(outcome=outcome, method="welch_t", prefix=True)
        if not found:
            return ""
        unit = _unit(results, found[0].result.outcome)
        by_arm = _by_arm(results, found)
        if len(by_arm) > 1:
            # Three or more arms: one clause per arm against the reference.
            clauses = [
                f"{labels.get(arm, arm)} vs {ref}: "
                + ", ".join(_category_part(f) for f in findings)
                for arm, findings in by_arm.items()
            ]
            return f"{label}, difference from {ref} in {unit}: " + "; ".join(clauses) + "."
        parts = [_category_part(f) for f in found]
        pair = _groups(found[0].result.groups, labels)
        return f"{label}, difference {pair} in {unit}: " + "; ".join(parts) + "."
    finding = results.main_finding(outcome)
    if finding is None:
        return ""
    comparisons = _by_arm(results, results.select(outcome=outcome, method=finding.result.method))
    if len(comparisons) > 1:
        return _multi_arm_headline(results, outcome, spec, labels, comparisons)
    r = finding.result
    arm = labels.get(r.groups[0], r.groups[0])
    if spec.kind == "continuous":
        unit = _unit(results, outcome)
        direction = "lower" if r.estimate < 0 else "higher"
        digits = _digits(r.estimate)
        es = r.effect_size
        effect = f"Cohen's d = {fmt(es.value)}; " if es is not None else ""
        percents = {s.arm: s.percent_of_max for s in results.summaries(outcome)}
        percent = ""
        if all(math.isfinite(v) for v in percents.values()) and len(percents) >= 2:
            percent = (
                " (means "
                + " vs ".join(f"{fmt(percents[a], 1)}%" for a in (r.groups[0], r.groups[1]))
                + " of the maximum)"
            )
        return (
            f"{label}: the {arm} arm was {fmt(abs(r.estimate), digits)} {unit} {direction} "
            f"than the {ref} arm{percent} (95% CI of the difference "
            f"{fmt_ci(r.ci_low, r.ci_high, digits)}; "
            f"{effect}Welch t-test {p_phrase(r.p_value)}; intention to treat, n = {r.n})."
        )
    if spec.kind == "time":
        return (
            f"{label}: Kaplan-Meier median {_km_medians(results, outcome, r.groups)} "
            f"{spec.unit or 'minutes'}; hazard ratio of finishing {arm} vs {ref} "
            f"{fmt(r.estimate)} (95% CI {fmt_ci(r.ci_low, r.ci_high)}; {p_phrase(r.p_value)}; "
            f"above 1 means {arm} finished sooner){_not_finished(results, outcome)}."
        )
    if spec.kind == "binary":
        return (
            f"{label}: difference in proportions {arm} {MINUS} {ref} {fmt(r.estimate, 3)} "
            f"(95% CI {fmt_ci(r.ci_low, r.ci_high, 3)}; Fisher {p_phrase(r.p_value)})."
        )
    return ""


def _by_arm(results: AnalysisResults, findings: list[Finding]) -> dict[str, list[Finding]]:
    """Findings grouped by the arm compared with the reference, in the report's arm order."""
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.result.groups[0], []).append(finding)
    rank = {arm: i for i, arm in enumerate(results.arms)}
    return dict(sorted(grouped.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def _category_part(finding: Finding) -> str:
    r = finding.result
    return (
        f"{outcome_label(r.outcome).split(': ', 1)[-1]} "
        f"{fmt(r.estimate, 1)} ({p_phrase(r.adjusted_p, 'Holm p')})"
    )


def _km_medians(results: AnalysisResults, outcome: str, arms: Sequence[str]) -> str:
    labels = results.arm_labels
    medians = {
        f.result.groups[0]: f.result.estimate
        for f in results.select(outcome=outcome, method="km_median")
    }
    return " vs ".join(
        f"{'not reached' if math.isnan(medians.get(a, math.nan)) else fmt(medians[a], 1)} "
        f"({labels.get(a, a)})"
        for a in arms
    )


def _not_finished(results: AnalysisResults, outcome: str) -> str:
    summaries = results.summaries(outcome)
    censored = sum(s.censored or 0 for s in summaries)
    total = sum(s.n for s in summaries)
    return f"; {censored} of {total} did not finish within the limit"


def _holm(r: Any) -> str:
    return f", {p_phrase(r.adjusted_p, 'Holm p')}" if r.adjusted_p is not None else ""


def _multi_arm_headline(
    results: AnalysisResults,
    outcome: str,
    spec: OutcomeSpec,
    labels: dict[str, str],
    comparisons: dict[str, list[Finding]],
) -> str:
    """Three or more arms: each arm against the reference, named in its own clause."""
    ref = labels.get(results.reference_arm, results.reference_arm)
    label = outcome_label(outcome, spec)
    firsts = [(labels.get(arm, arm), found[0].result) for arm, found in comparisons.items()]
    if spec.kind == "continuous":
        unit = _unit(results, outcome)
        clauses = []
        for arm, r in firsts:
            digits = _digits(r.estimate)
            es = r.effect_size
            effect = f"Cohen's d = {fmt(es.value)}; " if es is not None else ""
            clauses.append(
                f"{arm} vs {ref}: {fmt(r.estimate, digits)} {unit} (95% CI "
                f"{fmt_ci(r.ci_low, r.ci_high, digits)}; {effect}{p_phrase(r.p_value)}"
                f"{_holm(r)}; n = {r.n})"
            )
        return (
            f"{label}, difference from the {ref} arm (Welch t-test, intention to treat): "
            + "; ".join(clauses)
            + "."
        )
    if spec.kind == "time":
        arms = [*comparisons, results.reference_arm]
        clauses = [
            f"{arm} vs {ref} {fmt(r.estimate)} (95% CI {fmt_ci(r.ci_low, r.ci_high)}; "
            f"{p_phrase(r.p_value)}{_holm(r)})"
            for arm, r in firsts
        ]
        return (
            f"{label}: Kaplan-Meier median {_km_medians(results, outcome, arms)} "
            f"{spec.unit or 'minutes'}; hazard ratio of finishing: " + "; ".join(clauses) + " "
            f"(above 1 means that arm finished sooner than {ref})"
            f"{_not_finished(results, outcome)}."
        )
    if spec.kind == "binary":
        clauses = [
            f"{arm} {MINUS} {ref}: {fmt(r.estimate, 3)} (95% CI "
            f"{fmt_ci(r.ci_low, r.ci_high, 3)}; Fisher {p_phrase(r.p_value)}{_holm(r)})"
            for arm, r in firsts
        ]
        return f"{label}, difference in proportions: " + "; ".join(clauses) + "."
    return ""


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def _plan_description(inp: AnalysisInput, outcome: str) -> str:
    plan = inp.plan or {}
    items = [plan.get("primary") or {}, *(plan.get("secondary") or [])]
    for item in items:
        if item.get("outcome") == plan_outcome_name(outcome):
            return str(item.get("description", ""))
    return ""


def _outcome_plots(
    inp: AnalysisInput, results: AnalysisResults, outcome: str, spec: OutcomeSpec, population: str
) -> list[SafeString]:
    frame = results.frames.get(population)
    if frame is None:
        return []
    labels = results.arm_labels
    arms = [a for a in results.arms if a in set(frame[ARM])]
    suffix = f"{population}-{outcome}".replace(":", "-").replace("_", "-")
    svgs: list[str] = []
    if spec.kind == "continuous" and outcome_column(outcome) in frame.columns:
        values = {
            a: frame.loc[frame[ARM] == a, outcome_column(outcome)].dropna().to_numpy() for a in arms
        }
        intervals = {
            s.arm: (s.mean, s.ci_low, s.ci_high) for s in results.summaries(outcome, population)
        }
        unit = _unit(results, outcome)
        svgs.append(
            plots.scores_by_arm(
                values,
                labels,
                intervals,
                ylabel=f"{outcome_label(outcome, spec)}" + (f" ({unit})" if unit else ""),
                seed=results.seed,
                maximum=spec.max_points,
                name=f"scores-{suffix}",
            )
        )
    elif spec.kind == "categories":
        rows = [
            plots.Interval(
                label=outcome_label(f.result.outcome).split(": ", 1)[-1]
                + (
                    f" ({labels.get(f.result.groups[0], f.result.groups[0])})"
                    if len(arms) > 2
                    else ""
                ),
                estimate=f.result.estimate,
                ci_low=f.result.ci_low,
                ci_high=f.result.ci_high,
            )
            for f in results.select(
                outcome=outcome, method="welch_t", population=population, prefix=True
            )
        ]
        if rows and len(arms) >= 2:
            first = results.select(
                outcome=outcome, method="welch_t", population=population, prefix=True
            )[0]
            pair = _groups(first.result.groups, labels)
            svgs.append(
                plots.forest(
                    rows,
                    xlabel=f"Difference {pair} ({_unit(results, first.result.outcome)}), 95% CI",
                    title="Per-category differences (unadjusted 95% CIs)",
                    name=f"forest-{suffix}",
                )
            )
    elif spec.kind == "time":
        curves = results.curves.get((population, outcome), {})
        if curves and outcome_column(outcome) in frame.columns:
            observations = {
                a: (
                    frame.loc[frame[ARM] == a, outcome_column(outcome)].to_numpy(dtype=np.float64),
                    frame.loc[frame[ARM] == a, finished_column(outcome)].to_numpy(dtype=np.float64),
                )
                for a in curves
            }
            svgs.append(
                plots.completion_curves(
                    curves,
                    observations,
                    labels,
                    limit=spec.limit,
                    unit=spec.unit or "minutes",
                    name=f"km-{suffix}",
                )
            )
    return [mark_safe(svg) for svg in svgs]  # noqa: S308 - SVG text built by matplotlib here


def _section(
    inp: AnalysisInput,
    results: AnalysisResults,
    outcome: str,
    population: str,
    *,
    preregistered: bool | None,
    with_plots: bool = True,
) -> Section | None:
    spec = results.specs[outcome]
    findings = [
        f
        for f in results.select(outcome=outcome, population=population, prefix=True)
        if preregistered is None or f.preregistered == preregistered
    ]
    if not findings:
        return None
    kind = spec.kind
    if kind == "categories":
        # Group the rows by category, in the order the categories were given.
        order = {f"{outcome}:{name}": i for i, name in enumerate(spec.categories)}
        findings.sort(key=lambda f: order.get(f.result.outcome, len(order)))
    rows = [_row(f, results.arm_labels, kind) for f in findings]
    if kind == "categories":
        for row, finding in zip(rows, findings, strict=True):
            category = finding.result.outcome.partition(":")[2].replace("_", " ")
            row.groups = f"{category}: {row.groups}"
    section = Section(
        key=(
            f"{population}-{outcome}" + {True: "", False: "-exploratory", None: ""}[preregistered]
        ).replace(":", "-"),
        title=outcome_label(outcome, spec),
        role=results.roles.get(outcome, "exploratory"),
        description=_plan_description(inp, outcome),
        rows=rows,
    )
    if with_plots:
        section.plots = _outcome_plots(inp, results, outcome, spec, population)
    if kind == "categories":
        header: list[str] = []
        table: list[list[str]] = []
        for name in spec.categories:
            summaries = results.summaries(f"{outcome}:{name}", population)
            if summaries:
                unit = _unit(results, f"{outcome}:{name}")
                header, body = _descriptive_table(summaries, results.arm_labels, "continuous", unit)
                table += [[name.replace("_", " "), *row] for row in body]
        section.descriptive_header = ["Category", *header] if table else []
        section.descriptives = table
    else:
        header, body = _descriptive_table(
            results.summaries(outcome, population),
            results.arm_labels,
            kind,
            _unit(results, outcome),
        )
        section.descriptive_header, section.descriptives = header, body
    return section


def _scatter(inp: AnalysisInput, results: AnalysisResults) -> SafeString | None:
    primary = results.primary_outcome
    time_outcome = next((o for o, s in results.specs.items() if s.kind == "time"), None)
    if primary is None or time_outcome is None or results.comparisons_notice:
        return None
    spec = results.specs[primary]
    frame = results.frames["itt"]
    if (
        spec.kind != "continuous"
        or outcome_column(primary) not in frame
        or outcome_column(time_outcome) not in frame
    ):
        return None
    points = {}
    for arm in results.arms:
        rows = (
            (frame[ARM] == arm)
            & frame[outcome_column(primary)].notna()
            & frame[outcome_column(time_outcome)].notna()
        )
        points[arm] = (
            frame.loc[rows, outcome_column(time_outcome)].to_numpy(dtype=np.float64),
            frame.loc[rows, outcome_column(primary)].to_numpy(dtype=np.float64),
            frame.loc[rows, finished_column(time_outcome)].to_numpy(dtype=np.float64),
        )
    time_spec = results.specs[time_outcome]
    svg = plots.score_against_time(
        points,
        results.arm_labels,
        xlabel=f"{outcome_label(time_outcome, time_spec)} ({time_spec.unit or 'minutes'})",
        ylabel=f"{outcome_label(primary, spec)}",
        name="scatter-itt",
    )
    return mark_safe(svg)  # noqa: S308 - SVG text built by matplotlib here


def baseline_table(inp: AnalysisInput, results: AnalysisResults) -> dict[str, Any]:
    """Baseline characteristics by arm (ITT): mean (SD) for numbers, n (%) for categories."""
    frame = results.frames["itt"]
    arms = results.arms
    header = [
        "Characteristic",
        *(f"{results.arm_labels.get(a, a)} (n = {int((frame[ARM] == a).sum())})" for a in arms),
        f"All (n = {len(frame)})",
    ]
    rows: list[list[str]] = []
    groups = [frame.loc[frame[ARM] == a] for a in arms] + [frame]
    for column in inp.baseline_columns:
        if column not in frame.columns:
            continue
        name = column.removeprefix("baseline_").replace("_", " ")
        series = frame[column]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if numeric:
            cells = []
            for group in groups:
                values = pd.to_numeric(group[column], errors="coerce")
                absent = int(values.isna().sum())
                text = f"{fmt(values.mean())} ({fmt(values.std(ddof=1))})"
                cells.append(text + (f", {absent} missing" if absent else ""))
            rows.append([f"{name}, mean (SD)", *cells])
            continue
        rows.append([f"{name}, n (%)", *([""] * len(groups))])
        # The questionnaire's choices in its order, with their labels; values it does not
        # list (data from elsewhere) follow in natural order.
        choices = inp.baseline_choices.get(column, [])
        present = {str(v) for v in series.dropna()}
        known = [value for value, _ in choices]
        labels = dict(choices)
        levels = known + sorted(present - set(known), key=_natural)
        for level in levels:
            cells = []
            for group in groups:
                values = group[column].dropna().astype(str)
                count = int((values == level).sum())
                share = 100 * count / len(group) if len(group) else math.nan
                cells.append(f"{count} ({fmt(share, 0)}%)")
            rows.append([f"    {labels.get(level, level)}", *cells])
        missing = [int(group[column].isna().sum()) for group in groups]
        if any(missing):
            rows.append(["    missing", *(str(m) for m in missing)])
    return {"header": header, "rows": rows}


def _natural(text: str) -> tuple[Any, ...]:
    """Sort '1-3' < '4-6' < '7+' < '10+' by their leading number, then by text."""
    match = re.match(r"\s*(\d+(?:\.\d+)?)", text)
    return (0, float(match.group(1)), text) if match else (1, 0.0, text)


def _planning_text(results: AnalysisResults) -> list[str]:
    plan = results.planning
    texts = []
    for comparison in plan.get("comparisons", []):
        arm, ref = (results.arm_labels.get(g, g) for g in comparison["groups"])
        n1, n2 = comparison["n"]
        if "mde_d" in comparison:
            unit = _unit(results, plan["outcome"])
            texts.append(
                f"With {n1} ({arm}) and {n2} ({ref}) participants and {ALPHA} = "
                f"{comparison['alpha']:g} (two-sided), the trial has 80% power to detect a "
                f"standardized difference of d = {fmt(comparison['mde_d'])}, about "
                f"{fmt(comparison['mde_units'])} {unit} at the observed pooled SD of "
                f"{fmt(comparison['pooled_sd'])}. Power for d = 0.5: "
                f"{fmt(100 * comparison['power_d_0_5'], 0)}%; for d = 0.8: "
                f"{fmt(100 * comparison['power_d_0_8'], 0)}%. Detecting d = 0.5 with 80% power "
                f"needs {comparison['n_per_arm_for_d_0_5']} per arm."
            )
        elif "mde_h" in comparison:
            texts.append(
                f"With {n1} and {n2} participants the trial has 80% power to detect Cohen's "
                f"h = {fmt(comparison['mde_h'])}: from "
                f"{fmt(100 * comparison['reference_proportion'], 0)}% "
                f"to {fmt(100 * comparison['detectable_proportion'], 0)}%."
            )
    if plan.get("note"):
        texts.append(plan["note"])
    return texts


def assumption_notes(results: AnalysisResults) -> list[str]:
    has_time = any(s.kind == "time" for s in results.specs.values())
    has_categories = any(s.kind == "categories" for s in results.specs.values())
    notes = [
        "Populations. Intention to treat (ITT): every allocated participant in the arm they "
        "were allocated to, whatever they did afterwards; a participant without a value of an "
        "outcome (e.g. left before the quiz) is left out of that outcome's analysis and "
        "nothing is imputed, so the n of each result says how many were used. Per protocol: "
        "the ITT participants who met the plan's per-protocol rules; it is a sensitivity "
        "analysis, no longer protected by randomization.",
        "Welch vs Student. The Welch t-test does not assume equal variances and is the "
        "headline test; the pooled-variance Student t-test is shown because published studies "
        "report it. With similar arm sizes they agree closely. Cohen's d uses the pooled SD "
        "with a noncentral-t interval. Mann-Whitney, permutation and bootstrap results check "
        "that the conclusion does not rest on normality.",
        "ANCOVA. Adjusting for the preregistered covariates (OLS with HC3 robust errors) "
        "increases precision; participants with a missing covariate are left out of it "
        "(complete cases), and its n says how many remained.",
        f"Seeded resampling. Permutation and bootstrap results use seed {results.seed}; the "
        "same data and seed give the same numbers.",
    ]
    if has_time:
        notes.append(
            "Censoring. Completion time is right-censored at the time limit: someone who had "
            "not finished took longer than the limit, by an unknown amount. A t-test must put "
            "a number there; using the limit understates those times and pulls the slower "
            "arm's mean down, so the difference shrinks towards zero (and dropping "
            "non-finishers removes the slowest, unequally between arms). The t-test is shown "
            "only for comparison with published work. Kaplan-Meier medians, the log-rank test, "
            "the Cox hazard ratio and the restricted mean time treat non-finishers as 'still "
            "working at the limit'."
        )
        notes.append(
            "Proportional hazards. The Cox hazard ratio summarises the effect as one ratio "
            "over the whole session; if the curves cross, that single number misleads, and "
            "the restricted mean time difference (which needs no such assumption) is the "
            "better summary. The log-rank test is most powerful under proportional hazards."
        )
    if has_categories:
        notes.append(
            "Multiplicity. The per-category comparisons form one family: Holm's adjustment "
            "controls the chance of any false positive, Benjamini-Hochberg the expected share "
            "of false positives. Secondary outcomes are not adjusted across outcomes; read "
            "them as supporting the primary result. Exploratory analyses are not adjusted "
            "and generate hypotheses only."
        )
    if len(results.arms) > 2:
        notes.append(
            "More than two arms. An omnibus test (ANOVA, Kruskal-Wallis) comes first; each "
            "arm is then compared with the reference arm and those comparisons are "
            "Holm-adjusted."
        )
    return notes


def _provenance(inp: AnalysisInput, results: AnalysisResults) -> list[tuple[str, str]]:
    meta = results.meta
    snapshot = meta.get("snapshot") or {}
    rows = []
    if meta.get("slug"):
        rows.append(("Trial", f"{meta['slug']} v{meta.get('version', '?')}"))
    if meta.get("trial_status"):
        rows.append(("Status", str(meta["trial_status"])))
    rows.append(("Protocol hash (SHA-256)", str(meta.get("protocol_hash") or "none")))
    snap = []
    if snapshot.get("taken_at"):
        snap.append(f"taken {snapshot['taken_at']}")
    if snapshot.get("rows") is not None:
        snap.append(f"{snapshot['rows']} rows")
    if snapshot.get("sha256"):
        snap.append(f"SHA-256 {snapshot['sha256']}")
    rows.append(("Data snapshot", ", ".join(snap) or "unknown"))
    if meta.get("source"):
        rows.append(("Source", str(meta["source"])))
    rows.append(
        ("Reference arm", results.arm_labels.get(results.reference_arm, results.reference_arm))
    )
    rows.append(("Seed", str(results.seed)))
    versions = software_versions()
    rows.append(("Software", ", ".join(f"{k} {v}" for k, v in versions.items())))
    return rows


def _outcome_sections(
    inp: AnalysisInput, results: AnalysisResults
) -> tuple[list[Section], list[Section], list[Section]]:
    """The preregistered, per-protocol and exploratory sections, primary outcomes first."""
    preregistered: list[Section] = []
    per_protocol: list[Section] = []
    exploratory: list[Section] = []
    ordered = sorted(
        results.specs,
        key=lambda o: {"primary": 0, "secondary": 1}.get(results.roles.get(o, ""), 2),
    )
    for outcome in ordered:
        if results.roles.get(outcome) != "exploratory":
            section = _section(inp, results, outcome, "itt", preregistered=True)
            if section:
                preregistered.append(section)
        section = _section(
            inp,
            results,
            outcome,
            "itt",
            preregistered=False,
            with_plots=results.roles.get(outcome) == "exploratory",
        )
        if section:
            exploratory.append(section)
        if "per_protocol" in results.frames:
            section = _section(inp, results, outcome, "per_protocol", preregistered=None)
            if section:
                per_protocol.append(section)
    if results.select(outcome="quiz_items"):
        rows = [_row(f, results.arm_labels, "binary") for f in results.select(outcome="quiz_items")]
        exploratory.append(
            Section(
                key="itt-quiz-items",
                title=OUTCOME_LABELS["quiz_items"],
                role="exploratory",
                description="",
                rows=rows,
            )
        )
    return preregistered, per_protocol, exploratory


def _consort_in_arm_order(results: AnalysisResults) -> dict[str, Any] | None:
    consort = results.consort
    if consort:
        # Arms in the report's order (the reference first), whatever order the counts had.
        rank = {arm: i for i, arm in enumerate(results.arms)}
        arms = sorted(consort["arms"], key=lambda a: rank.get(a["arm"], len(rank)))
        consort = {**consort, "arms": arms}
    return consort


def report_context(
    inp: AnalysisInput,
    results: AnalysisResults,
    *,
    self_contained: bool,
    links: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Everything the template shows, formatted."""
    preregistered, per_protocol, exploratory = _outcome_sections(inp, results)
    consort = _consort_in_arm_order(results)
    meta = results.meta
    title = str(meta.get("title") or "Trial analysis")
    return {
        "title": title,
        "self_contained": self_contained,
        "links": [] if self_contained else list(links),
        "ci_label": f"{1 - results.alpha:.0%} CI",
        "slug": meta.get("slug", ""),
        "version": meta.get("version", ""),
        "summary": summary_sentences(results),
        "deviations": [d.message for d in results.deviations],
        "meta_notes": [str(n) for n in meta.get("notes", [])],
        "notice": _notice(results),
        "problems": problem_notes(results),
        "provenance": _provenance(inp, results),
        "populations": [
            (
                info["label"],
                info["n"],
                ", ".join(
                    f"{results.arm_labels.get(a, a)} {n}" for a, n in info["n_by_arm"].items()
                ),
            )
            for info in results.populations.values()
        ],
        "consort_svg": mark_safe(consort_svg(consort)) if consort else None,  # noqa: S308
        "consort_rows": _consort_rows(consort) if consort else [],
        "consort_arms": [a["label"] for a in consort["arms"]] if consort else [],
        "baseline": baseline_table(inp, results),
        "preregistered": preregistered,
        "per_protocol": per_protocol,
        "exploratory": exploratory,
        "scatter": _scatter(inp, results),
        "planning": _planning_text(results),
        "assumptions": assumption_notes(results),
    }


POPULATION_SHORT = {"itt": "ITT", "per_protocol": "per-protocol"}
MIN_PER_ARM = 2


def _counts_text(counts: dict[str, int], labels: dict[str, str]) -> str:
    return ", ".join(f"{n} in {labels.get(arm, arm)}" for arm, n in counts.items())


def _plain_reason(message: str, counts: dict[str, int] | None, results: AnalysisResults) -> str:
    """Why a method could not run, in words a reader of the report can act on (the exact
    message stays in results.json's ``problems``)."""
    reference = results.arm_labels.get(results.reference_arm, results.reference_arm)
    if "not found in column" in message:
        return f"nobody in the reference arm ({reference}) has a value yet"
    if counts is not None and min(counts.values(), default=0) < MIN_PER_ARM:
        return (
            f"n = {_counts_text(counts, results.arm_labels)} with a value; each arm needs at "
            f"least {MIN_PER_ARM}"
        )
    if "two or more observations" in message or "at least two" in message.lower():
        return f"too few values in an arm (each arm needs at least {MIN_PER_ARM})"
    lowered = message.lower()
    if any(word in lowered for word in ("singular", "non-normal", "converge", "perfect")):
        return "the model cannot be fitted to data this few or this uniform"
    return f"it cannot be computed from these data ({message})"


def _outcome_counts(results: AnalysisResults, outcome: str, population: str) -> dict[str, int]:
    frame = results.frames.get(population)
    if frame is None or outcome_column(outcome) not in frame.columns:
        return {}
    values = frame[outcome_column(outcome)].notna()
    return {arm: int((values & (frame[ARM] == arm)).sum()) for arm in results.arms}


def problem_notes(results: AnalysisResults) -> list[str]:
    """The methods that could not run, for "Read this first", in plain words: one line per
    population whose arms are too small (e.g. "per-protocol n = 0 in No AI"), then one line
    per outcome and reason naming the methods."""
    problems = [p for p in results.problems if p.method != NO_COMPARISONS]
    notes: list[str] = []
    small: set[str] = set()
    for name, info in results.populations.items():
        counts: dict[str, int] = {arm: int(info["n_by_arm"].get(arm, 0)) for arm in results.arms}
        affected = [p for p in problems if p.population == name]
        if affected and min(counts.values(), default=0) < MIN_PER_ARM:
            small.add(name)
            short = POPULATION_SHORT.get(name, name)
            notes.append(
                f"{short[0].upper()}{short[1:]} n = "
                f"{_counts_text(counts, results.arm_labels)}: each arm needs at least "
                f"{MIN_PER_ARM} participants, so {len(affected)} {short} "
                f"result{'s are' if len(affected) != 1 else ' is'} not computed yet."
            )
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for p in problems:
        if p.population in small:
            continue
        reason = _plain_reason(
            p.message, _outcome_counts(results, p.outcome, p.population) or None, results
        )
        methods = grouped.setdefault((p.outcome, p.population, reason), [])
        label = METHOD_LABELS.get(p.method, p.method)
        if label not in methods:
            methods.append(label)
    for (outcome, population, reason), methods in grouped.items():
        notes.append(
            f"{outcome_label(outcome)} ({POPULATION_SHORT.get(population, population)}): "
            f"{', '.join(methods)} not computed — {reason}."
        )
    return notes


def _notice(results: AnalysisResults) -> str:
    """Why nothing was compared, as the report says it (empty if comparisons were made)."""
    notice = results.comparisons_notice
    if notice is None:
        return ""
    return (
        f"No comparison yet: {notice}. The participant flow and the baseline table below "
        "already show everyone who has entered."
    )


def _consort_rows(consort: dict[str, Any]) -> list[dict[str, Any]]:
    rows = consort_table(consort)
    return [
        {
            "stage": row["stage"],
            "item": row["item"].strip(),
            "indent": (len(row["item"]) - len(row["item"].lstrip())) // 2,
            "total": "" if row["total"] is None else row["total"],
            "arms": row["arms"] or [],
        }
        for row in rows
    ]


def render_report(
    inp: AnalysisInput,
    results: AnalysisResults,
    *,
    self_contained: bool,
    links: Sequence[tuple[str, str]] = (),
) -> str:
    """The report as HTML text (inline CSS and SVG; no external resources).

    ``links`` (label, href) are shown at the top of the web page; a self-contained file
    has none, so nothing in it points back into the site."""
    context = report_context(inp, results, self_contained=self_contained, links=links)
    return render_to_string("analysis/report.html", context)
