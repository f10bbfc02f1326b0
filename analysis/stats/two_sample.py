"""Two-sample comparisons of a continuous outcome: x is the arm, y the reference arm."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from analysis.stats.multiplicity import AdjustMethod, with_adjusted_p
from analysis.stats.results import Alternative, EffectSize, FloatArray, Result, join_notes
from analysis.stats.samples import arm_samples, as_sample


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


def pooled_sd(x: FloatArray, y: FloatArray) -> float:
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
    a, b = as_sample(x, "x"), as_sample(y, "y")
    spread = pooled_sd(a, b)
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
    a, b = as_sample(x, "x"), as_sample(y, "y")
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
    a, b = as_sample(x, groups[0]), as_sample(y, groups[1])
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
    a, b = as_sample(x, groups[0]), as_sample(y, groups[1])
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
        notes=join_notes(
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
    a, b = as_sample(x, groups[0]), as_sample(y, groups[1])
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
    a, b = as_sample(x, groups[0]), as_sample(y, groups[1])
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
    a, b = as_sample(x, groups[0]), as_sample(y, groups[1])
    low_bound, high_bound = (-margin, margin) if isinstance(margin, int | float) else margin
    if not low_bound < high_bound:
        raise ValueError("equivalence bounds must satisfy low < high")
    difference = float(a.mean() - b.mean())
    if equal_var:
        se = pooled_sd(a, b) * math.sqrt(1 / a.size + 1 / b.size)
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
