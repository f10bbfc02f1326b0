"""CSV + mapping file -> AnalysisInput, and every kind of bad input named by file, field and
line (TOML) or column and line (CSV)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.mapping import MappingError, csv_analysis_input, load_mapping

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

MAPPING = """\
title = "Small study"

[data]
filter = "include == 1"
baseline = ["years"]
per_protocol = "pp"

[arms]
column = "group"
reference = "control"
labels = { ai = "AI", control = "Control" }

[outcomes.quiz_score]
column = "score"
max_points = 20

[outcomes.completion_time]
type = "time"
column = "minutes"
limit = 30
censored = "at_limit"

[outcomes.category_scores]
type = "categories"
debugging = { column = "debug", max_points = 10 }
reading = "reading"

[covariates]
years = "years"

[plan]
primary = "quiz_score"
secondary = ["completion_time", { outcome = "category_scores", description = "By category" }]
covariates = ["years"]
"""

CSV = """\
id,group,include,score,minutes,debug,reading,years,pp
1,ai,1,12,20.5,5,4,3,1
2,control,1,15,30,6,7,5,yes
3,ai,1,9,30,3,4,2,0
4,control,1,16,12.0,7,6,8,true
5,ai,0,2,3,1,1,1,1
6,control,1,18,25,8,6,,1
7,ai,1,11,18,4,5,4,1
8,control,1,14,29,6,5,6,0
"""


def write(tmp_path: Path, mapping: str = MAPPING, csv: str = CSV) -> tuple[Path, Path]:
    (tmp_path / "mapping.toml").write_text(mapping, encoding="utf-8")
    (tmp_path / "data.csv").write_text(csv, encoding="utf-8")
    return tmp_path / "mapping.toml", tmp_path / "data.csv"


def error(tmp_path: Path, mapping: str = MAPPING, csv: str = CSV) -> str:
    mapping_path, csv_path = write(tmp_path, mapping, csv)
    with pytest.raises(MappingError) as caught:
        csv_analysis_input(csv_path, load_mapping(mapping_path))
    return str(caught.value)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_csv_becomes_an_analysis_input(tmp_path: Path) -> None:
    mapping_path, csv_path = write(tmp_path)
    inp = csv_analysis_input(csv_path, load_mapping(mapping_path))
    assert len(inp.frame) == 7  # row 5 is filtered out
    assert inp.reference_arm == "control"
    assert inp.arm_labels == {"ai": "AI", "control": "Control"}
    assert inp.frame["score"].tolist() == [12, 15, 9, 16, 18, 11, 14]
    assert np.isnan(inp.frame["years"].iloc[4])  # blank is missing
    assert inp.frame["per_protocol"].tolist() == [True, True, False, True, True, True, False]
    time = inp.outcomes["completion_time"]
    assert (time.kind, time.limit) == ("time", 30)
    assert inp.frame[time.censored_column].tolist() == [
        False, True, True, False, False, False, False,
    ]  # fmt: skip
    categories = inp.outcomes["category_scores"].categories
    assert categories["debugging"].max_points == 10
    assert categories["reading"].column == "reading"
    assert inp.plan["primary"] == {"outcome": "quiz_score"}
    assert inp.plan["secondary"][1]["description"] == "By category"
    assert inp.covariates == {"years": "years"}
    assert inp.meta["source"] == "csv"
    assert len(inp.meta["snapshot"]["sha256"]) == 64
    assert inp.consort is not None
    assert inp.consort["assessed"] == 8
    assert inp.consort["excluded"]["not_eligible_reasons"] == {
        "excluded by the row filter (include == 1)": 1
    }
    assert [a["analysed_pp"] for a in inp.consort["arms"]] == [3, 2]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ('censored = { column = "timed_out" }', [False, True, True, False, False, False, False]),
        (
            'censored = { completed_column = "done" }',
            [False, True, False, False, False, False, False],
        ),
        ('censored = "none"', [False] * 7),
    ],
)
def test_censoring_rules(tmp_path: Path, rule: str, expected: list[bool]) -> None:
    csv = CSV.replace("years,pp", "years,pp,timed_out,done")
    flags = ["0,1", "1,0", "1,0", "0,1", "0,1", "0,1", "0,1", "0,1"]
    lines = csv.splitlines()
    csv = "\n".join([lines[0]] + [f"{row},{f}" for row, f in zip(lines[1:], flags, strict=True)])
    mapping = MAPPING.replace('censored = "at_limit"', rule)
    if "done" in rule:  # row 3 finished after all: tells the two columns apart
        csv = csv.replace("3,ai,1,9,30,3,4,2,0,1,0", "3,ai,1,9,30,3,4,2,0,1,1")
    mapping_path, csv_path = write(tmp_path, mapping, csv + "\n")
    inp = csv_analysis_input(csv_path, load_mapping(mapping_path))
    column = inp.outcomes["completion_time"].censored_column
    assert inp.frame[column].tolist() == expected


def test_table_filter_and_string_arms(tmp_path: Path) -> None:
    mapping = MAPPING.replace(
        'filter = "include == 1"', 'filter = { column = "group", in = ["ai", "control"] }'
    )
    mapping_path, csv_path = write(tmp_path, mapping)
    assert len(csv_analysis_input(csv_path, load_mapping(mapping_path)).frame) == 8


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    broken = MAPPING.replace("max_points = 20", "max_points = = 20")
    message = error(tmp_path, broken)
    assert message.startswith(f"{tmp_path / 'mapping.toml'}:{line_of(broken, 'max_points = =')}:")
    assert "invalid TOML" in message


def test_wrong_type_names_file_line_and_field(tmp_path: Path) -> None:
    bad = MAPPING.replace("max_points = 20", 'max_points = "twenty"')
    message = error(tmp_path, bad)
    line = line_of(bad, '"twenty"')
    assert message == (
        f"{tmp_path / 'mapping.toml'}:{line}: outcomes.quiz_score.max_points: "
        "must be a positive number"
    )


def test_every_mapping_problem_is_listed(tmp_path: Path) -> None:
    bad = MAPPING.replace('reference = "control"', "referense = 1").replace(
        'primary = "quiz_score"', 'primary = "quiz"'
    )
    bad = bad.replace("debugging = { column", "debugging = { colum")
    lines = error(tmp_path, bad).splitlines()
    path = tmp_path / "mapping.toml"
    assert f"{path}:{line_of(bad, 'referense')}: arms.referense: unknown key" in lines[0]
    assert any(
        f"{path}:{line_of(bad, 'colum =')}: outcomes.category_scores.debugging.colum: unknown key"
        in line
        for line in lines
    )
    assert any("arms.reference: required" in line for line in lines)
    assert any(
        re.match(rf"{re.escape(str(path))}:\d+: plan.primary: outcome 'quiz' is not defined", line)
        for line in lines
    )


def test_unsafe_or_unreadable_filter_is_refused(tmp_path: Path) -> None:
    bad = MAPPING.replace('"include == 1"', "\"__import__('os').system('true')\"")
    message = error(tmp_path, bad)
    assert f":{line_of(bad, '__import__')}: data.filter: cannot read" in message


def test_missing_csv_column_lists_the_columns(tmp_path: Path) -> None:
    bad = MAPPING.replace('column = "group"', 'column = "arm"')
    message = error(tmp_path, bad)
    line = line_of(bad, 'column = "arm"')
    assert message == (
        f"{tmp_path / 'mapping.toml'}:{line}: arms.column: "
        f"column 'arm' not found in {tmp_path / 'data.csv'} "
        "(columns: id, group, include, score, minutes, debug, reading, years, pp)"
    )


def test_non_numeric_value_names_the_csv_line_and_column(tmp_path: Path) -> None:
    csv = CSV.replace("4,control,1,16,12.0", "4,control,1,sixteen,12.0")
    message = error(tmp_path, csv=csv)
    assert message == f"{tmp_path / 'data.csv'}:5: column 'score': 'sixteen' is not a number"


def test_bad_flag_value_names_the_csv_line(tmp_path: Path) -> None:
    csv = CSV.replace("7,6,8,true", "7,6,8,maybe")
    assert error(tmp_path, csv=csv) == (
        f"{tmp_path / 'data.csv'}:5: column 'pp': 'maybe' is not true/false, 1/0 or yes/no"
    )


def test_reference_arm_must_be_in_the_data(tmp_path: Path) -> None:
    bad = MAPPING.replace('reference = "control"', 'reference = "placebo"')
    message = error(tmp_path, bad)
    assert "arms.reference: reference arm 'placebo' not found in column 'group'" in message
    assert "(values: ai, control)" in message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"nowhere\.toml: file not found"):
        load_mapping(tmp_path / "nowhere.toml")
    mapping_path, _ = write(tmp_path)
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(MappingError, match=r"empty\.csv: the file is empty"):
        csv_analysis_input(tmp_path / "empty.csv", load_mapping(mapping_path))
    (tmp_path / "latin.csv").write_bytes("group,score\nk\xe4se,1\n".encode("latin-1"))
    with pytest.raises(MappingError, match=r"latin\.csv: not UTF-8"):
        csv_analysis_input(tmp_path / "latin.csv", load_mapping(mapping_path))


def test_the_shipped_example_is_valid_and_matches_its_generator() -> None:
    mapping = load_mapping(EXAMPLES / "external_mapping.toml")
    inp = csv_analysis_input(EXAMPLES / "external_study.csv", mapping)
    assert len(inp.frame) == 52
    assert inp.frame["arm"].value_counts().to_dict() == {"ai": 26, "control": 26}
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_external_example", EXAMPLES / "make_external_example.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    regenerated = pd.DataFrame(module.rows()).astype(str)
    shipped = pd.read_csv(EXAMPLES / "external_study.csv", dtype=str)
    pd.testing.assert_frame_equal(regenerated, shipped)


def test_docstring_format_example_parses(tmp_path: Path) -> None:
    import analysis.mapping

    doc = analysis.mapping.__doc__ or ""
    block = doc[doc.index('title = "..."') : doc.index("\n\nNo expression")]
    text = textwrap.dedent("    " + block)
    (tmp_path / "doc.toml").write_text(text, encoding="utf-8")
    mapping = load_mapping(tmp_path / "doc.toml")
    assert mapping.reference_arm == "control"
    assert mapping.row_filter is not None and mapping.row_filter.op == "=="


# --------------------------------------------------------------------------------------------
# Impossible values: points outside 0..max, negative or late times, duplicated ids
# --------------------------------------------------------------------------------------------


def csv_lines(tmp_path: Path, message: str) -> list[str]:
    """The message's lines, with the CSV path shortened to data.csv."""
    return message.replace(str(tmp_path / "data.csv"), "data.csv").splitlines()


def with_flags(csv: str, header: str, flags: list[str]) -> str:
    lines = csv.splitlines()
    rows = [f"{row},{flag}" for row, flag in zip(lines[1:], flags, strict=True)]
    return "\n".join([f"{lines[0]},{header}", *rows]) + "\n"


def test_points_outside_zero_to_max_are_listed_together(tmp_path: Path) -> None:
    csv = (
        CSV.replace("1,ai,1,12,", "1,ai,1,21,")  # above max_points = 20
        .replace("3,ai,1,9,30,3,", "3,ai,1,-1,30,11,")  # negative score, debugging above 10
        .replace("8,control,1,14,29,6,", "8,control,1,14,29,-2,")  # negative category
    )
    assert csv_lines(tmp_path, error(tmp_path, csv=csv)) == [
        "data.csv:2: column 'score': '21' is above outcomes.quiz_score.max_points = 20",
        "data.csv:4: column 'score': '-1' is negative (points are >= 0)",
        "data.csv:4: column 'debug': '11' is above "
        "outcomes.category_scores.debugging.max_points = 10",
        "data.csv:9: column 'debug': '-2' is negative (points are >= 0)",
    ]


def test_points_at_the_bounds_and_without_a_max_are_accepted(tmp_path: Path) -> None:
    csv = CSV.replace("1,ai,1,12,20.5,5,4,", "1,ai,1,20,20.5,10,-3,")  # reading has no max
    csv = csv.replace("2,control,1,15,", "2,control,1,0,")
    mapping_path, csv_path = write(tmp_path, csv=csv)
    inp = csv_analysis_input(csv_path, load_mapping(mapping_path))
    assert inp.frame["score"].iloc[:2].tolist() == [20, 0]


def test_points_above_the_rows_max_column(tmp_path: Path) -> None:
    mapping = MAPPING.replace("max_points = 20", 'max_column = "out_of"')
    csv = with_flags(CSV, "out_of", ["20", "15", "8", "20", "1", "20", "20", "20"])
    assert csv_lines(tmp_path, error(tmp_path, mapping, csv)) == [
        "data.csv:4: column 'score': '9' is above the row's maximum in column 'out_of' ('8')"
    ]  # line 6 (2 of 1) is filtered out


def test_negative_time_is_an_error(tmp_path: Path) -> None:
    csv = CSV.replace("7,ai,1,11,18,", "7,ai,1,11,-5,")
    assert csv_lines(tmp_path, error(tmp_path, csv=csv)) == [
        "data.csv:8: column 'minutes': '-5' is negative (a time is >= 0)"
    ]


def test_time_above_the_limit_is_fine_when_censored_at_the_limit(tmp_path: Path) -> None:
    csv = CSV.replace("2,control,1,15,30,", "2,control,1,15,31.5,")
    mapping_path, csv_path = write(tmp_path, csv=csv)
    inp = csv_analysis_input(csv_path, load_mapping(mapping_path))
    assert bool(inp.frame[inp.outcomes["completion_time"].censored_column].iloc[1])


def test_finish_after_the_limit_is_an_error(tmp_path: Path) -> None:
    csv = CSV.replace("2,control,1,15,30,", "2,control,1,15,31.5,").replace(
        "8,control,1,14,29,", "8,control,1,14,40,"
    )
    # row 2 did not finish (fine); row 8 finished at 40 > 30; row 3's flag is blank (no time)
    csv = with_flags(csv, "done", ["1", "0", "", "1", "1", "1", "1", "1"])
    csv = csv.replace("3,ai,1,9,30,", "3,ai,1,9,45,")
    mapping = MAPPING.replace('censored = "at_limit"', 'censored = { completed_column = "done" }')
    assert csv_lines(tmp_path, error(tmp_path, mapping, csv)) == [
        "data.csv:9: column 'minutes': '40' is above outcomes.completion_time.limit = 30 but "
        "the row is not censored (column 'done' is '1'): a finish cannot come after the limit"
    ]
    no_censoring = MAPPING.replace('censored = "at_limit"', 'censored = "none"')
    message = error(tmp_path, no_censoring, CSV.replace("8,control,1,14,29,", "8,control,1,14,40,"))
    assert csv_lines(tmp_path, message) == [
        "data.csv:9: column 'minutes': '40' is above outcomes.completion_time.limit = 30, and "
        'with censored = "none" every time is a finish: a finish cannot come after the limit'
    ]


def test_duplicate_participant_ids_are_listed_with_their_lines(tmp_path: Path) -> None:
    mapping = MAPPING.replace("[data]\n", '[data]\nparticipant = "id"\n')
    csv = CSV.replace("\n4,control", "\n1,control").replace("\n7,ai", "\n1,ai")
    csv = csv.replace("\n8,control", "\n6,control")
    csv = csv.replace("\n5,ai,0", "\n2,ai,0")  # filtered out: not a duplicate
    assert csv_lines(tmp_path, error(tmp_path, mapping, csv)) == [
        "data.csv:2: column 'id' (data.participant): duplicate participant ids: "
        "'1' on lines 2, 5, 8; '6' on lines 7, 9"
    ]
    mapping_path, csv_path = write(tmp_path, mapping, CSV.replace("\n5,ai,0", "\n2,ai,0"))
    inp = csv_analysis_input(csv_path, load_mapping(mapping_path))
    assert inp.frame["participant"].tolist() == ["1", "2", "3", "4", "6", "7", "8"]


def test_rows_excluded_by_the_filter_are_not_checked(tmp_path: Path) -> None:
    csv = CSV.replace("5,ai,0,2,3,1,", "5,ai,0,99,-3,50,")
    mapping_path, csv_path = write(tmp_path, csv=csv)
    assert len(csv_analysis_input(csv_path, load_mapping(mapping_path)).frame) == 7


def test_at_most_ten_problems_are_listed(tmp_path: Path) -> None:
    lines = CSV.splitlines()
    arms = ["ai", "control"]
    rows = [f"{i},{arms[i % 2]},1,25,-1,5,4,3,1" for i in range(1, 9)]  # 16 problems
    lines = csv_lines(tmp_path, error(tmp_path, csv="\n".join([lines[0], *rows]) + "\n"))
    assert len(lines) == 11
    assert (
        lines[0] == "data.csv:2: column 'score': '25' is above outcomes.quiz_score.max_points = 20"
    )
    assert lines[-1] == "... and 6 more problems"
