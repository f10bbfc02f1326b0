"""CONSORT counts on a hand-made participants frame with every category, the table and the
flow diagram (well-formed SVG)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd

from analysis.consort import consort_counts, consort_svg, consort_table

SVG = "{http://www.w3.org/2000/svg}"


def parse_svg(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - SVG text this project generated


COLUMNS = [
    "participant", "status", "eligible", "screen_out_reasons", "arm", "arm_label", "allocated",
    "received_intervention", "lost_reason", "completed_trial", "itt", "per_protocol",
    "per_protocol_exclusions", "quiz_score",
]  # fmt: skip

ROWS = [
    # never allocated: declined, screened out (two with reasons, one with two reasons), other
    ("d1", "declined", None, "", "", "", False, False, "", False, False, False, "", None),
    ("d2", "declined", None, "", "", "", False, False, "", False, False, False, "", None),
    ("s1", "screened_out", False, "used trio", "", "", False, False, "", False, False, False, "",
     None),
    ("s2", "screened_out", False, "used trio; python < 1 year", "", "", False, False, "", False,
     False, False, "", None),
    ("c1", "consenting", None, "", "", "", False, False, "", False, False, False, "", None),
    ("c2", "screening", True, "", "", "", False, False, "", False, False, False, "", None),
    # AI arm: 4 allocated; one never reached the task; one withdrew later; two completed,
    # one of them failed the attention check (so not per protocol)
    ("a1", "completed", True, "", "ai", "AI", True, True, "", True, True, True, "", 14.0),
    ("a2", "completed", True, "", "ai", "AI", True, True, "", True, True, False,
     "passed_attention_check", 9.0),
    ("a3", "withdrawn", True, "", "ai", "AI", True, True, "withdrawn", False, True, False,
     "completed_quiz", None),
    ("a4", "withdrawn", True, "", "ai", "AI", True, False, "left at stage warmup", False, True,
     False, "completed_quiz; passed_attention_check", None),
    # no-AI arm: 3 allocated; one still active in a live trial
    ("n1", "completed", True, "", "no_ai", "No AI", True, True, "", True, True, True, "", 18.0),
    ("n2", "completed", True, "", "no_ai", "No AI", True, True, "", True, True, True, "", 20.0),
    ("n3", "active", True, "", "no_ai", "No AI", True, True, "", False, True, False,
     "completed_quiz", None),
]  # fmt: skip


def frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=COLUMNS)


def test_enrollment_counts_split_exclusions_by_reason() -> None:
    counts = consort_counts(frame(), arm_order=["no_ai"])
    assert counts["assessed"] == 13
    assert counts["randomized"] == 7
    excluded = counts["excluded"]
    assert excluded["total"] == 6
    assert excluded["declined"] == 2
    assert excluded["not_eligible"] == 2
    # A person with two reasons counts under each.
    assert excluded["not_eligible_reasons"] == {"used trio": 2, "python < 1 year": 1}
    assert excluded["other"] == 2
    assert excluded["other_reasons"] == {
        "left or still at consent": 1,
        "left or still at screening": 1,
    }


def test_arm_counts_follow_allocation_and_reasons() -> None:
    counts = consort_counts(frame(), arm_order=["no_ai"], outcome_column="quiz_score")
    no_ai, ai = counts["arms"]  # arm_order puts the reference first
    assert (no_ai["arm"], no_ai["label"], ai["arm"], ai["label"]) == ("no_ai", "No AI", "ai", "AI")
    assert ai["allocated"] == 4
    assert ai["received"] == 3
    assert ai["not_received"] == 1
    assert ai["not_received_reasons"] == {"left at stage warmup": 1}
    assert ai["lost"] == 2
    assert ai["lost_reasons"] == {"left at stage warmup": 1, "withdrawn": 1}
    assert ai["analysed_itt"] == 4
    assert ai["outcome_missing"] == 2
    assert ai["analysed_primary"] == 2  # what the primary analysis used
    assert ai["analysed_pp"] == 1
    assert ai["excluded_pp"] == 3
    assert ai["excluded_pp_reasons"] == {"completed_quiz": 2, "passed_attention_check": 2}
    assert no_ai["lost_reasons"] == {"still in progress": 1}
    assert no_ai["analysed_pp"] == 2


def test_counts_from_a_frame_with_only_an_arm_column() -> None:
    data = pd.DataFrame({"arm": ["a", "b", "b", "", None]})
    counts = consort_counts(data)
    assert counts["assessed"] == 5
    assert counts["randomized"] == 3
    assert counts["excluded"]["other"] == 2
    assert [a["allocated"] for a in counts["arms"]] == [1, 2]
    assert [a["analysed_pp"] for a in counts["arms"]] == [1, 2]


def test_table_rows_add_up() -> None:
    counts = consort_counts(frame(), arm_order=["no_ai"], outcome_column="quiz_score")
    rows = {row["item"].strip(): row for row in consort_table(counts)}
    assert rows["Assessed for eligibility"]["total"] == 13
    assert rows["Allocated"]["arms"] == [3, 4]
    assert rows["Allocated"]["total"] == 7
    assert rows["Lost to follow-up / discontinued"]["arms"] == [1, 2]
    assert rows["withdrawn"]["arms"] == [0, 1]
    # CONSORT wants the number analysed for the primary outcome, not everyone allocated.
    assert rows["Analysed (primary outcome, ITT)"]["arms"] == [2, 2]
    assert rows["Analysed (primary outcome, ITT)"]["total"] == 4
    assert rows["Excluded from analysis: primary outcome missing"]["arms"] == [1, 2]
    assert "Analysed, intention to treat" not in rows
    assert rows["Analysed, per protocol"]["total"] == 3
    # Per-protocol exclusions in words, not rule names.
    assert rows["did not complete the quiz"]["arms"] == [1, 2]
    assert rows["failed the attention check"]["arms"] == [0, 2]
    assert "completed_quiz" not in rows and "passed_attention_check" not in rows


def test_table_without_an_outcome_column_counts_everyone_allocated_as_itt() -> None:
    rows = {row["item"].strip(): row for row in consort_table(consort_counts(frame()))}
    assert rows["Analysed, intention to treat"]["arms"] == [4, 3]
    assert "Analysed (primary outcome, ITT)" not in rows


def test_unknown_per_protocol_rules_keep_their_names() -> None:
    data = frame()
    data.loc[data["participant"] == "a2", "per_protocol_exclusions"] = (
        "no_noncompliance_flag; custom_rule"
    )
    counts = consort_counts(data, arm_order=["no_ai"])
    rows = {row["item"].strip(): row for row in consort_table(counts)}
    assert rows["non-compliance flag (e.g. outside help)"]["arms"] == [0, 1]
    assert rows["custom_rule"]["arms"] == [0, 1]
    texts = [t.text or "" for t in parse_svg(consort_svg(counts)).iter(f"{SVG}text")]
    assert any("non-compliance flag (e.g. outside help) (n=1)" in t for t in texts)


def test_flow_diagram_is_well_formed_svg_with_every_box() -> None:
    counts = consort_counts(frame(), arm_order=["no_ai"])
    svg = consort_svg(counts)
    root = parse_svg(svg)
    assert root.tag == f"{SVG}svg"
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    for label in ("Enrollment", "Allocation", "Follow-up", "Analysis"):
        assert label in texts
    assert "Assessed for eligibility" in texts
    assert "Allocated to No AI (n = 3)" in texts
    assert "Allocated to AI (n = 4)" in texts
    assert any("used trio (n=2)" in t for t in texts)
    assert any("failed the attention check (n=2)" in t for t in texts)
    assert not any("passed_attention_check" in t for t in texts)
    # Every box is at least as wide as the diagram needs, and inside the canvas.
    width = float(root.get("width", "0"))
    for rect in root.iter(f"{SVG}rect"):
        assert float(rect.get("x", "0")) + float(rect.get("width", "0")) <= width + 0.01


def test_flow_diagram_shows_how_many_the_primary_analysis_used() -> None:
    counts = consort_counts(frame(), arm_order=["no_ai"], outcome_column="quiz_score")
    texts = [t.text or "" for t in parse_svg(consort_svg(counts)).iter(f"{SVG}text")]
    assert texts.count("Analysed (primary outcome, ITT), n = 2") == 2  # both arms
    assert "  Excluded from analysis (n = 2)" in texts
    assert "   • primary outcome missing (n=1)" in texts
    assert not any(t.startswith("Analysed, ITT") for t in texts)


def test_labels_are_escaped_in_the_svg() -> None:
    data = frame()
    data.loc[data["arm"] == "ai", "arm_label"] = "AI <chat> & search"
    svg = consort_svg(consort_counts(data))
    parse_svg(svg)  # would fail on a raw "<" or "&"
    assert "AI &lt;chat&gt; &amp; search" in svg
