"""Properties of the two-sample comparisons, multiple testing and the multi-arm wrappers."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from analysis import stats
from analysis.stats import two_sample

SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

samples = st.lists(
    st.integers(min_value=-50, max_value=50).map(lambda v: v / 4), min_size=2, max_size=12
)


def three_arm_frame() -> pd.DataFrame:
    rng = np.random.default_rng(20260101)
    rows = [
        (arm, value)
        for arm, shift in (("control", 0.0), ("ai", -1.0), ("tutor", 0.3))
        for value in rng.normal(10 + shift, 2, 15)
    ]
    return pd.DataFrame(rows, columns=["arm", "quiz"])


# --- effect sizes ---------------------------------------------------------------------------


def test_hedges_g_is_cohens_d_times_small_sample_correction() -> None:
    d = stats.cohens_d(SLEEP_1, SLEEP_2)
    g = stats.hedges_g(SLEEP_1, SLEEP_2)
    correction = 1 - 3 / (4 * 20 - 9)
    assert g.value == pytest.approx(d.value * correction, rel=1e-14)
    assert g.ci_low == pytest.approx(d.ci_low * correction, rel=1e-14)
    assert g.ci_high == pytest.approx(d.ci_high * correction, rel=1e-14)


def test_cohens_d_interval_widens_with_the_confidence_level() -> None:
    narrow = stats.cohens_d(SLEEP_1, SLEEP_2, conf_level=0.80)
    wide = stats.cohens_d(SLEEP_1, SLEEP_2, conf_level=0.99)
    assert wide.ci_low < narrow.ci_low < narrow.value < narrow.ci_high < wide.ci_high


# --- Mann-Whitney and Hodges-Lehmann --------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(x=samples, y=samples)
def test_hodges_lehmann_estimate_is_median_of_pairwise_differences(
    x: list[float], y: list[float]
) -> None:
    result = stats.mann_whitney(x, y)
    assert result.estimate == pytest.approx(float(np.median(np.subtract.outer(x, y))))
    assert result.ci_low <= result.estimate <= result.ci_high


def test_exact_hodges_lehmann_interval_inverts_the_exact_test() -> None:
    # Shifts inside the interval are not rejected by the exact two-sided test at 5%; shifts
    # just outside are. Checked against scipy's exact p-values, not our own.
    rng = np.random.default_rng(7)
    x, y = rng.normal(1.0, 1.0, 9), rng.normal(0.0, 1.0, 11)
    result = stats.mann_whitney(x, y)
    assert "exact" in result.notes.lower()
    differences = np.sort(np.subtract.outer(x, y).ravel())
    gap = float(np.diff(differences).min()) / 4
    assert gap > 0

    def p_at(shift: float) -> float:
        return float(sps.mannwhitneyu(x - shift, y, method="exact").pvalue)

    assert p_at(result.ci_low + gap) >= 0.05
    assert p_at(result.ci_high - gap) >= 0.05
    assert p_at(result.ci_low - gap) < 0.05
    assert p_at(result.ci_high + gap) < 0.05


def r_wdiff(x: np.ndarray, y: np.ndarray, shift: float, zq: float) -> float:
    """R's wilcox.test.default `wdiff` (normal approximation, two-sided, correct = TRUE),
    transcribed from the R sources for this test."""
    m, n = x.size, y.size
    ranks = sps.rankdata(np.concatenate([x - shift, y]))
    _, ties = np.unique(ranks, return_counts=True)
    dz = ranks[:m].sum() - m * (m + 1) / 2 - m * n / 2
    correction = np.sign(dz) * 0.5
    sigma = math.sqrt(
        (m * n / 12) * ((m + n + 1) - (ties**3 - ties).sum() / ((m + n) * (m + n - 1)))
    )
    return float((dz - correction) / sigma - zq)


def test_normal_hodges_lehmann_interval_is_where_r_uniroot_finds_the_sign_change() -> None:
    x, y = np.array(SLEEP_1), np.array(SLEEP_2)
    result = stats.mann_whitney(x, y)
    z = float(sps.norm.isf(0.025))
    step = 1e-6  # far below the 0.1 spacing of the data
    assert r_wdiff(x, y, result.ci_low - step, z) > 0 >= r_wdiff(x, y, result.ci_low + step, z)
    assert r_wdiff(x, y, result.ci_high - step, -z) > 0 >= r_wdiff(x, y, result.ci_high + step, -z)


def test_mann_whitney_falls_back_to_normal_approximation_when_asked_exact_with_ties() -> None:
    result = stats.mann_whitney(SLEEP_1, SLEEP_2, exact=True)
    assert "ties present" in result.notes.lower()
    assert result.p_value == pytest.approx(stats.mann_whitney(SLEEP_1, SLEEP_2).p_value)


def test_one_sided_mann_whitney_interval_is_open_on_one_side() -> None:
    x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
    y = [1.15, 0.88, 0.90, 0.74, 1.21]
    greater = stats.mann_whitney(x, y, alternative="greater")
    less = stats.mann_whitney(x, y, alternative="less")
    assert greater.ci_high == math.inf
    assert less.ci_low == -math.inf
    assert greater.ci_low <= greater.estimate <= less.ci_high


def test_hodges_lehmann_beyond_ten_million_pairs_matches_the_exact_median() -> None:
    # Ten million pairs and more are never sorted: the order statistics come from a search
    # over the sorted samples, which must agree with the median of all differences.
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.5, 1, 3300), rng.normal(0, 1, 3100)
    result = stats.mann_whitney(x, y)
    exact_median = float(np.median(np.subtract.outer(x, y)))
    assert result.estimate == pytest.approx(exact_median, abs=1e-12)
    assert result.ci_low < result.estimate < result.ci_high


# --- permutation and bootstrap --------------------------------------------------------------


def test_permutation_test_is_exact_when_all_splits_fit() -> None:
    # 20 ways to split six values into two arms of three; (1,2,3) vs (4,5,6) is the most
    # extreme in each direction, so the two-sided p is 2/20.
    result = stats.permutation_test(
        [1, 2, 3], [4, 5, 6], rng=np.random.default_rng(0), n_resamples=1000
    )
    assert result.method == "permutation"
    assert result.p_value == pytest.approx(0.1)
    assert result.estimate == -3
    assert "exact" in result.notes


def test_permutation_test_is_reproducible_from_the_seed() -> None:
    first = stats.permutation_test(SLEEP_1, SLEEP_2, rng=np.random.default_rng(11))
    again = stats.permutation_test(SLEEP_1, SLEEP_2, rng=np.random.default_rng(11))
    other = stats.permutation_test(SLEEP_1, SLEEP_2, rng=np.random.default_rng(12))
    assert first == again
    assert other.p_value != first.p_value
    assert abs(other.p_value - first.p_value) < 0.02


def test_bootstrap_is_reproducible_from_the_seed_and_brackets_the_estimate() -> None:
    first = stats.bootstrap_mean_difference(
        SLEEP_1, SLEEP_2, rng=np.random.default_rng(5), n_resamples=2000
    )
    again = stats.bootstrap_mean_difference(
        SLEEP_1, SLEEP_2, rng=np.random.default_rng(5), n_resamples=2000
    )
    assert first == again
    assert first.ci_low < first.estimate < first.ci_high
    assert math.isnan(first.p_value)


def test_percentile_bootstrap_agrees_with_welch_interval_on_large_normal_samples() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(1, 2, 400), rng.normal(0, 1, 300)
    boot = stats.bootstrap_mean_difference(x, y, rng=rng, n_resamples=4000, method="percentile")
    welch = stats.welch_t(x, y)
    width = welch.ci_high - welch.ci_low
    assert boot.ci_low == pytest.approx(welch.ci_low, abs=0.05 * width)
    assert boot.ci_high == pytest.approx(welch.ci_high, abs=0.05 * width)


# --- equivalence ----------------------------------------------------------------------------


@pytest.mark.parametrize("margin", [0.5, 1.0, 2.0, 3.0, 5.0])
def test_tost_shows_equivalence_exactly_when_its_interval_is_inside_the_bounds(
    margin: float,
) -> None:
    result = stats.tost(SLEEP_1, SLEEP_2, margin=margin)
    inside = -margin < result.ci_low and result.ci_high < margin
    assert (result.p_value < 0.05) == inside


def test_tost_with_one_sided_margin_tests_only_that_side() -> None:
    # "The arm is no faster by more than 5 minutes": only the lower bound matters.
    slower = [30.0, 31, 29, 33, 32, 30]
    faster = [29.0, 30, 31, 30, 28, 31]
    one_sided = stats.tost(slower, faster, margin=(-5.0, math.inf))
    welch = stats.welch_t(slower, faster)
    expected = sps.t.sf((one_sided.estimate + 5) / (welch.estimate / welch.statistic), welch.df)
    assert one_sided.p_value == pytest.approx(expected)
    assert one_sided.p_value < 0.05


def test_tost_rejects_empty_bounds() -> None:
    with pytest.raises(ValueError, match="low < high"):
        stats.tost(SLEEP_1, SLEEP_2, margin=(1.0, -1.0))


# --- multiple testing -----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1e-8, max_value=1.0), min_size=1, max_size=15))
def test_holm_is_at_least_benjamini_hochberg_which_is_at_least_raw(p: list[float]) -> None:
    raw = np.array(p)
    holm = stats.adjust_pvalues(raw, "holm")
    bh = stats.adjust_pvalues(raw, "bh")
    assert np.all(holm >= bh - 1e-12)
    assert np.all(bh >= raw - 1e-12)
    assert np.all(holm <= 1.0)


def test_holm_is_not_statsmodels_default_holm_sidak() -> None:
    # Holm-Sidak would give 1 - (1 - p)^10 = 5.235e-4 for the smallest; Holm gives 10 p.
    adjusted = stats.adjust_pvalues([0.001, 0.5], "holm")
    assert adjusted[0] == pytest.approx(0.002)


def test_missing_p_values_stay_missing_and_do_not_count_in_the_family() -> None:
    adjusted = stats.adjust_pvalues([0.01, math.nan, 0.04], "holm")
    assert math.isnan(adjusted[1])
    assert adjusted[0] == pytest.approx(0.02)
    assert adjusted[2] == pytest.approx(0.04)


# --- frames, arms and families --------------------------------------------------------------


def test_each_arm_is_compared_with_the_reference_as_arm_minus_reference() -> None:
    frame = three_arm_frame()
    results = stats.compare_to_reference(frame, outcome="quiz", arm="arm", reference="control")
    assert [r.groups for r in results] == [("ai", "control"), ("tutor", "control")]
    for result in results:
        arm_mean = frame.loc[frame.arm == result.groups[0], "quiz"].mean()
        control_mean = frame.loc[frame.arm == "control", "quiz"].mean()
        assert result.estimate == pytest.approx(arm_mean - control_mean)
        assert result.outcome == "quiz"
        assert result.n == 30


def test_missing_outcomes_are_dropped_from_the_comparison() -> None:
    frame = three_arm_frame()
    frame.loc[frame.index[:2], "quiz"] = np.nan  # two control rows
    result = stats.compare_to_reference(frame, outcome="quiz", arm="arm", reference="control")[0]
    assert result.n == 28


def test_unknown_reference_arm_is_an_error() -> None:
    with pytest.raises(ValueError, match="reference arm"):
        stats.compare_to_reference(three_arm_frame(), outcome="quiz", arm="arm", reference="x")


def test_compare_to_reference_passes_options_to_the_test() -> None:
    frame = three_arm_frame()
    results = stats.compare_to_reference(
        frame,
        outcome="quiz",
        arm="arm",
        reference="control",
        test=partial(stats.tost, equal_var=True),
        margin=1.0,
    )
    assert {r.method for r in results} == {"tost"}


def test_multi_arm_reports_omnibus_then_holm_adjusted_pairwise_comparisons() -> None:
    results = stats.multi_arm(three_arm_frame(), outcome="quiz", arm="arm", reference="control")
    omnibus, *pairwise = results
    assert omnibus.method == "anova"
    assert omnibus.groups == ("control", "ai", "tutor")
    assert len(pairwise) == 2
    raw = [r.p_value for r in pairwise]
    expected = stats.adjust_pvalues(raw, "holm")
    assert [r.adjusted_p for r in pairwise] == pytest.approx(list(expected))
    assert all("Holm" in r.notes for r in pairwise)


def test_per_category_outcomes_are_adjusted_as_one_family() -> None:
    frame = three_arm_frame()
    frame["debugging"] = frame["quiz"] * 0.5 + np.arange(len(frame)) % 3
    results = stats.compare_outcomes(
        frame, outcomes=["quiz", "debugging"], arm="arm", reference="control", adjust="bh"
    )
    assert len(results) == 4
    expected = stats.adjust_pvalues([r.p_value for r in results], "bh")
    assert [r.adjusted_p for r in results] == pytest.approx(list(expected))


def pairwise_data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2026)
    if kind == "continuous":
        return rng.normal(0.4, 1, 150), rng.normal(0, 1.5, 120)
    if kind == "minutes to the hundredth":
        return np.round(rng.exponential(20, 150), 2), np.round(rng.exponential(25, 120), 2)
    if kind == "integer grid":  # many pairs share a difference
        return np.arange(150.0), np.arange(120.0) * 2
    if kind == "tied scores":
        return rng.integers(0, 40, 150) / 2, rng.integers(0, 40, 120) / 2
    # x - y rounds to the same float for runs of y: only the differences as computed decide
    # which side of a pivot a pair falls.
    return 1e16 + np.arange(150) * 2.0, np.arange(120) * 0.25


@pytest.mark.parametrize(
    "kind",
    ["continuous", "minutes to the hundredth", "integer grid", "tied scores", "large offset"],
)
def test_hodges_lehmann_search_gives_the_order_statistics_of_all_sorted_differences(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # Large samples are searched instead of sorting every pairwise difference; tiny limits
    # force that search through many rounds on samples small enough to sort. Each order
    # statistic must be the very float that sorting all m*n differences gives.
    monkeypatch.setattr(two_sample._PairwiseDifferences, "_SORT_LIMIT", 64)
    monkeypatch.setattr(two_sample._PairwiseDifferences, "_SAMPLE", 32)
    x, y = pairwise_data(kind)
    differences = np.sort(np.subtract.outer(x, y).ravel())
    search = two_sample._PairwiseDifferences(x, y)
    total = differences.size
    for k in [1, 2, total // 2, total // 2 + 1, total - 1, total, *range(3, total, 61)]:
        assert search.kth(k) == differences[k - 1], k


def test_mann_whitney_on_many_pairs_gives_the_exact_median_and_r_interval() -> None:
    # 720,000 pairs: searched, not sorted. The estimate is exactly the median of all
    # differences, and each end of the interval is where R's normal-approximation statistic
    # changes sign (as in the test on the sleep data above).
    rng = np.random.default_rng(12)
    x, y = rng.normal(0.5, 1, 900), rng.normal(0, 1, 800)
    result = stats.mann_whitney(x, y)
    differences = np.sort(np.subtract.outer(x, y).ravel())
    assert result.estimate == float(np.median(differences))
    z = float(sps.norm.isf(0.025))
    for end, quantile in ((result.ci_low, z), (result.ci_high, -z)):
        index = int(np.searchsorted(differences, end))
        assert differences[index] == end
        step = min(end - differences[index - 1], differences[index + 1] - end) / 2
        assert r_wdiff(x, y, end - step, quantile) > 0 >= r_wdiff(x, y, end + step, quantile)
