"""The columns of the data sets. Each participants column is declared with the function that
computes it (:class:`Computed`), grouped by theme, in the order of the data set."""

from __future__ import annotations

from analysis.datasets.column import Column
from analysis.datasets.columns.activity import activity_columns
from analysis.datasets.columns.base import Computed, col
from analysis.datasets.columns.flow import (
    allocation_columns,
    duplicate_columns,
    population_columns,
    session_columns,
)
from analysis.datasets.columns.identity import (
    baseline_columns,
    identifier_columns,
    identity_columns,
)
from analysis.datasets.columns.quiz import category_columns, quiz_columns
from analysis.datasets.columns.survey import survey_columns
from analysis.datasets.columns.tables import allocation_table, event_table, item_table
from analysis.datasets.columns.timing import timing_columns
from analysis.datasets.shape import TrialShape


def participant_columns(shape: TrialShape, identified: bool) -> list[Computed]:
    """The participants data set's columns, in order, each with how it is computed."""
    columns = identity_columns(shape)
    columns += baseline_columns(shape)
    columns += allocation_columns(shape)
    columns += population_columns()
    columns += duplicate_columns(shape)
    columns += session_columns()
    columns += timing_columns(shape)
    columns += activity_columns()
    columns += quiz_columns(shape)
    columns += category_columns(shape)
    columns += survey_columns(shape)
    if identified:
        columns += identifier_columns()
    return columns


__all__ = [
    "Column",
    "Computed",
    "allocation_table",
    "col",
    "event_table",
    "item_table",
    "participant_columns",
]
