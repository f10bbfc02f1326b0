"""What staff read in the report and the API docs (issue 12): notes in plain words, counts of
attention-check failures that leave out people who never reached one, the baseline table in
the questionnaire's words and order, plots that use the page's width, code in the API docs."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from analysis import plots
from analysis.analyze import run_analysis
from analysis.consort import consort_counts, consort_table
from analysis.report import render_report, report_context
from tests.analysis.test_analyze import study_frame, study_input
from trials.roles import STATISTICIAN

INTERNAL = ("__arm__", "not found in column", "two or more observations", "`data`", "r_matrix")


def test_an_empty_per_protocol_arm_is_one_plain_note_not_internal_errors() -> None:
    frame = study_frame(n_per_arm=3)
    frame.loc[frame["arm"] == "no_ai", "per_protocol"] = False
    inp = study_input(frame)
    results = run_analysis(inp, seed=0)
    notes = report_context(inp, results, self_contained=True)["problems"]
    assert notes[0].startswith("Per-protocol n = 0 in No AI, 3 in AI: each arm needs at least 2")
    html = render_report(inp, results, self_contained=True)
    first = html[html.find("Read this first") : html.find('id="about"')]
    assert "Per-protocol n = 0 in No AI" in first
    for text in INTERNAL:
        assert text not in first, text
    # The exact messages stay in results.json for whoever needs them.
    assert any("not found" in p.message for p in results.problems)


def test_one_participant_in_an_arm_is_said_in_words() -> None:
    frame = study_frame(n_per_arm=3)
    drop = frame.index[frame["arm"] == "ai"][1:3]
    inp = study_input(frame.drop(index=drop))
    results = run_analysis(inp, seed=0)
    notes = report_context(inp, results, self_contained=True)["problems"]
    assert notes, "some methods cannot run with one participant in an arm"
    assert any("n = 3 in No AI, 1 in AI" in note for note in notes)
    for note in notes:
        for text in INTERNAL:
            assert text not in note, note


def test_people_who_never_reached_the_quiz_are_not_counted_as_failing_the_attention_check():
    frame = pd.DataFrame(
        {
            "arm": ["ai", "ai", "ai", "no_ai", "no_ai"],
            "status": ["completed", "withdrawn", "completed", "completed", "completed"],
            "itt": True,
            "per_protocol": [False, False, False, True, False],
            "per_protocol_exclusions": [
                "passed_attention_check",  # answered and failed
                "completed_quiz; passed_attention_check",  # left before the quiz
                "passed_attention_check",  # no quiz answers, the plan has no completed_quiz
                "",
                "no_noncompliance_flag",
            ],
            "attention_passed": [False, None, None, True, True],
        }
    )
    counts = consort_counts(frame, arm_order=["no_ai"])
    ai = next(a for a in counts["arms"] if a["arm"] == "ai")
    assert ai["excluded_pp_reasons"] == {
        "attention_check_not_reached": 1,
        "completed_quiz": 1,
        "passed_attention_check": 1,
    }
    rows = {row["item"].strip(): row for row in consort_table(counts)}
    assert rows["failed the attention check"]["arms"][1] == 1


def test_baseline_table_shows_the_questionnaires_labels_in_its_order() -> None:
    frame = study_frame()
    frame.loc[frame.index[:5], "years"] = "lt1"
    inp = study_input(
        frame,
        baseline_choices={
            "years": [
                ("lt1", "Less than 1 year"),
                ("1-3", "1\u20133 years"),
                ("4-6", "4\u20136 years"),
                ("7+", "7 years or more"),
            ]
        },
    )
    html = render_report(inp, run_analysis(inp, seed=0), self_contained=True)
    baseline = html[html.find('id="baseline"') : html.find('id="preregistered"')]
    order = [baseline.find(label) for label in ("Less than 1 year", "1\u20133 years", "7 years or")]
    assert -1 not in order and order == sorted(order)
    assert ">lt1<" not in baseline and "    lt1" not in baseline


def test_plots_scale_to_the_page_and_wrap_long_axis_labels() -> None:
    rng_time = pd.Series([5.0, 9.0, 12.0, 30.0]).to_numpy()
    svg = plots.score_against_time(
        {"no_ai": (rng_time, rng_time, rng_time * 0 + 1), "ai": (rng_time, rng_time, rng_time)},
        {"no_ai": "No AI", "ai": "AI assistant"},
        xlabel="Minutes to pass both Trio tasks, censored at the time limit (minutes)",
        ylabel="Total quiz points",
    )
    opening = re.match(r"<svg[^>]*>", svg)
    assert opening and 'width="100%"' in opening.group(0) and "pt" not in opening.group(0)
    texts = [t for t in re.findall(r"<text[^>]*>([^<]*)", svg) if t.strip()]
    assert "Minutes to pass both Trio tasks, censored" in texts
    assert "at the time limit (minutes)" in texts
    html = render_report(
        *(lambda i: (i, run_analysis(i, seed=0)))(study_input()), self_contained=True
    )
    assert ".plots svg { flex: 1 1 460px; width: 100%;" in html


@pytest.mark.django_db
def test_api_docs_show_code_not_backticks() -> None:
    user = User.objects.create_user("stan", password="pw-12345-xyz")
    user.groups.add(Group.objects.get_or_create(name=STATISTICIAN)[0])
    client = Client()
    client.force_login(user)
    page = client.get("/api/docs/").content.decode()
    assert "`" not in page
    assert "<code>version</code>" in page
    assert "<code>Authorization: Token &lt;key&gt;</code>" in page
