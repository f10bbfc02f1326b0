"""The wiring of `run_analysis`: which rows each population uses, which results are labelled
preregistered, adjustments, deviations and the JSON document. The statistics themselves are
tested against published values in test_stats_*.py; here each result is compared with a
direct scipy/statsmodels call on the rows it should have used."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import stats
from analysis.analyze import AnalysisError, run_analysis
from analysis.inputs import AnalysisInput, OutcomeSpec

PLAN: dict[str, Any] = {
    "reference_arm": "no_ai",
    "alpha": 0.05,
    "primary": {"outcome": "quiz_score", "description": "Total quiz points"},
    "secondary": [
        {"outcome": "completion_time", "stage": "main_tasks"},
        {"outcome": "category_scores"},
    ],
    "covariates": ["warmup_time"],
    "populations": {"per_protocol": ["completed_quiz", "passed_attention_check"]},
}
ENTRY_KEYS = {
    "outcome", "method", "groups", "n", "estimate", "ci_low", "ci_high", "p_value", "statistic",
    "df", "effect_size", "adjusted_p", "covariates", "notes", "population", "preregistered",
    "role", "adjustment", "adjusted_p_bh",
}  # fmt: skip


def study_frame(n_per_arm: int = 24, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arms = np.array(["ai", "no_ai"] * n_per_arm)
    ai = arms == "ai"
    n = arms.size
    minutes = rng.exponential(np.where(ai, 18.0, 26.0))
    frame = pd.DataFrame(
        {
            "participant": [f"p{i:03d}" for i in range(n)],
            "arm": arms,
            "quiz_score": np.round(rng.normal(np.where(ai, 13.5, 17.5), 5.0), 1),
            "main_time": np.minimum(minutes, 35.0),
            "main_censored": minutes > 35.0,
            "warmup_time_min": rng.normal(10, 3, n),
            "years": rng.choice(["1-3", "4-6", "7+"], n),
            "cat_debugging": rng.integers(0, 9, n).astype(float),
            "cat_reading": rng.integers(0, 10, n).astype(float),
            "cat_conceptual": rng.integers(0, 11, n).astype(float),
            "itt": True,
            "per_protocol": rng.random(n) > 0.2,
            "quiz_final": True,
            "is_synthetic": False,
        }
    )
    # Two people who entered but were never allocated.
    extra = pd.DataFrame(
        {"participant": ["x1", "x2"], "arm": ["", None], "itt": [False, False]}
    ).reindex(columns=frame.columns)
    return pd.concat([frame, extra], ignore_index=True)


def study_input(frame: pd.DataFrame | None = None, **changes: Any) -> AnalysisInput:
    values: dict[str, Any] = {
        "frame": study_frame() if frame is None else frame,
        "plan": PLAN,
        "reference_arm": "no_ai",
        "outcomes": {
            "quiz_score": OutcomeSpec("continuous", "quiz_score", max_points=27, unit="points"),
            "completion_time": OutcomeSpec(
                "time", "main_time", censored_column="main_censored", limit=35, unit="minutes"
            ),
            "category_scores": OutcomeSpec(
                "categories",
                categories={
                    "debugging": OutcomeSpec("continuous", "cat_debugging", max_points=8),
                    "reading": OutcomeSpec("continuous", "cat_reading", max_points=9),
                    "conceptual": OutcomeSpec("continuous", "cat_conceptual", max_points=10),
                },
            ),
        },
        "covariates": {"warmup_time": "warmup_time_min", "years": "years"},
        "baseline_columns": ["years", "warmup_time_min"],
        "arm_labels": {"ai": "AI", "no_ai": "No AI"},
        "meta": {"trial_status": "closed", "title": "Test study"},
    }
    values.update(changes)
    return AnalysisInput(**values)


def one(results: Any, **filters: Any) -> stats.Result:
    found = results.select(**filters)
    assert len(found) == 1, [f.result.method for f in found]
    return found[0].result


def allocated(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[frame["itt"].eq(True)]


@pytest.fixture(scope="module")
def analysed() -> Any:
    return run_analysis(study_input(), seed=0)


def test_welch_t_equals_scipy_on_the_allocated_participants(analysed: Any) -> None:
    frame = allocated(study_frame())
    ai = frame.loc[frame["arm"] == "ai", "quiz_score"]
    no_ai = frame.loc[frame["arm"] == "no_ai", "quiz_score"]
    expected = sps.ttest_ind(ai, no_ai, equal_var=False)
    result = one(analysed, outcome="quiz_score", method="welch_t")
    assert result.groups == ("ai", "no_ai")
    assert result.n == 48
    assert result.estimate == pytest.approx(ai.mean() - no_ai.mean(), rel=1e-12)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.df == pytest.approx(expected.df, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10)
    student = one(analysed, outcome="quiz_score", method="student_t")
    assert student.p_value == pytest.approx(sps.ttest_ind(ai, no_ai).pvalue, rel=1e-10)


def test_published_welch_values_through_the_whole_pipeline() -> None:
    # R: t.test(extra ~ group, data = sleep) (REFERENCE_VALUES.md section 1); arm "1" vs "2".
    g1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    g2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    frame = pd.DataFrame({"arm": ["1"] * 10 + ["2"] * 10, "extra": g1 + g2})
    inp = AnalysisInput(
        frame=frame,
        plan={"primary": {"outcome": "extra"}},
        reference_arm="2",
        outcomes={"extra": OutcomeSpec("continuous", "extra")},
        per_protocol_column=None,
    )
    welch = one(run_analysis(inp), outcome="extra", method="welch_t")
    assert welch.statistic == pytest.approx(-1.86081346748685, abs=1e-12)
    assert welch.df == pytest.approx(17.7764735161785, abs=1e-10)
    assert welch.p_value == pytest.approx(0.0793941401873582, abs=1e-12)
    assert (welch.ci_low, welch.ci_high) == pytest.approx(
        (-3.36548323071171, 0.20548323071171), abs=1e-12
    )


def test_per_protocol_uses_only_flagged_allocated_participants(analysed: Any) -> None:
    frame = allocated(study_frame())
    pp = frame.loc[frame["per_protocol"].eq(True)]
    result = one(analysed, outcome="quiz_score", method="welch_t", population="per_protocol")
    assert result.n == len(pp) < 48
    ai = pp.loc[pp["arm"] == "ai", "quiz_score"]
    no_ai = pp.loc[pp["arm"] == "no_ai", "quiz_score"]
    assert result.p_value == pytest.approx(sps.ttest_ind(ai, no_ai, equal_var=False).pvalue)
    assert analysed.populations["itt"]["n"] == 48
    assert analysed.populations["per_protocol"]["n"] == len(pp)


def test_without_a_per_protocol_column_only_itt_is_run_and_the_gap_is_a_deviation() -> None:
    results = run_analysis(study_input(per_protocol_column=None))
    assert {f.population for f in results.findings} == {"itt"}
    assert "per_protocol_unavailable" in {d.code for d in results.deviations}


def test_ancova_reports_the_n_it_used_when_a_covariate_is_missing() -> None:
    frame = study_frame()
    frame.loc[[0, 1, 2], "warmup_time_min"] = np.nan
    results = run_analysis(study_input(frame))
    planned = [f for f in results.select(outcome="quiz_score", method="ancova") if f.preregistered]
    assert len(planned) == 1
    result = planned[0].result
    assert result.n == 45
    assert result.covariates == ("warmup_time_min",)
    import statsmodels.api as sm

    data = allocated(frame).dropna(subset=["warmup_time_min"])
    x = sm.add_constant(
        pd.DataFrame({"ai": (data["arm"] == "ai").astype(float), "w": data["warmup_time_min"]})
    )
    fit = sm.OLS(data["quiz_score"].to_numpy(), x).fit(cov_type="HC3", use_t=True)
    assert result.estimate == pytest.approx(fit.params["ai"], rel=1e-10)
    assert result.p_value == pytest.approx(fit.pvalues["ai"], rel=1e-8)
    messages = {d.code: d.message for d in results.deviations}
    assert "missing for 3 of 48" in messages["covariate_missing"]


def test_category_scores_are_percentages_with_holm_and_bh_over_the_family(analysed: Any) -> None:
    found = analysed.select(outcome="category_scores", method="welch_t", prefix=True)
    assert [f.result.outcome for f in found] == [
        "category_scores:debugging",
        "category_scores:reading",
        "category_scores:conceptual",
    ]
    frame = allocated(study_frame())
    percent = 100 * frame["cat_debugging"] / 8
    expected = sps.ttest_ind(
        percent[frame["arm"] == "ai"], percent[frame["arm"] == "no_ai"], equal_var=False
    )
    assert found[0].result.p_value == pytest.approx(expected.pvalue, rel=1e-10)
    raw = [f.result.p_value for f in found]
    holm = stats.adjust_pvalues(raw, "holm")
    bh = stats.adjust_pvalues(raw, "bh")
    for finding, h, b in zip(found, holm, bh, strict=True):
        assert finding.adjustment == "holm"
        assert finding.result.adjusted_p == pytest.approx(h)
        assert finding.adjusted_p_bh == pytest.approx(b)


def test_preregistered_labels_follow_the_plan(analysed: Any) -> None:
    def labelled(**filters: Any) -> set[bool]:
        return {f.preregistered for f in analysed.select(**filters)}

    assert labelled(outcome="quiz_score", method="welch_t") == {True}
    assert labelled(outcome="quiz_score", method="welch_t", population="per_protocol") == {True}
    assert labelled(outcome="quiz_score", method="interaction") == {False}
    assert labelled(outcome="completion_time", method="cox") == {True}
    # The t-test on censored times is shown for comparison only.
    assert labelled(outcome="completion_time", method="student_t") == {False}
    # An ANCOVA with a covariate the plan does not name is exploratory.
    assert labelled(outcome="quiz_score", method="ancova") == {True, False}
    roles = {f.role for f in analysed.select(outcome="quiz_score")}
    assert roles == {"primary"}


def test_outcomes_and_populations_outside_the_plan_are_exploratory() -> None:
    frame = study_frame()
    frame["errors"] = np.arange(len(frame)) % 5
    plan = {**PLAN, "populations": {"per_protocol": []}}
    inp = study_input(frame, plan=plan)
    inp.outcomes["errors"] = OutcomeSpec("continuous", "errors", unit="count")
    results = run_analysis(inp)
    assert {f.preregistered for f in results.select(outcome="errors")} == {False}
    assert {f.role for f in results.select(outcome="errors")} == {"exploratory"}
    pp = results.select(outcome="quiz_score", method="welch_t", population="per_protocol")
    assert [f.preregistered for f in pp] == [False]


def test_completion_time_uses_censoring_for_survival_methods(analysed: Any) -> None:
    frame = allocated(study_frame())
    medians = analysed.select(outcome="completion_time", method="km_median")
    assert [f.result.groups for f in medians] == [("no_ai",), ("ai",)]
    table = stats.logrank_table(
        [frame.loc[frame["arm"] == a, "main_time"] for a in ("no_ai", "ai")],
        [~frame.loc[frame["arm"] == a, "main_censored"].astype(bool) for a in ("no_ai", "ai")],
        ["no_ai", "ai"],
    )
    logrank = one(analysed, outcome="completion_time", method="logrank")
    assert logrank.statistic == pytest.approx(table.statistic)
    assert one(analysed, outcome="completion_time", method="cox").n == 48
    rmst = one(analysed, outcome="completion_time", method="rmst")
    assert "up to 35" in rmst.notes
    summaries = {s.arm: s for s in analysed.summaries("completion_time")}
    assert summaries["ai"].censored == int(frame.loc[frame["arm"] == "ai", "main_censored"].sum())
    assert set(analysed.curves[("itt", "completion_time")]) == {"ai", "no_ai"}


def test_without_a_censored_column_times_at_the_limit_are_censored() -> None:
    inp = study_input()
    inp.outcomes["completion_time"] = OutcomeSpec("time", "main_time", limit=35)
    results = run_analysis(inp)
    frame = allocated(study_frame())
    finished = int((frame["main_time"] < 35).sum())
    cox = one(results, outcome="completion_time", method="cox")
    assert f"{finished} finished" in cox.notes


def test_tost_runs_only_with_a_preregistered_margin(analysed: Any) -> None:
    assert analysed.select(outcome="completion_time", method="tost") == []
    plan = {**PLAN, "secondary": [{"outcome": "completion_time", "margin": 5}]}
    results = run_analysis(study_input(plan=plan))
    tost = one(results, outcome="completion_time", method="tost")
    assert "within [-5, 5]" in tost.notes
    assert "restricted mean" in tost.notes
    assert results.select(outcome="completion_time", method="tost")[0].preregistered


def test_three_arms_get_an_omnibus_test_and_holm_adjusted_pairs() -> None:
    frame = study_frame(n_per_arm=18)
    frame.loc[frame.index[:54:3], "arm"] = "hint"
    results = run_analysis(study_input(frame))
    assert one(results, outcome="quiz_score", method="anova").groups == ("no_ai", "ai", "hint")
    assert one(results, outcome="quiz_score", method="kruskal").df == 2
    pairs = results.select(outcome="quiz_score", method="welch_t")
    assert [f.result.groups for f in pairs] == [("ai", "no_ai"), ("hint", "no_ai")]
    holm = stats.adjust_pvalues([f.result.p_value for f in pairs], "holm")
    assert [f.result.adjusted_p for f in pairs] == pytest.approx(list(holm))
    assert {f.adjustment for f in pairs} == {"holm"}


def test_binary_outcome_difference_in_proportions_with_fisher_p() -> None:
    frame = pd.DataFrame(
        {"arm": ["a"] * 20 + ["b"] * 20, "done": [1] * 15 + [0] * 5 + [1] * 8 + [0] * 12}
    )
    inp = AnalysisInput(
        frame=frame,
        plan={"primary": {"outcome": "task_completed"}},
        reference_arm="b",
        outcomes={"task_completed": OutcomeSpec("binary", "done")},
        per_protocol_column=None,
    )
    result = one(run_analysis(inp), outcome="task_completed")
    assert result.method == "proportion_difference"
    assert result.estimate == pytest.approx(0.75 - 0.40)
    assert result.p_value == pytest.approx(sps.fisher_exact([[15, 5], [8, 12]]).pvalue)
    assert result.ci_low < 0.35 < result.ci_high


def test_item_level_gee_is_exploratory_and_counts_participants() -> None:
    frame = allocated(study_frame())
    rng = np.random.default_rng(2)
    items = pd.DataFrame(
        [
            {
                "participant": p,
                "question": f"q{q}",
                "correct": bool(rng.random() < (0.4 if arm == "ai" else 0.6)),
                "is_attention_check": q == 0,
            }
            for p, arm in zip(frame["participant"], frame["arm"], strict=True)
            for q in range(6)
        ]
    )
    results = run_analysis(study_input(items=items))
    (finding,) = results.select(outcome="quiz_items", method="gee_logistic")
    assert not finding.preregistered
    assert finding.result.n == 48
    assert "240 item responses" in finding.result.notes  # attention checks left out


def test_a_method_that_cannot_run_is_a_problem_not_a_crash() -> None:
    frame = study_frame()
    frame["per_protocol"] = False
    frame.loc[frame["arm"] == "no_ai", "per_protocol"] = True
    frame.loc[frame.index[0], "per_protocol"] = True  # one AI participant only
    results = run_analysis(study_input(frame))
    problems = [p for p in results.problems if p.population == "per_protocol"]
    assert problems
    assert all(p.message for p in problems)
    assert results.select(outcome="quiz_score", method="welch_t", population="itt")


def test_without_the_reference_arm_nothing_is_compared_but_the_run_succeeds() -> None:
    frame = study_frame()
    frame.loc[frame["arm"] == "no_ai", "arm"] = "control"
    results = run_analysis(study_input(frame))
    assert results.findings == []
    assert results.comparisons_notice == (
        "comparisons need participants in at least two arms including the reference arm "
        "'no_ai'; none computed yet (allocated so far: ai 24, control 24)"
    )
    assert results.arm_labels["no_ai"] == "No AI"


def test_with_one_arm_or_none_allocated_nothing_is_compared() -> None:
    frame = study_frame()
    frame.loc[frame["arm"] == "ai", ["arm", "itt"]] = ["", False]
    results = run_analysis(study_input(frame))
    assert results.findings == [] and results.arms == ["no_ai"]
    assert "allocated so far: no_ai 24" in (results.comparisons_notice or "")
    assert results.populations["itt"]["n"] == 24
    frame["arm"], frame["itt"] = "", False
    results = run_analysis(study_input(frame))
    assert results.findings == [] and results.arms == []
    assert "allocated so far: nobody" in (results.comparisons_notice or "")
    document = results.to_json()
    assert document["results"] == []
    assert [p["method"] for p in document["problems"]] == ["comparisons"]


def test_no_participants_at_all_is_an_analysis_error() -> None:
    frame = study_frame().iloc[0:0]
    with pytest.raises(AnalysisError, match="no participants yet"):
        run_analysis(study_input(frame))


def test_deviations_name_every_departure() -> None:
    frame = study_frame()
    frame.loc[[0, 1], "is_synthetic"] = True
    frame.loc[[3], "quiz_final"] = False
    plan = {**PLAN, "covariates": ["warmup_time", "prior_asyncio"]}
    plan["secondary"] = [*PLAN["secondary"], {"outcome": "errors"}]
    results = run_analysis(
        study_input(frame, plan=plan, meta={"trial_status": "live", "plan_changed": True})
    )
    codes = {d.code: d.message for d in results.deviations}
    assert "live" in codes["trial_not_closed"]
    assert "plan_changed" in codes
    assert "2 of 48" in codes["synthetic_data"]
    assert codes["provisional_scores"].startswith("1 quiz score")
    assert "'prior_asyncio'" in codes["covariate_unavailable"]
    assert "'errors'" in codes["outcome_unavailable"]
    closed = run_analysis(study_input())
    assert closed.deviations == []


def test_json_is_strict_and_every_entry_has_the_documented_fields(analysed: Any) -> None:
    document = json.loads(json.dumps(analysed.to_json(), allow_nan=False))
    assert {"results", "meta", "consort", "deviations", "descriptives", "planning"} <= set(document)
    assert document["results"]
    for entry in document["results"]:
        assert set(entry) == ENTRY_KEYS
        assert entry["population"] in ("itt", "per_protocol")
        assert isinstance(entry["preregistered"], bool)
    welch = next(e for e in document["results"] if e["method"] == "welch_t")
    assert set(welch["effect_size"]) == {"name", "value", "ci_low", "ci_high"}
    km = [e for e in document["results"] if e["method"] == "km_median"]
    assert all(e["p_value"] is None for e in km)
    meta = document["meta"]
    assert meta["seed"] == 0
    assert meta["reference_arm"] == "no_ai"
    assert {"python", "numpy", "scipy", "statsmodels", "pandas"} <= set(meta["software"])
    assert len(meta["snapshot"]["sha256"]) == 64


def test_same_seed_same_numbers_and_the_seed_matters() -> None:
    first = run_analysis(study_input(), seed=3).to_json()
    again = run_analysis(study_input(), seed=3).to_json()
    other = run_analysis(study_input(), seed=4).to_json()
    assert first == again

    def permutation_p(document: dict[str, Any]) -> float:
        return next(e["p_value"] for e in document["results"] if e["method"] == "permutation")

    assert permutation_p(first) != permutation_p(other)


def test_planning_gives_the_minimum_detectable_effect_at_the_current_size(analysed: Any) -> None:
    (comparison,) = analysed.planning["comparisons"]
    assert comparison["n"] == [24, 24]
    assert comparison["mde_d"] == pytest.approx(stats.t_test_mde(24, 24))
    assert comparison["mde_units"] == pytest.approx(comparison["mde_d"] * comparison["pooled_sd"])
    assert math.isclose(comparison["power"], 0.8)
