"""Times: each task stage's start, time and censoring, each task's time, runs, checks and
submission, and the warm-up time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis.datasets.columns.base import Computed, col
from analysis.datasets.people import Person, TaskFacts, Timed
from analysis.datasets.shape import TrialShape, warmup_stage

if TYPE_CHECKING:
    from trials.models import Stage


def _stage_columns(s: Stage) -> list[Computed]:
    def timed(p: Person) -> Timed:
        return p.stages[s.key]

    limit = f" (limit {s.time_limit_seconds / 60:g} min)" if s.time_limit_seconds else ""
    return [
        col(
            f"stage_{s.key}_started_at",
            "datetime",
            f"Start of stage {s.key}",
            "stage_records.started_at",
            lambda p: timed(p).started_at,
            unit="UTC",
        ),
        col(
            f"stage_{s.key}_time_min",
            "number",
            f"Minutes from the start of stage {s.key} until every task in it had passed"
            " its hidden tests; if not all passed, minutes until the stage ended or its"
            f" limit{limit}, whichever came first",
            "stage_records, task_states.first_passed_at",
            lambda p: timed(p).minutes,
            unit="minutes",
        ),
        col(
            f"stage_{s.key}_censored",
            "boolean",
            f"Not every task of stage {s.key} passed within the limit (the time is censored)",
            "task_states.first_passed_at",
            lambda p: timed(p).censored,
        ),
    ]


def _task_columns(s: Stage, folder: str, name: str) -> list[Computed]:
    def task(p: Person) -> TaskFacts:
        return p.tasks[name]

    return [
        col(
            f"task_{name}_time_min",
            "number",
            f"Minutes from the start of stage {s.key} until task {folder} first passed"
            " (censored like the stage time if it never did)",
            "task_states.first_passed_at",
            lambda p: task(p).time.minutes,
            unit="minutes",
        ),
        col(
            f"task_{name}_censored",
            "boolean",
            f"Task {folder} never passed within the limit",
            "task_states.first_passed_at",
            lambda p: task(p).time.censored,
        ),
        col(
            f"task_{name}_runs",
            "integer",
            f"Runs of the program in task {folder}",
            "task_states.runs",
            lambda p: task(p).runs,
            unit="count",
        ),
        col(
            f"task_{name}_checks",
            "integer",
            f"Checks against the hidden tests in task {folder}",
            "task_states.checks",
            lambda p: task(p).checks,
            unit="count",
        ),
        col(
            f"task_{name}_submitted",
            "boolean",
            f"Task {folder} was submitted",
            "task_states.submitted_at",
            lambda p: task(p).submitted,
        ),
        col(
            f"task_{name}_submitted_min",
            "number",
            f"Minutes from the start of stage {s.key} until task {folder} was submitted"
            " (empty if it never was)",
            "task_states.submitted_at",
            lambda p: task(p).submitted_min,
            unit="minutes",
        ),
    ]


def timing_columns(shape: TrialShape) -> list[Computed]:
    columns = [c for s in shape.task_stages for c in _stage_columns(s)]
    columns += [c for s, folder, name in shape.tasks for c in _task_columns(s, folder, name)]
    warm = warmup_stage(shape)
    columns.append(
        col(
            "warmup_time_min",
            "number",
            "Time of the warm-up stage (stage 'warmup', else the first task stage), as its"
            " <stage>_time_min",
            "stage_records, task_states",
            lambda p: p.stages[warm.key].minutes if warm else None,
            unit="minutes",
        )
    )
    return columns
