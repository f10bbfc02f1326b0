"""Completion time, right-censored at the time limit.

In this platform the "event" is finishing the task; not having finished by the limit is
censoring. The Kaplan-Meier "survival" is therefore the share still working at time t.

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
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as sps

from analysis.stats.design import build_design
from analysis.stats.results import FloatArray, Result, join_notes
from analysis.stats.samples import arm_levels, dropped_note
from analysis.stats.two_sample import compare_to_reference, student_t, welch_t

CENSORED_T_TEST_NOTE = (
    "t-test on completion times that are right-censored at the time limit: non-finishers are "
    "counted at the limit, which understates their times and, when the slower arm has more "
    "non-finishers, biases the difference towards zero. Shown only for comparison with "
    "published work; use the Kaplan-Meier, log-rank, Cox and restricted-mean results."
)


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
    for level in arm_levels(data, arm, reference):
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
    # deferred: statsmodels is a heavy optional import (about a second); only models load it.
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
    # deferred: statsmodels is a heavy optional import (about a second); only models load it.
    from statsmodels.duration.survfunc import SurvfuncRight

    per_arm, n_rows, n_used = _survival_data(
        frame, time=time, event=event, arm=arm, reference=reference
    )
    dropped = dropped_note(n_rows, n_used, "missing time, event or arm")
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
                notes=join_notes(
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
    running: FloatArray = np.cumsum(terms, axis=0)
    total: FloatArray = running[-1]
    return total


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
        notes=join_notes(
            f"Finished observed/expected: {counts}.",
            dropped_note(n_rows, n_used, "missing time, event or arm"),
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
    # deferred: statsmodels is a heavy optional import (about a second); only models load it.
    from statsmodels.duration.hazard_regression import PHReg

    design = build_design(
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
    dropped = dropped_note(design.n_rows, design.y.size, "missing time, event, arm or covariate")
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
                notes=join_notes(
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
    dropped = dropped_note(n_rows, n_used, "missing time, event or arm")
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
                notes=join_notes(
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
        replace(r, outcome=outcome or time, notes=join_notes(r.notes, CENSORED_T_TEST_NOTE))
        for r in results
    ]
