"""Time the full analysis and report of a synthetic trial, and the platform's statistics
against direct scipy/statsmodels calls on the same frames.

    python bench/bench_analysis.py [--participants 10000] [--items 20] [--repeat 3]

Builds everything in memory with numpy (no database): participants in two arms, quiz items
answered from a latent ability (item-level rows for the GEE), three category scores, a
warm-up time covariate and a completion time censored at 35 minutes. Prints:

* end to end: `run_analysis` (ITT and per-protocol, every method) and `render_report`
  (self-contained HTML with the plots), and the JSON document;
* the statistics alone: each platform function against the plain library call it wraps,
  best of ``--repeat`` runs, and the overhead ratio (platform / direct). The platform does
  more than the bare call (effect sizes with noncentral-t intervals, Hodges-Lehmann shift and
  its interval, data checks, notes), which the ratio includes on purpose.

Figures only; nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd


def build_input(participants: int, items: int, seed: int = 7) -> Any:
    from analysis.consort import consort_counts
    from analysis.inputs import AnalysisInput, OutcomeSpec

    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(participants) % 2 == 0, "ai", "no_ai")
    ai = arm == "ai"
    person = rng.normal(0, 1, participants)
    ability = person - 0.7 * ai
    difficulty = rng.normal(0, 1, items)
    categories = np.array(["debugging", "code_reading", "conceptual"])[np.arange(items) % 3]
    points = rng.choice([1.0, 2.0, 3.0], items)
    logits = ability[:, None] - difficulty[None, :]
    correct = rng.random((participants, items)) < 1 / (1 + np.exp(-logits))
    earned = correct * points
    warmup = np.exp(rng.normal(2.3, 0.35, participants) - 0.1 * person)
    minutes = np.exp(rng.normal(3.1, 0.45, participants) - 0.15 * ai - 0.1 * person)
    censored = minutes > 35.0
    frame = pd.DataFrame(
        {
            "participant": [f"P{i:06d}" for i in range(participants)],
            "arm": arm,
            "arm_label": np.where(ai, "AI assistant", "No AI"),
            "status": "completed",
            "eligible": True,
            "allocated": True,
            "itt": True,
            "received_intervention": True,
            "completed_trial": True,
            "per_protocol": rng.random(participants) > 0.1,
            "per_protocol_exclusions": "",
            "lost_reason": "",
            "baseline_coding_years": rng.choice(["1-3", "4-6", "7+"], participants),
            "warmup_time_min": warmup,
            "main_time_min": np.minimum(minutes, 35.0),
            "main_censored": censored,
            "quiz_score": earned.sum(axis=1),
            "quiz_final": True,
            "is_synthetic": True,
        }
    )
    for category in ("debugging", "code_reading", "conceptual"):
        frame[f"quiz_cat_{category}"] = earned[:, categories == category].sum(axis=1)
    item_frame = pd.DataFrame(
        {
            "participant": np.repeat(frame["participant"].to_numpy(), items),
            "arm": np.repeat(arm, items),
            "question": np.tile([f"q{j:02d}" for j in range(items)], participants),
            "correct": correct.ravel(),
            "points": earned.ravel(),
            "max_points": np.tile(points, participants),
            "is_attention_check": False,
        }
    )
    plan = {
        "reference_arm": "no_ai",
        "alpha": 0.05,
        "primary": {"outcome": "quiz_score", "description": "Total quiz points"},
        "secondary": [
            {"outcome": "completion_time", "stage": "main_tasks"},
            {"outcome": "category_scores"},
        ],
        "covariates": ["warmup_time"],
        "populations": {"per_protocol": ["completed_quiz"]},
    }
    inp = AnalysisInput(
        frame=frame,
        plan=plan,
        reference_arm="no_ai",
        outcomes={
            "quiz_score": OutcomeSpec(
                "continuous", "quiz_score", max_points=float(points.sum()), unit="points"
            ),
            "completion_time": OutcomeSpec(
                "time", "main_time_min", censored_column="main_censored", limit=35.0
            ),
            "category_scores": OutcomeSpec(
                "categories",
                categories={
                    c: OutcomeSpec(
                        "continuous",
                        f"quiz_cat_{c}",
                        max_points=float(points[categories == c].sum()),
                    )
                    for c in ("debugging", "code_reading", "conceptual")
                },
            ),
        },
        arm_labels={"ai": "AI assistant", "no_ai": "No AI"},
        covariates={"warmup_time": "warmup_time_min", "coding_years": "baseline_coding_years"},
        baseline_columns=["baseline_coding_years", "warmup_time_min"],
        items=item_frame,
        meta={"title": "Synthetic benchmark trial", "trial_status": "closed", "synthetic": True},
    )
    inp.consort = consort_counts(frame, arm_order=["no_ai"], outcome_column="quiz_score")
    return inp


def best(call: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def comparisons(inp: Any, seed: int) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    import statsmodels.api as sm
    from scipy import stats as sps
    from statsmodels.duration.hazard_regression import PHReg
    from statsmodels.duration.survfunc import SurvfuncRight, survdiff
    from statsmodels.genmod.cov_struct import Exchangeable
    from statsmodels.genmod.families import Binomial
    from statsmodels.genmod.generalized_estimating_equations import GEE

    from analysis import stats

    frame = inp.frame
    ai = frame["arm"] == "ai"
    x, y = frame.loc[ai, "quiz_score"].to_numpy(), frame.loc[~ai, "quiz_score"].to_numpy()
    event = (~frame["main_censored"]).astype(float)
    timed = frame.assign(event=event)
    design = sm.add_constant(
        pd.DataFrame({"ai": ai.astype(float), "warmup": frame["warmup_time_min"]})
    )
    items = inp.items.assign(correct=inp.items["correct"].astype(float))
    item_design = pd.get_dummies(items["question"], drop_first=True, dtype=float)
    item_design.insert(0, "ai", (items["arm"] == "ai").astype(float))
    item_design.insert(0, "const", 1.0)
    resamples = 1999
    return [
        (
            "Welch t-test",
            lambda: stats.welch_t(x, y, groups=("ai", "no_ai")),
            lambda: sps.ttest_ind(x, y, equal_var=False),
        ),
        (
            "Mann-Whitney",
            lambda: stats.mann_whitney(x, y, groups=("ai", "no_ai")),
            lambda: sps.mannwhitneyu(x, y),
        ),
        (
            f"Permutation ({resamples})",
            lambda: stats.permutation_test(
                x, y, rng=np.random.default_rng(seed), n_resamples=resamples, batch=400
            ),
            lambda: sps.permutation_test(
                (x, y),
                lambda a, b, axis: np.mean(a, axis=axis) - np.mean(b, axis=axis),
                vectorized=True,
                n_resamples=resamples,
                batch=400,
                rng=np.random.default_rng(seed),
            ),
        ),
        (
            "ANCOVA, OLS HC3",
            lambda: stats.ancova(
                frame,
                outcome="quiz_score",
                arm="arm",
                reference="no_ai",
                covariates=["warmup_time_min"],
            ),
            lambda: sm.OLS(frame["quiz_score"].to_numpy(), design).fit(cov_type="HC3"),
        ),
        (
            "Kaplan-Meier medians",
            lambda: stats.km_medians(
                timed, time="main_time_min", event="event", arm="arm", reference="no_ai"
            ),
            lambda: [
                SurvfuncRight(timed.loc[rows, "main_time_min"], timed.loc[rows, "event"]).quantile(
                    0.5
                )
                for rows in (ai, ~ai)
            ],
        ),
        (
            "Log-rank",
            lambda: stats.logrank(
                timed, time="main_time_min", event="event", arm="arm", reference="no_ai"
            ),
            lambda: survdiff(timed["main_time_min"], timed["event"], timed["arm"]),
        ),
        (
            "Cox PH (Efron)",
            lambda: stats.cox(
                timed, time="main_time_min", event="event", arm="arm", reference="no_ai"
            ),
            lambda: PHReg(
                timed["main_time_min"].to_numpy(),
                ai.astype(float).to_numpy()[:, None],
                status=event.to_numpy(),
                ties="efron",
            ).fit(),
        ),
        (
            "Item-level GEE",
            lambda: stats.gee_logistic(
                items,
                outcome="correct",
                arm="arm",
                reference="no_ai",
                cluster="participant",
                item="question",
            ),
            lambda: GEE(
                items["correct"].to_numpy(),
                item_design,
                groups=items["participant"].to_numpy(),
                family=Binomial(),
                cov_struct=Exchangeable(),
            ).fit(),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skilltrial.settings")
    import django

    django.setup()
    from analysis.analyze import run_analysis
    from analysis.report import render_report

    start = time.perf_counter()
    inp = build_input(args.participants, args.items)
    built = time.perf_counter() - start
    print(
        f"synthetic trial: {args.participants:,} participants x {args.items} quiz items "
        f"({len(inp.items):,} item rows), built in {built:.2f} s"
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        results = run_analysis(inp, seed=args.seed)
        analysed = time.perf_counter() - start
        start = time.perf_counter()
        html = render_report(inp, results, self_contained=True)
        rendered = time.perf_counter() - start
        start = time.perf_counter()
        text = json.dumps(results.to_json(), allow_nan=False)
        dumped = time.perf_counter() - start

        print("\nend to end")
        print(f"  run_analysis ({len(results.findings)} results, 2 populations)  {analysed:8.2f} s")
        print(f"  render_report (self-contained, {len(html) / 1e6:.2f} MB)      {rendered:8.2f} s")
        print(f"  results JSON ({len(text) / 1e3:.0f} kB)                       {dumped:8.2f} s")
        total = analysed + rendered + dumped
        print(f"  total                                              {total:8.2f} s")
        if results.problems:
            print(f"  problems: {[p.message for p in results.problems]}")

        print(f"\nstatistics alone, best of {args.repeat} (seconds)")
        print(f"  {'method':26} {'platform':>10} {'direct':>10} {'ratio':>8}")
        platform_total = direct_total = 0.0
        for name, platform, direct in comparisons(inp, args.seed):
            ours = best(platform, args.repeat)
            theirs = best(direct, args.repeat)
            platform_total += ours
            direct_total += theirs
            print(f"  {name:26} {ours:10.4f} {theirs:10.4f} {ours / theirs:8.2f}")
        print(
            f"  {'all of the above':26} {platform_total:10.4f} {direct_total:10.4f} "
            f"{platform_total / direct_total:8.2f}"
        )
        print(f"\nplatform overhead ratio (statistics alone): {platform_total / direct_total:.2f}x")


if __name__ == "__main__":
    main()
