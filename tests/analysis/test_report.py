"""The HTML report (sections, self-contained, deterministic), its plots, and the report and
results pages (roles, download, JSON)."""

from __future__ import annotations

import importlib.util
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from analysis import plots
from analysis.analyze import run_analysis
from analysis.consort import consort_counts
from analysis.report import render_report, summary_sentences
from analysis.stats import kaplan_meier
from tests.analysis.test_analyze import study_frame, study_input
from trials.roles import EXPERIMENTER, GRADER, STATISTICIAN

SVG_TAG = "{http://www.w3.org/2000/svg}svg"


def parse_svg(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - SVG text this project generated


@pytest.fixture(scope="module")
def report_parts() -> tuple[Any, Any]:
    inp = study_input(
        meta={
            "title": "Test study <AI>",
            "trial_status": "live",
            "protocol_hash": "ab" * 32,
            "snapshot": {"taken_at": "2026-01-02T03:04:05+00:00", "rows": 50, "sha256": "cd" * 32},
        }
    )
    inp.consort = consort_counts(inp.frame, arm_order=["no_ai"], outcome_column="quiz_score")
    return inp, run_analysis(inp, seed=0)


@pytest.fixture(scope="module")
def html(report_parts: tuple[Any, Any]) -> str:
    inp, results = report_parts
    return render_report(inp, results, self_contained=True)


def svgs(text: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", text, flags=re.S)


def test_report_has_every_section_in_reading_order(html: str) -> None:
    headings = [
        "In short",
        "Read this first",
        "About this analysis",
        "Participant flow (CONSORT)",
        "Baseline characteristics",
        "Preregistered analyses",
        "Per-protocol sensitivity analyses",
        "Exploratory analyses",
        "Power at the current size",
        "Notes on assumptions",
    ]
    positions = [html.find(f">{heading}") for heading in headings]
    assert -1 not in positions, dict(zip(headings, positions, strict=True))
    assert positions == sorted(positions)


def test_report_leads_with_the_primary_result_and_the_deviations(html: str) -> None:
    summary = html[html.find("In short") : html.find('id="about"')]
    assert re.search(
        r"Primary outcome: Quiz score: the AI arm was [\d.]+ points (lower|higher) than the "
        r"No AI arm .*95% CI of the difference .* to .*Cohen&#x27;s d = .*Welch t-test p = ",
        summary,
    )
    assert "interim look" in summary  # the trial is live
    assert "ab" * 32 in html
    assert "cd" * 32 in html
    for package in ("python", "django", "numpy", "scipy", "statsmodels", "pandas", "matplotlib"):
        assert f"{package} " in html
    assert "Test study &lt;AI&gt;" in html  # escaped, not markup


def test_report_explains_assumptions(html: str) -> None:
    for phrase in ("Welch vs Student", "right-censored", "Proportional hazards", "Holm"):
        assert phrase in html
    assert "t-test on censored times (biased, for comparison)" in html


def test_preregistered_and_exploratory_results_are_in_separate_sections(html: str) -> None:
    preregistered = html[html.find('id="preregistered"') : html.find('id="per-protocol"')]
    exploratory = html[html.find('id="exploratory"') : html.find('id="power"')]
    assert "Welch t-test" in preregistered
    assert "interaction" not in preregistered
    assert "interaction" in exploratory
    assert "t-test on censored times" in exploratory
    assert "t-test on censored times" not in preregistered


def test_self_contained_file_loads_nothing_from_elsewhere(html: str) -> None:
    assert "<link" not in html
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html
    assert "url(http" not in html
    assert "?download=1" not in html  # no links back into the site


def test_every_figure_is_well_formed_svg_and_the_report_is_deterministic(
    html: str, report_parts: tuple[Any, Any]
) -> None:
    figures = svgs(html)
    assert len(figures) >= 5  # CONSORT, scores, KM, categories, scatter, per-protocol ones
    for figure in figures:
        assert parse_svg(figure).tag == SVG_TAG
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "element ids collide between figures"
    inp, results = report_parts
    assert render_report(inp, results, self_contained=True) == html


def test_web_page_shows_links_and_the_file_does_not(report_parts: tuple[Any, Any]) -> None:
    inp, results = report_parts
    page = render_report(
        inp, results, self_contained=False, links=[("Results as JSON", "/x/results.json")]
    )
    assert 'href="/x/results.json"' in page


def test_baseline_table_has_counts_and_means_by_arm(html: str) -> None:
    baseline = html[html.find('id="baseline"') : html.find('id="preregistered"')]
    assert "years, n (%)" in baseline
    assert "warmup time min, mean (SD)" in baseline
    rows = re.findall(r"<td>\s*(1-3|4-6|7\+)\s*</td>", baseline)
    assert rows == ["1-3", "4-6", "7+"]


def test_plots_are_deterministic_svg_and_rasterize_large_samples() -> None:
    rng = np.random.default_rng(0)
    small = {"a": rng.normal(10, 2, 30), "b": rng.normal(12, 2, 30)}
    intervals = {"a": (10.0, 9.0, 11.0), "b": (12.0, 11.0, 13.0)}
    first = plots.scores_by_arm(small, {}, intervals, ylabel="points", seed=1)
    assert first == plots.scores_by_arm(small, {}, intervals, ylabel="points", seed=1)
    assert parse_svg(first).tag == SVG_TAG
    assert "<image" not in first
    large = {"a": rng.normal(10, 2, 3000), "b": rng.normal(12, 2, 3000)}
    big = plots.scores_by_arm(large, {}, intervals, ylabel="points", seed=1)
    assert "data:image/png;base64" in big
    assert len(big) < 400_000


def test_completion_curves_mark_censored_participants() -> None:
    times = np.array([5.0, 8.0, 12.0, 35.0, 35.0])
    finished = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    curve = kaplan_meier(times, finished, arm="a")
    svg = plots.completion_curves(
        {"a": curve}, {"a": (times, finished)}, {"a": "Arm A"}, limit=35.0
    )
    root = parse_svg(svg)
    assert root.tag == SVG_TAG
    assert "Arm A (3 of 5 finished)" in svg
    assert "Share finished" in svg


# --------------------------------------------------------------------------------------------
# The pages
# --------------------------------------------------------------------------------------------

needs_datasets = pytest.mark.skipif(
    importlib.util.find_spec("analysis.datasets") is None,
    reason="analysis.datasets (the trial's analysis input) is not written yet",
)


def login(role: str, name: str) -> Client:
    user = User.objects.create_user(name, password="pw-12345-xyz")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def trial_with_data(live_trial: Any) -> Any:
    from analysis import synthetic

    synthetic.synthesize_trial(live_trial, participants=40, seed=3, events_per_participant=20)
    return live_trial


@pytest.mark.django_db
def test_report_needs_login_and_an_analyst_role(live_trial: Any) -> None:
    url = f"/analysis/{live_trial.slug}/report/"
    response = Client().get(url)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
    assert login(GRADER, "gina").get(url).status_code == 403
    assert login(GRADER, "gus").get(f"/analysis/{live_trial.slug}/results.json").status_code == 403


@pytest.mark.django_db
def test_unknown_trial_is_404() -> None:
    assert login(STATISTICIAN, "stan").get("/analysis/nope/report/").status_code == 404


@needs_datasets
@pytest.mark.django_db
def test_report_page_download_and_json(trial_with_data: Any) -> None:
    client = login(STATISTICIAN, "stan")
    slug = trial_with_data.slug
    page = client.get(f"/analysis/{slug}/report/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Participant flow (CONSORT)" in text
    assert "Results as JSON" in text
    download = client.get(f"/analysis/{slug}/report/?download=1")
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="{slug}-v1-report.html"'
    assert "<link" not in download.content.decode()


@needs_datasets
@pytest.mark.django_db
def test_results_json_for_an_experimenter(trial_with_data: Any) -> None:
    data = login(EXPERIMENTER, "eve").get(f"/analysis/{trial_with_data.slug}/results.json")
    assert data.status_code == 200
    assert data["Content-Type"] == "application/json"
    document = json.loads(data.content)
    assert document["meta"]["slug"] == trial_with_data.slug
    assert "synthetic_data" in {d["code"] for d in document["deviations"]}
    assert any(e["method"] == "welch_t" for e in document["results"])


@needs_datasets
@pytest.mark.django_db
def test_a_trial_nobody_entered_says_why_there_is_no_report(live_trial: Any) -> None:
    response = login(STATISTICIAN, "stan").get(f"/analysis/{live_trial.slug}/report/")
    assert response.status_code == 409
    assert "no participants yet" in response.content.decode()


@needs_datasets
@pytest.mark.django_db
def test_a_trial_without_allocations_still_shows_its_flow(live_trial: Any) -> None:
    from trials.models import Participant

    Participant.objects.create(trial=live_trial, status=Participant.Status.DECLINED)
    Participant.objects.create(trial=live_trial, status=Participant.Status.CONSENTING)
    client = login(STATISTICIAN, "stan")
    page = client.get(f"/analysis/{live_trial.slug}/report/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Participant flow (CONSORT)" in text
    assert "comparisons need participants in at least two arms" in text
    data = client.get(f"/analysis/{live_trial.slug}/results.json")
    assert data.status_code == 200
    document = json.loads(data.content)
    assert document["results"] == []
    assert any("none computed yet" in p["message"] for p in document["problems"])
    assert document["consort"]["assessed"] == 2


def one_arm_input() -> Any:
    frame = study_frame()
    frame.loc[frame["arm"] == "ai", ["arm", "itt"]] = ["", False]  # nobody in AI yet
    inp = study_input(frame, meta={"trial_status": "live", "title": "Early look"})
    inp.consort = consort_counts(inp.frame, arm_order=["no_ai"], outcome_column="quiz_score")
    return inp


def test_a_report_with_one_arm_shows_flow_baseline_and_why_nothing_is_compared() -> None:
    inp = one_arm_input()
    results = run_analysis(inp, seed=0)
    html = render_report(inp, results, self_contained=True)
    notice = (
        "comparisons need participants in at least two arms including the reference arm "
        "&#x27;no_ai&#x27;; none computed yet (allocated so far: no_ai 24)"
    )
    summary = html[html.find("In short") : html.find('id="about"')]
    assert notice in summary
    assert "No preregistered outcome could be analysed" not in summary
    flow = html[html.find('id="flow"') : html.find('id="baseline"')]
    assert parse_svg(svgs(flow)[0]).tag == SVG_TAG
    assert "Allocated to no_ai (n = 24)" in flow  # the frame has no arm_label column
    assert "Analysed (primary outcome, ITT), n = 24" in flow
    baseline = html[html.find('id="baseline"') : html.find('id="preregistered"')]
    assert "No AI (n = 24)" in baseline
    assert "warmup time min, mean (SD)" in baseline
    preregistered = html[html.find('id="preregistered"') : html.find('id="exploratory"')]
    assert notice in preregistered
    document = json.loads(json.dumps(results.to_json(), allow_nan=False))
    assert document["results"] == []
    assert [p["method"] for p in document["problems"]] == ["comparisons"]


def three_arm_results() -> Any:
    frame = study_frame(n_per_arm=30)
    chat = frame.index[(frame["arm"] == "ai")][::2]
    frame.loc[chat, "arm"] = "ai_chat"
    frame.loc[frame["arm"] == "ai", "arm"] = "ai_complete"
    frame.loc[chat, "quiz_score"] += 3
    labels = {"ai_chat": "AI chat", "ai_complete": "AI autocomplete", "no_ai": "No AI"}
    return run_analysis(study_input(frame, arm_labels=labels), seed=0)


def test_three_arm_summary_names_each_arm() -> None:
    results = three_arm_results()
    sentences = summary_sentences(results)
    primary = next(s for s in sentences if s.startswith("Primary outcome"))
    assert re.search(
        r"Quiz score, difference from the No AI arm .*: AI chat vs No AI: "
        r"\u2212?[\d.]+ points \(95% CI .*Holm p .*\); "
        r"AI autocomplete vs No AI: \u2212?[\d.]+ points",
        primary,
    ), primary
    categories = next(s for s in sentences if s.startswith("Quiz score by category"))
    assert "AI autocomplete vs No AI: debugging" in categories
    assert "AI chat vs No AI: debugging" in categories
    assert categories.count("debugging") == 2
    time = next(s for s in sentences if s.startswith("Completion time"))
    assert "AI autocomplete vs No AI" in time and "AI chat vs No AI" in time
    assert "(No AI)" in time  # the reference arm's median too


def test_two_arm_summary_wording_is_unchanged(report_parts: tuple[Any, Any]) -> None:
    _, results = report_parts
    sentences = summary_sentences(results)
    categories = next(s for s in sentences if s.startswith("Quiz score by category"))
    assert categories.startswith("Quiz score by category, difference AI vs No AI in ")
    assert " vs No AI: " not in categories
    time = next(s for s in sentences if s.startswith("Completion time"))
    assert "hazard ratio of finishing AI vs No AI " in time
