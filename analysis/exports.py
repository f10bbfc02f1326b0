"""Exports: the tidy data sets as CSV, Parquet, JSON Lines or ProgSnap2, in a zip bundle with
a codebook and a manifest, streamed with bounded memory.

Three layers, as in pretix's exporters:

1. **Renderers** (pure, no Django): ``csv_chunks``, ``jsonl_chunks``, ``parquet_chunks`` take
   a list of :class:`~analysis.datasets.Column` and an iterator of DataFrame chunks and yield
   bytes. Only one chunk is in memory at a time.
2. **Bundles**: ``bundle_stream`` yields a zip (written to a non-seekable sink with data
   descriptors, so nothing is buffered but the current chunk); ``export_to_dir`` writes the
   same files into a directory (and optionally the zip).
3. **Audit**: every export is a :class:`~analysis.models.DataExport` row (who, what, when,
   identified or not, row counts, checksums), kept up to date while it runs.

Conventions (also written into every codebook):

- CSV is UTF-8, RFC 4180 (CRLF, minimal quoting). A *text* cell that begins with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return gets a leading apostrophe so a spreadsheet shows it
  instead of executing it. Numeric columns are never touched (``-3.5`` stays ``-3.5``).
  Parquet and JSON hold the exact values.
- JSON is JSON Lines: one object per row and line, keys in codebook order, ``json`` columns
  as nested values, missing values and NaN as ``null``.
- Date-times are ISO 8601 in UTC with a ``Z``, to the microsecond.
- De-identified by default: identifier columns are only included with ``identified=True``,
  which needs the ``analysis.export_identifiers`` permission outside the command line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import platform
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, PermissionsMixin
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.utils import timezone

from analysis import codebook
from analysis.datasets import (
    DATASETS,
    Column,
    dataset_columns,
    dataset_row_count,
    iter_dataset_chunks,
)
from analysis.models import DataExport
from trials.models import Participant, Trial
from trials.selectors import TrialNotFound, require_trial

FORMATS = ("csv", "parquet", "json", "progsnap2")
EXTENSIONS = {"csv": "csv", "parquet": "parquet", "json": "jsonl"}
IDENTIFIERS_PERMISSION = "analysis.export_identifiers"
# Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 20_000
# The zip sink hands bytes on once this much has accumulated.
FLUSH_BYTES = 256 * 1024
PROGRESS_EVERY_SECONDS = 1.0

Progress = Callable[[int, int, str], None]
RowCounter = Callable[[int], None]


class ExportError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# Cells


def neutralise(text: str) -> str:
    """A text cell as it may safely go into CSV: prefixed with an apostrophe when a
    spreadsheet would read it as a formula."""
    return "'" + text if text[:1] in FORMULA_TRIGGERS and text else text


def _iso(series: pd.Series, *, zulu: bool = True) -> list[str]:
    """Date-times as ISO 8601 UTC strings ('' where missing)."""
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        series = pd.to_datetime(series, utc=True)
    elif str(series.dt.tz) != "UTC":
        series = series.dt.tz_convert("UTC")
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if zulu else "%Y-%m-%dT%H:%M:%S.%f"
    return series.dt.strftime(fmt).fillna("").tolist()


def _objects(series: pd.Series) -> tuple[Any, Any]:
    return series.to_numpy(dtype=object), series.isna().to_numpy()


def _csv_cells(series: pd.Series, ctype: str) -> list[str]:
    if ctype == "datetime":
        return _iso(series)
    values, missing = _objects(series)
    if ctype in ("string", "json"):
        return ["" if m else neutralise(str(v)) for v, m in zip(values, missing, strict=True)]
    if ctype == "integer":
        return ["" if m else str(int(v)) for v, m in zip(values, missing, strict=True)]
    if ctype == "number":
        return [
            "" if m or math.isnan(float(v)) else repr(float(v))
            for v, m in zip(values, missing, strict=True)
        ]
    if ctype == "boolean":
        return [
            "" if m else ("true" if v else "false") for v, m in zip(values, missing, strict=True)
        ]
    raise ExportError(f"unknown column type {ctype!r}")


def _json_tokens(series: pd.Series, ctype: str) -> list[str]:
    if ctype == "datetime":
        return [f'"{v}"' if v else "null" for v in _iso(series)]
    values, missing = _objects(series)
    pairs = zip(values, missing, strict=True)
    if ctype == "string":
        return ["null" if m else encode_basestring(str(v)) for v, m in pairs]
    if ctype == "json":
        # The data sets hold JSON text made by json.dumps; it goes in as a nested value.
        return ["null" if m else str(v) for v, m in pairs]
    if ctype == "integer":
        return ["null" if m else str(int(v)) for v, m in pairs]
    if ctype == "number":
        return ["null" if m or not math.isfinite(float(v)) else repr(float(v)) for v, m in pairs]
    if ctype == "boolean":
        return ["null" if m else ("true" if v else "false") for v, m in pairs]
    raise ExportError(f"unknown column type {ctype!r}")


def _check_columns(columns: Sequence[Column], frame: pd.DataFrame) -> None:
    names = [c.name for c in columns]
    if list(frame.columns) != names:
        raise ExportError(f"frame columns {list(frame.columns)} differ from declared {names}")


# ---------------------------------------------------------------------------------------------
# Renderers


def csv_encode(rows: Iterable[Sequence[str]]) -> bytes:
    """Rows of already formatted cells as RFC 4180 CSV in UTF-8."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerows(rows)
    return out.getvalue().encode("utf-8")


def csv_chunks(
    columns: Sequence[Column], frames: Iterable[pd.DataFrame], *, on_rows: RowCounter | None = None
) -> Iterator[bytes]:
    """The header, then one block of CSV per frame."""
    yield csv_encode([[c.name for c in columns]])
    for frame in frames:
        _check_columns(columns, frame)
        cells = [_csv_cells(frame[c.name], c.type) for c in columns]
        yield csv_encode(zip(*cells, strict=True))
        if on_rows is not None:
            on_rows(len(frame))


def jsonl_chunks(
    columns: Sequence[Column], frames: Iterable[pd.DataFrame], *, on_rows: RowCounter | None = None
) -> Iterator[bytes]:
    """JSON Lines: one object per row, keys in column order."""
    keys = [encode_basestring(c.name) + ":" for c in columns]
    for frame in frames:
        _check_columns(columns, frame)
        tokens = [_json_tokens(frame[c.name], c.type) for c in columns]
        lines = [
            "{" + ",".join(k + v for k, v in zip(keys, row, strict=True)) + "}\n"
            for row in zip(*tokens, strict=True)
        ]
        yield "".join(lines).encode("utf-8")
        if on_rows is not None:
            on_rows(len(frame))


ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "json": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "datetime": pa.timestamp("us", tz="UTC"),
}


def arrow_schema(columns: Sequence[Column], *, metadata: dict[str, str] | None = None) -> pa.Schema:
    """The Parquet schema of a table: types from the declarations, and each field's codebook
    entry (type, unit, description, source) as field metadata."""
    fields = [
        pa.field(
            c.name,
            ARROW_TYPES[c.type],
            nullable=True,
            metadata={
                "skilltrial.type": c.type,
                "unit": c.unit,
                "description": c.description,
                "source": c.source,
            },
        )
        for c in columns
    ]
    return pa.schema(fields, metadata=metadata)


def _arrow_column(series: pd.Series, ctype: str) -> pa.Array:
    target = ARROW_TYPES[ctype]
    if ctype == "datetime" and not isinstance(series.dtype, pd.DatetimeTZDtype):
        series = pd.to_datetime(series, utc=True)
    array = pa.array(series, from_pandas=True)
    if array.type != target:
        # Date-times come in nanoseconds; the database stores microseconds, so nothing is lost.
        array = array.cast(target, safe=ctype != "datetime")
    return array


class _ByteSink(io.RawIOBase):
    """A write-only, non-seekable file that keeps what is written until drained."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0
        self.pending = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        self.pending += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts = []
        self.pending = 0
        return out


def parquet_chunks(
    columns: Sequence[Column],
    frames: Iterable[pd.DataFrame],
    *,
    on_rows: RowCounter | None = None,
    metadata: dict[str, str] | None = None,
) -> Iterator[bytes]:
    """A Parquet file, one row group per frame. Parquet only needs its footer at the end
    (offsets are counted, never sought back to), so it streams like the others."""
    schema = arrow_schema(columns, metadata=metadata)
    sink = _ByteSink()
    writer = pq.ParquetWriter(sink, schema, compression="snappy")
    try:
        wrote = False
        for frame in frames:
            _check_columns(columns, frame)
            if len(frame) == 0 and wrote:
                continue
            arrays = [_arrow_column(frame[c.name], c.type) for c in columns]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            wrote = True
            yield sink.drain()
            if on_rows is not None:
                on_rows(len(frame))
    finally:
        writer.close()
    yield sink.drain()


RENDERERS: dict[str, Callable[..., Iterator[bytes]]] = {
    "csv": csv_chunks,
    "parquet": parquet_chunks,
    "json": jsonl_chunks,
}


# ---------------------------------------------------------------------------------------------
# Bundles


@dataclass
class BundleEntry:
    """One file of a bundle: its path inside the bundle, its bytes (produced lazily, as the
    file is written), the data set it holds, and how to count its rows once written."""

    path: str
    chunks: Iterator[bytes]
    dataset: str = ""
    rows: Callable[[], int] | None = None


@dataclass(frozen=True)
class BundleFile:
    path: str
    dataset: str
    rows: int | None
    bytes: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dataset": self.dataset,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


@dataclass
class ExportResult:
    export: DataExport
    files: list[BundleFile]
    manifest: dict[str, Any]
    paths: list[Path]


class _Tracker:
    """Counts rows as renderers finish chunks; reports to the caller's progress callback and,
    at most once a second, to the DataExport row (so the web page can show progress)."""

    def __init__(self, record: DataExport, totals: dict[str, int], progress: Progress | None):
        self.record = record
        self.totals = totals
        self.done: dict[str, int] = dict.fromkeys(totals, 0)
        self.progress = progress
        self._saved_at = 0.0
        self._unsaved = 0

    def counter(self, dataset: str) -> RowCounter:
        def count(n: int) -> None:
            self.done[dataset] = self.done.get(dataset, 0) + n
            self._unsaved += n
            if self.progress is not None:
                self.progress(self.done[dataset], self.totals.get(dataset, 0), dataset)
            now = time.monotonic()
            if now - self._saved_at >= PROGRESS_EVERY_SECONDS:
                self.save()
                self._saved_at = now

        return count

    def rows_of(self, dataset: str) -> Callable[[], int]:
        return lambda: self.done.get(dataset, 0)

    def save(self) -> None:
        if self._unsaved:
            DataExport.objects.filter(pk=self.record.pk).update(
                rows_done=F("rows_done") + self._unsaved
            )
            self._unsaved = 0


def _software() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "skilltrial": version("skilltrial"),
        "python": platform.python_version(),
        "django": version("Django"),
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "numpy": version("numpy"),
    }


def _utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def bundle_filename(
    trial: Trial, fmt: str, *, identified: bool = False, at: datetime | None = None
) -> str:
    """``<slug>-v<version>-<format>[-identified]-<UTC time>.zip``."""
    _check_format(fmt)
    when = _stamp(at or timezone.now())
    tag = "-identified" if identified else ""
    return f"{trial.slug}-v{trial.version}-{fmt}{tag}-{when}.zip"


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def can_export_identifiers(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    if user is None or not user.is_authenticated:
        return False
    return isinstance(user, PermissionsMixin) and user.has_perm(IDENTIFIERS_PERMISSION)


def _check_identified(identified: bool, user: AbstractBaseUser | AnonymousUser | None) -> None:
    # user None is the operator at the command line, who has the database anyway.
    if identified and user is not None and not can_export_identifiers(user):
        raise PermissionDenied("exporting identifiers needs the export_identifiers permission")


def _datasets_for(fmt: str) -> tuple[str, ...]:
    return ("participants", "allocations") if fmt == "progsnap2" else DATASETS


# Tables whose "rows now" figure is not the exact row count of the file, and what it is.
ROW_NOTES: dict[str, dict[str, str]] = {
    "progsnap2": {
        "CodeStates": "code versions stored, before de-duplication; the file holds each "
        "distinct code once, usually far fewer rows",
    },
}


def rows_by_format(trial: Trial) -> dict[str, dict[str, int]]:
    """For each format, the rows each table of its bundle would have now (ProgSnap2's
    CodeStates: the stored code versions, before de-duplication, not the distinct code
    states the file will hold; see ``ROW_NOTES``)."""
    from analysis import progsnap2  # progsnap2 builds on this module's cell rules

    counts = {name: dataset_row_count(trial, name) for name in DATASETS}
    out = {fmt: {name: counts[name] for name in _datasets_for(fmt)} for fmt in FORMATS}
    out["progsnap2"] |= {
        progsnap2.MAIN_TABLE: counts["events"],
        progsnap2.CODE_STATES: progsnap2.code_snapshot_count(trial),
    }
    return out


def expected_rows(trial: Trial, fmt: str) -> dict[str, int]:
    """Rows each table of the bundle will have (as of now), by table name."""
    _check_format(fmt)
    return rows_by_format(trial)[fmt]


def _synthetic(trial: Trial) -> dict[str, Any]:
    n = Participant.objects.filter(trial=trial, is_synthetic=True).count()
    total = Participant.objects.filter(trial=trial).count()
    statement = (
        f"SYNTHETIC DATA: {n} of {total} participants were generated by `manage.py synthesize` "
        "(is_synthetic = true), not recorded from real people."
        if n
        else "No synthetic participants: every row comes from the trial as run."
    )
    return {"any": n > 0, "participants": n, "of": total, "statement": statement}


def _privacy_statement(identified: bool, tables: dict[str, list[Column]]) -> str:
    if identified:
        names = sorted({c.name for cols in tables.values() for c in cols if c.identifier})
        return (
            "IDENTIFIED: this bundle contains participant identifiers ("
            + ", ".join(names)
            + "). Store and share it only as the study's data protection rules allow."
        )
    return (
        "De-identified: participants appear only as pseudonymous codes, stable within this "
        "trial. No external ids (Prolific participant, study or session ids), completion codes, "
        "internal ids, e-mail or IP addresses are included. Text that participants wrote "
        "themselves (code, answers, assistant messages, paste previews) is included as written "
        "and has not been screened for personal data."
    )


def _tables(trial: Trial, fmt: str, identified: bool) -> dict[str, list[Column]]:
    tables = {
        name: dataset_columns(trial, name, identified=identified) for name in _datasets_for(fmt)
    }
    if fmt == "progsnap2":
        from analysis import progsnap2

        tables |= progsnap2.codebook_tables()
    return tables


def _codebook_notes(
    trial: Trial, fmt: str, privacy: str, synthetic: dict[str, Any]
) -> tuple[list[str], list[str]]:
    files = (
        "ProgSnap2 layout (MainTable.csv, CodeStates/CodeStates.csv, DatasetMetadata.csv, "
        "README.md) with participants.csv and allocations.csv"
        if fmt == "progsnap2"
        else ", ".join(f"{name}.{EXTENSIONS[fmt]}" for name in DATASETS)
    )
    preamble = [
        f"Trial **{trial.title}** (`{trial.slug}` version {trial.version}), protocol SHA-256 "
        f"`{trial.protocol_hash or 'not frozen (draft)'}`.",
        f"Files: {files}. `manifest.json` lists every file with its row count and SHA-256.",
        privacy,
        synthetic["statement"],
        "Columns are declared in code (`analysis/datasets.py`, `analysis/progsnap2.py`); the "
        "**source** column names the table and field they come from (`derived` = computed from "
        "several). Column names are the same in every format.",
        "Missing values are empty cells in CSV and `null` in Parquet and JSON. Booleans are "
        "`true`/`false`. Date-times are ISO 8601 in UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.",
        "**CSV spreadsheet safety**: a text cell that begins with `=`, `+`, `-`, `@`, a tab or "
        "a carriage return has an apostrophe (`'`) put in front, so that a spreadsheet shows it "
        "instead of running it as a formula. Numeric columns are never changed (`-3.5` stays "
        "`-3.5`). To recover the exact text, drop that one apostrophe, or use the Parquet or "
        "JSON export, which hold the values unchanged."
        + (
            " Exception: the `Code` column of ProgSnap2's `CodeStates/CodeStates.csv` is "
            "never neutralised; code is written verbatim so that its SHA-256 equals its "
            "CodeStateID."
            if fmt == "progsnap2"
            else ""
        ),
        "JSON is JSON Lines (`.jsonl`): one object per line, keys in codebook order, `json` "
        "columns as nested values, NaN as `null`. Parquet has one row group per 20,000 rows "
        "and carries each column's codebook entry as field metadata.",
    ]
    appendix: list[str] = []
    if fmt == "progsnap2":
        from analysis import progsnap2  # progsnap2 builds on this module's cell rules

        appendix.append(progsnap2.event_mapping_markdown())
    return preamble, appendix


def _entries(
    trial: Trial,
    fmt: str,
    identified: bool,
    tracker: _Tracker,
    tables: dict[str, list[Column]],
    notes: tuple[list[str], list[str]],
) -> Iterator[BundleEntry]:
    """Every file of the bundle but the manifest, each produced only when it is reached."""
    data_format = "csv" if fmt == "progsnap2" else fmt
    render = RENDERERS[data_format]
    for name in _datasets_for(fmt):
        frames = iter_dataset_chunks(trial, name, identified=identified, chunk_size=CHUNK_ROWS)
        kwargs: dict[str, Any] = {"on_rows": tracker.counter(name)}
        if data_format == "parquet":
            kwargs["metadata"] = {"skilltrial.dataset": name, "skilltrial.trial": trial.slug}
        yield BundleEntry(
            f"{name}.{EXTENSIONS[data_format]}",
            render(tables[name], frames, **kwargs),
            dataset=name,
            rows=tracker.rows_of(name),
        )
    if fmt == "progsnap2":
        from analysis import progsnap2

        yield from progsnap2.bundle_entries(trial, tracker.counter, tracker.rows_of)
    rows = codebook.codebook_rows(tables)
    yield BundleEntry("codebook.csv", iter([codebook.codebook_csv(rows)]))
    preamble, appendix = notes
    text = codebook.codebook_markdown(
        rows, title=f"Codebook: {trial.title}", preamble=preamble, appendix=appendix
    )
    yield BundleEntry("codebook.md", iter([text.encode("utf-8")]))


def _manifest(
    trial: Trial,
    fmt: str,
    identified: bool,
    at: datetime,
    files: list[BundleFile],
    privacy: str,
    synthetic: dict[str, Any],
) -> dict[str, Any]:
    return {
        "bundle": bundle_filename(trial, fmt, identified=identified, at=at),
        "format": fmt,
        "trial": {
            "slug": trial.slug,
            "version": trial.version,
            "title": trial.title,
            "status": trial.status,
            "protocol_hash": trial.protocol_hash,
            "launched_at": _utc(trial.launched_at),
            "closed_at": _utc(trial.closed_at),
        },
        "exported_at": _utc(at),
        "finished_at": _utc(timezone.now()),
        "software": _software(),
        "identified": identified,
        "privacy": privacy,
        "synthetic": synthetic,
        "row_counts": {f.dataset: f.rows for f in files if f.rows is not None},
        "files": [f.as_json() for f in files],
        "columns_source": (
            "Every column is declared in code (analysis/datasets.py; analysis/progsnap2.py for "
            "the ProgSnap2 tables) with its type, unit, allowed values, description and source; "
            "codebook.csv and codebook.md are generated from those declarations."
        ),
        "conventions": {
            "encoding": "UTF-8",
            "csv": "RFC 4180, CRLF line ends, minimal quoting; text cells beginning with "
            "= + - @ TAB CR are prefixed with an apostrophe (numeric columns never)"
            + (
                "; except CodeStates/CodeStates.csv, whose code is verbatim (SHA-256 of Code "
                "== CodeStateID)"
                if fmt == "progsnap2"
                else ""
            ),
            "json": "JSON Lines, one object per row; NaN and missing values are null",
            "datetime": "ISO 8601, UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ",
            "consistency": "tables are read one after the other while the trial may still be "
            "running; rows stored after a table was read are not in it",
        },
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


class _Export:
    """One export from start to finish: the audit row, the tables, the files, the manifest."""

    def __init__(
        self,
        trial: Trial,
        fmt: str,
        *,
        identified: bool,
        user: AbstractBaseUser | AnonymousUser | None,
        channel: str,
        progress: Progress | None,
    ):
        self.trial = trial
        self.fmt = fmt
        self.identified = identified
        self.at = timezone.now()
        totals = expected_rows(trial, fmt)
        self.record = DataExport.objects.create(
            trial=trial,
            user_id=user.pk if user is not None and user.is_authenticated else None,
            format=fmt,
            identified=identified,
            channel=channel,
            rows_total=sum(totals.values()),
        )
        self.tracker = _Tracker(self.record, totals, progress)
        self.tables = _tables(trial, fmt, identified)
        self.privacy = _privacy_statement(identified, self.tables)
        self.synthetic = _synthetic(trial)
        self.files: list[BundleFile] = []
        self.manifest_data: dict[str, Any] = {}
        self.zip_size = 0

    def entries(self) -> Iterator[BundleEntry]:
        notes = _codebook_notes(self.trial, self.fmt, self.privacy, self.synthetic)
        return _entries(self.trial, self.fmt, self.identified, self.tracker, self.tables, notes)

    def add(self, entry: BundleEntry, size: int, digest: str) -> None:
        rows = entry.rows() if entry.rows is not None else None
        self.files.append(BundleFile(entry.path, entry.dataset, rows, size, digest))

    def manifest(self) -> dict[str, Any]:
        return _manifest(
            self.trial,
            self.fmt,
            self.identified,
            self.at,
            self.files,
            self.privacy,
            self.synthetic,
        )

    def finish(self, manifest: dict[str, Any], size: int | None) -> None:
        self.tracker.save()
        DataExport.objects.filter(pk=self.record.pk).update(
            status=DataExport.Status.DONE,
            finished_at=timezone.now(),
            row_counts=manifest["row_counts"],
            manifest=manifest,
            size_bytes=size,
            rows_done=sum(manifest["row_counts"].values()),
            rows_total=sum(manifest["row_counts"].values()),
        )
        self.record.refresh_from_db()

    def fail(self, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"[:500]
        if isinstance(error, GeneratorExit):
            message = "interrupted (the download was cancelled or the connection lost)"
        DataExport.objects.filter(pk=self.record.pk).update(
            status=DataExport.Status.FAILED, finished_at=timezone.now(), error=message
        )


def _zip_info(path: str, at: datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=at.astimezone(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _zip_bytes(export: _Export) -> Iterator[bytes]:
    """The bundle as a zip, written to a non-seekable sink: each member's sizes and CRC go
    in a data descriptor after its data, so nothing but the current chunk is held."""
    sink = _ByteSink()
    total = 0
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for entry in export.entries():
            digest = hashlib.sha256()
            size = 0
            with zf.open(_zip_info(entry.path, export.at), "w", force_zip64=True) as member:
                for chunk in entry.chunks:
                    member.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if sink.pending >= FLUSH_BYTES:
                        out = sink.drain()
                        total += len(out)
                        yield out
            export.add(entry, size, digest.hexdigest())
        manifest = export.manifest()
        zf.writestr(_zip_info("manifest.json", export.at), manifest_bytes(manifest))
        export.manifest_data = manifest
    out = sink.drain()
    total += len(out)
    export.zip_size = total
    yield out


def bundle_stream(
    trial: Trial,
    fmt: str,
    *,
    identified: bool = False,
    user: AbstractBaseUser | AnonymousUser | None = None,
    progress: Progress | None = None,
    channel: str = DataExport.Channel.OTHER,
) -> Iterator[bytes]:
    """The export bundle of ``trial`` as zip bytes, produced while they are read.

    Checks the format and, when a ``user`` is given, the identifiers permission at once
    (raising ExportError / PermissionDenied); the DataExport row is created when the first
    bytes are asked for and marked done, or failed if the stream is abandoned."""
    _check_format(fmt)
    _check_identified(identified, user)

    def stream() -> Iterator[bytes]:
        export = _Export(
            trial, fmt, identified=identified, user=user, channel=channel, progress=progress
        )
        try:
            yield from _zip_bytes(export)
        except BaseException as exc:
            export.fail(exc)
            raise
        export.finish(export.manifest_data, export.zip_size)

    return stream()


def export_to_dir(
    trial: Trial,
    fmt: str,
    out_dir: Path | str,
    *,
    identified: bool = False,
    progress: Progress | None = None,
    as_zip: bool = False,
    user: AbstractBaseUser | AnonymousUser | None = None,
    channel: str = DataExport.Channel.COMMAND,
) -> ExportResult:
    """Write the bundle into ``out_dir``: by default its files, unzipped, in the same layout
    as inside the zip (manifest.json last); with ``as_zip`` the single zip file instead."""
    _check_format(fmt)
    _check_identified(identified, user)
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    export = _Export(
        trial, fmt, identified=identified, user=user, channel=channel, progress=progress
    )
    written: list[Path] = []
    try:
        if as_zip:
            path = target / bundle_filename(trial, fmt, identified=identified, at=export.at)
            with path.open("xb") as out:
                written.append(path)
                for chunk in _zip_bytes(export):
                    out.write(chunk)
            manifest = export.manifest_data
            size = path.stat().st_size
        else:
            size = 0
            for entry in export.entries():
                path = target / entry.path
                path.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                n = 0
                with path.open("xb") as out:
                    written.append(path)
                    for chunk in entry.chunks:
                        out.write(chunk)
                        digest.update(chunk)
                        n += len(chunk)
                export.add(entry, n, digest.hexdigest())
                size += n
            manifest = export.manifest()
            path = target / "manifest.json"
            data = manifest_bytes(manifest)
            path.write_bytes(data)
            written.append(path)
            size += len(data)
    except BaseException as exc:
        export.fail(exc)
        raise
    export.finish(manifest, size)
    return ExportResult(export.record, export.files, manifest, written)


def trial_for_export(slug: str, version: int | None = None) -> Trial:
    """The trial named by slug (see trials.selectors.trial_for_slug). Raises
    Trial.DoesNotExist."""
    try:
        return require_trial(slug, version)
    except TrialNotFound as exc:
        raise Trial.DoesNotExist(str(exc)) from None


def recent_exports(trial: Trial, *, limit: int = 20) -> list[DataExport]:
    return list(DataExport.objects.filter(trial=trial).select_related("user")[:limit])


__all__ = [
    "FORMATS",
    "ROW_NOTES",
    "BundleFile",
    "ExportError",
    "ExportResult",
    "arrow_schema",
    "bundle_filename",
    "bundle_stream",
    "can_export_identifiers",
    "csv_chunks",
    "csv_encode",
    "expected_rows",
    "export_to_dir",
    "jsonl_chunks",
    "manifest_bytes",
    "neutralise",
    "parquet_chunks",
    "recent_exports",
    "rows_by_format",
    "trial_for_export",
]
