"""Bundles: ``bundle_stream`` yields a zip (written to a non-seekable sink with data
descriptors, so nothing is buffered but the current chunk); ``export_to_dir`` writes the
same files into a directory (and optionally the zip). The format writer, picked from the
registry, supplies the files; the audit row follows the export from start to finish."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.utils import timezone

from analysis import codebook
from analysis.datasets import Column
from analysis.exports import audit
from analysis.exports.audit import Progress, Tracker, User
from analysis.exports.formats import writer_for
from analysis.exports.manifest import (
    build_manifest,
    bundle_filename,
    bundle_tables,
    codebook_notes,
    expected_rows,
    manifest_bytes,
    privacy_statement,
    synthetic_summary,
)
from analysis.exports.writer import BundleEntry, ByteSink, FormatWriter, dataset_chunks
from analysis.models import DataExport
from trials.models import Trial
from trials.selectors import TrialNotFound, require_trial

# The zip sink hands bytes on once this much has accumulated.
FLUSH_BYTES = 256 * 1024


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


def _entries(
    trial: Trial,
    writer: FormatWriter,
    identified: bool,
    tracker: Tracker,
    tables: dict[str, list[Column]],
    notes: tuple[list[str], list[str]],
) -> Iterator[BundleEntry]:
    """Every file of the bundle but the manifest, each produced only when it is reached."""
    for name in writer.datasets:
        frames = dataset_chunks(trial, name, identified=identified)
        yield BundleEntry(
            f"{name}.{writer.extension}",
            writer.render(
                tables[name], frames, on_rows=tracker.counter(name), dataset=name, trial=trial
            ),
            dataset=name,
            rows=tracker.rows_of(name),
        )
    yield from writer.extra_entries(trial, tracker.counter, tracker.rows_of)
    rows = codebook.codebook_rows(tables)
    yield BundleEntry("codebook.csv", iter([codebook.codebook_csv(rows)]))
    preamble, appendix = notes
    text = codebook.codebook_markdown(
        rows, title=f"Codebook: {trial.title}", preamble=preamble, appendix=appendix
    )
    yield BundleEntry("codebook.md", iter([text.encode("utf-8")]))


class _Export:
    """One export from start to finish: the audit row, the tables, the files, the manifest."""

    def __init__(
        self,
        trial: Trial,
        fmt: str,
        *,
        identified: bool,
        user: User,
        channel: str,
        progress: Progress | None,
    ):
        self.trial = trial
        self.fmt = fmt
        self.writer = writer_for(fmt)
        self.identified = identified
        self.at = timezone.now()
        totals = expected_rows(trial, fmt)
        self.record = audit.open_record(
            trial,
            fmt,
            identified=identified,
            user=user,
            channel=channel,
            rows_total=sum(totals.values()),
        )
        self.tracker = Tracker(self.record, totals, progress)
        self.tables = bundle_tables(trial, fmt, identified)
        self.privacy = privacy_statement(identified, self.tables)
        self.synthetic = synthetic_summary(trial)
        self.files: list[BundleFile] = []
        self.manifest_data: dict[str, Any] = {}
        self.zip_size = 0

    def entries(self) -> Iterator[BundleEntry]:
        notes = codebook_notes(self.trial, self.writer, self.privacy, self.synthetic)
        return _entries(self.trial, self.writer, self.identified, self.tracker, self.tables, notes)

    def add(self, entry: BundleEntry, size: int, digest: str) -> None:
        rows = entry.rows() if entry.rows is not None else None
        self.files.append(BundleFile(entry.path, entry.dataset, rows, size, digest))

    def manifest(self) -> dict[str, Any]:
        return build_manifest(
            self.trial,
            self.fmt,
            self.identified,
            self.at,
            [f.as_json() for f in self.files],
            self.privacy,
            self.synthetic,
        )

    def finish(self, manifest: dict[str, Any], size: int | None) -> None:
        self.tracker.save()
        audit.finish_record(self.record, manifest, size)

    def fail(self, error: BaseException) -> None:
        audit.fail_record(self.record, error)


def _zip_info(path: str, at: datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=at.astimezone(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _zip_bytes(export: _Export) -> Iterator[bytes]:
    """The bundle as a zip, written to a non-seekable sink: each member's sizes and CRC go
    in a data descriptor after its data, so nothing but the current chunk is held."""
    sink = ByteSink()
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
    user: User = None,
    progress: Progress | None = None,
    channel: str = DataExport.Channel.OTHER,
) -> Iterator[bytes]:
    """The export bundle of ``trial`` as zip bytes, produced while they are read.

    Checks the format and, when a ``user`` is given, the identifiers permission at once
    (raising ExportError / PermissionDenied); the DataExport row is created when the first
    bytes are asked for and marked done, or failed if the stream is abandoned."""
    writer_for(fmt)
    audit.check_identified(identified, user)

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


def _write_zip(export: _Export, target: Path, written: list[Path]) -> tuple[dict[str, Any], int]:
    path = target / bundle_filename(
        export.trial, export.fmt, identified=export.identified, at=export.at
    )
    with path.open("xb") as out:
        written.append(path)
        for chunk in _zip_bytes(export):
            out.write(chunk)
    return export.manifest_data, path.stat().st_size


def _write_files(export: _Export, target: Path, written: list[Path]) -> tuple[dict[str, Any], int]:
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
    return manifest, size + len(data)


def export_to_dir(
    trial: Trial,
    fmt: str,
    out_dir: Path | str,
    *,
    identified: bool = False,
    progress: Progress | None = None,
    as_zip: bool = False,
    user: User = None,
    channel: str = DataExport.Channel.COMMAND,
) -> ExportResult:
    """Write the bundle into ``out_dir``: by default its files, unzipped, in the same layout
    as inside the zip (manifest.json last); with ``as_zip`` the single zip file instead."""
    writer_for(fmt)
    audit.check_identified(identified, user)
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    export = _Export(
        trial, fmt, identified=identified, user=user, channel=channel, progress=progress
    )
    written: list[Path] = []
    try:
        write = _write_zip if as_zip else _write_files
        manifest, size = write(export, target, written)
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
