"""The analysis input of a trial: its participants data set, plan and outcomes as an
:class:`analysis.inputs.AnalysisInput`, for the analysis, the report and CONSORT."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pandas as pd
from django.utils import timezone

from analysis.consort import consort_counts
from analysis.datasets import reads
from analysis.datasets.frames import dataset_frame
from analysis.datasets.shape import TrialShape, trial_shape, warmup_stage
from analysis.inputs import AnalysisInput, OutcomeSpec
from trials.definition import protocol_hash

if TYPE_CHECKING:
    from trials.models import Stage, Trial


def _analysis_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable pandas dtypes as plain numpy ones (NaN for missing), for the statistics."""
    out = frame.copy()
    for name in out.columns:
        dtype = str(out[name].dtype)
        if dtype in ("Float64", "Int64"):
            out[name] = out[name].astype("float64")
        elif dtype in ("boolean", "string"):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out


def _numeric_or_none(series: pd.Series) -> pd.Series | None:
    values = pd.to_numeric(series, errors="coerce")
    if values.notna().sum() == 0 or values.notna().sum() < series.notna().sum():
        return None
    return values.astype("float64")


def _stage_for(shape: TrialShape, entry: dict[str, Any]) -> Stage | None:
    """The task stage a plan entry names, else the last task stage."""
    stages = {s.key: s for s in shape.task_stages}
    key = entry.get("stage")
    if key and key in stages:
        return stages[key]
    return shape.task_stages[-1] if shape.task_stages else None


def _time_spec(stage: Stage, label: str) -> OutcomeSpec:
    return OutcomeSpec(
        kind="time",
        column=f"stage_{stage.key}_time_min",
        censored_column=f"stage_{stage.key}_censored",
        limit=stage.time_limit_seconds / 60 if stage.time_limit_seconds else None,
        unit="minutes",
        label=label,
    )


def _category_spec(shape: TrialShape, label: str) -> OutcomeSpec:
    return OutcomeSpec(
        kind="categories",
        label=label,
        unit="points",
        categories={
            c: OutcomeSpec(
                kind="continuous",
                column=f"quiz_cat_{c}",
                max_points=shape.category_max[c],
                unit="points",
                label=c.replace("_", " "),
            )
            for c in shape.categories
        },
    )


def _survey_specs(shape: TrialShape, frame: pd.DataFrame) -> dict[str, OutcomeSpec]:
    """An outcome per numeric survey question; makes its column numeric in ``frame``."""
    outcomes: dict[str, OutcomeSpec] = {}
    for _stage, q in shape.survey:
        column = f"survey_{q['key']}"
        values = _numeric_or_none(frame[column])
        if values is None:
            continue
        frame[column] = values
        outcomes[f"survey:{q['key']}"] = OutcomeSpec(
            kind="continuous", column=column, label=q.get("text", q["key"])
        )
    return outcomes


def _task_completed_spec(
    shape: TrialShape, entry: dict[str, Any], frame: pd.DataFrame, label: str
) -> OutcomeSpec | None:
    """Whether every task of the stage passed; adds its column to ``frame``."""
    stage = _stage_for(shape, entry)
    if stage is None:
        return None
    column = f"stage_{stage.key}_completed"
    censored = frame[f"stage_{stage.key}_censored"]
    frame[column] = [None if c is None else not c for c in censored]
    return OutcomeSpec(kind="binary", column=column, label=label)


def _outcome_specs(
    shape: TrialShape, entry: dict[str, Any], frame: pd.DataFrame
) -> dict[str, OutcomeSpec]:
    """The outcome(s) of one plan entry (none when the trial cannot measure it)."""
    name = entry.get("outcome", "")
    label = entry.get("description", "") or name
    spec: OutcomeSpec | None = None
    if name == "quiz_score" and shape.quiz_max is not None:
        spec = OutcomeSpec(
            kind="continuous",
            column="quiz_score",
            max_points=shape.quiz_max,
            unit="points",
            label=label,
        )
    elif name == "quiz_percent":
        spec = OutcomeSpec(
            kind="continuous", column="quiz_percent", max_points=100.0, unit="%", label=label
        )
    elif name == "category_scores" and shape.categories:
        spec = _category_spec(shape, label)
    elif name in ("completion_time", "warmup_time"):
        stage = warmup_stage(shape) if name == "warmup_time" else _stage_for(shape, entry)
        spec = _time_spec(stage, label) if stage is not None else None
    elif name == "task_completed":
        spec = _task_completed_spec(shape, entry, frame, label)
    elif name == "errors":
        spec = OutcomeSpec(kind="continuous", column="errors", unit="count", label=label)
    elif name == "survey":
        return _survey_specs(shape, frame)
    return {name: spec} if spec is not None else {}


def _outcomes(
    shape: TrialShape, plan: dict[str, Any], frame: pd.DataFrame
) -> dict[str, OutcomeSpec]:
    entries = [plan["primary"]] if plan.get("primary") else []
    entries += list(plan.get("secondary") or [])
    outcomes: dict[str, OutcomeSpec] = {}
    for entry in entries:
        outcomes.update(_outcome_specs(shape, entry, frame))
    return outcomes


def _covariates(plan: dict[str, Any], frame: pd.DataFrame) -> dict[str, str]:
    """The plan's covariates by column; numeric baseline answers become numbers in ``frame``."""
    covariates: dict[str, str] = {}
    for name in plan.get("covariates") or []:
        if name == "warmup_time":
            covariates[name] = "warmup_time_min"
        elif f"baseline_{name}" in frame.columns:
            column = f"baseline_{name}"
            values = _numeric_or_none(frame[column])
            if values is not None:
                frame[column] = values
            covariates[name] = column
        elif name in frame.columns:
            covariates[name] = name
    return covariates


def _notes(trial: Trial, plan: dict[str, Any]) -> list[str]:
    later = reads.later_version(trial)
    if later is not None and (later.definition.get("analysis") or {}) != plan:
        return [
            f"Version {later.version} of this trial has a different analysis plan; this report"
            f" follows the plan frozen with version {trial.version}."
        ]
    return []


def _meta(trial: Trial, plan: dict[str, Any], participants: pd.DataFrame) -> dict[str, Any]:
    current_hash = protocol_hash(trial.definition, trial.files)
    notes = _notes(trial, plan)
    csv_bytes = participants.to_csv(index=False).encode()
    return {
        "title": trial.title,
        "slug": trial.slug,
        "version": trial.version,
        "protocol_hash": trial.protocol_hash,
        "trial_status": trial.status,
        "launched_at": trial.launched_at,
        "closed_at": trial.closed_at,
        "plan_changed": bool(trial.protocol_hash) and current_hash != trial.protocol_hash,
        "synthetic": bool(participants["is_synthetic"].fillna(False).any()),
        "synthetic_count": int(participants["is_synthetic"].fillna(False).sum()),
        "snapshot": {
            "taken_at": timezone.now(),
            "rows": len(participants),
            "sha256": hashlib.sha256(csv_bytes).hexdigest(),
        },
        "source": "skilltrial",
        "notes": notes,
    }


def _baseline_choices(shape: TrialShape) -> dict[str, list[tuple[str, str]]]:
    return {
        f"baseline_{q['key']}": [
            (str(c["value"]), str(c.get("label", c["value"])))
            for c in q["choices"]
            if isinstance(c, dict) and "value" in c
        ]
        for q in shape.baseline
        if isinstance(q.get("choices"), list)
    }


def analysis_input(trial: Trial) -> AnalysisInput:
    """The trial's participants, plan and outcomes as an :class:`analysis.inputs.AnalysisInput`
    (everything the analysis, the report and CONSORT need), from its current data."""
    shape = trial_shape(trial)
    participants = dataset_frame(trial, "participants")
    frame = _analysis_frame(participants)
    plan: dict[str, Any] = dict(trial.definition.get("analysis") or {})
    outcomes = _outcomes(shape, plan, frame)
    covariates = _covariates(plan, frame)
    item_frame = dataset_frame(trial, "items")
    items = _analysis_frame(item_frame) if len(item_frame) else None
    meta = _meta(trial, plan, participants)
    reference = str(plan.get("reference_arm") or next(iter(shape.arms), ""))
    consort = consort_counts(frame, arm_order=[reference], outcome_column="quiz_score")
    return AnalysisInput(
        frame=frame,
        plan=plan,
        reference_arm=reference,
        outcomes=outcomes,
        arm_labels=dict(shape.arms),
        covariates=covariates,
        baseline_columns=[f"baseline_{q['key']}" for q in shape.baseline],
        baseline_choices=_baseline_choices(shape),
        items=items,
        per_protocol_column="per_protocol",
        meta=meta,
        consort=consort,
    )
