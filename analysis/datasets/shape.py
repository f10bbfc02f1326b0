"""What the columns of a trial depend on: its stages, tasks, questions, categories and arms."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from analysis.datasets import reads
from trials.definition import question_choices

if TYPE_CHECKING:
    from trials.models import Stage, Trial


@dataclass
class TrialShape:
    """What the columns of a trial depend on: its stages, tasks, questions and categories."""

    trial: Trial
    stages: list[Stage]
    task_stages: list[Stage]
    tasks: list[tuple[Stage, str, str]]  # (stage, folder, column name)
    baseline: list[dict[str, Any]]
    survey: list[tuple[Stage, dict[str, Any]]]
    categories: list[str]
    quiz_max: float | None
    category_max: dict[str, float]
    arms: dict[str, str]
    attention_keys: set[str] = field(default_factory=set)


def task_name(folder: str) -> str:
    return PurePosixPath(folder).name


def _quiz_points(
    trial: Trial, stages: list[Stage]
) -> tuple[list[str], dict[str, float], float | None, set[str]]:
    """(categories in order of appearance, points per category, quiz points, attention
    check keys); the quiz points are None when the trial has no quiz."""
    categories: list[str] = []
    category_max: dict[str, float] = {}
    quiz_max: float | None = None
    attention: set[str] = set()
    for quiz in reads.stage_quizzes(trial, stages):
        quiz_max = quiz_max or 0.0
        for q in quiz.questions:
            if q.attention_check:
                attention.add(q.key)
                continue
            quiz_max += q.points
            for c in q.categories:
                if c not in category_max:
                    categories.append(c)
                    category_max[c] = 0.0
                category_max[c] += q.points
    return categories, category_max, quiz_max, attention


def trial_shape(trial: Trial) -> TrialShape:
    stages = reads.trial_stages(trial)
    task_stages = [s for s in stages if s.type == reads.TASK_STAGE]
    tasks = [
        (s, folder, task_name(folder)) for s in task_stages for folder in s.config.get("tasks", [])
    ]
    survey = [
        (s, q)
        for s in stages
        if s.type == reads.SURVEY_STAGE
        for q in s.config.get("questions", [])
    ]
    categories, category_max, quiz_max, attention = _quiz_points(trial, stages)
    return TrialShape(
        trial=trial,
        stages=stages,
        task_stages=task_stages,
        tasks=tasks,
        baseline=list(trial.definition.get("baseline", [])),
        survey=survey,
        categories=categories,
        quiz_max=quiz_max,
        category_max=category_max,
        arms=reads.arm_labels(trial),
        attention_keys=attention,
    )


def allowed(question: dict[str, Any]) -> tuple[str, ...]:
    return tuple(c["value"] for c in question_choices(question))


def question_type(question: dict[str, Any]) -> str:
    kind = question.get("type", "")
    if kind in ("number", "integer"):
        return "number"
    return "string"


def warmup_stage(shape: TrialShape) -> Stage | None:
    for s in shape.task_stages:
        if s.key == "warmup":
            return s
    return shape.task_stages[0] if shape.task_stages else None


def intervention_stage(stages: list[Stage]) -> Stage | None:
    """The stage where the arms differ: the first with tools, else the first task stage."""
    for s in stages:
        if s.tools:
            return s
    return next((s for s in stages if s.type == reads.TASK_STAGE), None)
