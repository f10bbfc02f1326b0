"""The data sets as pandas frames, each column in the dtype of its declared type."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis.datasets import reads
from analysis.datasets.column import Column, unknown_dataset
from analysis.datasets.columns import (
    allocation_table,
    event_table,
    item_table,
    participant_columns,
)
from analysis.datasets.shape import TrialShape, trial_shape
from analysis.datasets.streams import STREAMED, participants_rows

if TYPE_CHECKING:
    from trials.models import Trial

_DTYPES: dict[str, Any] = {
    "string": "string",
    "integer": "Int64",
    "number": "Float64",
    "boolean": "boolean",
    "json": "string",
}


def typed_frame(
    rows: list[dict[str, Any]] | list[tuple[Any, ...]], columns: list[Column]
) -> pd.DataFrame:
    """A frame with exactly ``columns``, each in the pandas dtype of its declared type."""
    names = [c.name for c in columns]
    frame = pd.DataFrame.from_records(rows, columns=names) if rows else pd.DataFrame(columns=names)
    for c in columns:
        if c.type == "datetime":
            frame[c.name] = pd.to_datetime(frame[c.name], utc=True)
        else:
            frame[c.name] = frame[c.name].astype(_DTYPES[c.type])
    return frame


def columns_of(shape: TrialShape, name: str, identified: bool) -> list[Column]:
    if name == "participants":
        return [c.column for c in participant_columns(shape, identified)]
    if name == "items":
        return item_table(shape)
    if name == "events":
        return event_table(shape)
    if name == "allocations":
        return allocation_table(shape)
    raise unknown_dataset(name)


def dataset_columns(trial: Trial, name: str, *, identified: bool = False) -> list[Column]:
    return columns_of(trial_shape(trial), name, identified)


def _frame(shape: TrialShape, name: str, identified: bool, columns: list[Column]) -> pd.DataFrame:
    if name == "participants":
        return typed_frame(participants_rows(shape, identified), columns)
    if name == "allocations":
        return typed_frame(reads.allocation_rows(shape.trial), columns)
    if name in STREAMED:
        parts = [typed_frame(rows, columns) for rows in STREAMED[name](shape, 50_000)]
        return pd.concat(parts, ignore_index=True) if parts else typed_frame([], columns)
    raise unknown_dataset(name)


def iter_dataset_chunks(
    trial: Trial, name: str, *, identified: bool = False, chunk_size: int = 20_000
) -> Iterator[pd.DataFrame]:
    """The data set as a sequence of frames of at most ``chunk_size`` rows (at least one,
    possibly empty), each with exactly the declared columns. Events and items are streamed
    from the database; participants and allocations (a row per person) are built at once."""
    shape = trial_shape(trial)
    columns = columns_of(shape, name, identified)
    if name in STREAMED:
        produced = False
        for rows in STREAMED[name](shape, chunk_size):
            produced = True
            yield typed_frame(rows, columns)
        if not produced:
            yield typed_frame([], columns)
        return
    frame = _frame(shape, name, identified, columns)
    if len(frame) == 0:
        yield frame
        return
    for start in range(0, len(frame), chunk_size):
        yield frame.iloc[start : start + chunk_size].reset_index(drop=True)


def dataset_frame(trial: Trial, name: str, *, identified: bool = False) -> pd.DataFrame:
    """The whole data set as one frame (for events, prefer :func:`iter_dataset_chunks`)."""
    shape = trial_shape(trial)
    return _frame(shape, name, identified, columns_of(shape, name, identified))


def dataset_row_count(trial: Trial, name: str) -> int:
    queries = reads.row_counts(trial)
    if name not in queries:
        raise unknown_dataset(name)
    return int(queries[name].count())
