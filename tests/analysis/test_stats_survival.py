"""Properties of the completion-time analyses (Kaplan-Meier, Cox, RMST, censored t-test).

The event is finishing the task; not finishing by the time limit is censoring.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import stats

OVARIAN = [
    (59, 1, 1), (115, 1, 1), (156, 1, 1), (421, 0, 2), (431, 1, 1), (448, 0, 1), (464, 1, 2),
    (475, 1, 2), (477, 0, 1), (563, 1, 2), (638, 1, 1), (744, 0, 2), (769, 0, 2), (770, 0, 2),
    (803, 0, 1), (855, 0, 1), (1040, 0, 1), (1106, 0, 1), (1129, 0, 2), (1206, 0, 2),
    (1227, 0, 2), (268, 1, 1), (329, 1, 1), (353, 1, 2), (365, 1, 2), (377, 0, 2),
]  # fmt: skip


def ovarian_frame() -> pd.DataFrame:
    return pd.DataFrame(OVARIAN, columns=["futime", "fustat", "rx"])


def timed_trial(seed: int = 9, limit: float = 35.0) -> pd.DataFrame:
    """Two arms of exponential completion times, censored at the limit."""
    rng = np.random.default_rng(seed)
    ai = rng.exponential(18.0, 150)
    control = rng.exponential(30.0, 150)
    times = np.concatenate([ai, control])
    return pd.DataFrame(
        {
            "arm": ["ai"] * 150 + ["control"] * 150,
            "minutes": np.minimum(times, limit),
            "finished": (times <= limit).astype(int),
            "uncensored": times,
        }
    )


def efron_log_partial_likelihood(
    beta: float, time: np.ndarray, event: np.ndarray, x: np.ndarray
) -> float:
    """Cox log partial likelihood with Efron's handling of tied event times (Efron 1977),
    written out from the definition for this test."""
    total = 0.0
    for moment in np.unique(time[event == 1]):
        risk = np.exp(beta * x[time >= moment]).sum()
        tied = (time == moment) & (event == 1)
        d = int(tied.sum())
        tied_risk = np.exp(beta * x[tied]).sum()
        total += beta * x[tied].sum()
        total -= sum(math.log(risk - k / d * tied_risk) for k in range(d))
    return total


# --- Kaplan-Meier ---------------------------------------------------------------------------


def test_kaplan_meier_curve_steps_down_by_the_share_finishing_among_those_at_risk() -> None:
    frame = ovarian_frame()
    arm = frame[frame.rx == 1]
    curve = stats.kaplan_meier(arm.futime, arm.fustat, arm="1")
    # 13 at risk; one event at each of the first six times; then 448 and 477 are censored,
    # leaving 5 at risk at 638.
    expected = [12 / 13, 11 / 13, 10 / 13, 9 / 13, 8 / 13, 7 / 13, 7 / 13 * 4 / 5]
    assert list(curve.times) == [59, 115, 156, 268, 329, 431, 638]
    assert curve.survival == pytest.approx(expected, rel=1e-12)
    assert list(curve.n_at_risk) == [13, 12, 11, 10, 9, 8, 5]
    assert np.all(curve.ci_low <= curve.survival)
    assert np.all(curve.survival <= curve.ci_high)


def test_km_median_is_first_time_at_or_below_half_and_missing_when_not_reached() -> None:
    results = stats.km_medians(
        ovarian_frame(), time="futime", event="fustat", arm="rx", reference="1"
    )
    first, second = results
    assert first.method == "km_median"
    assert first.groups == ("1",)
    assert first.estimate == 638  # 7/13 = 0.538 after 431, 0.431 after 638
    assert first.ci_low <= 638
    assert math.isnan(second.estimate)  # arm 2 only falls to 0.564
    assert "not reached" in second.notes
    assert second.to_dict()["estimate"] is None


# --- Cox ------------------------------------------------------------------------------------


def test_cox_score_test_equals_published_log_rank_when_event_times_are_distinct() -> None:
    # With no tied event times the Cox score test for one binary covariate is the log-rank
    # test, published for these data as chi-square 1.06274 (REFERENCE_VALUES.md section 5).
    frame = ovarian_frame()
    time, event = frame.futime.to_numpy(float), frame.fustat.to_numpy(float)
    x = (frame.rx == 2).to_numpy(float)
    h = 1e-4
    loglik = [efron_log_partial_likelihood(b, time, event, x) for b in (-h, 0.0, h)]
    score = (loglik[2] - loglik[0]) / (2 * h)
    information = -(loglik[2] - 2 * loglik[1] + loglik[0]) / h**2
    assert score**2 / information == pytest.approx(1.06274, abs=5e-6)
    # ... and the hazard ratio maximizes that same likelihood.
    result = stats.cox(frame, time="futime", event="fustat", arm="rx", reference="1")[0]
    beta = math.log(result.estimate)
    assert efron_log_partial_likelihood(beta, time, event, x) >= max(
        efron_log_partial_likelihood(beta + step, time, event, x) for step in (-1e-3, 1e-3)
    )


def test_cox_uses_efron_ties() -> None:
    # Many tied finishing times (whole minutes): Efron and Breslow estimates differ, and the
    # reported hazard ratio must maximize the Efron likelihood.
    frame = timed_trial()
    frame["minutes"] = np.ceil(frame["minutes"])
    result = stats.cox(frame, time="minutes", event="finished", arm="arm", reference="control")[0]
    time, event = frame.minutes.to_numpy(float), frame.finished.to_numpy(float)
    x = (frame.arm == "ai").to_numpy(float)
    beta = math.log(result.estimate)
    best = efron_log_partial_likelihood(beta, time, event, x)
    for step in (-1e-4, 1e-4):
        assert best >= efron_log_partial_likelihood(beta + step, time, event, x)


def test_cox_hazard_ratio_above_one_means_the_arm_finishes_sooner() -> None:
    result = stats.cox(
        timed_trial(), time="minutes", event="finished", arm="arm", reference="control"
    )[0]
    assert result.method == "cox"
    assert result.groups == ("ai", "control")
    # True hazard ratio 30 / 18 for exponential times.
    assert result.ci_low < 30 / 18 < result.ci_high
    assert result.ci_low > 1


# --- restricted mean ------------------------------------------------------------------------


def test_rmst_without_censoring_is_the_difference_of_means() -> None:
    a = np.array([3.0, 5.0, 8.0, 9.0, 12.0])
    b = np.array([4.0, 6.0, 6.5, 10.0, 15.0, 20.0])
    frame = pd.DataFrame({"arm": ["a"] * 5 + ["b"] * 6, "t": np.concatenate([a, b]), "done": 1})
    result = stats.rmst(frame, time="t", event="done", arm="arm", reference="b", horizon=20.0)[0]
    assert result.method == "rmst"
    assert result.estimate == pytest.approx(a.mean() - b.mean())
    # Without censoring the Greenwood-type variance is the plug-in variance of each mean.
    se = math.sqrt(a.var() / a.size + b.var() / b.size)
    assert result.estimate / (result.statistic or math.nan) == pytest.approx(se)


def test_rmst_without_censoring_is_the_mean_time_capped_at_the_horizon() -> None:
    frame = timed_trial()
    frame["minutes"], frame["finished"] = frame["uncensored"], 1
    horizon = 20.0
    result = stats.rmst(
        frame, time="minutes", event="finished", arm="arm", reference="control", horizon=horizon
    )[0]
    capped = frame.assign(capped=np.minimum(frame.minutes, horizon)).groupby("arm").capped.mean()
    assert result.estimate == pytest.approx(capped["ai"] - capped["control"])


def test_rmst_refuses_a_horizon_beyond_follow_up() -> None:
    with pytest.raises(ValueError, match="exceeds the longest follow-up"):
        stats.rmst(
            timed_trial(),
            time="minutes",
            event="finished",
            arm="arm",
            reference="control",
            horizon=40.0,
        )


# --- the t-test on censored times -----------------------------------------------------------


def test_t_test_on_times_censored_at_the_limit_shrinks_the_difference() -> None:
    frame = timed_trial()
    censored = stats.censored_time_t_test(frame, time="minutes", arm="arm", reference="control")[0]
    truth = stats.student_t(
        frame.loc[frame.arm == "ai", "uncensored"], frame.loc[frame.arm == "control", "uncensored"]
    )
    assert censored.method == "student_t"
    assert censored.notes.endswith(stats.CENSORED_T_TEST_NOTE)
    assert truth.estimate < censored.estimate < 0  # the AI arm is faster, less so when censored


def test_logrank_across_three_arms_has_two_degrees_of_freedom() -> None:
    frame = timed_trial()
    frame.loc[frame.index[::3], "arm"] = "tutor"
    result = stats.logrank(frame, time="minutes", event="finished", arm="arm", reference="control")
    assert result.df == 2
    assert result.groups == ("control", "ai", "tutor")
    assert "observed/expected" in result.notes


# --- log-rank: ties and censoring -----------------------------------------------------------

# Remission weeks of the 6-MP trial (Freireich et al. 1963, Blood 21:699), as tabulated by
# Gehan (1965) and in most survival textbooks (e.g. Le, Introductory Biostatistics, example
# 11.1): relapse (1) or still in remission (0). Events and censorings are tied at 6 and 10.
REMISSION_6MP = [
    (6, 1), (6, 1), (6, 1), (7, 1), (10, 1), (13, 1), (16, 1), (22, 1), (23, 1), (6, 0), (9, 0),
    (10, 0), (11, 0), (17, 0), (19, 0), (20, 0), (25, 0), (32, 0), (32, 0), (34, 0), (35, 0),
]  # fmt: skip
REMISSION_PLACEBO = [
    (1, 1), (1, 1), (2, 1), (2, 1), (3, 1), (4, 1), (4, 1), (5, 1), (5, 1), (8, 1), (8, 1),
    (8, 1), (8, 1), (11, 1), (11, 1), (12, 1), (12, 1), (15, 1), (17, 1), (22, 1), (23, 1),
]  # fmt: skip


def test_logrank_matches_published_survdiff_on_the_remission_data_with_tied_times() -> None:
    # R: survdiff(Surv(time, event) ~ group) prints expected 10.7 (placebo) and 19.3 (6-MP),
    # Chisq = 16.8 on 1 df, p = 4.17e-05
    # (https://rstudio-pubs-static.s3.amazonaws.com/79128_036da04b5d9e4a20b30803e3f08363fe.html).
    arms = [np.array(REMISSION_PLACEBO, float), np.array(REMISSION_6MP, float)]
    table = stats.logrank_table([a[:, 0] for a in arms], [a[:, 1] for a in arms], ["p", "6mp"])
    assert list(table.observed) == [21, 9]
    assert table.expected == pytest.approx([10.7, 19.3], abs=0.05)
    assert table.statistic == pytest.approx(16.8, abs=0.05)
    assert table.p_value == pytest.approx(4.17e-05, abs=0.005e-05)


def tied_censored_trial(arms: int, seed: int) -> pd.DataFrame:
    """Whole-minute completion times (many ties), censored at the limit and at random before
    it, so that finishes and censorings also share times."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(arms):
        minutes = np.ceil(rng.exponential(15.0 + 6 * index, 120 + 10 * index))
        finished = (minutes <= 35) & (rng.random(minutes.size) > 0.15)
        rows.append(
            pd.DataFrame(
                {"arm": f"arm{index}", "minutes": np.minimum(minutes, 35), "finished": finished}
            )
        )
    frame = pd.concat(rows, ignore_index=True)
    frame["finished"] = frame["finished"].astype(int)
    both = frame.groupby("minutes")["finished"].agg(["min", "max"])
    assert ((both["min"] == 0) & (both["max"] == 1)).sum() >= 5  # finishes tied with censorings
    return frame


def test_two_arm_logrank_with_tied_and_censored_times_matches_scipy() -> None:
    frame = tied_censored_trial(2, seed=31)
    result = stats.logrank(frame, time="minutes", event="finished", arm="arm", reference="arm0")

    def sample(level: str) -> sps.CensoredData:
        rows = frame[frame.arm == level]
        return sps.CensoredData(
            uncensored=rows.minutes[rows.finished == 1], right=rows.minutes[rows.finished == 0]
        )

    reference = sps.logrank(sample("arm0"), sample("arm1"))
    assert result.statistic == pytest.approx(float(reference.statistic) ** 2, rel=1e-12)
    assert result.p_value == pytest.approx(float(reference.pvalue), rel=1e-9)


def logrank_by_event_time(
    time: np.ndarray, event: np.ndarray, arm: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """The k-sample log-rank test written out one event time at a time from its definition
    (Klein & Moeschberger 2003, section 7.3): at each distinct event time, everyone with a
    time at or after it is at risk; observed minus expected finishes per arm with the
    hypergeometric covariance d (n - d) / (n - 1) (diag(share) - share share')."""
    observed, expected = np.zeros(k), np.zeros(k)
    covariance = np.zeros((k, k))
    for moment in np.unique(time[event == 1]):
        at_risk = np.array([np.sum((time >= moment) & (arm == g)) for g in range(k)], float)
        finishing = np.array(
            [np.sum((time == moment) & (event == 1) & (arm == g)) for g in range(k)], float
        )
        n, d = at_risk.sum(), finishing.sum()
        observed += finishing
        expected += d * at_risk / n
        if n > 1:
            share = at_risk / n
            covariance += d * (n - d) / (n - 1) * (np.diag(share) - np.outer(share, share))
    difference = (observed - expected)[:-1]
    statistic = float(difference @ np.linalg.solve(covariance[:-1, :-1], difference))
    return observed, expected, statistic


@pytest.mark.parametrize("arms", [2, 3, 4])
def test_logrank_with_tied_and_censored_times_matches_the_test_written_out_per_event_time(
    arms: int,
) -> None:
    frame = tied_censored_trial(arms, seed=arms)
    levels = [f"arm{index}" for index in range(arms)]
    per_arm = [frame[frame.arm == level] for level in levels]
    table = stats.logrank_table(
        [rows.minutes.to_numpy() for rows in per_arm],
        [rows.finished.to_numpy() for rows in per_arm],
        levels,
    )
    observed, expected, statistic = logrank_by_event_time(
        frame.minutes.to_numpy(float),
        frame.finished.to_numpy(float),
        frame.arm.map({level: index for index, level in enumerate(levels)}).to_numpy(),
        arms,
    )
    assert list(table.observed) == list(observed)
    assert table.expected == pytest.approx(expected, rel=1e-12)
    assert table.statistic == pytest.approx(statistic, rel=1e-12)
    assert table.df == arms - 1
    assert table.p_value == pytest.approx(float(sps.chi2.sf(statistic, arms - 1)), rel=1e-9)


def test_cox_without_any_finish_says_why():
    frame = pd.DataFrame({"t": [35.0] * 6, "done": [0] * 6, "arm": ["a", "a", "a", "b", "b", "b"]})
    with pytest.raises(ValueError, match="no one finished"):
        stats.cox(frame, time="t", event="done", arm="arm", reference="b")
