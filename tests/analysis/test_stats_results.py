"""The JSON shape of results (issue 7, section 5) and the multiple-testing implementation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from analysis import stats

JSON_FIELDS = [
    "outcome", "method", "groups", "n", "estimate", "ci_low", "ci_high", "p_value",
    "statistic", "df", "effect_size", "adjusted_p", "covariates", "notes",
]  # fmt: skip


def test_result_dict_has_exactly_the_documented_fields() -> None:
    result = stats.welch_t([1.0, 2, 3, 4], [2.0, 4, 5, 7], outcome="quiz", groups=("ai", "no_ai"))
    data = result.to_dict()
    assert list(data) == JSON_FIELDS
    assert data["groups"] == ["ai", "no_ai"]
    assert data["method"] == "welch_t"
    assert data["n"] == 8
    assert set(data["effect_size"]) == {"name", "value", "ci_low", "ci_high"}


def test_result_dict_is_strict_json_with_nan_and_infinity_as_null() -> None:
    result = stats.Result(
        outcome="time",
        method="km_median",
        groups=("ai",),
        n=np.int64(12),
        estimate=np.float64(20.5),
        ci_low=math.nan,
        ci_high=math.inf,
        p_value=math.nan,
        effect_size=stats.EffectSize("rank_biserial", -math.inf),
    )
    text = json.dumps(stats.results_to_json([result]), allow_nan=False)
    (entry,) = json.loads(text)["results"]
    assert entry["estimate"] == 20.5
    assert entry["ci_low"] is None
    assert entry["ci_high"] is None
    assert entry["p_value"] is None
    assert entry["statistic"] is None
    assert entry["effect_size"]["value"] is None
    assert entry["covariates"] == []
    assert type(entry["n"]) is int


def test_results_are_immutable() -> None:
    result = stats.student_t([1.0, 2, 3], [2.0, 3, 5])
    with pytest.raises(AttributeError):
        result.p_value = 0.01


def test_adjusted_results_keep_raw_p_and_say_how_they_were_adjusted() -> None:
    results = [
        stats.student_t([1.0, 2, 3, 4], [3.0, 4, 5, 6]),
        stats.student_t([1.0, 2, 3, 4], [1.5, 2, 3, 5]),
    ]
    adjusted = stats.with_adjusted_p(results, "holm")
    assert [r.p_value for r in adjusted] == [r.p_value for r in results]
    assert adjusted[0].to_dict()["adjusted_p"] == pytest.approx(
        min(1.0, 2 * min(r.p_value for r in results))
    )
    assert all("Holm adjustment over 2 comparisons" in r.notes for r in adjusted)


@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjustment_agrees_with_statsmodels_multipletests(
    ours: stats.AdjustMethod, theirs: str
) -> None:
    rng = np.random.default_rng(17)
    for size in (1, 2, 5, 13, 40):
        p = rng.random(size) ** 3
        p[size // 2] = p[0]  # ties
        expected = multipletests(p, method=theirs)[1]
        assert stats.adjust_pvalues(p, ours) == pytest.approx(expected, rel=1e-12)
