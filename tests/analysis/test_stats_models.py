"""Properties of ANCOVA, the treatment x covariate interaction and the item-level GEE."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis import stats


def trial_frame(n: int = 120, seed: int = 1) -> pd.DataFrame:
    """Two arms; quiz = 50 - 12 * ai + 2 * warmup + 1.5 * ai * experience + noise."""
    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(n) % 2 == 0, "ai", "control")
    warmup = rng.uniform(5, 15, n)
    experience = rng.integers(1, 10, n).astype(float)
    is_ai = (arm == "ai").astype(float)
    quiz = 50 - 12 * is_ai + 2 * warmup + 1.5 * is_ai * experience + rng.normal(0, 1.0, n)
    years = pd.cut(experience, [0, 3, 6, 10], labels=["1-3", "4-6", "7+"]).astype(str)
    return pd.DataFrame(
        {"arm": arm, "quiz": quiz, "warmup": warmup, "experience": experience, "years": years}
    )


# --- ANCOVA ---------------------------------------------------------------------------------


def test_ancova_without_covariates_has_hc3_standard_error_of_two_means() -> None:
    # With only the arm indicator the leverage of each row is 1/n of its arm, so HC3 gives
    # SE^2 = s1^2 / (n1 - 1) + s2^2 / (n2 - 1) (a closed form, independent of statsmodels).
    x = np.array([3.0, 5, 4, 8, 6, 7])
    y = np.array([1.0, 2, 4, 3, 2])
    frame = pd.DataFrame({"arm": ["a"] * 6 + ["b"] * 5, "score": np.concatenate([x, y])})
    result = stats.ancova(frame, outcome="score", arm="arm", reference="b")[0]
    se = math.sqrt(x.var(ddof=1) / 5 + y.var(ddof=1) / 4)
    assert result.estimate == pytest.approx(x.mean() - y.mean())
    assert result.estimate / (result.statistic or math.nan) == pytest.approx(se)
    assert result.df == 9


def test_ancova_recovers_the_adjusted_arm_effect() -> None:
    frame = trial_frame()
    mean_experience_effect = 1.5 * frame.loc[frame.arm == "ai", "experience"].mean()
    result = stats.ancova(
        frame, outcome="quiz", arm="arm", reference="control", covariates=["warmup"]
    )[0]
    assert result.method == "ancova"
    assert result.groups == ("ai", "control")
    assert result.covariates == ("warmup",)
    assert result.estimate == pytest.approx(-12 + mean_experience_effect, abs=0.7)
    assert result.ci_low < result.estimate < result.ci_high


def test_ancova_reports_the_n_used_when_covariates_are_missing() -> None:
    frame = trial_frame()
    frame.loc[[0, 1, 2], "warmup"] = np.nan
    result = stats.ancova(
        frame, outcome="quiz", arm="arm", reference="control", covariates=["warmup"]
    )[0]
    assert result.n == len(frame) - 3
    assert "3 of 120 rows dropped" in result.notes


def test_ancova_enters_a_categorical_covariate_as_indicators() -> None:
    frame = trial_frame()
    result = stats.ancova(
        frame, outcome="quiz", arm="arm", reference="control", covariates=["warmup", "years"]
    )[0]
    # Same model written out with statsmodels' formula interface.
    fit = sm.OLS.from_formula("quiz ~ C(arm, Treatment('control')) + warmup + C(years)", frame).fit(
        cov_type="HC3", use_t=True
    )
    name = "C(arm, Treatment('control'))[T.ai]"
    assert result.estimate == pytest.approx(fit.params[name], rel=1e-10)
    assert result.p_value == pytest.approx(fit.pvalues[name], rel=1e-8)
    assert result.df == fit.df_resid


# --- interaction ----------------------------------------------------------------------------


def test_interaction_with_numeric_covariate_estimates_the_change_in_effect_per_unit() -> None:
    result = stats.treatment_interaction(
        trial_frame(),
        outcome="quiz",
        arm="arm",
        reference="control",
        covariate="experience",
        adjust_for=["warmup"],
    )[0]
    assert result.method == "interaction"
    assert result.covariates == ("experience", "warmup")
    assert result.estimate == pytest.approx(1.5, abs=0.15)
    assert result.p_value < 1e-6


def test_interaction_is_not_detected_where_the_effect_does_not_vary() -> None:
    frame = trial_frame()
    result = stats.treatment_interaction(
        frame, outcome="quiz", arm="arm", reference="control", covariate="warmup"
    )[0]
    assert result.ci_low < 0 < result.ci_high


def test_interaction_with_categorical_covariate_is_one_joint_test() -> None:
    results = stats.treatment_interaction(
        trial_frame(), outcome="quiz", arm="arm", reference="control", covariate="years"
    )
    assert len(results) == 1
    (result,) = results
    assert result.df == 2  # (2 arms - 1) x (3 levels - 1)
    assert math.isnan(result.estimate)
    assert result.p_value < 1e-3


# --- item-level GEE -------------------------------------------------------------------------


def item_frame(seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    participants, items = 60, 12
    pid = np.repeat(np.arange(participants), items)
    arm = np.where(pid % 2 == 0, "ai", "control")
    ability = rng.normal(0, 1, participants)[pid]
    item = np.tile(np.arange(items), participants)
    difficulty = np.linspace(-1.5, 1.5, items)[item]
    logit = 0.4 + ability - difficulty - 0.8 * (arm == "ai")
    correct = (rng.random(pid.size) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"pid": pid, "arm": arm, "item": item.astype(str), "correct": correct})


def test_gee_with_one_item_per_participant_is_robust_logistic_regression() -> None:
    frame = item_frame()
    single = frame[frame["item"] == "5"]
    result = stats.gee_logistic(
        single, outcome="correct", arm="arm", reference="control", cluster="pid"
    )[0]
    design = sm.add_constant((single["arm"] == "ai").astype(float).to_numpy())
    logit = sm.Logit(single["correct"].to_numpy(), design).fit(disp=0, cov_type="HC0")
    assert result.estimate == pytest.approx(math.exp(logit.params[1]), rel=1e-6)
    assert result.ci_low == pytest.approx(math.exp(logit.conf_int()[1][0]), rel=1e-5)
    assert result.n == 60


def test_gee_reports_odds_ratio_per_arm_with_participants_as_clusters() -> None:
    frame = item_frame()
    result = stats.gee_logistic(
        frame, outcome="correct", arm="arm", reference="control", cluster="pid", item="item"
    )[0]
    assert result.method == "gee_logistic"
    assert result.n == 60
    assert "720 item responses" in result.notes
    assert result.covariates == ("item",)
    assert result.ci_low < result.estimate < result.ci_high < 1.0


def test_gee_rejects_an_outcome_that_is_not_zero_or_one() -> None:
    frame = item_frame()
    frame["correct"] = frame["correct"] * 2
    with pytest.raises(ValueError, match="0/1"):
        stats.gee_logistic(frame, outcome="correct", arm="arm", reference="control", cluster="pid")
