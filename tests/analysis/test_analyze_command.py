"""``manage.py analyze``: the shipped CSV example end to end, a trial by slug, and clear
errors for every wrong combination of arguments."""

from __future__ import annotations

import importlib.util
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from scipy import stats as sps

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENTRY_KEYS = {
    "outcome", "method", "groups", "n", "estimate", "ci_low", "ci_high", "p_value", "statistic",
    "df", "effect_size", "adjusted_p", "covariates", "notes", "population", "preregistered",
}  # fmt: skip


def analyze(*args: str) -> str:
    out = StringIO()
    call_command("analyze", *args, stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    folder = tmp_path_factory.mktemp("example")
    output = analyze(
        "--csv",
        str(EXAMPLES / "external_study.csv"),
        "--mapping",
        str(EXAMPLES / "external_mapping.toml"),
        "--out",
        str(folder / "report.html"),
        "--json",
        str(folder / "results.json"),
    )
    document = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    return document, (folder / "report.html").read_text(encoding="utf-8"), output


def test_example_results_json_has_the_documented_fields(
    example_run: tuple[dict[str, Any], str, str],
) -> None:
    document, _, _ = example_run
    assert document["results"]
    for entry in document["results"]:
        assert set(entry) >= ENTRY_KEYS
    methods = {e["method"] for e in document["results"]}
    assert {
        "welch_t", "student_t", "mann_whitney", "permutation", "bootstrap", "ancova",
        "logrank", "cox", "km_median", "rmst", "hedges_g", "interaction",
    } <= methods  # fmt: skip
    assert document["meta"]["source"] == "csv"
    assert document["meta"]["arm_labels"] == {"control": "No AI", "ai": "AI assistant"}
    assert document["consort"]["assessed"] == 53
    assert document["consort"]["randomized"] == 52
    assert "external_data" in {d["code"] for d in document["deviations"]}


def test_example_primary_result_equals_scipy_on_the_csv(
    example_run: tuple[dict[str, Any], str, str],
) -> None:
    document, _, _ = example_run
    data = pd.read_csv(EXAMPLES / "external_study.csv")
    data = data[data["include"] == 1]
    ai = data.loc[data["condition"] == "ai", "quiz_total"]
    control = data.loc[data["condition"] == "control", "quiz_total"]
    expected = sps.ttest_ind(ai, control, equal_var=False)
    (welch,) = [
        e
        for e in document["results"]
        if e["method"] == "welch_t" and e["outcome"] == "quiz_score" and e["population"] == "itt"
    ]
    assert welch["groups"] == ["ai", "control"]
    assert welch["n"] == 52
    assert welch["preregistered"] is True
    assert welch["estimate"] == pytest.approx(ai.mean() - control.mean())
    assert welch["p_value"] == pytest.approx(expected.pvalue)
    ancova = next(e for e in document["results"] if e["method"] == "ancova")
    assert ancova["covariates"] == ["years_experience"]
    categories = [
        e
        for e in document["results"]
        if e["outcome"].startswith("category_scores:") and e["method"] == "welch_t"
    ]
    assert len(categories) == 6  # 3 categories x 2 populations
    assert all(e["adjusted_p"] is not None for e in categories)


def test_example_report_is_written_and_summarised(
    example_run: tuple[dict[str, Any], str, str],
) -> None:
    _, html, output = example_run
    assert "<link" not in html
    assert "Synthetic external study" in html
    assert "wrote results to" in output
    assert "wrote report to" in output
    assert "Primary outcome: Quiz score: the AI assistant arm was" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a trial SLUG, or --csv"),
        (("demo", "--csv", "x.csv", "--mapping", "m.toml"), "not both"),
        (("--csv", "x.csv"), "--csv needs --mapping"),
        (("--mapping", "m.toml"), "--mapping needs --csv"),
    ],
)
def test_argument_combinations_are_checked(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        analyze(*args)


def test_mapping_errors_are_command_errors_with_file_and_line(tmp_path: Path) -> None:
    text = (EXAMPLES / "external_mapping.toml").read_text(encoding="utf-8")
    (tmp_path / "m.toml").write_text(text.replace("max_points = 27", "max_points = -1"))
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "max_points = 27" in row)
    with pytest.raises(CommandError) as caught:
        analyze(
            "--csv", str(EXAMPLES / "external_study.csv"), "--mapping", str(tmp_path / "m.toml")
        )
    assert str(caught.value) == (
        f"{tmp_path / 'm.toml'}:{line}: outcomes.quiz_score.max_points: must be a positive number"
    )


@pytest.mark.django_db
def test_unknown_slug_names_the_known_trials(live_trial: Any) -> None:
    with pytest.raises(CommandError, match=r"no trial 'nope' \(trials: trio-skill-formation\)"):
        analyze("nope")


@pytest.mark.skipif(
    importlib.util.find_spec("analysis.datasets") is None,
    reason="analysis.datasets (the trial's analysis input) is not written yet",
)
@pytest.mark.django_db
def test_a_trial_by_slug(live_trial: Any, tmp_path: Path) -> None:
    from analysis import synthetic

    synthetic.synthesize_trial(live_trial, participants=40, seed=8, events_per_participant=20)
    output = analyze(live_trial.slug, "--json", str(tmp_path / "r.json"), "--seed", "2")
    document = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert document["meta"]["slug"] == live_trial.slug
    assert document["meta"]["seed"] == 2
    assert document["meta"]["protocol_hash"] == live_trial.protocol_hash
    assert "synthetic" in output
