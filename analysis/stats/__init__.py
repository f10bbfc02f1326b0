"""Statistics for skilltrial analyses: plain numpy/scipy/statsmodels, no Django.

Frames or arrays go in, frozen dataclasses come out. Every comparison is *arm minus reference
arm* (or a ratio arm / reference for hazards and odds), so a negative quiz difference means the
arm scored lower than the reference. Each result is a `Result` whose `to_dict()` is the JSON
shape of one entry of the `results` list of ``analyze --json`` (issue 7, section 5).

Conventions
-----------
* Two-sided tests and 95% intervals unless a function says otherwise.
* Randomness (permutation, bootstrap) only through a ``numpy.random.Generator`` passed in by
  the caller, so an analysis can be replayed from its stored seed.
* Missing outcome values are dropped; the `n` of a result is the number of observations
  actually used (participants for GEE), and the notes say how many rows were dropped.
* NaN in a result means "does not apply" (a bootstrap has no p-value, an omnibus test has no
  single estimate) and becomes ``null`` in JSON.

One module per part: `results` (the typed results and their JSON), `samples` (values per
arm), `two_sample`, `multiplicity`, `arms` (omnibus and many arms), `design` and `models`
(regression), `survival` (censored completion times), `planning` (power, sample size, MDE).
This package re-exports every public name, so `from analysis import stats; stats.welch_t`
keeps working.
"""

from __future__ import annotations

from analysis.stats.arms import (
    multi_arm,
    omnibus,
)
from analysis.stats.models import (
    ancova,
    gee_logistic,
    treatment_interaction,
)
from analysis.stats.multiplicity import (
    AdjustMethod,
    adjust_pvalues,
    with_adjusted_p,
)
from analysis.stats.planning import (
    cohens_h,
    proportion_detectable_above,
    proportions_mde,
    proportions_power,
    proportions_sample_size,
    t_test_mde,
    t_test_power,
    t_test_sample_size,
)
from analysis.stats.results import (
    Alternative,
    EffectSize,
    FloatArray,
    Result,
    join_notes,
    results_to_json,
)
from analysis.stats.samples import (
    arm_samples,
)
from analysis.stats.survival import (
    CENSORED_T_TEST_NOTE,
    KaplanMeierCurve,
    LogRankTable,
    censored_time_t_test,
    cox,
    kaplan_meier,
    km_medians,
    logrank,
    logrank_table,
    rmst,
)
from analysis.stats.two_sample import (
    TwoSampleTest,
    bootstrap_mean_difference,
    cohens_d,
    compare_outcomes,
    compare_to_reference,
    hedges_g,
    mann_whitney,
    permutation_test,
    pooled_sd,
    student_t,
    tost,
    welch_t,
)

__all__ = [
    "CENSORED_T_TEST_NOTE",
    "AdjustMethod",
    "Alternative",
    "EffectSize",
    "FloatArray",
    "KaplanMeierCurve",
    "LogRankTable",
    "Result",
    "TwoSampleTest",
    "adjust_pvalues",
    "ancova",
    "arm_samples",
    "bootstrap_mean_difference",
    "censored_time_t_test",
    "cohens_d",
    "cohens_h",
    "compare_outcomes",
    "compare_to_reference",
    "cox",
    "gee_logistic",
    "hedges_g",
    "join_notes",
    "kaplan_meier",
    "km_medians",
    "logrank",
    "logrank_table",
    "mann_whitney",
    "multi_arm",
    "omnibus",
    "permutation_test",
    "pooled_sd",
    "proportion_detectable_above",
    "proportions_mde",
    "proportions_power",
    "proportions_sample_size",
    "results_to_json",
    "rmst",
    "student_t",
    "t_test_mde",
    "t_test_power",
    "t_test_sample_size",
    "tost",
    "treatment_interaction",
    "welch_t",
    "with_adjusted_p",
]
