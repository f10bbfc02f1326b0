"""What every analysis consumes: one frame of participants, the plan, and how to read outcomes.

`AnalysisInput` is filled either from a trial (``analysis.datasets.analysis_input``) or from a
CSV described by a mapping file (``analysis.mapping.csv_analysis_input``); `run_analysis`
does not know which. No Django import.

Outcome names follow the plan (``quiz_score``, ``completion_time``, ``category_scores``, ...).
A name ``plan_name:detail`` (e.g. ``survey:effort``) counts as the plan outcome ``plan_name``
when deciding what was preregistered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

OutcomeKind = Literal["continuous", "time", "binary", "categories"]


@dataclass(frozen=True)
class OutcomeSpec:
    """How to read one outcome from `AnalysisInput.frame`.

    * ``continuous``: ``column`` holds a number per participant (quiz points, minutes,
      a count). ``max_points`` (or a per-row ``max_column``) is the maximum, for percentages.
    * ``time``: ``column`` holds minutes (or ``unit``) until the participant finished;
      ``censored_column`` is true where they had not finished (the time is then the time
      observed, usually the limit). Without ``censored_column`` a time at or above ``limit``
      counts as censored; without either, every time is a finish. ``limit`` is the stage's
      time limit, used as the restricted-mean horizon.
    * ``binary``: ``column`` is true/false (1/0), e.g. completed all tasks.
    * ``categories``: ``categories`` maps a category name to a ``continuous`` spec each
      (its points column and maximum); the categories form one family for multiplicity.
    """

    kind: OutcomeKind
    column: str = ""
    label: str = ""
    unit: str = ""
    max_points: float | None = None
    max_column: str | None = None
    censored_column: str | None = None
    limit: float | None = None
    categories: dict[str, OutcomeSpec] = field(default_factory=dict)


@dataclass
class AnalysisInput:
    """One row per participant plus everything needed to analyse and report it.

    ``frame`` holds every participant who entered (allocated or not, so CONSORT counts can be
    made from it); the analysis keeps the rows whose ``arm_column`` is non-empty and, if the
    frame has an ``itt`` column, true there.

    ``plan`` is the normalised ``[analysis]`` table of the trial definition: keys
    ``reference_arm``, ``alpha``, ``primary`` ({outcome, description, stage?, margin?}),
    ``secondary`` (list of the same), ``covariates`` (names, keys of ``covariates`` below),
    ``populations`` ({per_protocol: [rule, ...]}).

    ``meta`` (all optional, JSON-safe or datetimes): ``title``, ``slug``, ``version``,
    ``protocol_hash``, ``trial_status`` (draft/live/closed), ``launched_at``, ``closed_at``,
    ``plan_changed`` (bool) or ``plan_hash_at_launch`` + ``plan_hash``, ``synthetic`` (bool),
    ``snapshot`` ({taken_at, rows, sha256}), ``source`` ("skilltrial" | "csv"), ``notes``
    (list of strings shown in the report).
    """

    frame: pd.DataFrame
    plan: dict[str, Any]
    reference_arm: str
    outcomes: dict[str, OutcomeSpec]
    arm_column: str = "arm"
    arm_labels: dict[str, str] = field(default_factory=dict)
    covariates: dict[str, str] = field(default_factory=dict)
    baseline_columns: list[str] = field(default_factory=list)
    # Ordered (value, label) choices of categorical baseline columns, from the definition:
    # the baseline table shows the labels in the questionnaire's order.
    baseline_choices: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    items: pd.DataFrame | None = None
    per_protocol_column: str | None = "per_protocol"
    meta: dict[str, Any] = field(default_factory=dict)
    consort: dict[str, Any] | None = None

    def arm_label(self, arm: str) -> str:
        return self.arm_labels.get(arm, arm)


def plan_outcome_name(outcome: str) -> str:
    """The plan outcome an outcome name belongs to (``survey:effort`` -> ``survey``)."""
    return outcome.split(":", 1)[0]
