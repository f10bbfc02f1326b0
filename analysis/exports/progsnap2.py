"""The events of a trial in the ProgSnap2 format (specification version 6, CSPLICE), for
programming-process researchers: ``MainTable.csv`` (one row per event), the code states
(``CodeStates/CodeStates.csv``, CodeStateRepresentation ``Table``) and
``DatasetMetadata.csv``, plus a README that defines our ``X-`` event types and columns.

Mapping decisions (the spec asks for built-in event types where they fit and ``X-`` types
otherwise, documented with the data):

- ``edit`` (a window of editor changes) -> ``File.Edit`` with an ``EditType``. Its code state
  was not recorded, so ``CodeStateID`` is empty, as the spec asks ("changed but not
  recorded").
- ``snapshot`` (the whole code, sent by the editor) -> ``File.Save`` with the code state;
  ``EventInitiator`` ``ToolTimedEvent`` for periodic snapshots, the spec's own example of an
  automatic save. (Not ``File.Edit``: the edits themselves are already ``File.Edit`` rows, so
  counting File.Edit events would count them twice.)
- a server ``run`` -> ``Run.Program`` (``ExecutionResult`` Success / Error / Timeout); a server
  ``check`` (the hidden tests) -> ``Submit`` with ``Score`` = share of tests passed. Both point
  at the exact code run. The browser's own logs of the same clicks (``run_shown`` /
  ``check_shown``) are ``X-Client.Run`` / ``X-Client.Check`` so that nothing is counted twice.
- Server-only facts (runs, checks, completions, submissions, assistant turns, stage changes:
  ``trials.event_types.SERVER_TYPES``) come from the server's own events only. A row of such a
  type that a browser sent (stored before the telemetry endpoint refused them) is exported
  as ``X-Client.<type>``, a claim, never as the fact. Client-reported rows have X-Origin
  ``client``.
- ``assistant_response`` -> ``Intervention`` (category ``X-AI.Response``, the reply as
  ``InterventionMessage``); ``assistant_request`` -> ``X-AI.Request``; errors and refusals
  ``X-AI.Error`` / ``X-AI.Refused``. A response's ``ParentEventID`` is its request.
- ``paste``/``copy`` -> ``X-Paste``/``X-Copy`` (annotations: the paste's text also arrives as a
  ``File.Edit``); stages -> ``X-Stage.Enter``/``X-Stage.Leave``; any other type ``t`` -> ``X-t``.

Code state ids are the SHA-256 of the code (UTF-8), so they equal ``code_sha256`` in the
events data set and resolve without a lookup table. CodeStates.csv holds the code verbatim:
it is program text for tools that hash, diff, parse or run it, not a spreadsheet cell, so it
is not given the apostrophe that guards MainTable's text cells. The export never fails on an
event type or payload it does not know.

DatasetMetadata follows the spec's definitions: ``Order`` numbers each subject's events in
the order the server stored them, so ``EventOrderScope`` is ``Restricted`` with
``EventOrderScopeColumns`` ``SubjectID`` (Order values compare only within one subject).
``IsEventOrderingConsistent`` is ``false``: the spec asks for true only when, within that
scope, the order reflects the events' actual temporal order on one clock, and asks for false
for client/server systems without one. Browser events reach the server in batches, so a
subject's client events can be stored after server events (a run, a reply) that happened
later; ClientTimestamp (the participant's clock) and X-ClientSeq order a tab's own events.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import PurePosixPath
from typing import IO, Any

import pandas as pd

from analysis.datasets import Column, reads
from analysis.exports.cells import csv_encode, iso_cells, neutralise
from analysis.exports.csv import csv_chunks
from analysis.exports.writer import (
    CHUNK_ROWS,
    BundleEntry,
    CounterFor,
    FormatWriter,
    RowCounter,
    RowsOf,
    dataset_chunks,
)
from trials.event_types import CLIENT_TYPES, SERVER_TYPES, EventName, server_only
from trials.models import Trial

SPEC_VERSION = "6"
MAIN_TABLE = "MainTable"
CODE_STATES = "CodeStates"
METADATA = "DatasetMetadata"
TIMEZONE = "+0000"
READ_BLOCK = 1024 * 1024

# (our event type, origin or "" for any) -> ProgSnap2 EventType
EVENT_TYPES: dict[tuple[str, str], str] = {
    (EventName.EDIT, ""): "File.Edit",
    (EventName.SNAPSHOT, ""): "File.Save",
    (EventName.RUN, "server"): "Run.Program",
    (EventName.CHECK, "server"): "Submit",
    (EventName.RUN_SHOWN, ""): "X-Client.Run",
    (EventName.CHECK_SHOWN, ""): "X-Client.Check",
    # What browsers sent before they had the *_shown types (claims, see event_type).
    (EventName.RUN, "client"): "X-Client.Run",
    (EventName.CHECK, "client"): "X-Client.Check",
    (EventName.TASK_COMPLETED, "server"): "X-Task.Completed",
    (EventName.TASK_SUBMITTED, "server"): "X-Task.Submitted",
    (EventName.ASSISTANT_REQUEST, "server"): "X-AI.Request",
    (EventName.ASSISTANT_RESPONSE, "server"): "Intervention",
    (EventName.ASSISTANT_ERROR, "server"): "X-AI.Error",
    (EventName.ASSISTANT_REFUSED, "server"): "X-AI.Refused",
    (EventName.TELEMETRY_REFUSED, "server"): "X-Telemetry.Refused",
    (EventName.STAGE_ENTERED, "server"): "X-Stage.Enter",
    (EventName.STAGE_LEFT, "server"): "X-Stage.Leave",
    (EventName.PASTE, ""): "X-Paste",
    (EventName.COPY, ""): "X-Copy",
    (EventName.STAGE_VIEW, ""): "X-Stage.View",
    (EventName.FOCUS, ""): "X-Focus",
    (EventName.BLUR, ""): "X-Blur",
    (EventName.VISIBILITY, ""): "X-Visibility",
    (EventName.IDLE, ""): "X-Idle",
}

EVENT_NOTES: list[tuple[str, str, str]] = [
    (
        "edit",
        "File.Edit",
        "A window of editor changes (`X-Payload.changes`: [from, to, text]); "
        "CodeStateID empty (not recorded at that moment); EditType Insert / Delete / Replace / "
        "Paste / Undo / Redo / GenericEdit",
    ),
    (
        "snapshot",
        "File.Save",
        "The whole code sent by the editor (periodically, on blur, before "
        "a run); CodeStateID set; EventInitiator ToolTimedEvent when periodic",
    ),
    (
        "run (server)",
        "Run.Program",
        "The program was run in the sandbox; CodeStateID = the code "
        "run; ExecutionID = run id; ExecutionResult Success / Error / Timeout (X-Busy: the "
        "runner was busy)",
    ),
    (
        "check (server)",
        "Submit",
        "The code was checked against the task's hidden tests; Score = "
        "tests passed / tests run; ExecutionResult Success (all passed) / TestFailed / Error / "
        "Timeout",
    ),
    (
        "run_shown, check_shown (client)",
        "X-Client.Run, X-Client.Check",
        "The browser's record of the same click, with its round-trip time; not a second"
        " execution (browsers before them sent run / check, exported the same way)",
    ),
    (
        "task_completed",
        "X-Task.Completed",
        "First check in which every hidden test passed (ParentEventID: that Submit)",
    ),
    ("task_submitted", "X-Task.Submitted", "The task was handed in with its stage (no tests run)"),
    ("assistant_request", "X-AI.Request", "A question to the AI assistant (X-Payload.question)"),
    (
        "assistant_response",
        "Intervention",
        "The assistant's reply: InterventionCategory "
        "X-AI.Response, InterventionType = its status, InterventionMessage = the reply; "
        "ParentEventID = the request",
    ),
    (
        "assistant_error",
        "X-AI.Error",
        "The assistant's provider failed (ParentEventID = the request)",
    ),
    ("assistant_refused", "X-AI.Refused", "A request refused (wrong arm or stage, budget, cap)"),
    (
        "telemetry_refused",
        "X-Telemetry.Refused",
        "Browser events the server refused (server-only or unknown types) and client-set"
        " provenance fields it removed, by type",
    ),
    (
        "paste, copy (client)",
        "X-Paste, X-Copy",
        "Clipboard annotations: length and SHA-256 as the browser reported them;"
        " `from_assistant` / `assistant_turn` are the server's verdict (the text matched an"
        " assistant reply stored for the participant), never the browser's; a paste's text"
        " also arrives as a File.Edit",
    ),
    (
        "stage_entered, stage_left, stage_view",
        "X-Stage.Enter, X-Stage.Leave, X-Stage.View",
        "Moving through the trial's stages (AssignmentID = the stage)",
    ),
    (
        "focus, blur, visibility, idle",
        "X-Focus, X-Blur, X-Visibility, X-Idle",
        "Attention as the browser reported it (X-Payload.scope: editor, assistant or window;"
        " idle: seconds). Client-reported: spans computed from them (assistant_time_min) are"
        " counted only inside the stage's server-observed window",
    ),
    (
        "a server-only type with X-Origin client",
        "X-Client.t",
        "A browser's claim of a server fact, stored before the telemetry endpoint refused"
        " such events; never a run, check, completion or assistant turn",
    ),
    ("any other type t", "X-t", "Types are registered in trials/event_types.py"),
]

# Payload fields moved into their own column (code -> CodeStates, reply ->
# InterventionMessage) or too large to repeat per row (the assistant's full prompt context,
# which is in the events data set).
_DROP_FROM_PAYLOAD = ("code", "reply", "context")


def _column(name: str, ctype: str, description: str, source: str, **kw: Any) -> Column:
    return Column(name, ctype, description, source, **kw)


MAIN_TABLE_COLUMNS: list[Column] = [
    _column(
        "EventID", "integer", "Event id, unique (== event_id of the events data set)", "events.id"
    ),
    _column(
        "SubjectID",
        "string",
        "Pseudonymous participant code (== participant in participants.csv)",
        "participants.public_code",
    ),
    _column(
        "Order",
        "integer",
        "1-based order of the subject's events as the server stored them "
        "(EventOrderScope Restricted to SubjectID: compare only within a subject; not always "
        "the order they happened in, see IsEventOrderingConsistent in README.md)",
        "events.id",
    ),
    _column(
        "EventType",
        "string",
        "ProgSnap2 event type; X-... types are defined in README.md",
        "events.type, events.origin",
    ),
    _column("ToolInstances", "string", "Software in use, ';'-separated", "skilltrial version"),
    _column(
        "ServerTimestamp",
        "datetime",
        "When the server stored the event",
        "events.server_time",
        unit="UTC (offset in ServerTimezone)",
    ),
    _column(
        "ServerTimezone",
        "string",
        "Offset of ServerTimestamp from UTC",
        "constant",
        allowed=(TIMEZONE,),
    ),
    _column(
        "ClientTimestamp",
        "datetime",
        "Client-reported: time on the participant's clock, as the browser sent it",
        "events.client_time",
        unit="UTC (offset in ClientTimezone)",
    ),
    _column(
        "ClientTimezone",
        "string",
        "Offset of ClientTimestamp from UTC",
        "constant",
        allowed=(TIMEZONE,),
    ),
    _column(
        "CodeStateID",
        "string",
        "SHA-256 of the code at this event (a CodeStateID of "
        "CodeStates.csv), empty when the code was not recorded",
        "events.payload.code / code_sha256",
    ),
    _column(
        "ExperimentalCondition",
        "string",
        "Arm allocated (empty before allocation)",
        "allocations.arm",
    ),
    _column("AssignmentID", "string", "Stage of the trial", "events.stage"),
    _column("ProblemID", "string", "Coding task (folder name)", "events.payload.task"),
    _column(
        "ParentEventID",
        "integer",
        "The event this one answers (a response's request, a completion's check)",
        "derived",
    ),
    _column(
        "EventInitiator",
        "string",
        "Who caused the event",
        "events.origin, events.type",
        allowed=("UserDirectAction", "ToolReaction", "ToolTimedEvent"),
    ),
    _column(
        "EditType",
        "string",
        "Kind of edit (File.Edit only)",
        "events.payload.changes",
        allowed=("Insert", "Delete", "Replace", "Paste", "Undo", "Redo", "GenericEdit"),
    ),
    _column(
        "ExecutionID",
        "string",
        "Id of the run or check (Run.Program, Submit)",
        "events.payload.run_id",
    ),
    _column(
        "ExecutionResult",
        "string",
        "Outcome of a run or check",
        "events.payload.status, tests_passed",
        allowed=("Success", "Error", "Timeout", "TestFailed", "X-Busy"),
    ),
    _column(
        "Score",
        "number",
        "Share of hidden tests passed (Submit only)",
        "events.payload.tests_passed / tests_total",
        unit="proportion 0-1",
    ),
    _column(
        "InterventionCategory",
        "string",
        "Kind of intervention (Intervention only)",
        "constant",
        allowed=("X-AI.Response",),
    ),
    _column(
        "InterventionType", "string", "Status of the assistant's reply", "events.payload.status"
    ),
    _column(
        "InterventionMessage", "string", "The assistant's reply as shown", "events.payload.reply"
    ),
    _column("X-Type", "string", "Our event type", "events.type"),
    _column(
        "X-Origin",
        "string",
        "Who reported the event: client = the participant's browser (client-reported"
        " evidence, not verified; its ClientTimestamp is the browser's clock), server = the"
        " server (runs, checks, completions, assistant turns, stage changes come only from"
        " here)",
        "events.origin",
        allowed=("client", "server"),
    ),
    _column("X-ClientSeq", "integer", "Sequence number in the browser tab", "events.client_seq"),
    _column(
        "X-ExceptionType",
        "string",
        "Python exception a run ended with",
        "events.payload.exception_type",
    ),
    _column(
        "X-Payload",
        "json",
        "The event's payload without code, reply and the assistant's "
        "prompt context (those are in CodeStates, InterventionMessage and the events data "
        "set)",
        "events.payload",
    ),
]

CODE_STATES_COLUMNS: list[Column] = [
    _column(
        "CodeStateID",
        "string",
        "SHA-256 (hex) of the code in UTF-8",
        "code_snapshots.code, events[snapshot].payload.code",
    ),
    _column(
        "Code",
        "string",
        "The code (one file: the task's solution file), verbatim: unlike the "
        "text cells of the other CSV files it is never given a leading apostrophe, so "
        "SHA-256 of this cell (UTF-8) == CodeStateID. Do not open it in a spreadsheet",
        "code_snapshots.code, events[snapshot].payload.code",
    ),
]

METADATA_COLUMNS: list[Column] = [
    _column("Property", "string", "ProgSnap2 dataset property", "constant"),
    _column("Value", "string", "Its value", "constant"),
]

# MainTable cells that may hold text from participants (or the assistant) are neutralised for
# spreadsheets; the timezone offsets are ours and must stay as the spec writes them. Code in
# CodeStates.csv is never neutralised (CodeStates.add): it must hash to its CodeStateID.
_VERBATIM = {"ServerTimezone", "ClientTimezone"}
_TEXT_COLUMNS = {
    i
    for i, c in enumerate(MAIN_TABLE_COLUMNS)
    if c.type in ("string", "json") and c.name not in _VERBATIM
}


def codebook_tables() -> dict[str, list[Column]]:
    return {
        MAIN_TABLE: MAIN_TABLE_COLUMNS,
        f"{CODE_STATES}/{CODE_STATES}": CODE_STATES_COLUMNS,
        METADATA: METADATA_COLUMNS,
    }


def dataset_metadata() -> list[tuple[str, str]]:
    return [
        ("Version", SPEC_VERSION),
        # Spec: true only if, within EventOrderScope, Order reflects the events' actual
        # temporal order on one clock; false for client/server data without one. Order is the
        # server's storage order per subject, and browser events arrive in batches, after
        # server events that happened later (module docstring).
        ("IsEventOrderingConsistent", "false"),
        # Spec: Restricted = Order values are comparable only between events with the same
        # values in EventOrderScopeColumns (here: the same subject).
        ("EventOrderScope", "Restricted"),
        ("EventOrderScopeColumns", "SubjectID"),
        ("CodeStateRepresentation", "Table"),
    ]


def dataset_metadata_csv() -> bytes:
    return csv_encode([("Property", "Value"), *dataset_metadata()])


def tool_instances() -> str:
    try:
        version = metadata.version("skilltrial")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"skilltrial {version};Python {platform.python_version()}"


def _x_name(etype: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", etype) or "unknown"


def event_type(etype: str, origin: str) -> str:
    mapped = EVENT_TYPES.get((etype, origin)) or EVENT_TYPES.get((etype, ""))
    if mapped is not None:
        return mapped
    if server_only(etype) and origin != "server":
        return "X-Client." + _x_name(etype)  # a claim of a server fact, not the fact
    return "X-" + _x_name(etype)


def _server_fact(etype: str, origin: str) -> bool:
    return origin == "server" and server_only(etype)


def event_mapping_markdown() -> str:
    lines = [
        "## ProgSnap2 event types",
        "",
        "MainTable.csv has one row per event of the events data set (EventID = event_id). "
        f"DatasetMetadata: ProgSnap2 version {SPEC_VERSION}, CodeStateRepresentation Table, "
        "EventOrderScope Restricted with EventOrderScopeColumns SubjectID: Order numbers "
        "each subject's events from 1 in the order the server stored them, and compares only "
        "within one subject. IsEventOrderingConsistent is false: browser events reach the "
        "server in batches, so a subject's Order can put a browser event after a server event "
        "(a run, an assistant reply) that happened later; use ClientTimestamp and X-ClientSeq "
        "for the order of the browser's own events. Timestamps are UTC "
        f"(`YYYY-MM-DDTHH:MM:SS.ffffff`, timezone column `{TIMEZONE}`).",
        "",
        "Client-reported rows: X-Origin `client` marks what the participant's browser sent "
        f"({', '.join(sorted(CLIENT_TYPES))}): evidence about the browser, not verified, with "
        "ClientTimestamp on the browser's clock. Server-only facts "
        f"({', '.join(sorted(SERVER_TYPES))}) come from the server's own records (X-Origin "
        "`server`); the server never accepts them from a browser. A paste's `from_assistant` "
        "and `assistant_turn` are set by the server when the pasted text matches an assistant "
        "reply it stored for that participant.",
        "",
        "CodeStates/CodeStates.csv holds each code state verbatim, so SHA-256 of `Code` "
        "(UTF-8) equals its CodeStateID. Unlike the text cells of MainTable.csv and the other "
        "CSV files, code is not neutralised for spreadsheets (no apostrophe before a leading "
        "`=`, `+`, `-`, `@`, tab or carriage return): it is program text, not a spreadsheet "
        "cell. Read it with a CSV library, not a spreadsheet.",
        "",
        "| Our event | ProgSnap2 EventType | Notes |",
        "|---|---|---|",
    ]
    lines += [f"| {ours} | {theirs} | {notes} |" for ours, theirs, notes in EVENT_NOTES]
    return "\n".join(lines)


def readme_markdown(trial: Trial) -> str:
    return (
        f"# {trial.title}: programming process data (ProgSnap2)\n\n"
        f"Trial `{trial.slug}` version {trial.version}. Exported by skilltrial in the ProgSnap2 "
        f"format, specification version {SPEC_VERSION}. SubjectID is the participant's "
        "pseudonymous code (the `participant` column of participants.csv); "
        "ExperimentalCondition is the arm.\n\n"
        + event_mapping_markdown()
        + "\n\nCustom columns: X-Type (our event type), X-Origin (client = the browser, "
        "server = logged by the server), X-ClientSeq, X-ExceptionType, X-Payload (the event's "
        "payload as JSON). See codebook.md for every column.\n"
    )


def code_snapshot_count(trial: Trial) -> int:
    return reads.code_snapshot_count(trial)


def code_state_id(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


class CodeStates:
    """The CodeStates table, deduplicated by content, spooled to a temporary file while the
    main table streams. Memory holds only a 16-byte key per distinct code state."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in chunks()
        self._seen: set[bytes] = set()
        self._file.write(csv_encode([[c.name for c in CODE_STATES_COLUMNS]]))

    @property
    def count(self) -> int:
        return len(self._seen)

    def add(self, code: str) -> str:
        sha = code_state_id(code)
        key = bytes.fromhex(sha[:32])
        if key not in self._seen:
            self._seen.add(key)
            # Verbatim: program text for ProgSnap2 tools, which must hash to its id.
            self._file.write(csv_encode([[sha, code]]))
        return sha

    def has(self, sha: object) -> bool:
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            return False
        return bytes.fromhex(sha[:32]) in self._seen

    def add_snapshots(self, trial: Trial, on_rows: RowCounter) -> None:
        """Every stored version of every participant's code (what runs and checks ran)."""
        pending = 0
        for code in reads.code_snapshots(trial, 2000):
            self.add(code)
            pending += 1
            if pending == CHUNK_ROWS:
                on_rows(pending)
                pending = 0
        if pending:
            on_rows(pending)

    def chunks(self) -> Iterator[bytes]:
        try:
            self._file.seek(0)
            while block := self._file.read(READ_BLOCK):
                yield block
        finally:
            self._file.close()

    def close(self) -> None:
        self._file.close()


def _edit_type(payload: dict[str, Any]) -> str:
    events = payload.get("user_events")
    if isinstance(events, list):
        kinds = {str(e) for e in events}
        if any(k.startswith("input.paste") or k.startswith("input.drop") for k in kinds):
            return "Paste"
        if kinds == {"undo"}:
            return "Undo"
        if kinds == {"redo"}:
            return "Redo"
    changes = payload.get("changes")
    if not isinstance(changes, list) or not changes:
        return "GenericEdit"
    kinds = set()
    for change in changes:
        if not (isinstance(change, list) and len(change) == 3):
            return "GenericEdit"
        start, end, text = change
        removes = start != end
        inserts = bool(text)
        kinds.add("Replace" if removes and inserts else "Delete" if removes else "Insert")
    return kinds.pop() if len(kinds) == 1 else "Replace"


def _initiator(etype: str, origin: str, payload: dict[str, Any]) -> str:
    if etype == EventName.SNAPSHOT:
        return "ToolTimedEvent" if payload.get("reason") == "periodic" else "ToolReaction"
    if etype == EventName.IDLE:
        return "ToolTimedEvent"
    if origin == "client" or etype in (
        EventName.RUN,
        EventName.CHECK,
        EventName.ASSISTANT_REQUEST,
        EventName.TASK_SUBMITTED,
    ):
        return "UserDirectAction"
    return "ToolReaction"


_RESULTS = {"ok": "Success", "error": "Error", "timeout": "Timeout", "busy": "X-Busy"}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class _Event:
    eid: int
    subject: str
    arm: str
    stage: str
    type: str
    origin: str
    seq: str
    server_time: str
    client_time: str
    payload: dict[str, Any]


class _MainTable:
    """Turns events frames into MainTable rows, keeping only what links rows together: a
    counter per subject, open assistant requests, and each task's latest check."""

    def __init__(self, states: CodeStates) -> None:
        self.states = states
        self.tools = tool_instances()
        self.order: dict[str, int] = {}
        self.requests: dict[tuple[str, object], int] = {}
        self.last_check: dict[tuple[str, str], int] = {}

    def rows(self, frame: pd.DataFrame) -> list[list[str]]:
        server = iso_cells(frame["server_time"], zulu=False)
        client = iso_cells(frame["client_time"], zulu=False)
        columns = ("event_id", "participant", "arm", "stage", "type", "origin", "client_seq")
        values = [frame[c].to_numpy(dtype=object) for c in columns]
        payloads = frame["payload"].to_numpy(dtype=object)
        out: list[list[str]] = []
        for i, (eid, subject, arm, stage, etype, origin, seq) in enumerate(
            zip(*values, strict=True)
        ):
            row = self._row(
                _Event(
                    eid=int(eid),
                    subject=_text(subject),
                    arm=_text(arm),
                    stage=_text(stage),
                    type=_text(etype),
                    origin=_text(origin),
                    seq=_text(seq),
                    server_time=server[i],
                    client_time=client[i],
                    payload=_payload(payloads[i]),
                )
            )
            out.append([neutralise(v) if j in _TEXT_COLUMNS else v for j, v in enumerate(row)])
        return out

    def _row(self, e: _Event) -> list[str]:
        subject, etype, origin, payload, eid = e.subject, e.type, e.origin, e.payload, e.eid
        kind = event_type(etype, origin)
        self.order[subject] = order = self.order.get(subject, 0) + 1
        task = payload.get("task")
        problem = PurePosixPath(task).name if isinstance(task, str) and task else ""
        code_state = parent = execution = result = score = edit = ""
        category = itype = message = ""
        if kind == "File.Save" and isinstance(payload.get("code"), str):
            code_state = self.states.add(payload["code"])
        elif kind == "File.Edit":
            edit = _edit_type(payload)
        elif kind in ("Run.Program", "Submit"):
            if self.states.has(payload.get("code_sha256")):
                code_state = str(payload["code_sha256"])
            execution = _cell(payload.get("run_id"))
            status = str(payload.get("status", ""))
            result = _RESULTS.get(status, f"X-{status}" if status else "")
            if kind == "Submit":
                passed, total = (
                    _number(payload.get("tests_passed")),
                    _number(payload.get("tests_total")),
                )
                if passed is not None and total:
                    score = repr(passed / total)
                    if status == "ok":
                        result = "Success" if passed == total else "TestFailed"
                self.last_check[(subject, str(task))] = eid
        elif not _server_fact(etype, origin):
            pass  # links below are between server facts only
        elif etype == EventName.ASSISTANT_REQUEST:
            self.requests[(subject, payload.get("turn"))] = eid
        elif etype in (EventName.ASSISTANT_RESPONSE, EventName.ASSISTANT_ERROR):
            parent = _cell(self.requests.pop((subject, payload.get("turn")), None))
            if kind == "Intervention":
                category, itype = "X-AI.Response", _cell(payload.get("status"))
                message = _cell(payload.get("reply"))
        elif etype == EventName.TASK_COMPLETED:
            parent = _cell(self.last_check.get((subject, str(task))))
        rest = {k: v for k, v in payload.items() if k not in _DROP_FROM_PAYLOAD}
        exception = payload.get("exception_type") if kind == "Run.Program" else None
        return [
            str(eid),
            subject,
            str(order),
            kind,
            self.tools,
            e.server_time,
            TIMEZONE,
            e.client_time,
            TIMEZONE if e.client_time else "",
            code_state,
            e.arm,
            e.stage,
            problem,
            parent,
            _initiator(etype, origin, payload),
            edit,
            execution,
            result,
            score,
            category,
            itype,
            message,
            etype,
            origin,
            e.seq,
            _cell(exception or None),
            json.dumps(rest, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        ]


def _text(value: object) -> str:
    return "" if value is None or pd.isna(value) else str(value)  # type: ignore[call-overload]


def _payload(text: object) -> dict[str, Any]:
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"unparsed": text}
    return value if isinstance(value, dict) else {"value": value}


def main_table_chunks(
    trial: Trial, states: CodeStates, *, on_rows: RowCounter | None = None
) -> Iterator[bytes]:
    """MainTable.csv: the header, then one block per chunk of the events data set. Code
    states met on the way are added to ``states``."""
    table = _MainTable(states)
    yield csv_encode([[c.name for c in MAIN_TABLE_COLUMNS]])
    for frame in dataset_chunks(trial, "events"):
        yield csv_encode(table.rows(frame))
        if on_rows is not None:
            on_rows(len(frame))


def bundle_entries(trial: Trial, counter: CounterFor, rows_of: RowsOf) -> Iterator[BundleEntry]:
    """The ProgSnap2 files of a bundle, in the order they are written. The code states are
    spooled while the main table streams and follow it."""
    states = CodeStates()
    try:
        yield BundleEntry(f"{METADATA}.csv", iter([dataset_metadata_csv()]))
        yield BundleEntry("README.md", iter([readme_markdown(trial).encode("utf-8")]))
        states.add_snapshots(trial, counter(CODE_STATES))
        yield BundleEntry(
            f"{MAIN_TABLE}.csv",
            main_table_chunks(trial, states, on_rows=counter(MAIN_TABLE)),
            dataset=MAIN_TABLE,
            rows=rows_of(MAIN_TABLE),
        )
        yield BundleEntry(
            f"{CODE_STATES}/{CODE_STATES}.csv",
            states.chunks(),
            dataset=CODE_STATES,
            rows=lambda: states.count,
        )
    finally:
        states.close()


class ProgSnap2Writer(FormatWriter):
    """The ProgSnap2 layout: participants and allocations as CSV, then the ProgSnap2 files."""

    name = "progsnap2"
    extension = "csv"
    datasets = ("participants", "allocations")
    row_notes = {
        CODE_STATES: "code versions stored, before de-duplication; the file holds each "
        "distinct code once, usually far fewer rows",
    }
    codebook_csv_note = (
        " Exception: the `Code` column of ProgSnap2's `CodeStates/CodeStates.csv` is "
        "never neutralised; code is written verbatim so that its SHA-256 equals its "
        "CodeStateID."
    )
    manifest_csv_note = (
        "; except CodeStates/CodeStates.csv, whose code is verbatim (SHA-256 of Code "
        "== CodeStateID)"
    )

    def render(
        self,
        columns: Sequence[Column],
        frames: Iterable[pd.DataFrame],
        *,
        on_rows: RowCounter | None,
        dataset: str,
        trial: Trial,
    ) -> Iterator[bytes]:
        return csv_chunks(columns, frames, on_rows=on_rows)

    def files_note(self) -> str:
        return (
            "ProgSnap2 layout (MainTable.csv, CodeStates/CodeStates.csv, DatasetMetadata.csv, "
            "README.md) with participants.csv and allocations.csv"
        )

    def extra_tables(self) -> dict[str, list[Column]]:
        return codebook_tables()

    def extra_entries(
        self, trial: Trial, counter: CounterFor, rows_of: RowsOf
    ) -> Iterator[BundleEntry]:
        return bundle_entries(trial, counter, rows_of)

    def extra_rows(self, trial: Trial, counts: dict[str, int]) -> dict[str, int]:
        # CodeStates: the stored code versions, before de-duplication (see row_notes).
        return {MAIN_TABLE: counts["events"], CODE_STATES: code_snapshot_count(trial)}

    def appendix(self) -> list[str]:
        return [event_mapping_markdown()]
