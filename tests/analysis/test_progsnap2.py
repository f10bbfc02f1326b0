"""The ProgSnap2 export: the spec's required columns, event type mapping, code states that
resolve, and the dataset metadata."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import datetime

import pytest

from analysis.exports import bundle_stream, progsnap2
from tests.analysis.test_exports import FORMULA, bundle, fill_trial
from trials.models import CodeSnapshot, Event

# The ProgSnap2 main table columns every dataset must have (spec v6: EventType, EventID,
# SubjectID, ToolInstances; CodeStateID on every event, empty when unknown) and those we
# promise (Order within a subject, the server's timestamp and its offset).
REQUIRED = ("EventType", "EventID", "SubjectID", "ToolInstances", "CodeStateID")
PROMISED = ("Order", "ServerTimestamp", "ServerTimezone", "ParentEventID", "AssignmentID")


def _table(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.fixture
def ps2(live_trial):
    people = fill_trial(live_trial, participants=2)
    return people, bundle(live_trial, "progsnap2")


def test_the_bundle_has_the_progsnap2_layout(ps2):
    _, files = ps2
    assert set(files) == {
        "participants.csv",
        "allocations.csv",
        "DatasetMetadata.csv",
        "README.md",
        "MainTable.csv",
        "CodeStates/CodeStates.csv",
        "codebook.csv",
        "codebook.md",
        "manifest.json",
    }
    metadata = dict(csv.reader(io.StringIO(files["DatasetMetadata.csv"].decode())))
    assert metadata["Property"] == "Value"
    assert metadata["Version"] == "6"
    assert metadata["CodeStateRepresentation"] == "Table"
    assert metadata["EventOrderScope"] == "Restricted"
    assert metadata["EventOrderScopeColumns"] == "SubjectID"
    # Spec: true only when Order reflects the actual temporal order on one clock; browser
    # events arrive in batches, so it is false, and the README says why.
    assert metadata["IsEventOrderingConsistent"] == "false"
    readme = files["README.md"].decode()
    assert "IsEventOrderingConsistent is false" in readme
    assert "EventOrderScope Restricted with EventOrderScopeColumns SubjectID" in readme


def test_main_table_has_the_required_columns_and_one_row_per_event(ps2, live_trial):
    _, files = ps2
    rows = _table(files["MainTable.csv"])
    header = list(rows[0])
    for column in REQUIRED + PROMISED:
        assert column in header
    events = list(Event.objects.filter(participant__trial=live_trial).order_by("id"))
    assert [int(r["EventID"]) for r in rows] == [e.pk for e in events]
    assert all(r["EventType"] and r["SubjectID"] and r["ToolInstances"] for r in rows)
    manifest = json.loads(files["manifest.json"])
    assert manifest["row_counts"]["MainTable"] == len(events)
    assert manifest["row_counts"]["CodeStates"] == len(_table(files["CodeStates/CodeStates.csv"]))


def test_order_counts_each_subjects_events_from_one(ps2):
    people, files = ps2
    rows = _table(files["MainTable.csv"])
    for p in people:
        orders = [int(r["Order"]) for r in rows if r["SubjectID"] == p.public_code]
        assert orders == list(range(1, len(orders) + 1))


def test_timestamps_follow_the_progsnap2_format(ps2):
    _, files = ps2
    for row in _table(files["MainTable.csv"]):
        # The ProgSnap2 toolbox appends the timezone column and parses with %z.
        stamp = datetime.strptime(
            row["ServerTimestamp"] + row["ServerTimezone"], "%Y-%m-%dT%H:%M:%S.%f%z"
        )
        assert stamp.utcoffset().total_seconds() == 0
        if row["ClientTimestamp"]:
            datetime.strptime(
                row["ClientTimestamp"] + row["ClientTimezone"], "%Y-%m-%dT%H:%M:%S.%f%z"
            )


def test_every_code_state_id_resolves_to_its_code(ps2):
    _, files = ps2
    states = {r["CodeStateID"]: r["Code"] for r in _table(files["CodeStates/CodeStates.csv"])}
    rows = _table(files["MainTable.csv"])
    used = {r["CodeStateID"] for r in rows if r["CodeStateID"]}
    assert used and used <= set(states)
    for sha, code in states.items():
        assert hashlib.sha256(code.encode()).hexdigest() == sha
    assert states[hashlib.sha256(FORMULA.encode()).hexdigest()] == FORMULA  # verbatim


TRICKY_CODE = [
    "@dataclass\nclass Point:\n    x: int\n",
    "-1\n",
    "\tx=1\n",
    "=1+1",
    "+1\r\n'quoted', \"double\"\n",
]


def test_code_states_are_written_verbatim(live_trial):
    """Code is program text, not a spreadsheet cell: no apostrophe, and its hash is its id."""
    [p] = fill_trial(live_trial, participants=1)
    stage = live_trial.stages.get(key="main_tasks")
    for version, code in enumerate(TRICKY_CODE, start=1):
        CodeSnapshot.objects.create(
            participant=p,
            stage=stage,
            task="tasks/fetch_all",
            version=version,
            code=code,
            source="autosave",
        )
    Event.objects.create(
        participant=p,
        type="snapshot",
        client_id="snap-tricky",
        origin="client",
        payload={"task": "tasks/fetch_all", "code": "-2\n", "reason": "periodic"},
    )
    files = bundle(live_trial, "progsnap2")
    with io.StringIO(files["CodeStates/CodeStates.csv"].decode("utf-8"), newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["CodeStateID", "Code"]
        states = {code: sha for sha, code in reader}
    for code in [*TRICKY_CODE, "-2\n"]:
        assert code in states, code
        assert states[code] == hashlib.sha256(code.encode("utf-8")).hexdigest()
    saved = next(
        r
        for r in _table(files["MainTable.csv"])
        if r["X-Type"] == "snapshot" and r["CodeStateID"] == states["-2\n"]
    )
    assert saved["EventType"] == "File.Save"
    # The codebook and README say so; the other text cells stay neutralised.
    assert "never neutralised" in files["codebook.md"].decode()
    assert "not neutralised" in files["README.md"].decode()
    assert json.loads(files["manifest.json"])["conventions"]["csv"].endswith(
        "(SHA-256 of Code == CodeStateID)"
    )


def test_identical_code_is_one_code_state(ps2):
    people, files = ps2
    codes = [r["Code"] for r in _table(files["CodeStates/CodeStates.csv"])]
    assert len(codes) == len(set(codes))
    # Two snapshots of the same formula-like code per participant, one state for everyone,
    # plus each participant's own run code.
    assert len(codes) == 1 + len(people)


def test_events_map_to_progsnap2_types(ps2):
    people, files = ps2
    rows = [r for r in _table(files["MainTable.csv"]) if r["SubjectID"] == people[0].public_code]
    by_type = {r["X-Type"] + "/" + r["X-Origin"]: r for r in rows}
    run = by_type["run/server"]
    assert run["EventType"] == "Run.Program" and run["ExecutionResult"] == "Success"
    assert run["CodeStateID"] and run["ExecutionID"] == "10"
    check = by_type["check/server"]
    assert check["EventType"] == "Submit"
    assert float(check["Score"]) == 0.75 and check["ExecutionResult"] == "TestFailed"
    assert by_type["run/client"]["EventType"] == "X-Client.Run"
    assert by_type["run/client"]["CodeStateID"] == ""
    edit = by_type["edit/client"]
    assert edit["EventType"] == "File.Edit" and edit["EditType"] == "Insert"
    assert edit["CodeStateID"] == ""  # changed but not recorded: unknown, as the spec asks
    assert by_type["snapshot/client"]["EventType"] == "File.Save"
    request, response = by_type["assistant_request/server"], by_type["assistant_response/server"]
    assert request["EventType"] == "X-AI.Request"
    assert response["EventType"] == "Intervention"
    assert response["InterventionCategory"] == "X-AI.Response"
    assert response["InterventionMessage"] == "'- use trio.run"  # text from outside: neutralised
    assert response["ParentEventID"] == request["EventID"]
    assert by_type["task_completed/server"]["ParentEventID"] == check["EventID"]
    assert by_type["paste/client"]["EventType"] == "X-Paste"
    assert by_type["stage_entered/server"]["EventType"] == "X-Stage.Enter"
    assert by_type["stage_entered/server"]["AssignmentID"] == "warmup"
    assert run["ProblemID"] == "warmup"
    unknown = by_type["brand_new.thing/client"]
    assert unknown["EventType"] == "X-brand_new.thing"
    assert json.loads(unknown["X-Payload"]) == {"value": -3.5}
    assert {r["ExperimentalCondition"] for r in rows} == {"ai"}
    assert {r["ServerTimezone"] for r in rows} == {"+0000"}  # ours: never neutralised


def test_payload_columns_leave_out_what_is_elsewhere(ps2):
    _, files = ps2
    for row in _table(files["MainTable.csv"]):
        payload = json.loads(row["X-Payload"])
        assert "code" not in payload and "reply" not in payload


def test_a_run_whose_code_was_never_stored_has_no_code_state(live_trial):
    [p] = fill_trial(live_trial, participants=1)
    Event.objects.create(
        participant=p,
        type="run",
        client_id="srv-lost",
        origin="server",
        payload={"task": "tasks/warmup", "code_sha256": "f" * 64, "status": "error"},
    )
    rows = _table(bundle(live_trial, "progsnap2")["MainTable.csv"])
    lost = next(r for r in rows if r["EventID"] == str(Event.objects.get(client_id="srv-lost").pk))
    assert lost["CodeStateID"] == "" and lost["ExecutionResult"] == "Error"


def test_code_states_cover_every_stored_code_version(live_trial):
    [p] = fill_trial(live_trial, participants=1)
    stage = live_trial.stages.get(key="main_tasks")
    for version, code in enumerate(["a = 1\n", "a = 2\n", "a = 1\n"], start=1):
        CodeSnapshot.objects.create(
            participant=p,
            stage=stage,
            task="tasks/fetch_all",
            version=version,
            code=code,
            source="autosave",
        )
    states = _table(bundle(live_trial, "progsnap2")["CodeStates/CodeStates.csv"])
    ids = {r["CodeStateID"] for r in states}
    assert hashlib.sha256(b"a = 1\n").hexdigest() in ids
    assert hashlib.sha256(b"a = 2\n").hexdigest() in ids


def test_the_readme_defines_every_custom_event_type(ps2):
    _, files = ps2
    readme = files["README.md"].decode()
    used = {r["EventType"] for r in _table(files["MainTable.csv"])}
    for kind in used - {"X-brand_new.thing"}:
        assert kind in readme
    assert "X-t" in readme  # the rule for types that appear later


def test_edit_types_are_read_from_the_changes():
    edit = progsnap2._edit_type
    assert edit({"changes": [[3, 3, "abc"]]}) == "Insert"
    assert edit({"changes": [[3, 5, ""]]}) == "Delete"
    assert edit({"changes": [[3, 5, "x"]]}) == "Replace"
    assert edit({"changes": [[1, 1, "x"], [4, 6, ""]]}) == "Replace"
    assert edit({"changes": [[0, 0, "x"]], "user_events": ["input.paste"]}) == "Paste"
    assert edit({"changes": [[0, 1, ""]], "user_events": ["undo"]}) == "Undo"
    assert edit({"changes": "garbage"}) == "GenericEdit"
    assert edit({}) == "GenericEdit"


def test_unknown_event_types_never_break_the_export():
    assert progsnap2.event_type("new type!", "client") == "X-new_type_"
    assert progsnap2.event_type("", "server") == "X-unknown"
    assert progsnap2.event_type("check", "server") == "Submit"
    assert progsnap2.event_type("check", "client") == "X-Client.Check"


def test_an_empty_trial_exports_headers_only(live_trial):
    files = bundle(live_trial, "progsnap2")
    assert files["MainTable.csv"].decode().count("\r\n") == 1
    assert files["CodeStates/CodeStates.csv"] == b"CodeStateID,Code\r\n"
    assert b"".join(bundle_stream(live_trial, "progsnap2"))


def test_a_synthetic_trial_in_progsnap2(live_trial):
    from analysis.synthetic import synthesize_trial

    synthesize_trial(live_trial, participants=10, seed=5, events_per_participant=60)
    files = bundle(live_trial, "progsnap2")
    rows = _table(files["MainTable.csv"])
    states = {r["CodeStateID"] for r in _table(files["CodeStates/CodeStates.csv"])}
    assert len(rows) == Event.objects.filter(participant__trial=live_trial).count()
    assert {r["CodeStateID"] for r in rows if r["CodeStateID"]} <= states
    executions = [r for r in rows if r["EventType"] in ("Run.Program", "Submit")]
    assert executions and all(r["CodeStateID"] for r in executions)
    assert all(r["ExecutionResult"] for r in executions)
