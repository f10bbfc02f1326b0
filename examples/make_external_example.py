"""Write examples/external_study.csv: a synthetic study shaped like the reference study.

Not real data. 53 rows: two arms of a between-subjects trial (AI assistant vs no AI), one
row excluded by the `include` flag (left quiz questions blank), so 52 are analysed. Quiz out
of 27 points in half points with three overlapping category scores, minutes to finish the
main task (right-censored at the 35-minute limit: `finished` is 0 for those who had not),
years of programming experience as a covariate, an attention-check flag for the
per-protocol population. Fixed seed: running it again writes the same file.

    python examples/make_external_example.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SEED = 20260120
LIMIT = 35.0
HERE = Path(__file__).resolve().parent


def half_points(values: np.ndarray, maximum: float) -> np.ndarray:
    return np.clip(np.round(values * 2) / 2, 0, maximum)


def rows() -> list[dict[str, object]]:
    rng = np.random.default_rng(SEED)
    arms = np.array(["ai"] * 26 + ["control"] * 27)
    rng.shuffle(arms)
    n = arms.size
    ai = arms == "ai"
    years = np.clip(np.round(rng.gamma(3.0, 2.2, n)), 1, 25)
    # Quiz: AI arm about 4 points lower; more experience helps a little.
    ability = rng.normal(0, 1, n)
    quiz = half_points(np.where(ai, 13.0, 17.2) + 0.25 * (years - 6) + 5.2 * ability, 27)
    share = quiz / 27
    debug = half_points(10 * share + rng.normal(-0.8 * ai, 1.3, n), 10)
    reading = half_points(9 * share + rng.normal(-0.3 * ai, 1.2, n), 9)
    concept = half_points(12 * share + rng.normal(-0.7 * ai, 1.4, n), 12)
    # Minutes to pass the main task; those still working at the limit are censored.
    minutes = np.where(ai, rng.gamma(9.0, 2.5, n), rng.gamma(8.0, 3.05, n))
    finished = minutes <= LIMIT
    minutes = np.minimum(minutes, LIMIT)
    attention = rng.random(n) > 0.06
    frequency = rng.choice(["daily", "weekly"], n, p=[0.7, 0.3])
    include = np.ones(n, dtype=int)
    include[np.flatnonzero(~ai)[0]] = 0  # left four quiz questions blank
    return [
        {
            "pid": f"EX{i + 1:03d}",
            "condition": arms[i],
            "include": include[i],
            "years_experience": int(years[i]),
            "python_frequency": frequency[i],
            "quiz_total": f"{quiz[i]:g}",
            "debug_points": f"{debug[i]:g}",
            "reading_points": f"{reading[i]:g}",
            "concept_points": f"{concept[i]:g}",
            "task_minutes": f"{minutes[i]:.1f}",
            "finished": int(finished[i]),
            "attention_ok": int(attention[i]),
        }
        for i in range(n)
    ]


def main() -> None:
    data = rows()
    target = HERE / "external_study.csv"
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(data[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)
    print(f"wrote {target} ({len(data)} rows)")


if __name__ == "__main__":
    main()
