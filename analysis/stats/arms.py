"""More than two arms: an omnibus test, then each arm against the reference."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats.multiplicity import AdjustMethod
from analysis.stats.results import EffectSize, Result
from analysis.stats.samples import arm_samples
from analysis.stats.two_sample import TwoSampleTest, compare_to_reference, welch_t


def omnibus(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    method: Literal["anova", "kruskal"] = "anova",
) -> Result:
    """One-way ANOVA (F) or Kruskal-Wallis (chi-square, tie-corrected) across all arms."""
    samples = arm_samples(frame, outcome=outcome, arm=arm, reference=reference)
    values = list(samples.values())
    n = sum(v.size for v in values)
    k = len(values)
    if method == "anova":
        test = sps.f_oneway(*values)
        grand = np.concatenate(values).mean()
        between = sum(v.size * (v.mean() - grand) ** 2 for v in values)
        total = float(((np.concatenate(values) - grand) ** 2).sum())
        effect: EffectSize | None = EffectSize("eta_squared", float(between / total))
        name, notes = "anova", f"F on {k - 1} and {n - k} df."
    else:
        test = sps.kruskal(*values)
        effect = None
        name, notes = "kruskal", f"Kruskal-Wallis chi-square on {k - 1} df, corrected for ties."
    # An omnibus test has no single estimate: estimate and interval are "does not apply".
    return Result(
        outcome=outcome,
        method=name,
        groups=tuple(samples),
        n=n,
        estimate=math.nan,
        ci_low=math.nan,
        ci_high=math.nan,
        p_value=float(test.pvalue),
        statistic=float(test.statistic),
        df=float(k - 1),
        effect_size=effect,
        notes=notes,
    )


def multi_arm(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    omnibus_method: Literal["anova", "kruskal"] = "anova",
    test: TwoSampleTest = welch_t,
    adjust: AdjustMethod = "holm",
    **options: Any,
) -> list[Result]:
    """The omnibus test across all arms, then each arm against the reference, adjusted."""
    return [
        omnibus(frame, outcome=outcome, arm=arm, reference=reference, method=omnibus_method),
        *compare_to_reference(
            frame,
            outcome=outcome,
            arm=arm,
            reference=reference,
            test=test,
            adjust=adjust,
            **options,
        ),
    ]
