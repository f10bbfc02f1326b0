"""Agreement between graders and the quality of quiz items: plain numpy/pandas, no Django.

Arrays or frames go in, frozen dataclasses (or floats) come out; NaN means "not defined for
these data" (no variance, too few rows), never an error.

* Grader agreement: Cohen's kappa (unweighted, for categories), weighted kappa (linear or
  quadratic weights, for ordered levels such as points), and the intraclass correlations of
  Shrout & Fleiss (1979) for points.
* Item quality: difficulty (share of the available points earned), discrimination (corrected
  item-total correlation: the item against the total of the *other* items), the "I don't know"
  rate, attention-check failures, Cronbach's alpha and KR-20, and flags for items everyone
  gets right, everyone gets wrong, or that discriminate negatively.

Missing values: pairs of ratings with either one missing are dropped; items x participants
matrices use complete rows only (listwise) for alpha, KR-20, ICC and discrimination, and every
available value for difficulty and rates. Pass final grades: a provisional 0 is not missing.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
Weights = Literal["none", "linear", "quadratic"]

FLAG_ALL_RIGHT = "everyone_right"
FLAG_ALL_WRONG = "everyone_wrong"
FLAG_NEGATIVE = "negative_discrimination"
FLAG_NO_VARIANCE = "no_variance"


# --- agreement between two graders ---------------------------------------------------------


@dataclass(frozen=True)
class Kappa:
    """Chance-corrected agreement of two raters: (observed - expected) / (1 - expected),
    where observed and expected are (weighted) proportions of agreement."""

    kappa: float
    observed: float
    expected: float
    n: int
    weights: Weights


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _pairs(a: Sequence[Any] | pd.Series, b: Sequence[Any] | pd.Series) -> list[tuple[Any, Any]]:
    left, right = list(a), list(b)
    if len(left) != len(right):
        raise ValueError(
            f"the two raters rated different numbers of items ({len(left)}, {len(right)})"
        )
    return [
        (x, y) for x, y in zip(left, right, strict=True) if not (_is_missing(x) or _is_missing(y))
    ]


def _sorted_levels(values: set[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _kappa(
    a: Sequence[Any] | pd.Series,
    b: Sequence[Any] | pd.Series,
    categories: Sequence[Hashable] | None,
    weights: Weights,
) -> Kappa:
    pairs = _pairs(a, b)
    levels = (
        list(categories)
        if categories is not None
        else _sorted_levels({x for pair in pairs for x in pair})
    )
    index = {level: i for i, level in enumerate(levels)}
    if len(index) != len(levels):
        raise ValueError("categories must not repeat")
    k, n = len(levels), len(pairs)
    if n == 0:
        return Kappa(math.nan, math.nan, math.nan, 0, weights)
    table = np.zeros((k, k))
    for x, y in pairs:
        if x not in index or y not in index:
            raise ValueError(f"rating {x if x not in index else y!r} is not among the categories")
        table[index[x], index[y]] += 1
    table /= n
    distance = np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(float)
    if weights == "none" or k == 1:
        agreement = np.eye(k)
    elif weights == "linear":
        agreement = 1 - distance / (k - 1)
    else:
        agreement = 1 - (distance / (k - 1)) ** 2
    expected_table = np.outer(table.sum(axis=1), table.sum(axis=0))
    observed = float((agreement * table).sum())
    expected = float((agreement * expected_table).sum())
    # Both raters used a single category throughout: chance agreement is 1, kappa undefined.
    kappa = math.nan if math.isclose(expected, 1.0) else (observed - expected) / (1 - expected)
    return Kappa(kappa, observed, expected, n, weights)


def cohen_kappa(
    rater_a: Sequence[Any] | pd.Series,
    rater_b: Sequence[Any] | pd.Series,
    *,
    categories: Sequence[Hashable] | None = None,
) -> Kappa:
    """Cohen's (1960) unweighted kappa for two raters' labels of the same items."""
    return _kappa(rater_a, rater_b, categories, "none")


def weighted_kappa(
    rater_a: Sequence[Any] | pd.Series,
    rater_b: Sequence[Any] | pd.Series,
    *,
    weights: Literal["linear", "quadratic"] = "quadratic",
    categories: Sequence[Hashable] | None = None,
) -> Kappa:
    """Cohen's (1968) weighted kappa for ordered categories.

    ``categories`` gives the order (default: the sorted values seen); the weights use the
    positions in that order, so list every level, including ones nobody used. Agreement
    weights are 1 - |i-j|/(k-1) (linear) or 1 - (i-j)^2/(k-1)^2 (quadratic).
    """
    if weights not in ("linear", "quadratic"):
        raise ValueError(f"weights must be 'linear' or 'quadratic' (got {weights!r})")
    return _kappa(rater_a, rater_b, categories, weights)


# --- intraclass correlation -----------------------------------------------------------------


@dataclass(frozen=True)
class Icc:
    """The six intraclass correlations of Shrout & Fleiss (1979) and their mean squares.

    ``icc1_1``: each target rated by different raters (one-way random) - the right model when
    a response's two grades come from whichever graders were free. ``icc2_1``: two-way random,
    absolute agreement, single rater. ``icc3_1``: two-way mixed, consistency, single rater.
    ``*_k``: the reliability of the mean of the k ratings.
    """

    n_targets: int
    n_raters: int
    bms: float  # between-targets mean square
    wms: float  # within-targets mean square (one-way)
    jms: float  # between-raters (judges) mean square
    ems: float  # residual mean square (two-way)
    icc1_1: float
    icc2_1: float
    icc3_1: float
    icc1_k: float
    icc2_k: float
    icc3_k: float


def _matrix(data: pd.DataFrame | npt.ArrayLike) -> FloatArray:
    matrix: FloatArray = np.asarray(data, dtype=float)
    if matrix.ndim != 2:
        raise ValueError("expected a 2-dimensional table (rows x columns)")
    complete: FloatArray = matrix[~np.isnan(matrix).any(axis=1)]
    return complete


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def icc(ratings: pd.DataFrame | npt.ArrayLike) -> Icc:
    """Intraclass correlations of a targets x raters table (rows with a missing rating are
    dropped). Formulas of Shrout & Fleiss (1979), Table 1."""
    x = _matrix(ratings)
    n, k = x.shape
    if n < 2 or k < 2:
        nan = math.nan
        return Icc(n, k, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    grand = x.mean()
    ss_total = float(((x - grand) ** 2).sum())
    ss_targets = float(k * ((x.mean(axis=1) - grand) ** 2).sum())
    ss_raters = float(n * ((x.mean(axis=0) - grand) ** 2).sum())
    ss_error = ss_total - ss_targets - ss_raters
    bms = ss_targets / (n - 1)
    wms = (ss_raters + ss_error) / (n * (k - 1))
    jms = ss_raters / (k - 1)
    ems = ss_error / ((n - 1) * (k - 1))
    return Icc(
        n_targets=n,
        n_raters=k,
        bms=bms,
        wms=wms,
        jms=jms,
        ems=ems,
        icc1_1=_ratio(bms - wms, bms + (k - 1) * wms),
        icc2_1=_ratio(bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n),
        icc3_1=_ratio(bms - ems, bms + (k - 1) * ems),
        icc1_k=_ratio(bms - wms, bms),
        icc2_k=_ratio(bms - ems, bms + (jms - ems) / n),
        icc3_k=_ratio(bms - ems, bms),
    )


@dataclass(frozen=True)
class GraderAgreement:
    """Agreement of the first and second grading of the double-graded responses to one
    question, on the points awarded."""

    n: int
    exact_agreement: float
    kappa: float
    weighted_kappa: float  # quadratic weights over the point levels
    icc: Icc


def grader_agreement(
    first: Sequence[float | None] | pd.Series,
    second: Sequence[float | None] | pd.Series,
    *,
    levels: Sequence[float],
) -> GraderAgreement:
    """Kappa, quadratic weighted kappa and ICCs for points given twice to the same responses.
    ``levels``: every mark a grader could give, in order (e.g. 0, 0.5, 1, 1.5, 2, or the
    rubric's levels)."""
    pairs = _pairs(first, second)
    ordered = sorted(float(level) for level in levels)
    a = [float(x) for x, _ in pairs]
    b = [float(y) for _, y in pairs]
    exact = float(np.mean([x == y for x, y in pairs])) if pairs else math.nan
    return GraderAgreement(
        n=len(pairs),
        exact_agreement=exact,
        kappa=cohen_kappa(a, b, categories=ordered).kappa,
        weighted_kappa=weighted_kappa(a, b, weights="quadratic", categories=ordered).kappa,
        icc=icc(np.column_stack([a, b]) if pairs else np.empty((0, 2))),
    )


# --- internal consistency -------------------------------------------------------------------


def cronbach_alpha(items: pd.DataFrame | npt.ArrayLike) -> float:
    """Cronbach's (1951) alpha of a participants x items table of scores:
    k/(k-1) * (1 - sum of item variances / variance of the total)."""
    x = _matrix(items)
    n, k = x.shape
    if n < 2 or k < 2:
        return math.nan
    total_variance = float(x.sum(axis=1).var(ddof=1))
    item_variance = float(x.var(axis=0, ddof=1).sum())
    return k / (k - 1) * (1 - item_variance / total_variance) if total_variance else math.nan


def kr20(items: pd.DataFrame | npt.ArrayLike) -> float:
    """Kuder & Richardson's (1937) formula 20 for right (1) / wrong (0) items:
    k/(k-1) * (1 - sum p*q / variance of the total). The total's variance uses the same
    (population) convention as p*q, so on 0/1 items KR-20 equals Cronbach's alpha."""
    x = _matrix(items)
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError("KR-20 needs items scored 0 (wrong) or 1 (right)")
    n, k = x.shape
    if n < 2 or k < 2:
        return math.nan
    p = x.mean(axis=0)
    total_variance = float(x.sum(axis=1).var(ddof=0))
    return (
        k / (k - 1) * (1 - float((p * (1 - p)).sum()) / total_variance)
        if total_variance
        else math.nan
    )


# --- item analysis ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemStats:
    key: str
    n: int  # participants with a grade for this item
    max_points: float
    mean_points: float
    difficulty: float  # share of the available points earned (higher = easier)
    discrimination: float  # corrected item-total correlation; NaN without variance
    idk_rate: float | None  # share answering "I don't know"; None if not recorded
    flags: tuple[str, ...]


def _pearson(x: FloatArray, y: FloatArray) -> float:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def item_analysis(
    points: pd.DataFrame,
    max_points: Mapping[str, float],
    *,
    idk: pd.DataFrame | None = None,
) -> list[ItemStats]:
    """Per-item statistics from a participants x items table of points earned (scored items
    only; NaN = no grade). ``idk``: a table of the same shape, True where the answer was
    "I don't know"."""
    missing = [str(c) for c in points.columns if c not in max_points]
    if missing:
        raise ValueError(f"no max_points for item(s) {', '.join(missing)}")
    values = points.to_numpy(dtype=float)
    complete = values[~np.isnan(values).any(axis=1)]
    totals = complete.sum(axis=1)
    out: list[ItemStats] = []
    for j, column in enumerate(points.columns):
        key = str(column)
        available = float(max_points[column])
        observed = values[:, j][~np.isnan(values[:, j])]
        n = len(observed)
        mean = float(observed.mean()) if n else math.nan
        difficulty = mean / available if n and available else math.nan
        item = complete[:, j]
        discrimination = _pearson(item, totals - item)
        idk_rate: float | None = None
        if idk is not None and column in idk.columns:
            recorded = idk[column].dropna()
            idk_rate = float(recorded.astype(bool).mean()) if len(recorded) else math.nan
        flags: list[str] = []
        if n and np.all(observed == available):
            flags.append(FLAG_ALL_RIGHT)
        elif n and np.all(observed == 0):
            flags.append(FLAG_ALL_WRONG)
        elif n > 1 and np.all(observed == observed[0]):
            flags.append(FLAG_NO_VARIANCE)
        if discrimination < 0:
            flags.append(FLAG_NEGATIVE)
        out.append(
            ItemStats(key, n, available, mean, difficulty, discrimination, idk_rate, tuple(flags))
        )
    return out


@dataclass(frozen=True)
class Reliability:
    n: int  # participants with every item graded
    k: int  # items
    alpha: float
    kr20: float  # NaN unless every item was scored all-or-nothing


@dataclass(frozen=True)
class QuizReliability:
    overall: Reliability
    by_category: dict[str, Reliability]


def _reliability(points: pd.DataFrame, max_points: Mapping[str, float]) -> Reliability:
    x = _matrix(points)
    n, k = x.shape
    maxima = np.array([float(max_points[c]) for c in points.columns])
    alpha = cronbach_alpha(x)
    # KR-20 is defined for right/wrong items: only when every grade is 0 or full points.
    binary = (x == 0) | (x == maxima)
    kr = kr20((x == maxima).astype(float)) if binary.all() else math.nan
    return Reliability(n=n, k=k, alpha=alpha, kr20=kr)


def quiz_reliability(
    points: pd.DataFrame,
    max_points: Mapping[str, float],
    categories: Mapping[str, Sequence[str]] | None = None,
) -> QuizReliability:
    """Alpha (and KR-20 where it applies) for the whole quiz and for each category's items.
    ``categories``: question keys per category (a question may be in two)."""
    by_category = {
        name: _reliability(points[[k for k in keys if k in points.columns]], max_points)
        for name, keys in (categories or {}).items()
    }
    return QuizReliability(overall=_reliability(points, max_points), by_category=by_category)


@dataclass(frozen=True)
class AttentionFailures:
    n: int  # participants with at least one attention check answered
    per_check: dict[str, float]  # share failing each check
    any_failed: float  # share failing at least one
    n_failed: int = 0  # participants failing at least one
    per_check_counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # failed, answered


def attention_failures(passed: pd.DataFrame) -> AttentionFailures:
    """Failure rates from a participants x attention checks table of True (passed) / False
    (failed, including blank and "I don't know"); NaN = not reached."""
    per_check = {
        str(column): float(1 - passed[column].dropna().astype(bool).mean())
        if passed[column].notna().any()
        else math.nan
        for column in passed.columns
    }
    per_check_counts = {
        str(column): (
            int((~passed[column].dropna().astype(bool)).sum()),
            int(passed[column].notna().sum()),
        )
        for column in passed.columns
    }
    reached = passed[passed.notna().any(axis=1)]
    failed_any = [not row.dropna().astype(bool).all() for _, row in reached.iterrows()]
    return AttentionFailures(
        n=len(reached),
        per_check=per_check,
        any_failed=float(np.mean(failed_any)) if failed_any else math.nan,
        n_failed=int(sum(failed_any)),
        per_check_counts=per_check_counts,
    )
