"""The trial as the generator sees it: its stages, tasks, quiz and baseline questions, read once."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from analysis.synthetic.model import (
    CHUNK_SIZES,
    OTHER_TASK_CENSOR_RATE,
    TIME_SIGMA,
    UNLIMITED_TASK_MEDIAN_S,
    FlowRates,
    SyntheticEffects,
    _answer,
    _calibrate,
    _quiz_item,
    _QuizModel,
    _Script,
    _scripts,
)
from quizzes.selectors import stage_quiz
from trials.assistant import load_material
from trials.assistant.replies import CODE_BLOCK_RE
from trials.assistant.settings import AssistantSettings
from trials.definition import eligibility_failures, question_choices
from trials.judge import test_specs
from trials.models import (
    Arm,
    Stage,
    Trial,
)
from trials.tasks import load_task


@dataclass
class _TaskModel:
    folder: str
    starter: str
    target: str
    scripts: list[_Script]  # finest first
    test_names: list[str]
    snippet: str  # something a participant might copy from the instructions
    assistant_pool: list[tuple[str, str, list[str]]]  # question, reply, code blocks in reply
    instructions_tokens: int
    _sha: dict[str, str] = field(default_factory=dict)

    def sha(self, code: str) -> str:
        digest = self._sha.get(code)
        if digest is None:
            digest = hashlib.sha256(code.encode()).hexdigest()
            if len(self._sha) < 10_000:
                self._sha[code] = digest
        return digest


def _task_model(trial: Trial, folder: str, arm_settings: AssistantSettings | None) -> _TaskModel:
    task = load_task(trial.files, folder)
    target = task.solution if task.solution.strip() else task.starter + "\n# finished\n"
    scripts = _scripts(task.starter, target, CHUNK_SIZES)
    # The coarsest: the whole text replaced in one edit (a paste), at least one step.
    scripts.append(_Script([(0, len(task.starter), target)], [task.starter, target]))
    names = [spec.label for spec in test_specs(task.tests)]
    code_lines = [
        line.strip()
        for line in task.instructions.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    snippet = min(code_lines, key=len) if code_lines else task.title
    pool: list[tuple[str, str, list[str]]] = []
    material = load_material(trial.files, folder)
    solution_on_request = arm_settings.solution_on_request if arm_settings else True
    questions = [f"How do I use {kw} here?" for e in material.entries for kw in e.keywords[:2]]
    questions += ["Can you write the code for me?", "What should I do next?"]
    for question in questions:
        reply = material.choose(question, solution_on_request=solution_on_request).text
        pool.append((question, reply, CODE_BLOCK_RE.findall(reply)))
    return _TaskModel(
        folder=folder,
        starter=task.starter,
        target=target,
        scripts=scripts,
        test_names=names,
        snippet=snippet[:200],
        assistant_pool=pool,
        instructions_tokens=len(task.instructions) // 4,
    )


@dataclass
class _StageInfo:
    row: Stage
    index: int
    limit: float | None
    tasks: list[_TaskModel] = field(default_factory=list)
    quiz: _QuizModel | None = None
    median: float = 0.0  # reference arm's median total time (task stages)
    treatment_factor: float = 1.0  # time multiplier of the treatment arms (main stage)
    task_number: int = -1  # index among the task stages

    @property
    def key(self) -> str:
        return self.row.key

    @property
    def type(self) -> str:
        return self.row.type


@dataclass
class _World:
    trial: Trial
    stages: list[_StageInfo]
    arms: dict[str, Arm]
    reference_arm: str
    assistant_arms: set[str]
    assistant_settings: dict[str, AssistantSettings]
    main_stage: _StageInfo | None
    effects: SyntheticEffects
    rates: FlowRates

    @property
    def screening_index(self) -> int:
        return next(s.index for s in self.stages if s.type == Stage.Type.SCREENING)

    @property
    def task_stages(self) -> list[_StageInfo]:
        return [s for s in self.stages if s.type == Stage.Type.TASK]


def _main_task_stage(trial: Trial, stages: list[_StageInfo]) -> _StageInfo | None:
    tasks = [s for s in stages if s.type == Stage.Type.TASK]
    plan = trial.definition.get("analysis", {})
    for outcome in plan.get("secondary", []) + [plan.get("primary", {})]:
        if outcome.get("outcome") == "completion_time" and outcome.get("stage"):
            found = [s for s in tasks if s.key == outcome["stage"]]
            if found:
                return found[0]
    with_assistant = [s for s in tasks if "assistant" in s.row.tools]
    if with_assistant:
        return with_assistant[0]
    return tasks[-1] if tasks else None


def _build_world(trial: Trial, effects: SyntheticEffects, rates: FlowRates) -> _World:
    arms = {arm.key: arm for arm in trial.arms.order_by("order")}
    reference = trial.definition.get("analysis", {}).get("reference_arm") or next(iter(arms))
    if reference not in arms:
        reference = next(iter(arms))
    assistant_arms = {key for key, arm in arms.items() if "assistant" in (arm.tools or [])}
    settings = {key: AssistantSettings.from_table(arms[key].settings) for key in assistant_arms}
    stages: list[_StageInfo] = []
    for index, row in enumerate(trial.stages.order_by("order")):
        limit = float(row.time_limit_seconds) if row.time_limit_seconds else None
        stages.append(_StageInfo(row=row, index=index, limit=limit))
    any_settings = next(iter(settings.values()), None)
    for number, info in enumerate(s for s in stages if s.type == Stage.Type.TASK):
        info.task_number = number
        info.tasks = [
            _task_model(trial, folder, any_settings) for folder in info.row.config.get("tasks", [])
        ]
    for info in stages:
        if info.type == Stage.Type.QUIZ:
            quiz = stage_quiz(trial, info.row)
            items = [_quiz_item(q) for q in quiz.questions]
            model = _QuizModel(
                stage=info.row,
                quiz=quiz,
                items=items,
                scored=[j for j, it in enumerate(items) if it.question.scored and it.max_points],
            )
            _calibrate(model, effects)
            info.quiz = model
    main = _main_task_stage(trial, stages)
    z_sigma = TIME_SIGMA
    for info in stages:
        if info.type != Stage.Type.TASK:
            continue
        rate = effects.censor_rate if info is main else OTHER_TASK_CENSOR_RATE
        if info.limit:
            z = NormalDist().inv_cdf(1 - rate) if rate > 0 else 4.0
            info.median = info.limit * math.exp(-z * z_sigma)
        else:
            info.median = UNLIMITED_TASK_MEDIAN_S * max(1, len(info.tasks))
        if info is main:
            mean = info.median * math.exp(z_sigma**2 / 2)
            info.treatment_factor = max(0.2, 1 - effects.speed_gain_min * 60 / mean)
    return _World(
        trial=trial,
        stages=stages,
        arms=arms,
        reference_arm=reference,
        assistant_arms=assistant_arms,
        assistant_settings=settings,
        main_stage=main,
        effects=effects,
        rates=rates,
    )


class _BaselineSampler:
    """Baseline answers that pass (or fail) the trial's eligibility rules."""

    def __init__(self, trial: Trial) -> None:
        self.questions: list[dict[str, Any]] = list(trial.definition.get("baseline", []))
        self.rules: list[dict[str, Any]] = list(trial.definition.get("eligibility", []))
        self.allowed: dict[str, list[str]] = {}
        for question in self.questions:
            rules = [r for r in self.rules if r["question"] == question["key"]]
            if question["type"] in ("single_choice", "likert", "yes_no") and rules:
                self.allowed[question["key"]] = [
                    c["value"]
                    for c in question_choices(question)
                    if not eligibility_failures(rules, {question["key"]: c["value"]})
                ]

    def _draw(self, rand: random.Random, *, eligible: bool) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        for question in self.questions:
            key = question["key"]
            if eligible and self.allowed.get(key):
                answers[key] = rand.choice(self.allowed[key])
                continue
            value = _answer(question, rand)
            if value not in (None, "", []):
                answers[key] = value
        return answers

    def eligible(self, rand: random.Random) -> dict[str, Any] | None:
        for _ in range(200):
            answers = self._draw(rand, eligible=True)
            if not eligibility_failures(self.rules, answers):
                return answers
        return None

    def ineligible(self, rand: random.Random) -> tuple[dict[str, Any], list[str]] | None:
        if not self.rules:
            return None
        for _ in range(200):
            answers = self._draw(rand, eligible=False)
            reasons = eligibility_failures(self.rules, answers)
            if reasons:
                return answers, reasons
        return None
