"""Statistics for skilltrial analyses: plain numpy/scipy/statsmodels, no Django.

Frames or arrays go in, frozen dataclasses come out. Every comparison is *arm minus reference
arm* (or a ratio arm / reference for hazards and odds), so a negative quiz difference means the
arm scored lower than the reference. Each result is a `Result` whose `to_dict()` is the JSON
shape of one entry of the `results` list of ``analyze --json`` (issue 7, section 5).

Conventions
-----------
* Two-sided tests and 95% intervals unless a function says otherwise.
* Randomness (permutation, bootstrap) only through a ``numpy.random.Generator`` passed in by
  the caller, so an analysis can be replayed from its stored seed.
* Missing outcome values are dropped; the `n` of a result is the number of observations
  actually used (participants for GEE), and the notes say how many rows were dropped.
* NaN in a result means "does not apply" (a bootstrap has no p-value, an omnibus test has no
  single estimate) and becomes ``null`` in JSON.

Why a t-test on completion times is biased
------------------------------------------
Completion time is right-censored at the time limit: a participant who had not finished after
35 minutes did not take 35 minutes; they took *more than* 35 minutes, by an unknown amount.
A t-test must put some number in that place. Recording the limit understates the time of
every non-finisher, so the mean of the arm with more non-finishers is pulled down the most; when
that is the slower arm, as it usually is, the difference between arms shrinks towards zero (the
bias grows with the share censored, and its size depends on times nobody observed). Dropping
non-finishers is worse: it removes exactly the slowest participants, unequally between arms, so
the comparison is no longer between randomized groups. Both versions understate the spread too.
Survival methods use the censored observations for what they are - "still working at 35
minutes" - so we report Kaplan-Meier medians, the log-rank test, a Cox hazard ratio (a ratio
above 1 means the arm finishes sooner) and the restricted mean time up to the limit.
`censored_time_t_test` still runs the t-test, because published work reports it, and says so
in its notes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize
from scipy import stats as sps

FloatArray = npt.NDArray[np.float64]
Alternative = Literal["two-sided", "less", "greater"]
AdjustMethod = Literal["holm", "bh"]

CENSORED_T_TEST_NOTE = (
    "t-test on completion times that are right-censored at the time limit: non-finishers are "
    "counted at the limit, which understates their times and, when the slower arm has more "
    "non-finishers, biases the difference towards zero. Shown only for comparison with "
    "published work; use the Kaplan-Meier, log-rank, Cox and restricted-mean results."
)

_ADJUST_LABEL: dict[AdjustMethod, str] = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


def _json_float(value: float | None) -> float | None:
    """A float for JSON: NaN and infinities (not representable in JSON) become None."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class EffectSize:
    """A standardized effect (Cohen's d, Hedges' g, odds ratio, ...) with its interval."""

    name: str
    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _json_float(self.value),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
        }


@dataclass(frozen=True)
class Result:
    """One statistical result; the fields are those of an entry of the JSON ``results`` list.

    * ``outcome``: the analysed column (quiz score, a category score, completion time).
    * ``method``: ``welch_t``, ``student_t``, ``mann_whitney``, ``permutation``,
      ``bootstrap``, ``tost``, ``ancova``, ``interaction``, ``gee_logistic``, ``anova``,
      ``kruskal``, ``km_median``, ``logrank``, ``cox`` or ``rmst``.
    * ``groups``: ``(arm, reference)`` for a comparison, ``(arm,)`` for a per-arm summary
      (a Kaplan-Meier median), all arms (reference first) for an omnibus test.
    * ``n``: observations actually used (participants for ``gee_logistic``).
    * ``estimate``, ``ci_low``, ``ci_high``: a difference arm - reference (mean, adjusted
      mean, Hodges-Lehmann shift, restricted mean time), a ratio arm / reference for ``cox``
      (hazard of finishing) and ``gee_logistic`` (odds of a correct answer), the median for
      ``km_median``; NaN (JSON null) where there is none, infinite (null) when unbounded.
    * ``p_value``: the method's own p; ``adjusted_p``: Holm or BH over the family the notes
      name, None if not adjusted.
    * ``statistic`` and ``df``: t, F, chi-square, z or W as the method defines.
    * ``effect_size``: standardized effect with its interval, where one applies.
    * ``covariates``: the adjustment covariates of a model.
    * ``notes``: plain-language details (direction, corrections, rows dropped).
    """

    outcome: str
    method: str
    groups: tuple[str, ...]
    n: int
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float | None = None
    df: float | None = None
    effect_size: EffectSize | None = None
    adjusted_p: float | None = None
    covariates: tuple[str, ...] = ()
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values only: NaN and infinities become None, tuples become lists."""
        return {
            "outcome": self.outcome,
            "method": self.method,
            "groups": list(self.groups),
            "n": int(self.n),
            "estimate": _json_float(self.estimate),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
            "p_value": _json_float(self.p_value),
            "statistic": _json_float(self.statistic),
            "df": _json_float(self.df),
            "effect_size": None if self.effect_size is None else self.effect_size.to_dict(),
            "adjusted_p": _json_float(self.adjusted_p),
            "covariates": list(self.covariates),
            "notes": self.notes,
        }


def _join_notes(*parts: str) -> str:
    return " ".join(part for part in parts if part)


# --------------------------------------------------------------------------------------------
# Input helpers
# --------------------------------------------------------------------------------------------


def _as_sample(values: npt.ArrayLike, name: str) -> FloatArray:
    sample = np.asarray(values, dtype=np.float64).ravel()
    sample = sample[~np.isnan(sample)]
    if sample.size == 0:
        raise ValueError(f"sample {name!r} has no non-missing values")
    return sample


def _arm_levels(frame: pd.DataFrame, arm: str, reference: str) -> list[str]:
    """Arms present in the frame as strings, the reference first, the others sorted."""
    levels = sorted({str(level) for level in frame[arm].dropna().unique()})
    if reference not in levels:
        raise ValueError(f"reference arm {reference!r} not found in column {arm!r}: {levels}")
    return [reference, *(level for level in levels if level != reference)]


def arm_samples(
    frame: pd.DataFrame, *, outcome: str, arm: str, reference: str
) -> dict[str, FloatArray]:
    """Non-missing values of ``outcome`` per arm (arm labels as strings, reference first)."""
    labels = frame[arm].astype("string")
    samples: dict[str, FloatArray] = {}
    for level in _arm_levels(frame, arm, reference):
        values = pd.to_numeric(frame.loc[labels == level, outcome], errors="raise")
        samples[level] = _as_sample(values.to_numpy(dtype=np.float64, na_value=np.nan), level)
    return samples


def _dropped_note(n_rows: int, n_used: int, why: str) -> str:
    dropped = n_rows - n_used
    return f"{dropped} of {n_rows} rows dropped ({why})." if dropped else ""


# --------------------------------------------------------------------------------------------
# Two-sample comparisons of a continuous outcome: x is the arm, y the reference arm
# --------------------------------------------------------------------------------------------


def _noncentral_t_ncp(t: float, df: float, probability: float) -> float:
    """The noncentrality parameter at which P(T <= t) = probability, T ~ t(df, ncp)."""

    def excess(ncp: float) -> float:
        return float(sps.nct.cdf(t, df, ncp)) - probability

    # The cdf falls as ncp grows; widen the bracket around t until it holds the root (scipy's
    # nct returns NaN far from t, so do not start with a huge bracket).
    low, high, step = t - 1.0, t + 1.0, 1.0
    while excess(low) < 0:
        step *= 2
        low = t - step
    step = 1.0
    while excess(high) > 0:
        step *= 2
        high = t + step
    return float(optimize.brentq(excess, low, high, xtol=1e-13, rtol=1e-15))


def _pooled_sd(x: FloatArray, y: FloatArray) -> float:
    n1, n2 = x.size, y.size
    pooled_var = ((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2)
    return float(np.sqrt(pooled_var))


def _welch_df(x: FloatArray, y: FloatArray) -> float:
    v1, v2 = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    return float((v1 + v2) ** 2 / (v1**2 / (x.size - 1) + v2**2 / (y.size - 1)))


def cohens_d(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    conf_level: float = 0.95,
    ci_df: Literal["pooled", "welch"] = "pooled",
) -> EffectSize:
    """Cohen's d = (mean x - mean y) / pooled SD, with a noncentral-t confidence interval.

    The interval inverts the noncentral t distribution of ``t = d / sqrt(1/n1 + 1/n2)`` and
    scales the two noncentrality limits back by ``sqrt(1/n1 + 1/n2)``. The degrees of freedom
    of that t are a choice, and published software differs:

    * ``ci_df="pooled"`` (the default): n1 + n2 - 2, the exact sampling distribution of the
      pooled-SD d under equal variances (Hedges & Olkin 1985; Steiger & Fouladi 1997).
    * ``ci_df="welch"``: the Welch-Satterthwaite df. This reproduces the values published for
      R's ``effectsize::cohens_d`` in REFERENCE_VALUES.md section 2.

    Neither is a normal approximation; no normal-approximation interval is offered.
    """
    a, b = _as_sample(x, "x"), _as_sample(y, "y")
    spread = _pooled_sd(a, b)
    if not spread > 0:
        return EffectSize("cohens_d", math.nan)  # no spread (or too few values): undefined
    d = float((a.mean() - b.mean()) / spread)
    scale = math.sqrt(1 / a.size + 1 / b.size)
    df = _welch_df(a, b) if ci_df == "welch" else float(a.size + b.size - 2)
    alpha = 1 - conf_level
    t = d / scale
    ncp_low = _noncentral_t_ncp(t, df, 1 - alpha / 2)
    ncp_high = _noncentral_t_ncp(t, df, alpha / 2)
    return EffectSize("cohens_d", d, ncp_low * scale, ncp_high * scale)


def hedges_g(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    conf_level: float = 0.95,
    ci_df: Literal["pooled", "welch"] = "pooled",
) -> EffectSize:
    """Hedges' g = d * (1 - 3 / (4N - 9)); the interval of d scaled by the same factor.

    ``ci_df`` as in `cohens_d`.
    """
    a, b = _as_sample(x, "x"), _as_sample(y, "y")
    d = cohens_d(a, b, conf_level=conf_level, ci_df=ci_df)
    correction = 1 - 3 / (4 * (a.size + b.size) - 9)
    return EffectSize(
        "hedges_g", d.value * correction, d.ci_low * correction, d.ci_high * correction
    )


def _t_test(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    equal_var: bool,
    conf_level: float,
    effect_size: Literal["cohens_d", "hedges_g"],
    effect_size_ci_df: Literal["pooled", "welch"],
    outcome: str,
    groups: tuple[str, str],
) -> Result:
    a, b = _as_sample(x, groups[0]), _as_sample(y, groups[1])
    test = sps.ttest_ind(a, b, equal_var=equal_var)
    interval = test.confidence_interval(confidence_level=conf_level)
    size = cohens_d if effect_size == "cohens_d" else hedges_g
    return Result(
        outcome=outcome,
        method="student_t" if equal_var else "welch_t",
        groups=groups,
        n=a.size + b.size,
        estimate=float(a.mean() - b.mean()),
        ci_low=float(interval.low),
        ci_high=float(interval.high),
        p_value=float(test.pvalue),
        statistic=float(test.statistic),
        df=float(test.df),
        effect_size=size(a, b, conf_level=conf_level, ci_df=effect_size_ci_df),
        notes=f"Mean difference {groups[0]} - {groups[1]}; {conf_level:.0%} CI.",
    )


def welch_t(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    conf_level: float = 0.95,
    effect_size: Literal["cohens_d", "hedges_g"] = "cohens_d",
    effect_size_ci_df: Literal["pooled", "welch"] = "pooled",
    outcome: str = "",
    groups: tuple[str, str] = ("x", "y"),
) -> Result:
    """Welch's unequal-variance t-test of mean(x) - mean(y), as R's ``t.test`` default."""
    return _t_test(
        x,
        y,
        equal_var=False,
        conf_level=conf_level,
        effect_size=effect_size,
        effect_size_ci_df=effect_size_ci_df,
        outcome=outcome,
        groups=groups,
    )


def student_t(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    conf_level: float = 0.95,
    effect_size: Literal["cohens_d", "hedges_g"] = "cohens_d",
    effect_size_ci_df: Literal["pooled", "welch"] = "pooled",
    outcome: str = "",
    groups: tuple[str, str] = ("x", "y"),
) -> Result:
    """Pooled-variance (Student) t-test of mean(x) - mean(y), as ``t.test(var.equal=TRUE)``."""
    return _t_test(
        x,
        y,
        equal_var=True,
        conf_level=conf_level,
        effect_size=effect_size,
        effect_size_ci_df=effect_size_ci_df,
        outcome=outcome,
        groups=groups,
    )


def _mann_whitney_null_cdf(m: int, n: int) -> FloatArray:
    """P(U <= u), u = 0..m*n, for the Mann-Whitney U of samples of sizes m, n without ties.

    The counts are the coefficients of the Gaussian binomial [m+n choose m] in q, built as
    prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i) in exact integers.
    """
    counts = [0] * (m * n + 1)
    counts[0] = 1
    for i in range(1, m + 1):
        shift = n + i
        for k in range(len(counts) - 1, shift - 1, -1):
            counts[k] -= counts[k - shift]
        for k in range(i, len(counts)):
            counts[k] += counts[k - i]
    total = sum(counts)
    cumulative = np.cumsum(np.array([c / total for c in counts], dtype=np.float64))
    return cumulative


def _qwilcox(probability: float, cdf: FloatArray) -> int:
    """R's ``qwilcox``: the smallest u with P(U <= u) >= probability (same fuzz as R)."""
    target = probability - 10 * np.finfo(np.float64).eps
    return int(np.searchsorted(cdf, target, side="left"))


class _PairwiseDifferences:
    """Order statistics of the m*n differences x_i - y_j (the Hodges-Lehmann building block).

    Exact for any m and n: the k-th smallest is the same float as element k of the sorted
    array of all m*n differences, without building that array. Tied values are collapsed
    first, so the differences form a matrix over the distinct x and distinct y whose cells
    carry multiplicities (count of x times count of y). Small matrices are sorted outright.
    Larger ones are searched as a sorted matrix: rows and columns both ascend, so the cells
    at or below any value form a staircase that one binary search per row finds, and each
    round brackets the target rank between two cells taken from an evenly spaced sample of
    the remaining candidates, which shrinks them about twentyfold; three or four rounds of
    O((m + n) log(m + n)) work replace sorting m*n differences (the candidates left at the end
    are sorted).
    """

    _SORT_LIMIT = 1 << 14  # cells (distinct x times distinct y) sorted outright
    _SAMPLE = 1 << 12  # candidate cells sampled per round to place the two pivots

    def __init__(self, x: FloatArray, y: FloatArray) -> None:
        self.total = x.size * y.size
        x_values, x_counts = np.unique(x, return_counts=True)
        y_values, y_counts = np.unique(y, return_counts=True)
        # x_i - y_j is computed as x_i + (-y_j), the same float, so that with y negated and
        # reversed both rows and columns ascend. Rows are the shorter side.
        z_values, z_counts = -y_values[::-1], y_counts[::-1]
        if x_values.size > z_values.size:
            x_values, z_values = z_values, x_values
            x_counts, z_counts = z_counts, x_counts
        self._rows, self._columns = x_values, z_values
        self._row_weight = x_counts.astype(np.int64)
        self._column_weight = z_counts.astype(np.int64)
        # Observations in the first j columns, j = 0..columns.
        self._columns_below = np.concatenate([[0], np.cumsum(self._column_weight)])
        self._sorted: FloatArray | None = None
        self._pairs_through: npt.NDArray[np.int64] | None = None  # pairs up to each sorted cell
        finite = bool(np.isfinite(x).all() and np.isfinite(y).all())
        # Non-finite values (inf - inf is NaN) break the ordering the search relies on.
        if x_values.size * z_values.size <= self._SORT_LIMIT or not finite:
            cells = np.add.outer(x_values, z_values).ravel()
            order = np.argsort(cells, kind="stable")
            self._sorted = cells[order]
            self._pairs_through = np.cumsum(np.multiply.outer(x_counts, z_counts).ravel()[order])

    def _columns_counted(self, value: float, *, strict: bool) -> npt.NDArray[np.int64]:
        """Per row, how many columns hold a difference <= value (< value if ``strict``)."""
        rows, columns = self._rows, self._columns
        counted = np.less if strict else np.less_equal
        # columns[j] <= value - row, up to the rounding of the two subtractions; then move
        # the boundary to where the differences as computed change sides (a step or two at
        # most, only where a column lies within rounding of the boundary).
        count = np.searchsorted(columns, value - rows, side="left" if strict else "right")
        while True:
            inside = count < columns.size
            grow = inside.copy()
            grow[inside] = counted(rows[inside] + columns[count[inside]], value)
            past = count > 0
            shrink = past.copy()
            shrink[past] = ~counted(rows[past] + columns[count[past] - 1], value)
            if not (grow.any() or shrink.any()):
                return count
            count += grow
            count -= shrink

    def _weight(self, count: npt.NDArray[np.int64]) -> int:
        """Observed pairs in the first ``count[i]`` columns of each row i."""
        return int((self._row_weight * self._columns_below[count]).sum())

    def _candidates(
        self,
        low: npt.NDArray[np.int64],
        high: npt.NDArray[np.int64],
        positions: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]:
        """Row and column of the candidate cells at the given positions, counted row by row."""
        ends = np.cumsum(high - low)
        row = np.searchsorted(ends, positions, side="right")
        column = low[row] + positions - (ends[row] - (high - low)[row])
        return row, column

    def kth(self, k: int) -> float:
        """The k-th smallest difference, k counted from 1."""
        if self._sorted is not None and self._pairs_through is not None:
            return float(self._sorted[np.searchsorted(self._pairs_through, k, side="left")])
        rows, columns = self._rows, self._columns
        # Candidates: columns low[i] <= j < high[i] of each row i; pairs before them: below.
        low = np.zeros(rows.size, dtype=np.int64)
        high = np.full(rows.size, columns.size, dtype=np.int64)
        below = 0
        narrow = False  # after a round without progress, bracket with a single pivot
        while True:
            remaining = int((high - low).sum())
            if remaining <= self._SORT_LIMIT:
                row, column = self._candidates(low, high, np.arange(remaining, dtype=np.int64))
                cells = rows[row] + columns[column]
                order = np.argsort(cells, kind="stable")
                weight = (self._row_weight[row] * self._column_weight[column])[order]
                position = np.searchsorted(below + np.cumsum(weight), k, side="left")
                return float(cells[order][position])
            # Two pivots around the target rank, read off an evenly spaced sample of the
            # candidate cells, each counted as often as its pair occurs.
            spacing = remaining / self._SAMPLE
            row, column = self._candidates(
                low, high, ((np.arange(self._SAMPLE) + 0.5) * spacing).astype(np.int64)
            )
            cells = rows[row] + columns[column]
            order = np.argsort(cells)
            cells = cells[order]
            weight = (self._row_weight[row] * self._column_weight[column])[order]
            share = np.cumsum(weight) / weight.sum()
            target = (k - below) / (self._weight(high) - below)
            if narrow:
                margin = 0.0
            else:  # about 3.5 standard errors of the sample quantile either side
                margin = 3.5 * math.sqrt(target * (1 - target) / self._SAMPLE) + 2 / self._SAMPLE
            last = cells.size - 1
            lower = float(cells[min(int(np.searchsorted(share, target - margin)), last)])
            upper = float(cells[min(int(np.searchsorted(share, target + margin)), last)])
            under = np.clip(self._columns_counted(lower, strict=True), low, high)
            at_most = np.clip(self._columns_counted(upper, strict=False), low, high)
            under_weight, at_most_weight = self._weight(under), self._weight(at_most)
            if under_weight >= k:  # below the lower pivot
                high = under
            elif at_most_weight < k:  # above the upper pivot
                low, below = at_most, at_most_weight
            elif lower == upper:
                return lower
            else:  # between the pivots, both included
                low, high, below = under, at_most, under_weight
            # Each round removes at least one pivot's cells; if the bracket removed nothing
            # else, the next round uses one pivot at the target, which settles or shrinks it.
            stuck = int((high - low).sum()) == remaining
            if stuck and narrow:  # impossible while the counts are exact
                raise RuntimeError("order statistic search of pairwise differences is stuck")
            narrow = stuck

    def median(self) -> float:
        """The Hodges-Lehmann estimate of the shift x - y."""
        if self.total % 2:
            return self.kth((self.total + 1) // 2)
        return (self.kth(self.total // 2) + self.kth(self.total // 2 + 1)) / 2


def _hodges_lehmann_ci_exact(
    differences: _PairwiseDifferences, m: int, n: int, conf_level: float, alternative: Alternative
) -> tuple[float, float]:
    """R ``wilcox.test(conf.int=TRUE)`` for the exact case: order statistics of the differences
    at the quantiles of the exact null distribution of U."""
    alpha = 1 - conf_level
    cdf = _mann_whitney_null_cdf(m, n)
    quantile = _qwilcox(alpha / 2 if alternative == "two-sided" else alpha, cdf)
    quantile = max(quantile, 1)
    low_rank, high_rank = quantile, m * n - quantile + 1
    low, high = differences.kth(low_rank), differences.kth(high_rank)
    if alternative == "greater":
        return low, math.inf
    if alternative == "less":
        return -math.inf, high
    return low, high


def _hodges_lehmann_ci_normal(
    x: FloatArray,
    y: FloatArray,
    differences: _PairwiseDifferences,
    conf_level: float,
    alternative: Alternative,
    correct: bool,
) -> tuple[float, float]:
    """R ``wilcox.test(conf.int=TRUE)`` for the normal-approximation case, computed exactly.

    R inverts the normal approximation of the rank-sum statistic (with tie and continuity
    corrections) by ``uniroot`` at tolerance 1e-4. That statistic is a step function of the
    shift that only moves at a pairwise difference, so the roots are pairwise differences; we
    find which one directly, without the root finder's tolerance.
    """
    m, n = x.size, y.size
    total = m * n
    alpha = 1 - conf_level
    # Ties *between* x - shift and y occur only at the jumps, so between jumps only the ties
    # within each sample count (and those do not move with the shift).
    _, x_ties = np.unique(x, return_counts=True)
    _, y_ties = np.unique(y, return_counts=True)
    within = np.concatenate([x_ties, y_ties]).astype(np.float64)
    sigma = math.sqrt(
        (total / 12) * ((m + n + 1) - float((within**3 - within).sum()) / ((m + n) * (m + n - 1)))
    )
    if sigma == 0:  # every observation tied: no interval (R stops with an error here)
        return math.nan, math.nan

    def standardized(below: int, z: float) -> float:
        # Shift in (D_(below), D_(below+1)): U = pairs with difference above the shift.
        dz = (total - below) - total / 2
        if not correct:
            correction = 0.0
        elif alternative == "two-sided":
            correction = 0.5 * float(np.sign(dz))
        elif alternative == "greater":
            correction = 0.5
        else:
            correction = -0.5
        return (dz - correction) / sigma - z

    def root(z: float) -> float:
        # The smallest k with the statistic <= 0 just above D_(k): the sign changes at D_(k).
        # The statistic falls as k grows, so bisect; if it never falls to 0, R returns the
        # largest difference.
        low, high = 0, total  # invariant: standardized(low) > 0 (k = 0 is "below all")
        if standardized(total, z) > 0:
            return differences.kth(total)
        while high - low > 1:
            middle = (low + high) // 2
            if standardized(middle, z) <= 0:
                high = middle
            else:
                low = middle
        return differences.kth(max(high, 1))

    if alternative == "greater":
        return root(float(sps.norm.isf(alpha))), math.inf
    if alternative == "less":
        return -math.inf, root(float(sps.norm.ppf(alpha)))
    return root(float(sps.norm.isf(alpha / 2))), root(float(sps.norm.ppf(alpha / 2)))


def mann_whitney(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    exact: bool | None = None,
    correct: bool = True,
    conf_level: float = 0.95,
    outcome: str = "",
    groups: tuple[str, str] = ("x", "y"),
) -> Result:
    """Wilcoxon-Mann-Whitney rank-sum test with the Hodges-Lehmann shift and its interval.

    Follows R's ``wilcox.test``: ``statistic`` is W = U of x; the exact null distribution is
    used when ``exact`` is None, both samples have fewer than 50 values and there are no ties,
    otherwise the normal approximation with tie correction and (if ``correct``) continuity
    correction. ``estimate`` is the Hodges-Lehmann shift, the median of all differences
    x_i - y_j (R reports the root of the approximate statistic in the normal case instead,
    which can differ slightly). The interval inverts the same test as the p-value.
    ``effect_size`` is the rank-biserial correlation 2U/(mn) - 1, without an interval.
    """
    a, b = _as_sample(x, groups[0]), _as_sample(y, groups[1])
    has_ties = np.unique(np.concatenate([a, b])).size < a.size + b.size
    use_exact = (a.size < 50 and b.size < 50) if exact is None else exact
    notes = []
    if use_exact and has_ties:
        use_exact = False
        notes.append("Ties present: normal approximation instead of the exact test.")
    differences = _PairwiseDifferences(a, b)
    if use_exact:
        test = sps.mannwhitneyu(a, b, alternative=alternative, method="exact")
        low, high = _hodges_lehmann_ci_exact(differences, a.size, b.size, conf_level, alternative)
        notes.append("Exact p-value and interval.")
    else:
        test = sps.mannwhitneyu(
            a, b, alternative=alternative, method="asymptotic", use_continuity=correct
        )
        low, high = _hodges_lehmann_ci_normal(a, b, differences, conf_level, alternative, correct)
        notes.append(
            "Normal approximation with tie"
            + (" and continuity corrections." if correct else " correction.")
        )
    u = float(test.statistic)
    return Result(
        outcome=outcome,
        method="mann_whitney",
        groups=groups,
        n=a.size + b.size,
        estimate=differences.median(),
        ci_low=low,
        ci_high=high,
        p_value=float(test.pvalue),
        statistic=u,
        effect_size=EffectSize("rank_biserial", 2 * u / (a.size * b.size) - 1),
        notes=_join_notes(
            f"Hodges-Lehmann shift {groups[0]} - {groups[1]}; W = U of {groups[0]}.", *notes
        ),
    )


def _mean_difference(x: FloatArray, y: FloatArray, axis: int = -1) -> FloatArray:
    return np.asarray(np.mean(x, axis=axis) - np.mean(y, axis=axis), dtype=np.float64)


def permutation_test(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_resamples: int = 9999,
    alternative: Alternative = "two-sided",
    outcome: str = "",
    groups: tuple[str, str] = ("x", "y"),
    batch: int | None = None,
) -> Result:
    """Permutation test of mean(x) - mean(y) by re-randomizing arm labels.

    Exact (every split enumerated) when there are no more distinct splits than
    ``n_resamples``; otherwise Monte Carlo with p = (hits + 1) / (n_resamples + 1), and the
    two-sided p twice the smaller one-sided p (scipy's convention). No interval.
    ``batch`` bounds how many resamples are held in memory at once (None: all of them).
    """
    a, b = _as_sample(x, groups[0]), _as_sample(y, groups[1])
    test = sps.permutation_test(
        (a, b),
        _mean_difference,
        permutation_type="independent",
        vectorized=True,
        n_resamples=n_resamples,
        batch=batch,
        alternative=alternative,
        rng=rng,
    )
    splits = math.comb(a.size + b.size, a.size)
    kind = "exact, all splits" if splits <= n_resamples else f"{n_resamples} random splits"
    return Result(
        outcome=outcome,
        method="permutation",
        groups=groups,
        n=a.size + b.size,
        estimate=float(test.statistic),
        ci_low=math.nan,
        ci_high=math.nan,
        p_value=float(test.pvalue),
        statistic=float(test.statistic),
        notes=f"Mean difference {groups[0]} - {groups[1]}; permutation p ({kind}).",
    )


def bootstrap_mean_difference(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    n_resamples: int = 9999,
    conf_level: float = 0.95,
    method: Literal["BCa", "percentile", "basic"] = "BCa",
    outcome: str = "",
    groups: tuple[str, str] = ("x", "y"),
    batch: int | None = None,
) -> Result:
    """Bootstrap interval for mean(x) - mean(y), resampling within each arm. No p-value.

    ``batch`` bounds how many resamples are held in memory at once (None: all of them)."""
    a, b = _as_sample(x, groups[0]), _as_sample(y, groups[1])
    boot = sps.bootstrap(
        (a, b),
        _mean_difference,
        n_resamples=n_resamples,
        batch=batch,
        vectorized=True,
        paired=False,
        confidence_level=conf_level,
        method=method,
        rng=rng,
    )
    return Result(
        outcome=outcome,
        method="bootstrap",
        groups=groups,
        n=a.size + b.size,
        estimate=float(a.mean() - b.mean()),
        ci_low=float(boot.confidence_interval.low),
        ci_high=float(boot.confidence_interval.high),
        p_value=math.nan,
        notes=(
            f"Mean difference {groups[0]} - {groups[1]}; {method} bootstrap {conf_level:.0%} "
            f"CI from {n_resamples} resamples within arms; bootstrap SE "
            f"{float(boot.standard_error):.4g}."
        ),
    )


def tost(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    margin: float | tuple[float, float],
    equal_var: bool = False,
    alpha: float = 0.05,
    outcome: str = "",
    groups: tuple[str, str] = ("x", "y"),
) -> Result:
    """Two one-sided t-tests for equivalence of mean(x) - mean(y) within ``margin``.

    ``margin`` is a positive number m for the bounds (-m, m), or explicit ``(low, high)``
    bounds (for "arm x is no faster by more than 5 minutes" use ``(-5, math.inf)``).
    The p-value is the larger one-sided p; equivalence is shown when it is below ``alpha``,
    i.e. when the (1 - 2 alpha) interval lies within the bounds. ``equal_var=True`` gives the
    pooled-variance version (pingouin's ``tost`` default).
    """
    a, b = _as_sample(x, groups[0]), _as_sample(y, groups[1])
    low_bound, high_bound = (-margin, margin) if isinstance(margin, int | float) else margin
    if not low_bound < high_bound:
        raise ValueError("equivalence bounds must satisfy low < high")
    difference = float(a.mean() - b.mean())
    if equal_var:
        se = _pooled_sd(a, b) * math.sqrt(1 / a.size + 1 / b.size)
        df = float(a.size + b.size - 2)
    else:
        se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        df = _welch_df(a, b)
    p_low = float(sps.t.sf((difference - low_bound) / se, df)) if low_bound > -math.inf else 0.0
    p_high = float(sps.t.cdf((difference - high_bound) / se, df)) if high_bound < math.inf else 0.0
    critical = float(sps.t.isf(alpha, df))
    # Report the t of the binding one-sided test (the one with the larger p).
    statistic = (difference - low_bound) / se if p_low >= p_high else (difference - high_bound) / se
    return Result(
        outcome=outcome,
        method="tost",
        groups=groups,
        n=a.size + b.size,
        estimate=difference,
        ci_low=difference - critical * se,
        ci_high=difference + critical * se,
        p_value=max(p_low, p_high),
        statistic=statistic,
        df=df,
        notes=(
            f"Equivalence of {groups[0]} - {groups[1]} within [{low_bound:g}, {high_bound:g}]; "
            f"{1 - 2 * alpha:.0%} CI; {'pooled' if equal_var else 'Welch'} t."
        ),
    )


TwoSampleTest = Callable[..., Result]


def compare_to_reference(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    test: TwoSampleTest = welch_t,
    adjust: AdjustMethod | None = None,
    **options: Any,
) -> list[Result]:
    """Run ``test(x=arm, y=reference, outcome=..., groups=..., **options)`` for every arm.

    With ``adjust``, the comparisons form one family and get Holm or BH adjusted p-values.
    """
    samples = arm_samples(frame, outcome=outcome, arm=arm, reference=reference)
    results = [
        test(values, samples[reference], outcome=outcome, groups=(level, reference), **options)
        for level, values in samples.items()
        if level != reference
    ]
    return with_adjusted_p(results, adjust) if adjust else results


def compare_outcomes(
    frame: pd.DataFrame,
    *,
    outcomes: Sequence[str],
    arm: str,
    reference: str,
    test: TwoSampleTest = welch_t,
    adjust: AdjustMethod = "holm",
    **options: Any,
) -> list[Result]:
    """Several outcomes (e.g. per-category scores) against the reference arm, adjusted as one
    family over all outcomes and arms."""
    results = [
        result
        for outcome in outcomes
        for result in compare_to_reference(
            frame, outcome=outcome, arm=arm, reference=reference, test=test, **options
        )
    ]
    return with_adjusted_p(results, adjust)


# --------------------------------------------------------------------------------------------
# Multiple testing
# --------------------------------------------------------------------------------------------


def adjust_pvalues(p_values: npt.ArrayLike, method: AdjustMethod) -> FloatArray:
    """Holm (family-wise error) or Benjamini-Hochberg (false discovery rate) adjusted p.

    Same values as R's ``p.adjust(method = "holm" / "BH")`` and statsmodels'
    ``multipletests(method="holm" / "fdr_bh")`` - not its default, Holm-Sidak. Computed here
    because ``multipletests`` runs a full garbage collection on every call. NaN p-values stay
    NaN and do not count towards the family size.
    """
    raw = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(raw.shape, np.nan)
    present = np.flatnonzero(~np.isnan(raw))
    m = present.size
    if m == 0:
        return adjusted
    order = present[np.argsort(raw[present], kind="stable")]
    ranked = raw[order]
    rank = np.arange(1, m + 1)
    if method == "holm":
        # p_(i) * (m - i + 1), made non-decreasing from the smallest p upwards.
        values = np.maximum.accumulate(np.minimum(1.0, (m - rank + 1) * ranked))
    else:
        # p_(i) * m / i, made non-increasing from the largest p downwards.
        values = np.minimum.accumulate(np.minimum(1.0, ranked * m / rank)[::-1])[::-1]
    adjusted[order] = values
    return adjusted


def with_adjusted_p(results: Sequence[Result], method: AdjustMethod) -> list[Result]:
    """The results as one family, each with ``adjusted_p`` filled in."""
    adjusted = adjust_pvalues([r.p_value for r in results], method)
    note = f"{_ADJUST_LABEL[method]} adjustment over {len(results)} comparisons."
    return [
        replace(result, adjusted_p=float(p), notes=_join_notes(result.notes, note))
        for result, p in zip(results, adjusted, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# More than two arms
# --------------------------------------------------------------------------------------------


def omnibus(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    method: Literal["anova", "kruskal"] = "anova",
) -> Result:
    """One-way ANOVA (F) or Kruskal-Wallis (chi-square, tie-corrected) across all arms."""
    samples = arm_samples(frame, outcome=outcome, arm=arm, reference=reference)
    values = list(samples.values())
    n = sum(v.size for v in values)
    k = len(values)
    if method == "anova":
        test = sps.f_oneway(*values)
        grand = np.concatenate(values).mean()
        between = sum(v.size * (v.mean() - grand) ** 2 for v in values)
        total = float(((np.concatenate(values) - grand) ** 2).sum())
        return Result(
            outcome=outcome,
            method="anova",
            groups=tuple(samples),
            n=n,
            estimate=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            p_value=float(test.pvalue),
            statistic=float(test.statistic),
            df=float(k - 1),
            effect_size=EffectSize("eta_squared", float(between / total)),
            notes=f"F on {k - 1} and {n - k} df.",
        )
    test = sps.kruskal(*values)
    return Result(
        outcome=outcome,
        method="kruskal",
        groups=tuple(samples),
        n=n,
        estimate=math.nan,
        ci_low=math.nan,
        ci_high=math.nan,
        p_value=float(test.pvalue),
        statistic=float(test.statistic),
        df=float(k - 1),
        notes=f"Kruskal-Wallis chi-square on {k - 1} df, corrected for ties.",
    )


def multi_arm(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    omnibus_method: Literal["anova", "kruskal"] = "anova",
    test: TwoSampleTest = welch_t,
    adjust: AdjustMethod = "holm",
    **options: Any,
) -> list[Result]:
    """The omnibus test across all arms, then each arm against the reference, adjusted."""
    return [
        omnibus(frame, outcome=outcome, arm=arm, reference=reference, method=omnibus_method),
        *compare_to_reference(
            frame,
            outcome=outcome,
            arm=arm,
            reference=reference,
            test=test,
            adjust=adjust,
            **options,
        ),
    ]


# --------------------------------------------------------------------------------------------
# Regression: ANCOVA, treatment x covariate interaction, item-level GEE
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Design:
    y: FloatArray
    x: pd.DataFrame
    arm_columns: dict[str, str]  # arm level -> design column
    n_rows: int
    used: npt.NDArray[np.bool_] = field(repr=False)


def _covariate_columns(frame: pd.DataFrame, covariate: str) -> pd.DataFrame:
    """A numeric covariate as is; a categorical one as indicators (first level dropped)."""
    column = frame[covariate]
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return pd.DataFrame({covariate: column.astype(np.float64)})
    dummies = pd.get_dummies(column.astype("string"), prefix=covariate, prefix_sep="=")
    return dummies.iloc[:, 1:].astype(np.float64)


def _design(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    covariates: Sequence[str],
    extra: Sequence[str] = (),
) -> _Design:
    """Complete cases of outcome, arm and covariates, with an intercept and arm indicators."""
    needed = [outcome, arm, *covariates, *extra]
    used = frame[needed].notna().all(axis=1).to_numpy()
    data = frame.loc[used]
    levels = _arm_levels(data, arm, reference)
    labels = data[arm].astype("string")
    x = pd.DataFrame({"const": np.ones(len(data))}, index=data.index)
    arm_columns: dict[str, str] = {}
    for level in levels[1:]:
        name = f"{arm}={level}"
        x[name] = (labels == level).astype(np.float64)
        arm_columns[level] = name
    for covariate in covariates:
        x = x.join(_covariate_columns(data, covariate))
    y = pd.to_numeric(data[outcome], errors="raise").to_numpy(dtype=np.float64)
    return _Design(y=y, x=x, arm_columns=arm_columns, n_rows=len(frame), used=used)


def ancova(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    covariates: Sequence[str] = (),
    conf_level: float = 0.95,
) -> list[Result]:
    """Adjusted mean difference of each arm vs the reference: OLS with HC3 robust errors.

    ``outcome ~ arm + covariates``; categorical covariates enter as indicators. Rows with a
    missing outcome, arm or covariate are dropped (complete cases) and ``n`` is the number
    used. Tests and intervals use the t distribution on the residual df with the HC3
    covariance, as ``lmtest::coeftest(fit, vcov = sandwich::vcovHC(fit, "HC3"))`` in R.
    """
    import statsmodels.api as sm

    design = _design(frame, outcome=outcome, arm=arm, reference=reference, covariates=covariates)
    fit = sm.OLS(design.y, design.x).fit(cov_type="HC3", use_t=True)
    intervals = fit.conf_int(alpha=1 - conf_level)
    dropped = _dropped_note(design.n_rows, design.y.size, "missing outcome, arm or covariate")
    results = []
    for level, column in design.arm_columns.items():
        results.append(
            Result(
                outcome=outcome,
                method="ancova",
                groups=(level, reference),
                n=design.y.size,
                estimate=float(fit.params[column]),
                ci_low=float(intervals.loc[column, 0]),
                ci_high=float(intervals.loc[column, 1]),
                p_value=float(fit.pvalues[column]),
                statistic=float(fit.tvalues[column]),
                df=float(fit.df_resid),
                covariates=tuple(covariates),
                notes=_join_notes(
                    f"Adjusted mean difference {level} - {reference}; OLS, HC3 SE "
                    f"{float(fit.bse[column]):.4g}.",
                    dropped,
                ),
            )
        )
    return results


def treatment_interaction(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    covariate: str,
    adjust_for: Sequence[str] = (),
    conf_level: float = 0.95,
) -> list[Result]:
    """Does the arm effect differ with ``covariate``? OLS with HC3 errors.

    ``outcome ~ arm * covariate + adjust_for``. For a numeric covariate there is one result
    per arm: the change in the arm - reference difference per unit of the covariate. For a
    categorical covariate (e.g. years of coding 1-3 / 4-6 / 7+) there is one joint Wald F-test
    of all arm x level terms, with no single estimate.
    """
    import statsmodels.api as sm

    design = _design(
        frame,
        outcome=outcome,
        arm=arm,
        reference=reference,
        covariates=[covariate, *adjust_for],
    )
    covariate_columns = list(_covariate_columns(frame.loc[design.used], covariate).columns)
    x = design.x.copy()
    terms: dict[str, list[str]] = {}
    for level, arm_column in design.arm_columns.items():
        terms[level] = []
        for column in covariate_columns:
            name = f"{arm_column}:{column}"
            x[name] = x[arm_column] * x[column]
            terms[level].append(name)
    fit = sm.OLS(design.y, x).fit(cov_type="HC3", use_t=True)
    dropped = _dropped_note(design.n_rows, design.y.size, "missing outcome, arm or covariate")
    covariates = (covariate, *adjust_for)
    numeric = covariate_columns == [covariate]
    if numeric:
        intervals = fit.conf_int(alpha=1 - conf_level)
        return [
            Result(
                outcome=outcome,
                method="interaction",
                groups=(level, reference),
                n=design.y.size,
                estimate=float(fit.params[names[0]]),
                ci_low=float(intervals.loc[names[0], 0]),
                ci_high=float(intervals.loc[names[0], 1]),
                p_value=float(fit.pvalues[names[0]]),
                statistic=float(fit.tvalues[names[0]]),
                df=float(fit.df_resid),
                covariates=covariates,
                notes=_join_notes(
                    f"Change in the {level} - {reference} difference per unit of {covariate}; "
                    "OLS, HC3.",
                    dropped,
                ),
            )
            for level, names in terms.items()
        ]
    all_terms = [name for names in terms.values() for name in names]
    restriction = np.zeros((len(all_terms), x.shape[1]))
    for row, name in enumerate(all_terms):
        restriction[row, list(x.columns).index(name)] = 1.0
    wald = fit.wald_test(restriction, use_f=True, scalar=True)
    return [
        Result(
            outcome=outcome,
            method="interaction",
            groups=(*design.arm_columns, reference),
            n=design.y.size,
            estimate=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            p_value=float(wald.pvalue),
            statistic=float(wald.statistic),
            df=float(len(all_terms)),
            covariates=covariates,
            notes=_join_notes(
                f"Joint Wald F-test of {len(all_terms)} arm x {covariate} terms on "
                f"{len(all_terms)} and {int(fit.df_resid)} df; OLS, HC3.",
                dropped,
            ),
        )
    ]


def gee_logistic(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    cluster: str,
    item: str | None = None,
    covariates: Sequence[str] = (),
    conf_level: float = 0.95,
) -> list[Result]:
    """Item-level logistic GEE: odds of a correct answer, arm vs reference.

    One row per participant x item; ``outcome`` is 0/1, ``cluster`` identifies the
    participant (exchangeable working correlation, robust sandwich errors). With ``item``,
    item indicators absorb differences in difficulty. ``estimate`` is the odds ratio; ``n``
    counts participants, the notes count item responses.
    """
    from statsmodels.genmod.cov_struct import Exchangeable
    from statsmodels.genmod.families import Binomial
    from statsmodels.genmod.generalized_estimating_equations import GEE

    extra = [cluster] if item is None else [cluster, item]
    design = _design(
        frame,
        outcome=outcome,
        arm=arm,
        reference=reference,
        covariates=[*covariates, *([item] if item else [])],
        extra=extra,
    )
    if not np.isin(design.y, (0.0, 1.0)).all():
        raise ValueError(f"{outcome!r} must be 0/1 for a logistic GEE")
    clusters = frame.loc[design.used, cluster].astype("string").to_numpy()
    model = GEE(
        design.y,
        design.x,
        groups=clusters,
        family=Binomial(),
        cov_struct=Exchangeable(),
    )
    fit = model.fit()
    within_cluster = float(model.cov_struct.dep_params)
    z = float(sps.norm.isf((1 - conf_level) / 2))
    n_clusters = int(np.unique(clusters).size)
    dropped = _dropped_note(design.n_rows, design.y.size, "missing values")
    results = []
    for level, column in design.arm_columns.items():
        beta, se = float(fit.params[column]), float(fit.bse[column])
        results.append(
            Result(
                outcome=outcome,
                method="gee_logistic",
                groups=(level, reference),
                n=n_clusters,
                estimate=math.exp(beta),
                ci_low=math.exp(beta - z * se),
                ci_high=math.exp(beta + z * se),
                p_value=float(2 * sps.norm.sf(abs(beta / se))),
                statistic=beta / se,
                covariates=(*covariates, *([item] if item else [])),
                notes=_join_notes(
                    f"Odds ratio {level} vs {reference}; logistic GEE, exchangeable "
                    f"correlation within {cluster} (estimated {within_cluster:.3g}), robust "
                    f"SE; {design.y.size} item responses from {n_clusters} clusters.",
                    dropped,
                ),
            )
        )
    return results


# --------------------------------------------------------------------------------------------
# Completion time, right-censored at the time limit
# --------------------------------------------------------------------------------------------
# In this platform the "event" is finishing the task; not having finished by the limit is
# censoring. The Kaplan-Meier "survival" is therefore the share still working at time t.


@dataclass(frozen=True)
class KaplanMeierCurve:
    """Kaplan-Meier estimate for one arm at its distinct event times (Greenwood SE, pointwise
    log-transformed interval as R's ``survfit`` default)."""

    arm: str
    times: FloatArray
    survival: FloatArray
    se: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    n_at_risk: npt.NDArray[np.int64]
    n_events: npt.NDArray[np.int64]
    n: int
    events: int


def _survival_data(
    frame: pd.DataFrame, *, time: str, event: str, arm: str, reference: str
) -> tuple[dict[str, tuple[FloatArray, FloatArray]], int, int]:
    used = frame[[time, event, arm]].notna().all(axis=1).to_numpy()
    data = frame.loc[used]
    labels = data[arm].astype("string")
    per_arm: dict[str, tuple[FloatArray, FloatArray]] = {}
    for level in _arm_levels(data, arm, reference):
        rows = labels == level
        t = np.asarray(data.loc[rows, time], dtype=np.float64)
        e = np.asarray(data.loc[rows, event], dtype=np.float64)
        if not np.isin(e, (0.0, 1.0)).all():
            raise ValueError(f"{event!r} must be 1 (finished) or 0 (censored)")
        per_arm[level] = (t, e)
    return per_arm, len(frame), int(used.sum())


def kaplan_meier(
    time: npt.ArrayLike, event: npt.ArrayLike, *, arm: str = "", conf_level: float = 0.95
) -> KaplanMeierCurve:
    """Kaplan-Meier curve of one arm; ``event`` is 1 where the task was finished."""
    from statsmodels.duration.survfunc import SurvfuncRight

    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=np.float64)
    fit = SurvfuncRight(t, e)
    survival = np.asarray(fit.surv_prob, dtype=np.float64)
    se = np.asarray(fit.surv_prob_se, dtype=np.float64)
    z = float(sps.norm.isf((1 - conf_level) / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_se = np.where(survival > 0, se / survival, np.nan)
    return KaplanMeierCurve(
        arm=arm,
        times=np.asarray(fit.surv_times, dtype=np.float64),
        survival=survival,
        se=se,
        ci_low=survival * np.exp(-z * log_se),
        ci_high=np.minimum(1.0, survival * np.exp(z * log_se)),
        n_at_risk=np.asarray(fit.n_risk, dtype=np.int64),
        n_events=np.asarray(fit.n_events, dtype=np.int64),
        n=int(t.size),
        events=int(e.sum()),
    )


def km_medians(
    frame: pd.DataFrame,
    *,
    time: str,
    event: str,
    arm: str,
    reference: str,
    outcome: str | None = None,
    conf_level: float = 0.95,
) -> list[Result]:
    """Median time to finish per arm from the Kaplan-Meier curve, with its interval.

    The median is the first time the curve is at or below 0.5 (NaN if it never is: fewer
    than half finished). The interval is the set of times whose log-transformed pointwise
    interval contains 0.5 (Brookmeyer-Crowley with R's default ``conf.type = "log"``); an
    infinite upper limit (JSON null) means "not reached within follow-up".
    """
    from statsmodels.duration.survfunc import SurvfuncRight

    per_arm, n_rows, n_used = _survival_data(
        frame, time=time, event=event, arm=arm, reference=reference
    )
    dropped = _dropped_note(n_rows, n_used, "missing time, event or arm")
    results = []
    for level, (t, e) in per_arm.items():
        fit = SurvfuncRight(t, e)
        median = float(fit.quantile(0.5))
        low, high = fit.quantile_ci(0.5, alpha=1 - conf_level, method="log")
        results.append(
            Result(
                outcome=outcome or time,
                method="km_median",
                groups=(level,),
                n=int(t.size),
                estimate=median,
                ci_low=float(low),
                ci_high=float(high),
                p_value=math.nan,
                notes=_join_notes(
                    f"Kaplan-Meier median time to finish; {int(e.sum())} of {t.size} finished.",
                    "Median not reached." if math.isnan(median) else "",
                    "Upper limit not reached." if not math.isfinite(float(high)) else "",
                    dropped,
                ),
            )
        )
    return results


@dataclass(frozen=True)
class LogRankTable:
    """Observed and expected events per arm and the log-rank chi-square."""

    groups: tuple[str, ...]
    observed: FloatArray
    expected: FloatArray
    statistic: float
    df: int
    p_value: float


def _in_order_sum(terms: FloatArray) -> FloatArray:
    """Sum over the first axis as a running total in that order (numpy's ``sum`` adds pairwise,
    which rounds differently), so the log-rank sums are those of R's loop over event times."""
    if terms.shape[0] == 0:
        return np.zeros(terms.shape[1:])
    return np.cumsum(terms, axis=0)[-1]


def logrank_table(
    times: Sequence[npt.ArrayLike], events: Sequence[npt.ArrayLike], groups: Sequence[str]
) -> LogRankTable:
    """The k-sample log-rank test, as R's ``survdiff`` (rho = 0).

    At each distinct finishing time everyone with a time at or after it is at risk (so a
    participant censored at that very time still counts), the d tied finishes share the
    hypergeometric variance d (n - d) / (n - 1), and ``event == 1`` marks a finish. Rows with a
    missing time take no part.
    """
    k = len(times)
    t_all = np.concatenate([np.asarray(t, dtype=np.float64) for t in times])
    e_all = np.concatenate([np.asarray(e, dtype=np.float64) for e in events])
    g_all = np.repeat(np.arange(k), [np.asarray(t).size for t in times])
    timed = ~np.isnan(t_all)
    moments, slot = np.unique(t_all[timed], return_inverse=True)
    # One cell per (arm, distinct time): who leaves the risk set there, and who finishes.
    cell = g_all[timed] * moments.size + slot
    cells = k * moments.size
    leaving = np.bincount(cell, minlength=cells).reshape(k, moments.size)
    finishing = np.bincount(cell[e_all[timed] == 1], minlength=cells).reshape(k, moments.size)
    at_risk = np.cumsum(leaving[:, ::-1], axis=1)[:, ::-1]
    event_times = finishing.sum(axis=0) > 0
    n_group = at_risk[:, event_times].T.astype(np.float64)  # (event time, arm)
    d_group = finishing[:, event_times].T.astype(np.float64)
    n_total = n_group.sum(axis=1)
    d_total = d_group.sum(axis=1)
    observed = _in_order_sum(d_group)
    expected = _in_order_sum(d_total[:, None] * n_group / n_total[:, None])
    several = n_total > 1  # with one at risk the variance term is 0 / 0, taken as 0
    share = n_group[several] / n_total[several, None]
    factor = d_total[several] * (n_total[several] - d_total[several]) / (n_total[several] - 1)
    spread = share[:, :, None] * np.eye(k) - share[:, :, None] * share[:, None, :]
    covariance = _in_order_sum(factor[:, None, None] * spread)
    difference = (observed - expected)[: k - 1]
    statistic = float(difference @ np.linalg.solve(covariance[: k - 1, : k - 1], difference))
    return LogRankTable(
        groups=tuple(groups),
        observed=observed,
        expected=expected,
        statistic=statistic,
        df=k - 1,
        p_value=float(sps.chi2.sf(statistic, k - 1)),
    )


def logrank(
    frame: pd.DataFrame,
    *,
    time: str,
    event: str,
    arm: str,
    reference: str,
    outcome: str | None = None,
) -> Result:
    """Log-rank test of equal time-to-finish curves across all arms (no single estimate)."""
    per_arm, n_rows, n_used = _survival_data(
        frame, time=time, event=event, arm=arm, reference=reference
    )
    table = logrank_table(
        [t for t, _ in per_arm.values()], [e for _, e in per_arm.values()], list(per_arm)
    )
    counts = "; ".join(
        f"{level} {o:g}/{e:.5g}"
        for level, o, e in zip(table.groups, table.observed, table.expected, strict=True)
    )
    return Result(
        outcome=outcome or time,
        method="logrank",
        groups=table.groups,
        n=n_used,
        estimate=math.nan,
        ci_low=math.nan,
        ci_high=math.nan,
        p_value=table.p_value,
        statistic=table.statistic,
        df=float(table.df),
        notes=_join_notes(
            f"Finished observed/expected: {counts}.",
            _dropped_note(n_rows, n_used, "missing time, event or arm"),
        ),
    )


def cox(
    frame: pd.DataFrame,
    *,
    time: str,
    event: str,
    arm: str,
    reference: str,
    covariates: Sequence[str] = (),
    outcome: str | None = None,
    conf_level: float = 0.95,
) -> list[Result]:
    """Cox proportional hazards (Efron ties): hazard ratio of finishing, arm vs reference.

    A hazard ratio above 1 means the arm finishes sooner. Wald test and interval; complete
    cases of time, event, arm and covariates.
    """
    from statsmodels.duration.hazard_regression import PHReg

    design = _design(
        frame, outcome=time, arm=arm, reference=reference, covariates=covariates, extra=[event]
    )
    status = frame.loc[design.used, event].astype(np.float64).to_numpy(dtype=np.float64)
    if not status.any():
        raise ValueError(
            "no one finished (every time is censored): a hazard ratio cannot be estimated"
        )
    exog = design.x.drop(columns="const")  # the baseline hazard takes the place of a constant
    fit = PHReg(design.y, exog, status=status, ties="efron").fit()
    names = list(exog.columns)
    z = float(sps.norm.isf((1 - conf_level) / 2))
    dropped = _dropped_note(design.n_rows, design.y.size, "missing time, event, arm or covariate")
    results = []
    for level, column in design.arm_columns.items():
        index = names.index(column)
        beta, se = float(fit.params[index]), float(fit.bse[index])
        results.append(
            Result(
                outcome=outcome or time,
                method="cox",
                groups=(level, reference),
                n=design.y.size,
                estimate=math.exp(beta),
                ci_low=math.exp(beta - z * se),
                ci_high=math.exp(beta + z * se),
                p_value=float(2 * sps.norm.sf(abs(beta / se))),
                statistic=beta / se,
                covariates=tuple(covariates),
                notes=_join_notes(
                    f"Hazard ratio of finishing, {level} vs {reference} (above 1: finishes "
                    f"sooner); Cox PH, Efron ties, Wald; log HR {beta:.4g} (SE {se:.4g}); "
                    f"{int(status.sum())} finished.",
                    dropped,
                ),
            )
        )
    return results


def _restricted_mean(curve: KaplanMeierCurve, horizon: float) -> tuple[float, float]:
    """Area under the Kaplan-Meier curve from 0 to ``horizon`` and its variance.

    Variance as in survRM2 / Klein & Moeschberger: sum over event times t_i <= horizon of
    A_i^2 d_i / (Y_i (Y_i - d_i)), A_i the area under the curve from t_i to the horizon.
    """
    inside = curve.times <= horizon
    times = curve.times[inside]
    survival = curve.survival[inside]
    edges = np.concatenate([[0.0], times, [horizon]])
    levels = np.concatenate([[1.0], survival])
    pieces = levels * np.diff(edges)
    area = float(pieces.sum())
    tail = np.cumsum(pieces[::-1])[::-1][1:]  # area from each event time to the horizon
    at_risk = curve.n_at_risk[inside].astype(np.float64)
    finished = curve.n_events[inside].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            at_risk > finished, tail**2 * finished / (at_risk * (at_risk - finished)), 0.0
        )
    return area, float(terms.sum())


def rmst(
    frame: pd.DataFrame,
    *,
    time: str,
    event: str,
    arm: str,
    reference: str,
    horizon: float,
    outcome: str | None = None,
    conf_level: float = 0.95,
) -> list[Result]:
    """Difference in restricted mean time to finish up to ``horizon`` (usually the limit).

    The restricted mean is the area under the Kaplan-Meier curve of "still working" from 0 to
    the horizon: the mean time spent working when nobody is counted past the horizon. Unlike
    the median it always exists, and unlike a t-test it treats non-finishers as censored.
    Normal-theory interval and z-test, as R's ``survRM2::rmst2``. The horizon must not exceed
    an arm's longest follow-up unless everyone in that arm finished.
    """
    per_arm, n_rows, n_used = _survival_data(
        frame, time=time, event=event, arm=arm, reference=reference
    )
    curves = {level: kaplan_meier(t, e, arm=level) for level, (t, e) in per_arm.items()}
    for level, (t, _) in per_arm.items():
        # Beyond the last observation the curve is unknown unless everyone has finished.
        survival = curves[level].survival
        if horizon > t.max() and (survival.size == 0 or survival[-1] > 0):
            raise ValueError(
                f"horizon {horizon:g} exceeds the longest follow-up in arm {level!r} "
                f"({t.max():g}) while some participants there had not finished"
            )
    areas = {level: _restricted_mean(curve, horizon) for level, curve in curves.items()}
    z = float(sps.norm.isf((1 - conf_level) / 2))
    ref_mean, ref_var = areas[reference]
    dropped = _dropped_note(n_rows, n_used, "missing time, event or arm")
    results = []
    for level, (mean, variance) in areas.items():
        if level == reference:
            continue
        difference = mean - ref_mean
        se = math.sqrt(variance + ref_var)
        results.append(
            Result(
                outcome=outcome or time,
                method="rmst",
                groups=(level, reference),
                n=per_arm[level][0].size + per_arm[reference][0].size,
                estimate=difference,
                ci_low=difference - z * se,
                ci_high=difference + z * se,
                p_value=float(2 * sps.norm.sf(abs(difference / se))) if se > 0 else math.nan,
                statistic=difference / se if se > 0 else math.nan,
                notes=_join_notes(
                    f"Restricted mean time to finish up to {horizon:g}: {level} {mean:.4g} "
                    f"(SE {math.sqrt(variance):.3g}), {reference} {ref_mean:.4g} "
                    f"(SE {math.sqrt(ref_var):.3g}); difference {level} - {reference}.",
                    dropped,
                ),
            )
        )
    return results


def censored_time_t_test(
    frame: pd.DataFrame,
    *,
    time: str,
    arm: str,
    reference: str,
    equal_var: bool = True,
    outcome: str | None = None,
) -> list[Result]:
    """The t-test on completion times that published studies report, labelled as biased.

    Non-finishers enter at their censored time (the limit). Pooled variance by default, as
    usually published. See the module docstring for why this is biased.
    """
    test = student_t if equal_var else welch_t
    results = compare_to_reference(frame, outcome=time, arm=arm, reference=reference, test=test)
    return [
        replace(r, outcome=outcome or time, notes=_join_notes(r.notes, CENSORED_T_TEST_NOTE))
        for r in results
    ]


# --------------------------------------------------------------------------------------------
# Planning: power, sample size, minimum detectable effect
# --------------------------------------------------------------------------------------------


def _increasing_root(function: Callable[[float], float], low: float, start: float) -> float:
    """Root of an increasing function on (low, inf), doubling the bracket from ``start``."""
    high = start
    while function(high) < 0:
        low, high = high, high * 2
        if high > 1e9:
            raise ValueError("no solution below 1e9")
    return float(optimize.brentq(function, low, high, xtol=1e-12, rtol=1e-14))


def t_test_power(
    d: float,
    n1: float,
    n2: float | None = None,
    *,
    alpha: float = 0.05,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
    strict: bool = True,
) -> float:
    """Power of the two-sample pooled t-test for a standardized difference ``d``.

    Exact noncentral t with ncp = d * sqrt(n1 n2 / (n1 + n2)) and n1 + n2 - 2 df; ``n2``
    defaults to ``n1``. ``strict=True`` counts rejections in both tails (``pwr::pwr.t.test``,
    ``power.t.test(strict = TRUE)``); ``strict=False`` only the tail of the effect, which is
    R's ``power.t.test`` default.
    """
    n_other = n1 if n2 is None else n2
    df = n1 + n_other - 2
    ncp = abs(d) * math.sqrt(n1 * n_other / (n1 + n_other))
    if alternative == "one-sided":
        return float(sps.nct.sf(sps.t.isf(alpha, df), df, ncp))
    critical = float(sps.t.isf(alpha / 2, df))
    power = float(sps.nct.sf(critical, df, ncp))
    if strict:
        # P(T < -c | ncp) = P(T > c | -ncp); scipy's nct.cdf returns NaN far in that tail.
        power += float(np.nan_to_num(sps.nct.sf(critical, df, -ncp)))
    return power


def t_test_sample_size(
    d: float,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    ratio: float = 1.0,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
    strict: bool = True,
) -> float:
    """Participants in the reference arm (the other arm has ``ratio`` times as many) for the
    given power. Fractional, as R reports it; round up to plan."""
    return _increasing_root(
        lambda n: (
            t_test_power(d, n, ratio * n, alpha=alpha, alternative=alternative, strict=strict)
            - power
        ),
        low=1.0 + 1e-9,
        start=4.0,
    )


def t_test_mde(
    n1: float,
    n2: float | None = None,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
) -> float:
    """Minimum detectable standardized difference (Cohen's d) at the given arm sizes."""
    return _increasing_root(
        lambda d: t_test_power(d, n1, n2, alpha=alpha, alternative=alternative) - power,
        low=0.0,
        start=0.5,
    )


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p2)), as ``pwr::ES.h``."""
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def proportions_power(
    h: float,
    n1: float,
    n2: float | None = None,
    *,
    alpha: float = 0.05,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
) -> float:
    """Power of the arcsine test of two proportions (``pwr::pwr.2p.test`` / ``pwr.2p2n.test``)."""
    n_other = n1 if n2 is None else n2
    shift = abs(h) * math.sqrt(n1 * n_other / (n1 + n_other))
    if alternative == "one-sided":
        return float(sps.norm.sf(sps.norm.isf(alpha) - shift))
    critical = float(sps.norm.isf(alpha / 2))
    return float(sps.norm.sf(critical - shift) + sps.norm.cdf(-critical - shift))


def proportions_sample_size(
    h: float,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    ratio: float = 1.0,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
) -> float:
    """Participants in the reference arm for the given power (other arm ``ratio`` times)."""
    return _increasing_root(
        lambda n: proportions_power(h, n, ratio * n, alpha=alpha, alternative=alternative) - power,
        low=1e-9,
        start=4.0,
    )


def proportions_mde(
    n1: float,
    n2: float | None = None,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
) -> float:
    """Minimum detectable Cohen's h at the given arm sizes."""
    return _increasing_root(
        lambda h: proportions_power(h, n1, n2, alpha=alpha, alternative=alternative) - power,
        low=0.0,
        start=0.5,
    )


def proportion_detectable_above(baseline: float, h: float) -> float:
    """The proportion that differs from ``baseline`` by Cohen's h (upwards)."""
    angle = math.asin(math.sqrt(baseline)) + h / 2
    if angle >= math.pi / 2:
        return 1.0
    return math.sin(angle) ** 2


def results_to_json(results: Iterable[Result]) -> dict[str, list[dict[str, Any]]]:
    """The ``{"results": [...]}`` document of ``analyze --json``."""
    return {"results": [result.to_dict() for result in results]}


__all__ = [
    "CENSORED_T_TEST_NOTE",
    "EffectSize",
    "KaplanMeierCurve",
    "LogRankTable",
    "Result",
    "adjust_pvalues",
    "ancova",
    "arm_samples",
    "bootstrap_mean_difference",
    "censored_time_t_test",
    "cohens_d",
    "cohens_h",
    "compare_outcomes",
    "compare_to_reference",
    "cox",
    "gee_logistic",
    "hedges_g",
    "kaplan_meier",
    "km_medians",
    "logrank",
    "logrank_table",
    "mann_whitney",
    "multi_arm",
    "omnibus",
    "permutation_test",
    "proportion_detectable_above",
    "proportions_mde",
    "proportions_power",
    "proportions_sample_size",
    "rmst",
    "student_t",
    "t_test_mde",
    "t_test_power",
    "t_test_sample_size",
    "tost",
    "treatment_interaction",
    "welch_t",
    "with_adjusted_p",
]
