"""Exports: the tidy data sets as CSV, Parquet, JSON Lines or ProgSnap2, in a zip bundle with
a codebook and a manifest, streamed with bounded memory.

The package, one module per part (arrows point down the list, never up):

- ``bundle``: ``bundle_stream`` (a zip written to a non-seekable sink, nothing buffered but
  the current chunk) and ``export_to_dir`` (the same files into a directory, or the zip);
  it picks the format writer from ``formats`` and records the export through ``audit``.
- ``manifest``: file name, row counts, codebook notes and the manifest of a bundle.
- ``audit``: every export is a :class:`~analysis.models.DataExport` row (who, what, when,
  identified or not, row counts, checksums), kept up to date while it runs; the identifiers
  permission.
- ``formats``: the registry of format writers, the one list of formats.
- ``csv``, ``parquet``, ``jsonl``, ``progsnap2``: one module per format. The renderers
  (``csv_chunks``, ``jsonl_chunks``, ``parquet_chunks``) take a list of
  :class:`~analysis.datasets.Column` and an iterator of DataFrame chunks and yield bytes;
  only one chunk is in memory at a time.
- ``writer`` (what a format writer is, the bundle's entries) and ``cells`` (CSV cells, JSON
  tokens): shared by the formats.

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

from analysis.exports.audit import (
    IDENTIFIERS_PERMISSION,
    PROGRESS_EVERY_SECONDS,
    Progress,
    can_export_identifiers,
    recent_exports,
)
from analysis.exports.bundle import (
    FLUSH_BYTES,
    BundleFile,
    ExportResult,
    bundle_stream,
    export_to_dir,
    trial_for_export,
)
from analysis.exports.cells import FORMULA_TRIGGERS, ExportError, csv_encode, neutralise
from analysis.exports.csv import csv_chunks
from analysis.exports.formats import EXTENSIONS, FORMATS, RENDERERS, ROW_NOTES, WRITERS
from analysis.exports.jsonl import jsonl_chunks
from analysis.exports.manifest import (
    bundle_filename,
    expected_rows,
    manifest_bytes,
    rows_by_format,
)
from analysis.exports.parquet import ARROW_TYPES, arrow_schema, parquet_chunks
from analysis.exports.writer import CHUNK_ROWS, BundleEntry, FormatWriter, RowCounter

__all__ = [
    "ARROW_TYPES",
    "CHUNK_ROWS",
    "EXTENSIONS",
    "FLUSH_BYTES",
    "FORMATS",
    "FORMULA_TRIGGERS",
    "IDENTIFIERS_PERMISSION",
    "PROGRESS_EVERY_SECONDS",
    "RENDERERS",
    "ROW_NOTES",
    "WRITERS",
    "BundleEntry",
    "BundleFile",
    "ExportError",
    "ExportResult",
    "FormatWriter",
    "Progress",
    "RowCounter",
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
