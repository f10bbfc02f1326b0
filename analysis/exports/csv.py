"""CSV: one RFC 4180 file per data set, text cells guarded for spreadsheets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pandas as pd

from analysis.datasets import Column
from analysis.exports.cells import check_columns, csv_cells, csv_encode
from analysis.exports.writer import FormatWriter, RowCounter
from trials.models import Trial


def csv_chunks(
    columns: Sequence[Column], frames: Iterable[pd.DataFrame], *, on_rows: RowCounter | None = None
) -> Iterator[bytes]:
    """The header, then one block of CSV per frame."""
    yield csv_encode([[c.name for c in columns]])
    for frame in frames:
        check_columns(columns, frame)
        cells = [csv_cells(frame[c.name], c.type) for c in columns]
        yield csv_encode(zip(*cells, strict=True))
        if on_rows is not None:
            on_rows(len(frame))


class CsvWriter(FormatWriter):
    name = "csv"
    extension = "csv"

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
