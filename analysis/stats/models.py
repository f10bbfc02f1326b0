"""Regression: ANCOVA, treatment x covariate interaction, item-level GEE."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats.design import Design, build_design, covariate_frame
from analysis.stats.results import Result, join_notes
from analysis.stats.samples import dropped_note


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
    # deferred: statsmodels is a heavy optional import (about a second); only models load it.
    import statsmodels.api as sm

    design = build_design(
        frame, outcome=outcome, arm=arm, reference=reference, covariates=covariates
    )
    fit = sm.OLS(design.y, design.x).fit(cov_type="HC3", use_t=True)
    intervals = fit.conf_int(alpha=1 - conf_level)
    dropped = dropped_note(design.n_rows, design.y.size, "missing outcome, arm or covariate")
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
                notes=join_notes(
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
    # deferred: statsmodels is a heavy optional import (about a second); only models load it.
    import statsmodels.api as sm

    design = build_design(
        frame,
        outcome=outcome,
        arm=arm,
        reference=reference,
        covariates=[covariate, *adjust_for],
    )
    covariate_columns = list(covariate_frame(frame.loc[design.used], covariate).columns)
    x, terms = _with_interaction_terms(design, covariate_columns)
    fit = sm.OLS(design.y, x).fit(cov_type="HC3", use_t=True)
    dropped = dropped_note(design.n_rows, design.y.size, "missing outcome, arm or covariate")
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
                notes=join_notes(
                    f"Change in the {level} - {reference} difference per unit of {covariate}; "
                    "OLS, HC3.",
                    dropped,
                ),
            )
            for level, names in terms.items()
        ]
    return [
        _joint_interaction_test(
            fit,
            x,
            terms,
            design=design,
            outcome=outcome,
            reference=reference,
            covariate=covariate,
            covariates=covariates,
            dropped=dropped,
        )
    ]


def _with_interaction_terms(
    design: Design, covariate_columns: list[str]
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The design with an arm x covariate column for each arm and covariate column, and the
    names of those columns per arm."""
    x = design.x.copy()
    terms: dict[str, list[str]] = {}
    for level, arm_column in design.arm_columns.items():
        terms[level] = []
        for column in covariate_columns:
            name = f"{arm_column}:{column}"
            x[name] = x[arm_column] * x[column]
            terms[level].append(name)
    return x, terms


def _joint_interaction_test(
    fit: Any,  # a statsmodels OLS result, which has no type stubs
    x: pd.DataFrame,
    terms: dict[str, list[str]],
    *,
    design: Design,
    outcome: str,
    reference: str,
    covariate: str,
    covariates: tuple[str, ...],
    dropped: str,
) -> Result:
    """A categorical covariate has several terms per arm, so one Wald F-test of them all."""
    all_terms = [name for names in terms.values() for name in names]
    restriction = np.zeros((len(all_terms), x.shape[1]))
    for row, name in enumerate(all_terms):
        restriction[row, list(x.columns).index(name)] = 1.0
    wald = fit.wald_test(restriction, use_f=True, scalar=True)
    return Result(
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
        notes=join_notes(
            f"Joint Wald F-test of {len(all_terms)} arm x {covariate} terms on "
            f"{len(all_terms)} and {int(fit.df_resid)} df; OLS, HC3.",
            dropped,
        ),
    )


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
    # deferred: statsmodels is a heavy optional import (about a second); only models load it.
    from statsmodels.genmod.cov_struct import Exchangeable
    from statsmodels.genmod.families import Binomial
    from statsmodels.genmod.generalized_estimating_equations import GEE

    extra = [cluster] if item is None else [cluster, item]
    design = build_design(
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
    dropped = dropped_note(design.n_rows, design.y.size, "missing values")
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
                notes=join_notes(
                    f"Odds ratio {level} vs {reference}; logistic GEE, exchangeable "
                    f"correlation within {cluster} (estimated {within_cluster:.3g}), robust "
                    f"SE; {design.y.size} item responses from {n_clusters} clusters.",
                    dropped,
                ),
            )
        )
    return results
