"""Parquet: one file per data set, typed columns, each field's codebook entry as metadata."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.datasets import Column
from analysis.exports.cells import check_columns
from analysis.exports.writer import ByteSink, FormatWriter, RowCounter
from trials.models import Trial

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
    sink = ByteSink()
    writer = pq.ParquetWriter(sink, schema, compression="snappy")
    try:
        wrote = False
        for frame in frames:
            check_columns(columns, frame)
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


class ParquetWriter(FormatWriter):
    name = "parquet"
    extension = "parquet"

    def render(
        self,
        columns: Sequence[Column],
        frames: Iterable[pd.DataFrame],
        *,
        on_rows: RowCounter | None,
        dataset: str,
        trial: Trial,
    ) -> Iterator[bytes]:
        metadata = {"skilltrial.dataset": dataset, "skilltrial.trial": trial.slug}
        return parquet_chunks(columns, frames, on_rows=on_rows, metadata=metadata)
