"""Agreement and item statistics against published values and small hand-worked examples.

Sources:
* Cohen's kappa: the worked examples of the Wikipedia article "Cohen's kappa"
  (https://en.wikipedia.org/wiki/Cohen%27s_kappa, sections "Simple example" and "Same
  percentages but different numbers"); the arithmetic is repeated in the comments.
* ICC: Shrout, P. E. & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater
  reliability. Psychological Bulletin 86(2), 420-428. Their worked example: 6 targets rated by
  4 judges, with the analysis of variance (BMS 11.24, WMS 6.26, JMS 32.49, EMS 1.02) and the
  six ICCs published to two decimals: ICC(1,1) .17, ICC(2,1) .29, ICC(3,1) .71, ICC(1,4) .44,
  ICC(2,4) .62, ICC(3,4) .91. The same data are the example of R's psych::ICC.
* Weighted kappa, alpha, KR-20, item statistics: hand-worked below.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quizzes.reliability import (
    FLAG_ALL_RIGHT,
    FLAG_ALL_WRONG,
    FLAG_NEGATIVE,
    FLAG_NO_VARIANCE,
    attention_failures,
    cohen_kappa,
    cronbach_alpha,
    grader_agreement,
    icc,
    item_analysis,
    kr20,
    quiz_reliability,
    weighted_kappa,
)


def from_table(table: list[list[int]], levels: list[object]) -> tuple[list[object], list[object]]:
    """Two raters' labels from a contingency table (rows: rater A, columns: rater B)."""
    a: list[object] = []
    b: list[object] = []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [levels[i]] * count
            b += [levels[j]] * count
    return a, b


# --- Cohen's kappa ------------------------------------------------------------------------------


def test_kappa_of_the_wikipedia_simple_example():
    # 50 grant proposals, both yes 20, A yes / B no 5, A no / B yes 10, both no 15.
    # p_o = 35/50 = 0.7; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4.
    a, b = from_table([[20, 5], [10, 15]], ["yes", "no"])
    result = cohen_kappa(a, b)
    assert result.n == 50
    assert result.observed == pytest.approx(0.7)
    assert result.expected == pytest.approx(0.5)
    assert result.kappa == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("table", "published"),
    [
        # p_o = 0.60; p_e = 0.6 * 0.7 + 0.4 * 0.3 = 0.54; kappa = 0.06 / 0.46 = 0.1304
        ([[45, 15], [25, 15]], 0.1304),
        # p_o = 0.60; p_e = 0.6 * 0.3 + 0.4 * 0.7 = 0.46; kappa = 0.14 / 0.54 = 0.2593
        ([[25, 35], [5, 35]], 0.2593),
    ],
)
def test_same_agreement_different_kappa_as_published(table, published):
    a, b = from_table(table, ["yes", "no"])
    assert round(cohen_kappa(a, b).kappa, 4) == published


def test_kappa_drops_missing_pairs_and_is_undefined_without_variation():
    assert cohen_kappa(["a", None, "b", "a"], ["a", "b", float("nan"), "a"]).n == 2
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]).kappa)
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]).kappa == 1
    assert math.isnan(cohen_kappa([], []).kappa)
    with pytest.raises(ValueError, match="different numbers"):
        cohen_kappa(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="not among the categories"):
        cohen_kappa(["a"], ["c"], categories=["a", "b"])


# --- weighted kappa -----------------------------------------------------------------------------

# Hand-worked 3 x 3 example, levels 0 < 1 < 2, n = 10 (rows rater A, columns rater B):
#     3 1 0
#     1 2 1
#     0 0 2
# Row margins .4 .4 .2, column margins .4 .3 .3. Agreement on the diagonal: 7/10; cells one
# step apart: (0,1), (1,0), (1,2) = 3/10; two steps apart: 0.
# Chance: diagonal .16 + .12 + .06 = .34; one step apart .12 + .16 + .12 + .06 = .46.
# Unweighted:  (.70 - .34) / (1 - .34) = .36 / .66 = 6/11.
# Linear (1 step weighs 1/2):     p_o = .70 + .5 * .3 = .85, p_e = .34 + .5 * .46 = .57,
#                                 kappa = .28 / .43 = 28/43.
# Quadratic (1 step weighs 3/4):  p_o = .70 + .75 * .3 = .925, p_e = .34 + .75 * .46 = .685,
#                                 kappa = .24 / .315 = 16/21.
HAND_TABLE = [[3, 1, 0], [1, 2, 1], [0, 0, 2]]


def test_weighted_kappa_hand_worked():
    a, b = from_table(HAND_TABLE, [0, 1, 2])
    assert cohen_kappa(a, b).kappa == pytest.approx(6 / 11)
    linear = weighted_kappa(a, b, weights="linear")
    assert (linear.observed, linear.expected) == (pytest.approx(0.85), pytest.approx(0.57))
    assert linear.kappa == pytest.approx(28 / 43)
    assert weighted_kappa(a, b, weights="quadratic").kappa == pytest.approx(16 / 21)


def test_weighted_kappa_uses_the_order_given_including_unused_levels():
    a, b = from_table(HAND_TABLE, ["low", "mid", "high"])
    ordered = weighted_kappa(a, b, weights="linear", categories=["low", "mid", "high"])
    assert ordered.kappa == pytest.approx(28 / 43)
    # Kappa is unchanged when every weight is scaled, so an unused level at the end (which only
    # stretches all distances by the same factor) changes nothing ...
    wider = weighted_kappa(a, b, weights="linear", categories=["low", "mid", "high", "top"])
    assert wider.kappa == pytest.approx(28 / 43)
    # ... but an unused level in between changes which disagreements are near and far.
    gap = weighted_kappa(a, b, weights="linear", categories=["low", "mid", "gap", "high"])
    assert gap.kappa != pytest.approx(28 / 43)
    with pytest.raises(ValueError, match="linear"):
        weighted_kappa(a, b, weights="cubic")  # type: ignore[arg-type]


ratings = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=2, max_size=40).filter(
    lambda pairs: len({p for pair in pairs for p in pair}) > 1
)


@settings(max_examples=150)
@given(pairs=ratings)
def test_quadratic_weighted_kappa_equals_the_concordance_identity(pairs):
    # With scores 0..k-1 and disagreement weights (i - j)^2 / (k - 1)^2:
    #   1 - kappa_w = mean((a - b)^2) / E_independent[(a - b)^2]
    #              = (va + vb - 2 cov + d^2) / (va + vb + d^2),   d = mean(a) - mean(b),
    # so kappa_w = 2 cov / (va + vb + d^2) with population (1/n) moments.
    a = np.array([p[0] for p in pairs], dtype=float)
    b = np.array([p[1] for p in pairs], dtype=float)
    identity = (
        2
        * np.mean((a - a.mean()) * (b - b.mean()))
        / (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
    )
    result = weighted_kappa(
        list(a), list(b), weights="quadratic", categories=[0.0, 1.0, 2.0, 3.0, 4.0]
    )
    assert result.kappa == pytest.approx(identity, abs=1e-9)


@settings(max_examples=100)
@given(pairs=ratings)
def test_kappas_are_symmetric_and_equal_on_two_levels(pairs):
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    levels = [0, 1, 2, 3, 4]
    for weights in ("linear", "quadratic"):
        ab = weighted_kappa(a, b, weights=weights, categories=levels).kappa
        ba = weighted_kappa(b, a, weights=weights, categories=levels).kappa
        assert ab == pytest.approx(ba, nan_ok=True)
    binary_a = [int(x > 1) for x in a]
    binary_b = [int(x > 1) for x in b]
    plain = cohen_kappa(binary_a, binary_b, categories=[0, 1]).kappa
    for weights in ("linear", "quadratic"):
        weighted = weighted_kappa(binary_a, binary_b, weights=weights, categories=[0, 1]).kappa
        assert weighted == pytest.approx(plain, nan_ok=True)


# --- ICC ------------------------------------------------------------------------------------------

SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]


def test_icc_reproduces_shrout_and_fleiss():
    result = icc(SHROUT_FLEISS)
    assert (result.n_targets, result.n_raters) == (6, 4)
    assert [round(v, 2) for v in (result.bms, result.wms, result.jms, result.ems)] == [
        11.24,
        6.26,
        32.49,
        1.02,
    ]
    published = {
        "icc1_1": 0.17,
        "icc2_1": 0.29,
        "icc3_1": 0.71,
        "icc1_k": 0.44,
        "icc2_k": 0.62,
        "icc3_k": 0.91,
    }
    assert {name: round(getattr(result, name), 2) for name in published} == published


def test_cronbach_alpha_is_icc_3k_so_matches_the_published_091():
    # Alpha treats the judges as items: alpha = (BMS - EMS) / BMS = ICC(3,k).
    assert round(cronbach_alpha(SHROUT_FLEISS), 2) == 0.91
    assert cronbach_alpha(SHROUT_FLEISS) == pytest.approx(icc(SHROUT_FLEISS).icc3_k)


def test_a_lenient_rater_lowers_absolute_agreement_but_not_consistency():
    base = np.array(SHROUT_FLEISS, dtype=float)
    shifted = base.copy()
    shifted[:, 1] += 3
    before, after = icc(base), icc(shifted)
    assert after.icc3_1 == pytest.approx(before.icc3_1)
    assert after.icc2_1 != pytest.approx(before.icc2_1)


def test_icc_with_identical_raters_is_one_and_drops_incomplete_rows():
    same = [[1, 1], [2, 2], [4, 4]]
    result = icc(same)
    assert result.icc1_1 == result.icc2_1 == result.icc3_1 == 1
    assert icc([[1, 1], [2, float("nan")], [4, 4], [3, 3]]).n_targets == 3
    assert math.isnan(icc([[1, 2]]).icc2_1)


# --- alpha and KR-20 ---------------------------------------------------------------------------


def test_cronbach_alpha_hand_worked():
    # Items (columns) for 4 participants; item variances (n - 1): 2/3, 2/3, 1/3 -> sum 5/3.
    # Totals 5, 7, 9, 5: variance 11/3. alpha = 3/2 * (1 - (5/3) / (11/3)) = 9/11.
    items = [[1, 2, 2], [2, 2, 3], [3, 3, 3], [2, 1, 2]]
    assert cronbach_alpha(items) == pytest.approx(9 / 11)
    assert cronbach_alpha(pd.DataFrame(items, columns=["x", "y", "z"])) == pytest.approx(9 / 11)
    assert math.isnan(cronbach_alpha([[1, 1], [1, 1]]))  # no variance in the totals


def test_kr20_hand_worked():
    # p = .8, .6, .4 -> sum pq = .16 + .24 + .24 = .64. Totals 3, 2, 1, 0, 3: mean 1.8,
    # population variance 6.8 / 5 = 1.36. KR-20 = 3/2 * (1 - .64 / 1.36) = 27/34.
    items = [[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]]
    assert kr20(items) == pytest.approx(27 / 34)
    assert cronbach_alpha(items) == pytest.approx(27 / 34)
    with pytest.raises(ValueError, match="0 \\(wrong\\) or 1"):
        kr20([[0, 0.5], [1, 1]])


@settings(max_examples=100)
@given(st.lists(st.lists(st.integers(0, 1), min_size=4, max_size=4), min_size=3, max_size=30))
def test_kr20_equals_alpha_on_right_wrong_items(rows):
    assert kr20(rows) == pytest.approx(cronbach_alpha(rows), nan_ok=True)


# --- item analysis ------------------------------------------------------------------------------


def item_frame() -> pd.DataFrame:
    # Five participants. a: everyone right; b: everyone wrong; c (2 points): 2 2 1 0 0;
    # d goes with c; e goes against everything else.
    return pd.DataFrame(
        {
            "a": [1, 1, 1, 1, 1],
            "b": [0, 0, 0, 0, 0],
            "c": [2, 2, 1, 0, 0],
            "d": [1, 1, 0, 0, 0],
            "e": [0, 0, 0, 1, 1],
        },
        dtype=float,
    )


MAX = {"a": 1, "b": 1, "c": 2, "d": 1, "e": 1}


def test_item_analysis_hand_worked():
    idk = pd.DataFrame({"b": [True, True, False, False, False]})
    stats = {s.key: s for s in item_analysis(item_frame(), MAX, idk=idk)}
    assert stats["a"].flags == (FLAG_ALL_RIGHT,) and stats["a"].difficulty == 1
    assert stats["b"].flags == (FLAG_ALL_WRONG,) and stats["b"].difficulty == 0
    assert stats["b"].idk_rate == pytest.approx(0.4)
    assert stats["a"].idk_rate is None
    assert math.isnan(stats["a"].discrimination)
    # c: mean 1 of 2 points.
    assert stats["c"].difficulty == pytest.approx(0.5)
    # d against the rest (totals 4 4 2 2 2 minus d = 3 3 2 2 2 = 2 + d): r = 1.
    assert stats["d"].discrimination == pytest.approx(1.0)
    # e against the rest 4 4 2 1 1: deviations e (-.4 -.4 -.4 .6 .6), rest (1.6 1.6 -.4 -1.4
    # -1.4); cross-products sum -2.8; sums of squares 1.2 and 9.2: r = -2.8 / sqrt(11.04).
    assert stats["e"].discrimination == pytest.approx(-2.8 / math.sqrt(11.04))
    assert stats["e"].flags == (FLAG_NEGATIVE,)
    assert stats["d"].flags == ()


def test_item_analysis_flags_a_constant_partial_score_and_uses_available_values():
    frame = item_frame()
    frame["c"] = [1.0, 1.0, 1.0, 1.0, np.nan]
    stats = {s.key: s for s in item_analysis(frame, MAX)}
    assert stats["c"].n == 4 and stats["c"].difficulty == 0.5
    assert stats["c"].flags == (FLAG_NO_VARIANCE,)
    with pytest.raises(ValueError, match="no max_points"):
        item_analysis(frame, {"a": 1})


def test_quiz_reliability_overall_and_per_category():
    frame = pd.DataFrame(
        [[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]], columns=["p", "q", "r"]
    )
    result = quiz_reliability(frame, {"p": 1, "q": 1, "r": 1}, {"conceptual": ["p", "q", "r"]})
    assert result.overall.alpha == pytest.approx(27 / 34)
    assert result.overall.kr20 == pytest.approx(27 / 34)
    assert result.by_category["conceptual"].k == 3
    # Partial credit: KR-20 does not apply; alpha still does.
    partial = frame.astype(float)
    partial.loc[0, "p"] = 0.5
    assert math.isnan(quiz_reliability(partial, {"p": 1, "q": 1, "r": 1}).overall.kr20)
    # Scored out of 2 but all-or-nothing: KR-20 on right/wrong.
    doubled = frame * 2
    assert quiz_reliability(doubled, {"p": 2, "q": 2, "r": 2}).overall.kr20 == pytest.approx(
        27 / 34
    )
    single = quiz_reliability(frame, {"p": 1, "q": 1, "r": 1}, {"one": ["p"]})
    assert math.isnan(single.by_category["one"].alpha)


def test_attention_failure_rates():
    passed = pd.DataFrame(
        {"early": [True, True, False, True, None], "late": [True, False, False, None, None]}
    )
    result = attention_failures(passed)
    assert result.n == 4  # the last participant reached neither check
    assert result.per_check == {"early": pytest.approx(0.25), "late": pytest.approx(2 / 3)}
    assert result.any_failed == pytest.approx(0.5)


def test_grader_agreement_on_points():
    first = [0, 1, 2, 2, 0.5, None]
    second = [0, 1, 1.5, 2, 0.5, 1]
    levels = [0, 0.5, 1, 1.5, 2]
    result = grader_agreement(first, second, levels=levels)
    assert result.n == 5
    assert result.exact_agreement == pytest.approx(0.8)
    complete_a, complete_b = [0, 1, 2, 2, 0.5], [0, 1, 1.5, 2, 0.5]
    assert result.kappa == pytest.approx(
        cohen_kappa(complete_a, complete_b, categories=levels).kappa
    )
    assert result.weighted_kappa == pytest.approx(
        weighted_kappa(complete_a, complete_b, weights="quadratic", categories=levels).kappa
    )
    assert result.icc.n_targets == 5 and result.icc.n_raters == 2
    assert grader_agreement([], [], levels=levels).n == 0
