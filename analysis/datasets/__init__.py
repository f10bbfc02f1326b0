"""The tidy data sets of a trial, as pandas frames: participants, items, events, allocations.

Every column is declared once, as a :class:`Column` with its type, unit, allowed values,
description and source, and the codebook of every export is generated from those
declarations. Column names are stable: the same in every format, the API and the report.

Participants are named by their pseudonymous ``public_code`` (stable within a trial).
External identifiers (Prolific ids, completion codes, the internal id) are *identifier*
columns, present only when a caller asks for ``identified=True`` (and is allowed to).

The participants data set is computed in bulk (a fixed number of queries whatever the
trial's size); the events data set is streamed from the database in chunks
(:func:`iter_dataset_chunks`), so exports of millions of events stay within bounded memory.

The parts:

- :mod:`.column`: the :class:`Column` declaration and the names of the data sets;
- :mod:`.reads`: every database read (the analysis app's selector layer);
- :mod:`.shape`: what a trial's columns depend on (stages, tasks, questions, categories);
- :mod:`.population`: the population rules, pure (censoring, non-compliance, per protocol);
- :mod:`.people`: each participant's facts, derived once from the bulk reads;
- :mod:`.columns`: the columns, each participants column declared with the function that
  computes it, by theme (identity, flow, timing, activity, quiz, survey);
- :mod:`.streams` and :mod:`.frames`: rows and typed frames;
- :mod:`.study_input`: the analysis input of a trial.
"""

from __future__ import annotations

from analysis.datasets.column import DATASETS, TYPES, Column, UnknownDataset
from analysis.datasets.frames import (
    dataset_columns,
    dataset_frame,
    dataset_row_count,
    iter_dataset_chunks,
    typed_frame,
)
from analysis.datasets.population import (
    ERROR_STATUSES,
    LARGE_PASTE_CHARS,
    OUTSIDE_HELP_QUESTIONS,
)
from analysis.datasets.reads import CHUNK, PENDING_STATUSES
from analysis.datasets.shape import intervention_stage
from analysis.datasets.study_input import analysis_input

__all__ = [
    "CHUNK",
    "DATASETS",
    "ERROR_STATUSES",
    "LARGE_PASTE_CHARS",
    "OUTSIDE_HELP_QUESTIONS",
    "PENDING_STATUSES",
    "TYPES",
    "Column",
    "UnknownDataset",
    "analysis_input",
    "dataset_columns",
    "dataset_frame",
    "dataset_row_count",
    "intervention_stage",
    "iter_dataset_chunks",
    "typed_frame",
]
