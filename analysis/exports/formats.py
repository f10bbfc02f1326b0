"""The registry of format writers: the one place that lists the export formats. The bundle
picks a writer here by name; each writer's module knows nothing of the bundle."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from analysis.exports.cells import ExportError
from analysis.exports.csv import CsvWriter, csv_chunks
from analysis.exports.jsonl import JsonLinesWriter, jsonl_chunks
from analysis.exports.parquet import ParquetWriter, parquet_chunks
from analysis.exports.progsnap2 import ProgSnap2Writer
from analysis.exports.writer import FormatWriter

WRITERS: dict[str, FormatWriter] = {
    w.name: w for w in (CsvWriter(), ParquetWriter(), JsonLinesWriter(), ProgSnap2Writer())
}
FORMATS = tuple(WRITERS)
# The renderers of the plain formats, by format (benchmarks render data sets directly).
RENDERERS: dict[str, Callable[..., Iterator[bytes]]] = {
    "csv": csv_chunks,
    "parquet": parquet_chunks,
    "json": jsonl_chunks,
}
EXTENSIONS = {name: WRITERS[name].extension for name in RENDERERS}
# Tables whose "rows now" figure is not the exact row count of the file, and what it is.
ROW_NOTES: dict[str, dict[str, str]] = {
    w.name: w.row_notes for w in WRITERS.values() if w.row_notes
}


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def writer_for(fmt: str) -> FormatWriter:
    check_format(fmt)
    return WRITERS[fmt]
