"""analysis.stats against published reference values.

Sections 1-7 are from shared/REFERENCE_VALUES.md; the others cite their own source. Each
number is asserted to the precision it was published with: ``assert_published`` allows half
a unit in the last printed digit (what rounding to that digit allows) plus a few ulps, so
"0.07919" checks four significant digits and a 15-digit value checks 15. Where the published
value itself carries a known numerical error the looser tolerance is explained beside it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import stats

# R `sleep` data (Cushny & Peebles), the two groups of `t.test(extra ~ group, data = sleep)`.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

# R `?wilcox.test` example (Hollander & Wolfe): permeability constants.
WILCOX_X = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
WILCOX_Y = [1.15, 0.88, 0.90, 0.74, 1.21]

# R `ovarian` data (survival package): futime, fustat (1 = event), rx.
OVARIAN = [
    (59, 1, 1), (115, 1, 1), (156, 1, 1), (421, 0, 2), (431, 1, 1), (448, 0, 1), (464, 1, 2),
    (475, 1, 2), (477, 0, 1), (563, 1, 2), (638, 1, 1), (744, 0, 2), (769, 0, 2), (770, 0, 2),
    (803, 0, 1), (855, 0, 1), (1040, 0, 1), (1106, 0, 1), (1129, 0, 2), (1206, 0, 2),
    (1227, 0, 2), (268, 1, 1), (329, 1, 1), (353, 1, 2), (365, 1, 2), (377, 0, 2),
]  # fmt: skip

# R `PlantGrowth` data (Dobson 1983, Table 7.1): dried plant weight by group.
PLANT_CTRL = [4.17, 5.58, 5.18, 6.11, 4.50, 4.61, 5.17, 4.53, 5.33, 5.14]
PLANT_TRT1 = [4.81, 4.17, 4.41, 3.59, 5.87, 3.83, 6.03, 4.89, 4.32, 4.69]
PLANT_TRT2 = [6.31, 5.12, 5.54, 5.50, 5.37, 5.29, 4.92, 6.15, 5.80, 5.26]


def assert_published(actual: float, published: str, abs_tol: float | None = None) -> None:
    """``actual`` rounds to ``published`` at its last printed digit (or within ``abs_tol``)."""
    mantissa, _, exponent = published.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    unit = 10.0 ** (int(exponent or 0) - decimals)
    expected = float(published)
    tolerance = abs_tol if abs_tol is not None else 0.5 * unit + 4 * math.ulp(expected)
    assert abs(actual - expected) <= tolerance, (
        f"{actual!r} differs from published {published} by {abs(actual - expected):.3g} "
        f"(allowed {tolerance:.3g})"
    )


def frame_of(**samples: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        [(arm, value) for arm, values in samples.items() for value in values],
        columns=["arm", "score"],
    )


# --- 1. Welch and Student t -----------------------------------------------------------------


def test_welch_t_matches_r_t_test_on_sleep() -> None:
    result = stats.welch_t(SLEEP_1, SLEEP_2)
    assert result.method == "welch_t"
    assert_published(result.statistic or math.nan, "-1.86081346748685")
    assert_published(result.df or math.nan, "17.7764735161785")
    assert_published(result.p_value, "0.0793941401873582")
    assert_published(result.ci_low, "-3.36548323071171")
    assert_published(result.ci_high, "0.20548323071171")
    assert result.estimate == pytest.approx(np.mean(SLEEP_1) - np.mean(SLEEP_2))


def test_student_t_matches_r_pooled_t_test_on_sleep() -> None:
    result = stats.student_t(SLEEP_1, SLEEP_2)
    assert result.method == "student_t"
    assert result.df == 18
    assert_published(result.p_value, "0.07919")


def test_student_t_matches_r_lm_example_of_dobson_plant_weights() -> None:
    # R `?lm` example: lm.D9 <- lm(weight ~ group) on Annette Dobson (1990, p. 9) plant
    # weights (ctl = PlantGrowth ctrl, trt = trt1). summary(lm.D9) prints for groupTrt:
    # Estimate -0.3710, Std. Error 0.3114, t value -1.191, Pr(>|t|) 0.249.
    result = stats.student_t(PLANT_TRT1, PLANT_CTRL)
    assert_published(result.estimate, "-0.3710")
    assert_published(result.estimate / (result.statistic or math.nan), "0.3114")
    assert_published(result.statistic or math.nan, "-1.191")
    assert_published(result.p_value, "0.249")


# --- 2. Cohen's d and Hedges' g -------------------------------------------------------------

# R's effectsize finds the noncentrality limits with optim() (Nelder-Mead, abstol 1e-9 on the
# probability scale), so its published limits miss the exact root by about 4e-8 in
# probability, i.e. 4e-7 in d; ours solve to machine precision. Agreement to 1e-6 is what
# the published numbers support.
EFFECTSIZE_OPTIMIZER_TOLERANCE = 1e-6


def test_cohens_d_matches_r_effectsize_value_and_welch_df_interval() -> None:
    d = stats.cohens_d(SLEEP_1, SLEEP_2, ci_df="welch")
    assert d.name == "cohens_d"
    assert_published(d.value, "-0.83218108134954")
    assert_published(d.ci_low, "-1.73918888274057", EFFECTSIZE_OPTIMIZER_TOLERANCE)
    assert_published(d.ci_high, "0.0960614913209062", EFFECTSIZE_OPTIMIZER_TOLERANCE)


def test_cohens_d_default_interval_uses_pooled_df_n1_plus_n2_minus_2() -> None:
    d = stats.cohens_d(SLEEP_1, SLEEP_2)
    assert_published(d.ci_low, "-1.738817")
    assert_published(d.ci_high, "0.095450")


def test_hedges_g_matches_r_effectsize_with_welch_df_interval() -> None:
    g = stats.hedges_g(SLEEP_1, SLEEP_2, ci_df="welch")
    assert g.name == "hedges_g"
    assert_published(g.value, "-0.797018500447446")
    assert_published(g.ci_low, "-1.66570202854027", EFFECTSIZE_OPTIMIZER_TOLERANCE)
    assert_published(g.ci_high, "0.0920025550679102", EFFECTSIZE_OPTIMIZER_TOLERANCE)


def test_cohens_d_matches_pingouin_compute_effsize_example() -> None:
    assert_published(stats.cohens_d([1, 2, 3, 4], [3, 4, 5, 6, 7]).value, "-1.707825127659933")


def test_t_tests_attach_cohens_d_with_the_requested_interval_df() -> None:
    result = stats.welch_t(SLEEP_1, SLEEP_2, effect_size_ci_df="welch")
    assert result.effect_size is not None
    assert_published(result.effect_size.ci_low, "-1.73918888274057", 1e-6)
    hedges = stats.student_t(SLEEP_1, SLEEP_2, effect_size="hedges_g").effect_size
    assert hedges is not None
    assert hedges.name == "hedges_g"
    assert_published(hedges.value, "-0.797018500447446")


# --- 3. Mann-Whitney / Wilcoxon rank-sum ----------------------------------------------------


def test_mann_whitney_with_ties_matches_r_normal_approximation_with_correction() -> None:
    result = stats.mann_whitney(SLEEP_1, SLEEP_2)
    assert result.method == "mann_whitney"
    assert result.statistic == 25.5
    assert_published(result.p_value, "0.06933")
    assert "normal approximation" in result.notes.lower()


def test_mann_whitney_without_ties_is_exact_like_r() -> None:
    result = stats.mann_whitney(WILCOX_X, WILCOX_Y, alternative="greater")
    assert result.statistic == 35
    assert_published(result.p_value, "0.1272")
    assert "exact" in result.notes.lower()


def test_mann_whitney_large_sample_approximation_without_correction_matches_r() -> None:
    result = stats.mann_whitney(
        WILCOX_X, WILCOX_Y, alternative="greater", exact=False, correct=False
    )
    assert result.statistic == 35
    assert_published(result.p_value, "0.1103")


# --- 4. Equivalence -------------------------------------------------------------------------


def test_tost_matches_pingouin_example() -> None:
    result = stats.tost([4, 7, 8, 6, 3, 2], [6, 8, 7, 10, 11, 9], margin=1, equal_var=True)
    assert result.method == "tost"
    assert result.df == 10
    assert_published(result.p_value, "0.965097")


# --- 5. Log-rank ----------------------------------------------------------------------------


def ovarian_frame() -> pd.DataFrame:
    return pd.DataFrame(OVARIAN, columns=["futime", "fustat", "rx"])


def test_logrank_matches_r_survdiff_on_ovarian() -> None:
    result = stats.logrank(ovarian_frame(), time="futime", event="fustat", arm="rx", reference="1")
    assert result.method == "logrank"
    assert result.groups == ("1", "2")
    assert result.df == 1
    assert_published(result.statistic or math.nan, "1.06274")
    assert_published(result.p_value, "0.302591")


def test_logrank_observed_and_expected_match_r_survdiff() -> None:
    frame = ovarian_frame()
    arms = [frame[frame.rx == rx] for rx in (1, 2)]
    table = stats.logrank_table(
        [a.futime.to_numpy() for a in arms], [a.fustat.to_numpy() for a in arms], ["1", "2"]
    )
    assert list(table.observed) == [7, 5]
    assert_published(table.expected[0], "5.23353")
    assert_published(table.expected[1], "6.76647")


# --- 6. Multiple testing --------------------------------------------------------------------

RAW_P = [
    5.23656777208e-05, 2.8140506198e-04, 0.0149877310796, 0.0202732688798, 0.177096952723,
    0.642193923795, 0.680845947633, 0.71626938238, 0.838541367553, 0.967833824309,
]  # fmt: skip


def test_holm_adjustment_matches_r_p_adjust() -> None:
    adjusted = stats.adjust_pvalues(RAW_P, "holm")
    for actual, published in zip(
        adjusted[:4], ["5.236568e-04", "2.532646e-03", "0.1199018", "0.1419129"], strict=True
    ):
        assert_published(actual, published)
    assert list(adjusted[4:]) == [1.0] * 6


def test_benjamini_hochberg_adjustment_matches_r_p_adjust() -> None:
    published = [
        "5.236568e-04", "1.407025e-03", "0.0499591", "0.0506832", "0.3541939",
        "0.8953367", "0.8953367", "0.8953367", "0.9317126", "0.9678338",
    ]  # fmt: skip
    for actual, value in zip(stats.adjust_pvalues(RAW_P, "bh"), published, strict=True):
        assert_published(actual, value)


# --- 7. Power and sample size ---------------------------------------------------------------


def test_t_test_power_matches_r_power_t_test() -> None:
    # power.t.test counts only the tail of the effect by default (strict = FALSE).
    assert_published(stats.t_test_power(1.0, 20, strict=False), "0.8689528")


def test_t_test_sample_size_matches_r_power_t_test() -> None:
    assert_published(stats.t_test_sample_size(1.0, power=0.90, strict=False), "22.02110")


def test_t_test_sample_size_matches_pwr_t_test() -> None:
    # pwr.t.test counts both tails.
    assert_published(stats.t_test_sample_size(0.5, power=0.8), "63.76561")


def test_proportions_sample_size_matches_pwr_2p_test() -> None:
    h = stats.cohens_h(0.70, 0.55)
    assert_published(stats.proportions_sample_size(h, power=0.8), "161.9349")


# --- Further published values ---------------------------------------------------------------


def test_anova_matches_r_aov_on_plant_growth() -> None:
    # summary(aov(weight ~ group, data = PlantGrowth)) prints
    # group Df 2, Sum Sq 3.766, F value 4.846, Pr(>F) 0.0159; Residuals Df 27, Sum Sq 10.492
    # (e.g. https://rstudio-pubs-static.s3.amazonaws.com/174031_1f6a0e206f234256b171fc2e384c8768.html).
    frame = frame_of(ctrl=PLANT_CTRL, trt1=PLANT_TRT1, trt2=PLANT_TRT2)
    result = stats.omnibus(frame, outcome="score", arm="arm", reference="ctrl", method="anova")
    assert result.method == "anova"
    assert result.df == 2
    assert "27 df" in result.notes
    assert_published(result.statistic or math.nan, "4.846")
    assert_published(result.p_value, "0.0159")
    assert result.effect_size is not None
    # eta squared from the printed sums of squares, each rounded to 3 decimals.
    assert result.effect_size.value == pytest.approx(3.766 / (3.766 + 10.492), abs=1e-4)


def test_kruskal_wallis_matches_r_kruskal_test_on_plant_growth() -> None:
    # kruskal.test(weight ~ group, data = PlantGrowth):
    # Kruskal-Wallis chi-squared = 7.9882, df = 2, p-value = 0.01842 (STHDA, "Kruskal-Wallis
    # Test in R", sthda.com).
    frame = frame_of(ctrl=PLANT_CTRL, trt1=PLANT_TRT1, trt2=PLANT_TRT2)
    result = stats.omnibus(frame, outcome="score", arm="arm", reference="ctrl", method="kruskal")
    assert result.method == "kruskal"
    assert result.df == 2
    assert_published(result.statistic or math.nan, "7.9882")
    assert_published(result.p_value, "0.01842")


def test_kruskal_wallis_matches_r_documentation_example() -> None:
    # R `?kruskal.test` example, Hollander & Wolfe (1973, p. 116), mucociliary efficiency:
    # kruskal.test(list(x, y, z)) gives chi-squared = 0.77143, df = 2, p-value = 0.68.
    frame = frame_of(
        normal=[2.9, 3.0, 2.5, 2.6, 3.2],
        obstructive=[3.8, 2.7, 4.0, 2.4],
        asbestosis=[2.8, 3.4, 3.7, 2.2, 2.0],
    )
    result = stats.omnibus(frame, outcome="score", arm="arm", reference="normal", method="kruskal")
    assert_published(result.statistic or math.nan, "0.77143")
    assert_published(result.p_value, "0.68")
