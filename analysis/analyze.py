"""Run a trial's analysis plan: every comparison, for the ITT and per-protocol populations.

`run_analysis` takes an `AnalysisInput` (from a trial or from a CSV with a mapping) and
returns `AnalysisResults`: the statistical results of `analysis.stats`, each labelled with
its population and whether the plan preregistered it, plus per-arm descriptives,
Kaplan-Meier curves, deviations from the plan, power figures and anything that could not be
computed. No Django import; deterministic for a given input and seed.

What is run, per population (``itt``: everyone allocated, in the arm allocated, with the
outcome observed - nothing is imputed; ``per_protocol``: those of them with the per-protocol
flag):

* continuous outcomes: Welch t (the primary test: valid with unequal variances), Student t
  (what published work usually reports), Hedges' g, Mann-Whitney with the Hodges-Lehmann
  shift, a permutation test and a bootstrap interval, ANCOVA with the plan's covariates
  (OLS, HC3); with more than two arms, ANOVA and Kruskal-Wallis first and the pairwise
  comparisons Holm-adjusted. ITT only and exploratory: treatment x covariate interactions.
* completion time (right-censored at the limit): Kaplan-Meier medians, log-rank, Cox
  (Efron ties), restricted mean time up to the limit, the censored t-test (exploratory, for
  comparison with published work) and, only when the plan gives a ``margin``, TOST.
  No margin, no equivalence test: a margin chosen after seeing the data proves nothing.
* category scores (percent of each category's maximum): Welch and Student t per category,
  each family Holm-adjusted (``adjusted_p``) and Benjamini-Hochberg-adjusted
  (``adjusted_p_bh``).
* binary outcomes: difference in proportions (Newcombe hybrid score interval, Fisher exact p).
* ITT only and exploratory: item-level logistic GEE when item responses are given.
"""

from __future__ import annotations

import hashlib
import math
import platform
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from importlib import metadata
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.tools.sm_exceptions import PerfectSeparationError

from analysis import stats
from analysis.inputs import AnalysisInput, OutcomeSpec, plan_outcome_name

ARM = "__arm__"
POPULATIONS = {"itt": "Intention to treat", "per_protocol": "Per protocol"}
# The test whose result is "the" result of an outcome in summaries.
MAIN_METHOD = {
    "continuous": "welch_t",
    "categories": "welch_t",
    "time": "cox",
    "binary": "proportion_difference",
}
EXPLORATORY_METHODS = frozenset({"interaction", "gee_logistic"})
# Resampling: 9999 resamples up to this many participants, then 1999 (the Monte Carlo error
# of a p-value does not depend on n, the cost does); BCa bootstrap intervals up to it, then
# percentile intervals (BCa's jackknife is quadratic in n, its correction vanishes as n grows).
RESAMPLING_FULL_N = 2000
RESAMPLE_BATCH_CELLS = 4_000_000  # resamples x participants held in memory at once
T = TypeVar("T")
SOFTWARE = ("django", "numpy", "scipy", "statsmodels", "pandas", "matplotlib", "skilltrial")


# The `Problem.method` of "no comparison could be made": fewer than two arms have allocated
# participants, or the reference arm has none (a trial that has just started, say). The
# report still shows the participant flow and the baseline table; ``results`` is empty.
NO_COMPARISONS = "comparisons"


class AnalysisError(ValueError):
    """The input cannot be analysed at all (no participants, no arm column)."""


@dataclass(frozen=True)
class Finding:
    """A `stats.Result` with where it belongs: population, plan role, preregistration."""

    result: stats.Result
    population: str
    role: str  # "primary" | "secondary" | "exploratory" (the outcome's role in the plan)
    preregistered: bool
    adjusted_p_bh: float | None = None
    adjustment: str | None = None  # what adjusted_p is: "holm", or None

    def to_dict(self) -> dict[str, Any]:
        data = self.result.to_dict()
        data.update(
            population=self.population,
            preregistered=self.preregistered,
            role=self.role,
            adjustment=self.adjustment,
            adjusted_p_bh=_json_value(self.adjusted_p_bh),
        )
        return data


@dataclass(frozen=True)
class Deviation:
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Problem:
    """A method that could not be computed (too few participants, no variation, ...)."""

    outcome: str
    method: str
    population: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {
            "outcome": self.outcome,
            "method": self.method,
            "population": self.population,
            "message": self.message,
        }


@dataclass(frozen=True)
class ArmSummary:
    """Descriptive statistics of one outcome in one arm."""

    population: str
    outcome: str
    arm: str
    n: int
    missing: int
    mean: float
    sd: float
    median: float
    q1: float
    q3: float
    ci_low: float  # t interval of the mean
    ci_high: float
    percent_of_max: float = math.nan  # mean as a percent of the maximum, if known
    finished: int | None = None  # time outcomes: finished within the limit
    censored: int | None = None
    km_median: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return {key: _json_value(value) for key, value in self.__dict__.items()}


@dataclass
class AnalysisResults:
    findings: list[Finding]
    seed: int
    reference_arm: str
    arms: list[str]  # reference first
    arm_labels: dict[str, str]
    alpha: float
    meta: dict[str, Any]
    consort: dict[str, Any] | None
    deviations: list[Deviation]
    problems: list[Problem]
    populations: dict[str, dict[str, Any]]  # name -> {label, n, n_by_arm}
    descriptives: list[ArmSummary]
    curves: dict[tuple[str, str], dict[str, stats.KaplanMeierCurve]]
    planning: dict[str, Any]
    roles: dict[str, str]  # outcome name -> primary / secondary / exploratory
    specs: dict[str, OutcomeSpec]
    frames: dict[str, pd.DataFrame] = field(repr=False)  # population -> working frame

    @property
    def results(self) -> list[stats.Result]:
        return [finding.result for finding in self.findings]

    def select(
        self,
        *,
        outcome: str | None = None,
        method: str | None = None,
        population: str | None = "itt",
        prefix: bool = False,
    ) -> list[Finding]:
        """Findings matching every given filter; ``prefix`` matches ``outcome:...`` too."""

        def outcome_matches(name: str) -> bool:
            if outcome is None:
                return True
            return name == outcome or (prefix and name.startswith(f"{outcome}:"))

        return [
            f
            for f in self.findings
            if outcome_matches(f.result.outcome)
            and (method is None or f.result.method == method)
            and (population is None or f.population == population)
        ]

    def summaries(self, outcome: str, population: str = "itt") -> list[ArmSummary]:
        return [s for s in self.descriptives if s.outcome == outcome and s.population == population]

    def main_finding(self, outcome: str, population: str = "itt") -> Finding | None:
        """The headline comparison of an outcome (first non-reference arm)."""
        spec = self.specs.get(plan_outcome_name(outcome)) or self.specs.get(outcome)
        kind = spec.kind if spec else "continuous"
        found = self.select(outcome=outcome, method=MAIN_METHOD[kind], population=population)
        return found[0] if found else None

    @property
    def primary_outcome(self) -> str | None:
        return next((name for name, role in self.roles.items() if role == "primary"), None)

    @property
    def comparisons_notice(self) -> str | None:
        """Why no comparison was computed (too few arms with participants), or None."""
        return next((p.message for p in self.problems if p.method == NO_COMPARISONS), None)

    def to_json(self) -> dict[str, Any]:
        """The document of ``analyze --json``: strict JSON (NaN and infinities are null)."""
        return {
            "results": [finding.to_dict() for finding in self.findings],
            "descriptives": [summary.to_dict() for summary in self.descriptives],
            "meta": _json_value(
                {
                    **self.meta,
                    "seed": self.seed,
                    "reference_arm": self.reference_arm,
                    "arms": self.arms,
                    "arm_labels": self.arm_labels,
                    "alpha": self.alpha,
                    "outcome_roles": self.roles,
                    "software": software_versions(),
                }
            ),
            "populations": _json_value(self.populations),
            "consort": _json_value(self.consort),
            "deviations": [deviation.to_dict() for deviation in self.deviations],
            "problems": [problem.to_dict() for problem in self.problems],
            "planning": _json_value(self.planning),
        }


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def software_versions() -> dict[str, str]:
    """Versions of Python and the packages the results depend on."""
    versions = {"python": platform.python_version()}
    for package in SOFTWARE:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _json_value(value: Any) -> Any:
    """Recursively JSON-safe: NaN/inf -> None, numpy scalars -> Python, dates -> ISO text."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_value(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if value is None or isinstance(value, str):
        return value
    if value is pd.NaT or value is pd.NA:
        return None
    return str(value)


def truthy(value: Any) -> bool:
    """A flag read leniently: True/1/"true"/"yes" are true; None and NaN are false."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "t")
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return False
    try:
        return bool(value)
    except (TypeError, ValueError):
        return False


def _flags(series: pd.Series) -> pd.Series:
    return series.map(truthy).astype(bool)


def _rng(seed: int, *key: str) -> np.random.Generator:
    """A generator per analysis, so adding an outcome never changes another one's draws."""
    return np.random.default_rng([seed, zlib.crc32("|".join(key).encode())])


def _numeric(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype(np.float64)
    return pd.to_numeric(series, errors="coerce").astype(np.float64)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def frame_sha256(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values, column names and order), for the data snapshot."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


class _Run:
    def __init__(self, inp: AnalysisInput, seed: int) -> None:
        self.inp = inp
        self.seed = seed
        self.plan = inp.plan or {}
        self.alpha = float(self.plan.get("alpha", 0.05))
        self.conf = 1 - self.alpha
        self.reference = inp.reference_arm
        self.findings: list[Finding] = []
        self.problems: list[Problem] = []
        self.deviations: list[Deviation] = []
        self.descriptives: list[ArmSummary] = []
        self.curves: dict[tuple[str, str], dict[str, stats.KaplanMeierCurve]] = {}
        self.plan_items: dict[str, dict[str, Any]] = {}
        self.roles: dict[str, str] = {}
        primary = self.plan.get("primary") or {}
        if primary.get("outcome"):
            self.plan_items[primary["outcome"]] = primary
        for item in self.plan.get("secondary") or []:
            if item.get("outcome"):
                self.plan_items.setdefault(item["outcome"], item)
        for name in inp.outcomes:
            plan_name = plan_outcome_name(name)
            if primary.get("outcome") == plan_name:
                self.roles[name] = "primary"
            elif plan_name in self.plan_items:
                self.roles[name] = "secondary"
            else:
                self.roles[name] = "exploratory"
        self.plan_covariates = [str(c) for c in self.plan.get("covariates") or []]
        self.comparisons_possible = True
        self.frames = self._population_frames()

    # populations -------------------------------------------------------------------------

    def _population_frames(self) -> dict[str, pd.DataFrame]:
        inp = self.inp
        if inp.arm_column not in inp.frame.columns:
            raise AnalysisError(
                f"arm column {inp.arm_column!r} not in the data "
                f"(columns: {', '.join(map(str, inp.frame.columns))})"
            )
        frame = inp.frame.copy()
        arm = frame[inp.arm_column].map(lambda v: "" if v is None or v != v else str(v).strip())
        frame[ARM] = arm.replace("", pd.NA)
        allocated = frame[ARM].notna()
        if "itt" in frame.columns:
            allocated &= _flags(frame["itt"])
        if frame.empty:
            raise AnalysisError("no participants yet: nobody has entered the trial")
        base = frame.loc[allocated].copy()
        sizes = base[ARM].value_counts()
        present = sorted(sizes.index)
        if self.reference not in present or len(present) < 2:
            so_far = ", ".join(f"{arm} {int(sizes[arm])}" for arm in present) or "nobody"
            self.comparisons_possible = False
            self.problems.append(
                Problem(
                    "",
                    NO_COMPARISONS,
                    "itt",
                    "comparisons need participants in at least two arms including the "
                    f"reference arm {self.reference!r}; none computed yet (allocated so far: "
                    f"{so_far})",
                )
            )
        for name, spec in inp.outcomes.items():
            self._derive(base, name, spec)
        for column in set(inp.covariates.values()):
            if column in base.columns and _is_numberlike(base[column]):
                base[column] = _numeric(base[column])
        frames = {"itt": base}
        pp = inp.per_protocol_column
        if pp and pp in base.columns:
            frames["per_protocol"] = base.loc[_flags(base[pp])].copy()
        return frames

    def _derive(self, frame: pd.DataFrame, name: str, spec: OutcomeSpec) -> None:
        """Add the columns the analyses read: numbers, percents, finish events."""
        if spec.kind == "categories":
            for category, part in spec.categories.items():
                if part.column not in frame.columns:
                    continue
                points = _numeric(frame[part.column])
                maximum = _maximum(frame, part)
                frame[outcome_column(f"{name}:{category}")] = (
                    points if maximum is None else 100 * points / maximum.where(maximum > 0)
                )
            return
        if spec.column not in frame.columns:
            return
        frame[outcome_column(name)] = _numeric(frame[spec.column])
        if spec.kind == "time":
            time = frame[outcome_column(name)]
            if spec.censored_column and spec.censored_column in frame.columns:
                censored = _flags(frame[spec.censored_column])
            elif spec.limit is not None:
                censored = time >= spec.limit
            else:
                censored = pd.Series(False, index=frame.index)
            frame[finished_column(name)] = (~censored).astype(np.float64).where(time.notna())

    # bookkeeping ---------------------------------------------------------------------------

    def guarded(
        self, call: Callable[[], T], *, outcome: str, method: str, population: str
    ) -> tuple[T | None, list[str]]:
        """Run one method: if it cannot run, record a `Problem` and return None; warnings it
        raises are returned (to be kept in the notes) rather than lost or fatal."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                value = call()
            except (
                ValueError,
                ArithmeticError,
                np.linalg.LinAlgError,
                PerfectSeparationError,
            ) as exc:
                self.problems.append(Problem(outcome, method, population, str(exc)))
                return None, []
        return value, sorted({str(w.message).strip() for w in caught})

    def attempt(
        self,
        call: Callable[[], stats.Result | list[stats.Result]],
        *,
        outcome: str,
        method: str,
        population: str,
    ) -> list[stats.Result]:
        produced, messages = self.guarded(
            call, outcome=outcome, method=method, population=population
        )
        if produced is None:
            return []
        results = [produced] if isinstance(produced, stats.Result) else list(produced)
        if messages:
            note = "Warning: " + "; ".join(messages)
            results = [replace(r, notes=stats.join_notes(r.notes, note)) for r in results]
        return results

    def add(
        self,
        results: Iterable[stats.Result],
        *,
        outcome: str,
        population: str,
        exploratory: bool = False,
        adjustment: str | None = None,
        bh: Sequence[float] | None = None,
    ) -> None:
        role = self.roles.get(outcome, self.roles.get(plan_outcome_name(outcome), "exploratory"))
        pp_planned = bool((self.plan.get("populations") or {}).get("per_protocol"))
        for i, result in enumerate(results):
            preregistered = (
                role != "exploratory"
                and not exploratory
                and result.method not in EXPLORATORY_METHODS
                and (population == "itt" or pp_planned)
            )
            self.findings.append(
                Finding(
                    result=result,
                    population=population,
                    role=role,
                    preregistered=preregistered,
                    adjusted_p_bh=None if bh is None else float(bh[i]),
                    adjustment=adjustment if result.adjusted_p is not None else None,
                )
            )

    def family(
        self, results: list[stats.Result], arms: int
    ) -> tuple[list[stats.Result], str | None]:
        """With more than two arms, the comparisons against the reference are adjusted (Holm)."""
        if arms > 2 and len(results) > 1:
            return stats.with_adjusted_p(results, "holm"), "holm"
        return results, None

    # outcomes ------------------------------------------------------------------------------

    def run(self) -> None:
        if not self.comparisons_possible:
            return  # the reason is in `problems`
        for population, frame in self.frames.items():
            for name, spec in self.inp.outcomes.items():
                handler = {
                    "continuous": self.continuous,
                    "time": self.time,
                    "binary": self.binary,
                    "categories": self.categories,
                }[spec.kind]
                handler(population, frame, name, spec)
        if self.inp.items is not None:
            self.items()

    def _levels(self, frame: pd.DataFrame, column: str) -> list[str]:
        present = sorted(set(frame.loc[frame[column].notna(), ARM]))
        return [self.reference, *(a for a in present if a != self.reference)]

    def _covariates(self, frame: pd.DataFrame, names: Sequence[str]) -> list[str]:
        columns = []
        for name in names:
            column = self.inp.covariates.get(name)
            if column and column in frame.columns:
                columns.append(column)
        return columns

    def _describe(
        self, population: str, frame: pd.DataFrame, outcome: str, spec: OutcomeSpec | None
    ) -> None:
        column = outcome_column(outcome)
        for level in self._arms_in(frame):
            values = frame.loc[frame[ARM] == level, column]
            present = values.dropna().to_numpy(dtype=np.float64)
            n = int(present.size)
            mean = float(present.mean()) if n else math.nan
            sd = float(present.std(ddof=1)) if n > 1 else math.nan
            half = (
                float(sps.t.isf(self.alpha / 2, n - 1)) * sd / math.sqrt(n) if n > 1 else math.nan
            )
            q1, median, q3 = (
                [float(v) for v in np.percentile(present, [25, 50, 75])] if n else [math.nan] * 3
            )
            percent = math.nan
            if spec is not None and spec.kind == "continuous":
                maximum = _maximum(frame.loc[values.index], spec)
                if maximum is not None and n:
                    ratio = values / maximum.where(maximum > 0)
                    percent = float(100 * ratio.dropna().mean())
            self.descriptives.append(
                ArmSummary(
                    population=population,
                    outcome=outcome,
                    arm=level,
                    n=n,
                    missing=int(values.isna().sum()),
                    mean=mean,
                    sd=sd,
                    median=median,
                    q1=q1,
                    q3=q3,
                    ci_low=mean - half,
                    ci_high=mean + half,
                    percent_of_max=percent,
                )
            )

    def _arms_in(self, frame: pd.DataFrame) -> list[str]:
        """Arms with rows in the frame: the reference first, then the others sorted."""
        present = sorted({str(a) for a in frame[ARM].dropna()})
        first = [self.reference] if self.reference in present else []
        return first + [a for a in present if a != self.reference]

    def continuous(
        self, population: str, frame: pd.DataFrame, name: str, spec: OutcomeSpec
    ) -> None:
        column = outcome_column(name)
        if column not in frame.columns:
            return
        self._describe(population, frame, name, spec)
        self.compare_continuous(population, frame, name, column, with_models=True)

    def compare_continuous(
        self,
        population: str,
        frame: pd.DataFrame,
        name: str,
        column: str,
        *,
        with_models: bool,
    ) -> None:
        arms = len(self._levels(frame, column))
        common: dict[str, Any] = {
            "frame": frame,
            "outcome": column,
            "arm": ARM,
            "reference": self.reference,
        }
        run = self._runner(population, name)
        if arms > 2:
            for method in ("anova", "kruskal"):
                omnibus = run(
                    method,
                    lambda m=method: [stats.omnibus(**common, method=m)],  # type: ignore[misc]
                )
                self.add(omnibus, outcome=name, population=population)
        for method, test, options in self._two_sample_tests(population, frame, name, column):
            produced = run(
                method,
                lambda t=test, o=options: stats.compare_to_reference(  # type: ignore[misc]
                    **common, test=t, **o
                ),
            )
            produced, adjustment = self.family(produced, arms)
            self.add(produced, outcome=name, population=population, adjustment=adjustment)
            if method == "student_t":
                self.add(
                    run("hedges_g", lambda: self.hedges(frame, column)),
                    outcome=name,
                    population=population,
                )
        if with_models:
            self._continuous_models(population, frame, name, common, arms, run)

    def _runner(
        self, population: str, name: str
    ) -> Callable[[str, Callable[[], list[stats.Result]]], list[stats.Result]]:
        """Runs one method through ``attempt`` and labels its results with the outcome name."""

        def run(method: str, call: Callable[[], list[stats.Result]]) -> list[stats.Result]:
            produced = self.attempt(call, outcome=name, method=method, population=population)
            return [replace(r, outcome=name) for r in produced]

        return run

    def _two_sample_tests(
        self, population: str, frame: pd.DataFrame, name: str, column: str
    ) -> list[tuple[str, Callable[..., stats.Result], dict[str, Any]]]:
        """Each two-sample test with its options; resampling is lighter for large samples."""
        n_used = int(frame[column].notna().sum())
        resamples = 9999 if n_used <= RESAMPLING_FULL_N else 1999
        batch = max(1, RESAMPLE_BATCH_CELLS // max(n_used, 1))
        return [
            ("welch_t", stats.welch_t, {"conf_level": self.conf}),
            ("student_t", stats.student_t, {"conf_level": self.conf}),
            ("mann_whitney", stats.mann_whitney, {"conf_level": self.conf}),
            (
                "permutation",
                stats.permutation_test,
                {
                    "rng": _rng(self.seed, population, name, "permutation"),
                    "n_resamples": resamples,
                    "batch": batch,
                },
            ),
            (
                "bootstrap",
                stats.bootstrap_mean_difference,
                {
                    "rng": _rng(self.seed, population, name, "bootstrap"),
                    "n_resamples": resamples,
                    "batch": batch,
                    "conf_level": self.conf,
                    "method": "BCa" if n_used <= RESAMPLING_FULL_N else "percentile",
                },
            ),
        ]

    def _continuous_models(
        self,
        population: str,
        frame: pd.DataFrame,
        name: str,
        common: dict[str, Any],
        arms: int,
        run: Callable[[str, Callable[[], list[stats.Result]]], list[stats.Result]],
    ) -> None:
        """ANCOVA with the planned covariates (confirmatory), with all of them and the
        treatment x covariate interactions (exploratory)."""
        planned = self._covariates(frame, self.plan_covariates)
        if planned:
            produced = run(
                "ancova", lambda: stats.ancova(**common, covariates=planned, conf_level=self.conf)
            )
            produced, adjustment = self.family(produced, arms)
            self.add(produced, outcome=name, population=population, adjustment=adjustment)
        everything = self._covariates(frame, list(self.inp.covariates))
        if set(everything) - set(planned):
            produced = run(
                "ancova",
                lambda: stats.ancova(**common, covariates=everything, conf_level=self.conf),
            )
            self.add(produced, outcome=name, population=population, exploratory=True)
        if population == "itt" and self.roles.get(name) != "exploratory":
            for covariate in everything:
                produced = run(
                    "interaction",
                    lambda c=covariate: stats.treatment_interaction(  # type: ignore[misc]
                        **common,
                        covariate=c,
                        adjust_for=[o for o in planned if o != c],
                        conf_level=self.conf,
                    ),
                )
                self.add(produced, outcome=name, population=population, exploratory=True)

    def hedges(self, frame: pd.DataFrame, column: str) -> list[stats.Result]:
        samples = stats.arm_samples(frame, outcome=column, arm=ARM, reference=self.reference)
        results = []
        for level, values in samples.items():
            if level == self.reference:
                continue
            g = stats.hedges_g(values, samples[self.reference], conf_level=self.conf)
            results.append(
                stats.Result(
                    outcome=column,
                    method="hedges_g",
                    groups=(level, self.reference),
                    n=values.size + samples[self.reference].size,
                    estimate=g.value,
                    ci_low=g.ci_low,
                    ci_high=g.ci_high,
                    p_value=math.nan,
                    effect_size=g,
                    notes=(
                        f"Hedges' g, {level} - {self.reference}, pooled SD; noncentral-t "
                        f"{self.conf:.0%} CI on {values.size + samples[self.reference].size - 2}"
                        " df."
                    ),
                )
            )
        return results

    def categories(
        self, population: str, frame: pd.DataFrame, name: str, spec: OutcomeSpec
    ) -> None:
        outcomes = [f"{name}:{category}" for category in spec.categories]
        outcomes = [o for o in outcomes if outcome_column(o) in frame.columns]
        for outcome in outcomes:
            self._describe(population, frame, outcome, None)
        for method, test in (("welch_t", stats.welch_t), ("student_t", stats.student_t)):
            family: list[stats.Result] = []
            for outcome in outcomes:
                produced = self.attempt(
                    lambda o=outcome, t=test: stats.compare_to_reference(  # type: ignore[misc]
                        frame,
                        outcome=outcome_column(o),
                        arm=ARM,
                        reference=self.reference,
                        test=t,
                        conf_level=self.conf,
                    ),
                    outcome=outcome,
                    method=method,
                    population=population,
                )
                family += [replace(r, outcome=outcome) for r in produced]
            if not family:
                continue
            holm = stats.with_adjusted_p(family, "holm")
            bh = stats.adjust_pvalues([r.p_value for r in family], "bh")
            for result, bh_p in zip(holm, bh, strict=True):
                self.add(
                    [result],
                    outcome=result.outcome,
                    population=population,
                    adjustment="holm",
                    bh=[bh_p],
                )

    def time(self, population: str, frame: pd.DataFrame, name: str, spec: OutcomeSpec) -> None:
        column, event = outcome_column(name), finished_column(name)
        if column not in frame.columns:
            return
        data = frame.loc[frame[column].notna() & frame[event].notna()]
        levels = self._arms_in(data)
        common: dict[str, Any] = {
            "time": column,
            "event": event,
            "arm": ARM,
            "reference": self.reference,
        }
        self._describe(population, frame, name, spec)
        self.curves[(population, name)] = self._km_curves(population, name, data, levels)
        self._km_medians(population, name, data, common)
        self._time_comparisons(population, name, data, common, spec, len(levels))

    def _km_curves(
        self, population: str, name: str, data: pd.DataFrame, levels: list[str]
    ) -> dict[str, stats.KaplanMeierCurve]:
        """One Kaplan-Meier curve per arm for the plots; an arm whose curve fails is left out."""
        column, event = outcome_column(name), finished_column(name)
        curves: dict[str, stats.KaplanMeierCurve] = {}
        for level in levels:
            rows = data[ARM] == level
            curve, _ = self.guarded(
                lambda r=rows, lv=level: stats.kaplan_meier(  # type: ignore[misc]
                    data.loc[r, column].to_numpy(dtype=np.float64),
                    data.loc[r, event].to_numpy(dtype=np.float64),
                    arm=lv,
                ),
                outcome=name,
                method="kaplan_meier",
                population=population,
            )
            if curve is not None:
                curves[level] = curve
        return curves

    def _km_medians(
        self, population: str, name: str, data: pd.DataFrame, common: dict[str, Any]
    ) -> None:
        """Median times per arm, also written into the arm descriptives with the counts of
        finished and censored participants."""
        event = finished_column(name)
        medians = {
            r.groups[0]: r
            for r in self._run_named(
                name,
                population,
                "km_median",
                lambda: stats.km_medians(data, **common, outcome=name, conf_level=self.conf),
            )
        }
        self.add(medians.values(), outcome=name, population=population)
        self.descriptives = [
            replace(
                s,
                finished=int((data.loc[data[ARM] == s.arm, event] == 1).sum()),
                censored=int((data.loc[data[ARM] == s.arm, event] == 0).sum()),
                km_median=medians[s.arm].estimate if s.arm in medians else math.nan,
            )
            if s.outcome == name and s.population == population
            else s
            for s in self.descriptives
        ]

    def _time_comparisons(
        self,
        population: str,
        name: str,
        data: pd.DataFrame,
        common: dict[str, Any],
        spec: OutcomeSpec,
        arms: int,
    ) -> None:
        """Arm comparisons of a censored time: log-rank, Cox, RMST (adjusted as a family), the
        biased t-test for comparison with published work, and equivalence where planned."""
        column, event = outcome_column(name), finished_column(name)
        self.add(
            self._run_named(
                name, population, "logrank", lambda: [stats.logrank(data, **common, outcome=name)]
            ),
            outcome=name,
            population=population,
        )
        for method, call in (
            (
                "cox",
                lambda: stats.cox(data, **common, outcome=name, conf_level=self.conf),
            ),
            (
                "rmst",
                lambda: stats.rmst(
                    data,
                    **common,
                    horizon=_horizon(data, column, event, spec),
                    outcome=name,
                    conf_level=self.conf,
                ),
            ),
        ):
            produced, adjustment = self.family(
                self._run_named(name, population, method, call), arms
            )
            self.add(produced, outcome=name, population=population, adjustment=adjustment)
        produced, adjustment = self.family(
            self._run_named(
                name,
                population,
                "censored_t",
                lambda: stats.censored_time_t_test(
                    data, time=column, arm=ARM, reference=self.reference, outcome=name
                ),
            ),
            arms,
        )
        self.add(
            produced, outcome=name, population=population, exploratory=True, adjustment=adjustment
        )
        margin = (self.plan_items.get(plan_outcome_name(name)) or {}).get("margin")
        if margin is not None:
            self.add(
                self._run_named(
                    name, population, "tost", lambda: self.tost(data, column, event, spec, margin)
                ),
                outcome=name,
                population=population,
            )

    def _run_named(
        self,
        name: str,
        population: str,
        method: str,
        call: Callable[[], list[stats.Result]],
    ) -> list[stats.Result]:
        produced = self.attempt(call, outcome=name, method=method, population=population)
        return [replace(r, outcome=name) for r in produced]

    def tost(
        self,
        data: pd.DataFrame,
        column: str,
        event: str,
        spec: OutcomeSpec,
        margin: Any,
    ) -> list[stats.Result]:
        bounds: float | tuple[float, float]
        if isinstance(margin, list | tuple):
            if len(margin) != 2:
                raise ValueError("margin must be a number or [low, high]")
            bounds = (float(margin[0]), float(margin[1]))
        else:
            bounds = float(margin)
        samples = stats.arm_samples(data, outcome=column, arm=ARM, reference=self.reference)
        results = []
        censored = int((data[event] == 0).sum())
        for level, values in samples.items():
            if level == self.reference:
                continue
            result = stats.tost(
                values,
                samples[self.reference],
                margin=bounds,
                alpha=self.alpha,
                groups=(level, self.reference),
            )
            note = ""
            if censored:
                sub = data.loc[data[ARM].isin([level, self.reference])]
                rmst = stats.rmst(
                    sub,
                    time=column,
                    event=event,
                    arm=ARM,
                    reference=self.reference,
                    horizon=_horizon(sub, column, event, spec),
                    conf_level=1 - 2 * self.alpha,
                )[0]
                low, high = (-bounds, bounds) if isinstance(bounds, float) else bounds
                inside = low < rmst.ci_low and rmst.ci_high < high
                note = (
                    f"{censored} times are censored, so this t-based test shares the bias of "
                    f"the censored t-test; the censoring-aware check is the restricted mean "
                    f"difference, {1 - 2 * self.alpha:.0%} CI {_fmt(rmst.ci_low)} to "
                    f"{_fmt(rmst.ci_high)}, which {'lies' if inside else 'does not lie'} "
                    "within the margin."
                )
            results.append(replace(result, notes=stats.join_notes(result.notes, note)))
        return results

    def binary(self, population: str, frame: pd.DataFrame, name: str, spec: OutcomeSpec) -> None:
        column = outcome_column(name)
        if column not in frame.columns:
            return
        self._describe(population, frame, name, None)
        levels = self._levels(frame, column)
        produced = self._run_named(
            name, population, "proportion_difference", lambda: self.proportions(frame, column)
        )
        produced, adjustment = self.family(produced, len(levels))
        self.add(produced, outcome=name, population=population, adjustment=adjustment)

    def proportions(self, frame: pd.DataFrame, column: str) -> list[stats.Result]:
        samples = stats.arm_samples(frame, outcome=column, arm=ARM, reference=self.reference)
        ref = samples[self.reference]
        if not np.isin(np.concatenate(list(samples.values())), (0.0, 1.0)).all():
            raise ValueError("a binary outcome must be true/false or 1/0")
        results = []
        for level, values in samples.items():
            if level == self.reference:
                continue
            results.append(
                proportion_difference(
                    int(values.sum()),
                    values.size,
                    int(ref.sum()),
                    ref.size,
                    conf_level=self.conf,
                    groups=(level, self.reference),
                )
            )
        return results

    def items(self) -> None:
        items = self.inp.items
        frame = self.frames["itt"]
        if items is None or items.empty:
            return
        outcome = "quiz_items"
        if "participant" not in frame.columns or "participant" not in items.columns:
            self.problems.append(
                Problem(outcome, "gee_logistic", "itt", "no 'participant' column to join items")
            )
            return
        keep = items
        if "is_attention_check" in keep.columns:
            keep = keep.loc[~_flags(keep["is_attention_check"])]
        if "correct" not in keep.columns:
            return
        arms = frame.set_index("participant")[ARM]
        data = pd.DataFrame(
            {
                "participant": keep["participant"].astype(str),
                "question": keep["question"].astype(str) if "question" in keep.columns else "",
                "correct": keep["correct"].map(
                    lambda v: math.nan if v is None or v is pd.NA or v != v else float(truthy(v))
                ),
            }
        )
        data[ARM] = data["participant"].map(arms.set_axis(arms.index.astype(str)))
        data = data.dropna(subset=[ARM, "correct"])
        produced = self._run_named(
            outcome,
            "itt",
            "gee_logistic",
            lambda: stats.gee_logistic(
                data,
                outcome="correct",
                arm=ARM,
                reference=self.reference,
                cluster="participant",
                item="question" if data["question"].nunique() > 1 else None,
                conf_level=self.conf,
            ),
        )
        produced = [
            replace(r, covariates=tuple("item" if c == "question" else c for c in r.covariates))
            for r in produced
        ]
        self.add(produced, outcome=outcome, population="itt", exploratory=True)

    # deviations and planning ---------------------------------------------------------------

    def check_deviations(self) -> None:
        # In the order the report lists them: the data's state first, the plan's coverage last.
        self._state_deviations()
        self._provisional_score_deviations()
        self._covariate_deviations()
        self._coverage_deviations()

    def _state_deviations(self) -> None:
        """Interim look, changed plan, synthetic data: what the reader must know about the data."""
        meta = self.inp.meta
        itt = self.frames["itt"]
        add = self.deviations.append
        status = meta.get("trial_status")
        if status and status != "closed":
            add(
                Deviation(
                    "trial_not_closed",
                    f"The trial is {status}, not closed: this is an interim look at "
                    "incomplete data, and the results may change.",
                )
            )
        changed = meta.get("plan_changed")
        if changed is None and meta.get("plan_hash_at_launch") and meta.get("plan_hash"):
            changed = meta["plan_hash_at_launch"] != meta["plan_hash"]
        if changed:
            add(
                Deviation(
                    "plan_changed",
                    "The analysis plan differs from the one frozen when the trial was launched; "
                    "'preregistered' below refers to the current plan.",
                )
            )
        synthetic = 0
        if "is_synthetic" in itt.columns:
            synthetic = int(_flags(itt["is_synthetic"]).sum())
        if meta.get("synthetic") or synthetic:
            detail = (
                f"{synthetic} of {len(itt)} allocated participants are"
                if synthetic
                else ("The data are")
            )
            add(Deviation("synthetic_data", f"{detail} synthetic (test data, not a study)."))

    def _provisional_score_deviations(self) -> None:
        """Quiz scores that still wait for graders count as zero points."""
        itt = self.frames["itt"]
        add = self.deviations.append
        if "quiz_final" in itt.columns:
            scored = itt
            for name, spec in self.inp.outcomes.items():
                if plan_outcome_name(name) in ("quiz_score", "quiz_percent") and spec.column:
                    scored = itt.loc[itt[spec.column].notna()] if spec.column in itt else itt
                    break
            provisional = int((~_flags(scored["quiz_final"])).sum())
            if provisional:
                add(
                    Deviation(
                        "provisional_scores",
                        f"{provisional} quiz scores are provisional: some answers still await "
                        "graders and count as zero points until graded.",
                    )
                )

    def _covariate_deviations(self) -> None:
        """Preregistered covariates absent from the data or missing for some participants."""
        itt = self.frames["itt"]
        add = self.deviations.append
        for name in self.plan_covariates:
            column = self.inp.covariates.get(name)
            if not column or column not in itt.columns:
                add(
                    Deviation(
                        "covariate_unavailable",
                        f"Preregistered covariate {name!r} is not in the data; the adjusted "
                        "analyses leave it out.",
                    )
                )
                continue
            missing = int(itt[column].isna().sum())
            if missing:
                add(
                    Deviation(
                        "covariate_missing",
                        f"Covariate {name!r} is missing for {missing} of {len(itt)} allocated "
                        "participants; adjusted analyses use complete cases (their n says how "
                        "many).",
                    )
                )

    def _coverage_deviations(self) -> None:
        """Planned outcomes and populations the data cannot give, and data from outside."""
        meta = self.inp.meta
        add = self.deviations.append
        for plan_name in self.plan_items:
            if not any(plan_outcome_name(o) == plan_name for o in self.inp.outcomes):
                add(
                    Deviation(
                        "outcome_unavailable",
                        f"Preregistered outcome {plan_name!r} could not be analysed: the data "
                        "have no column for it.",
                    )
                )
        pp_rules = (self.plan.get("populations") or {}).get("per_protocol")
        if pp_rules and "per_protocol" not in self.frames:
            add(
                Deviation(
                    "per_protocol_unavailable",
                    "The plan defines a per-protocol population but the data have no "
                    "per-protocol flag; only intention-to-treat results are shown.",
                )
            )
        if meta.get("source") == "csv":
            add(
                Deviation(
                    "external_data",
                    "Data from a CSV file, not from a skilltrial trial: 'preregistered' refers "
                    "to the plan in the mapping file, which no frozen protocol hash protects.",
                )
            )

    def planning(self) -> dict[str, Any]:
        """Power and the minimum detectable effect for the primary outcome at the current n."""
        primary = next((n for n, r in self.roles.items() if r == "primary"), None)
        if primary is None:
            return {}
        spec = self.inp.outcomes[primary]
        frame = self.frames["itt"]
        column = outcome_column(primary)
        if spec.kind not in ("continuous", "binary") or column not in frame.columns:
            return {
                "outcome": primary,
                "note": "Power figures are given for a continuous or binary primary outcome only.",
            }
        samples = {
            level: frame.loc[(frame[ARM] == level), column].dropna().to_numpy(dtype=np.float64)
            for level in self._arms_in(frame)
        }
        ref = samples.get(self.reference)
        comparisons = []
        for level, values in samples.items():
            if level == self.reference or ref is None or values.size < 2 or ref.size < 2:
                continue
            entry: dict[str, Any] = {
                "groups": [level, self.reference],
                "n": [int(values.size), int(ref.size)],
                "alpha": self.alpha,
                "power": 0.8,
            }
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                if spec.kind == "continuous":
                    mde = stats.t_test_mde(values.size, ref.size, alpha=self.alpha)
                    sd = stats.pooled_sd(values, ref)
                    entry.update(
                        mde_d=mde,
                        pooled_sd=sd,
                        mde_units=mde * sd,
                        power_d_0_5=stats.t_test_power(
                            0.5, values.size, ref.size, alpha=self.alpha
                        ),
                        power_d_0_8=stats.t_test_power(
                            0.8, values.size, ref.size, alpha=self.alpha
                        ),
                        n_per_arm_for_d_0_5=math.ceil(
                            stats.t_test_sample_size(0.5, alpha=self.alpha)
                        ),
                    )
                else:
                    h = stats.proportions_mde(values.size, ref.size, alpha=self.alpha)
                    base = float(ref.mean())
                    entry.update(
                        mde_h=h,
                        reference_proportion=base,
                        detectable_proportion=stats.proportion_detectable_above(base, h),
                    )
            comparisons.append(entry)
        return {"outcome": primary, "kind": spec.kind, "comparisons": comparisons}


def outcome_column(outcome: str) -> str:
    """The analysis frame's column with the values of ``outcome`` (the report reads it too)."""
    return f"__y__{outcome}"


def finished_column(outcome: str) -> str:
    """The analysis frame's column with 1 where a time outcome was finished, 0 if censored."""
    return f"__finished__{outcome}"


def _is_numberlike(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return True
    present = series.dropna()
    return bool(len(present)) and bool(pd.to_numeric(present, errors="coerce").notna().all())


def _maximum(frame: pd.DataFrame, spec: OutcomeSpec) -> pd.Series | None:
    if spec.max_column and spec.max_column in frame.columns:
        return _numeric(frame[spec.max_column])
    if spec.max_points:
        return pd.Series(float(spec.max_points), index=frame.index)
    return None


def _horizon(data: pd.DataFrame, column: str, event: str, spec: OutcomeSpec) -> float:
    """The restricted-mean horizon: the time limit, or the shortest follow-up among arms."""
    if spec.limit is not None:
        longest = data.groupby(ARM)[column].max()
        # An arm whose longest time is below the limit (everyone finished early) is fine:
        # its curve is 0 from then on; otherwise stay within every arm's follow-up.
        open_follow_up = [
            float(value)
            for arm, value in longest.items()
            if value < spec.limit and not (data.loc[data[ARM] == arm, event] == 1).all()
        ]
        return min([float(spec.limit), *open_follow_up])
    return float(data.groupby(ARM)[column].max().min())


def proportion_difference(
    x: int, n_x: int, y: int, n_y: int, *, conf_level: float, groups: tuple[str, str]
) -> stats.Result:
    """Difference in proportions x/n_x - y/n_y with Newcombe's hybrid score interval
    (Newcombe 1998, method 10) and Fisher's exact two-sided p; Cohen's h as effect size."""
    z = float(sps.norm.isf((1 - conf_level) / 2))

    def wilson(k: int, n: int) -> tuple[float, float]:
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half

    p1, p2 = x / n_x, y / n_y
    l1, u1 = wilson(x, n_x)
    l2, u2 = wilson(y, n_y)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    test = sps.fisher_exact([[x, n_x - x], [y, n_y - y]])
    return stats.Result(
        outcome="",
        method="proportion_difference",
        groups=groups,
        n=n_x + n_y,
        estimate=difference,
        ci_low=low,
        ci_high=high,
        p_value=float(test.pvalue),
        statistic=float(test.statistic),
        effect_size=stats.EffectSize("cohens_h", stats.cohens_h(p1, p2)),
        notes=(
            f"Proportion {groups[0]} {x}/{n_x} - {groups[1]} {y}/{n_y}; Newcombe hybrid score "
            f"{conf_level:.0%} CI; Fisher exact p; statistic is the sample odds ratio."
        ),
    )


def run_analysis(inp: AnalysisInput, *, seed: int = 0) -> AnalysisResults:
    """Every comparison the plan calls for, plus the exploratory ones (module docstring).

    Raises `AnalysisError` if the data cannot be analysed at all (no participants, no arm
    column); a single method that cannot run (too few participants in an arm, no variation)
    is listed in ``problems``. With fewer than two arms allocated, or none in the reference
    arm, nothing is compared: ``findings`` is empty and ``problems`` says why
    (`AnalysisResults.comparisons_notice`), so the flow and baseline can still be reported.
    """
    run = _Run(inp, seed)
    run.run()
    run.check_deviations()
    itt = run.frames["itt"]
    arms = run._arms_in(itt)
    populations = {
        name: {
            "label": POPULATIONS[name],
            "n": len(frame),
            "n_by_arm": {arm: int((frame[ARM] == arm).sum()) for arm in arms},
        }
        for name, frame in run.frames.items()
    }
    meta = dict(inp.meta)
    if "snapshot" not in meta:
        meta["snapshot"] = {"rows": len(inp.frame), "sha256": frame_sha256(inp.frame)}
    return AnalysisResults(
        findings=run.findings,
        seed=seed,
        reference_arm=run.reference,
        arms=arms,
        arm_labels={arm: inp.arm_label(arm) for arm in [*arms, run.reference]},
        alpha=run.alpha,
        meta=meta,
        consort=inp.consort,
        deviations=run.deviations,
        problems=run.problems,
        populations=populations,
        descriptives=run.descriptives,
        curves=run.curves,
        planning=run.planning(),
        roles=run.roles,
        specs=dict(inp.outcomes),
        frames=run.frames,
    )
