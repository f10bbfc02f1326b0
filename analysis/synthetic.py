"""Synthetic trials: fill a live trial with realistic, clearly marked synthetic participants.

For tests, benchmarks and trying out analyses before real data exist. Every participant made
here has ``is_synthetic=True`` (exports carry the flag). What is generated follows the trial's
own definition: its stages and time limits, baseline questions and eligibility rules, strata,
arms and their real randomization, tasks (starter and reference solution), quiz (keys, points,
categories, attention checks, graded with the real grading rules) and surveys.

The effects are set by :class:`SyntheticEffects`:

* Quiz: every item is answered from a latent ability ``theta ~ N(shift_arm, 1)`` with a
  two-parameter logistic item model. The item discrimination and difficulty are calibrated
  (exactly, by Gauss-Hermite quadrature over theta) so that the reference arm scores
  ``reference_quiz_percent`` of the points on average with a spread of ``quiz_sd_percent``,
  and the shift of every other arm is solved so that the population Cohen's d of the total
  score is ``quiz_d``. A sample's realised d scatters around it (SE about sqrt(2/n_per_arm)).
* Completion time of the main task stage: log-normal, with the reference arm's median set
  so that ``censor_rate`` of it reaches the time limit (censored: the stage times out with a
  task not yet passed); every other arm's times are scaled to be ``speed_gain_min`` minutes
  faster on average. Time and quiz ability share a person effect (faster people score a
  little higher), so the warm-up time is a useful covariate.

Randomization is the trial's own: allocations follow ``trials.randomization`` exactly as
``trials.services.allocation_assign`` does, in order of allocation time, under a lock on the
trial's sequence rows, and ``AllocationSequence.next_index`` is advanced, so real
participants enrolled afterwards continue the same sequences.

Speed: nothing is saved row by row. Rows go in batches of 5,000: with COPY on PostgreSQL
(events straight from tuples, without model instances), with one prepared INSERT per batch
(``executemany``) on SQLite, and with ``bulk_create`` for the two tables whose new keys the
events quote (runs, assistant turns). Every value is written as generated, including the
timestamps Django would otherwise stamp itself (``auto_now_add``: ``created_at``,
``server_time``): COPY and the prepared INSERT take the values as converted by each field,
and :class:`_AsGiven` runs ``bulk_create`` in "raw" mode, the mode Django loads fixtures in
("save the instance exactly as presented"). No model field is changed, even briefly, so other
threads are unaffected. On PostgreSQL, outside a transaction, a second thread writes one
batch while the next is generated. 10,000 participants with 200 events each (2 million
events) take about three minutes on a small, busy machine; see the command's output.

Randomness: one ``numpy.random.Generator(seed)`` draws everything about the population; each
participant's details (events, code, answers) come from a ``random.Random`` stream seeded
from it (scalar draws are much faster there), so the same seed gives the same data whatever
the batch size. Arms depend on the trial's own (secret) randomization seed as well. Opaque
identifiers (participant ids, blind ids of answers) are random as everywhere else; they are
not part of the data's content.
"""

from __future__ import annotations

import bisect
import difflib
import hashlib
import json
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from statistics import NormalDist
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from django.db import connection, models, transaction
from django.utils import timezone

from quizzes import grading
from quizzes.models import ItemResponse, QuizAttempt
from quizzes.quizfile import CHOICE_TYPES, IDK_VALUE, Question, Quiz, order_for_participant
from quizzes.selectors import participant_seed, stage_quiz
from trials import randomization
from trials.assistant import load_material
from trials.assistant.base import estimate_cost
from trials.assistant.replies import CODE_BLOCK_RE
from trials.assistant.settings import AssistantSettings
from trials.definition import eligibility_failures, question_choices, stratum_key
from trials.judge import test_specs
from trials.models import (
    Allocation,
    AllocationSequence,
    Arm,
    AssistantTurn,
    CodeRun,
    CodeSnapshot,
    Event,
    Participant,
    Stage,
    StageRecord,
    TaskState,
    Trial,
    new_participant_id,
)
from trials.tasks import load_task

__all__ = [
    "FlowRates",
    "SyntheticEffects",
    "SyntheticError",
    "SyntheticProgress",
    "SyntheticSummary",
    "synthesize_trial",
]

BATCH_SIZE = 5_000
SANDBOX = "synthetic"  # CodeRun.sandbox: nothing was run

# Task time: log-normal spread, and how strongly it follows the person's ability.
TIME_SIGMA = 0.45
TIME_ABILITY_RHO = 0.35
OTHER_TASK_CENSOR_RATE = 0.03  # task stages other than the main one
UNLIMITED_TASK_MEDIAN_S = 12 * 60.0  # per task, for a stage without a time limit
# Other stages: median seconds and log-normal sigma.
STAGE_MEDIAN_S = {"consent": 40.0, "screening": 75.0, "instructions": 90.0, "survey": 150.0}
QUIZ_MEDIAN_S = 12 * 60.0
QUIZ_TIMEOUT_RATE = 0.02
# Enrollment: participants arrive uniformly over this many days, ending an hour ago, and
# every session ends before that (no timestamp lies in the future).
ENROLLMENT_DAYS = 14.0
SESSION_ROOM_S = 4 * 3600.0
# Item model: share of non-correct answers that are "I don't know" / left blank.
IDK_SHARE = 0.25
BLANK_SHARE = 0.03
ASSISTANT_TURNS_PER_TASK = 2.0
SURVEY_YES_SHARE = 0.05  # e.g. "did you use outside help?": a few say yes

T = TypeVar("T")


class SyntheticError(Exception):
    """The trial cannot be synthesized as asked; the message says why."""


@dataclass(frozen=True)
class SyntheticEffects:
    """The effects to build in. Arms other than the analysis plan's reference arm are the
    treatment arms; each gets the same shift."""

    quiz_d: float = -0.74  # Cohen's d of the quiz total vs the reference arm
    speed_gain_min: float = 2.0  # minutes faster on the main task stage (mean, uncensored)
    censor_rate: float = 0.12  # share of the reference arm reaching the main stage's limit
    reference_quiz_percent: float = 67.0  # reference arm's mean quiz score, % of the points
    quiz_sd_percent: float = 22.0  # spread of quiz scores, % of the points

    def problems(self) -> list[str]:
        out = []
        if not -3 <= self.quiz_d <= 3:
            out.append("the quiz effect d must be between -3 and 3")
        if not 0 <= self.censor_rate < 0.9:
            out.append("the censor rate must be at least 0 and below 0.9")
        if not 5 <= self.reference_quiz_percent <= 95:
            out.append("the reference arm's quiz percent must be between 5 and 95")
        if not 1 <= self.quiz_sd_percent <= 45:
            out.append("the quiz SD must be between 1 and 45 percent of the points")
        if not math.isfinite(self.speed_gain_min):
            out.append("the speed gain must be a number of minutes")
        return out


@dataclass(frozen=True)
class FlowRates:
    """How people move through the trial (shares of everyone who enters, except where said)."""

    left_at_consent: float = 0.01  # opened the link, never answered the consent page
    declined: float = 0.04
    left_at_screening: float = 0.01  # consented, never sent the screening form
    screened_out: float = 0.15
    # Of the allocated: withdrew (status withdrawn) or left mid-way (still "active" at a stage).
    withdrawn: float = 0.03
    left: float = 0.04
    attention_fail: float = 0.04  # of those who answer an attention check

    def problems(self) -> list[str]:
        shares = (self.left_at_consent, self.declined, self.left_at_screening, self.screened_out)
        out = []
        if any(not 0 <= s <= 1 for s in (*shares, self.withdrawn, self.left, self.attention_fail)):
            out.append("every rate must be between 0 and 1")
        if sum(shares) >= 1:
            out.append("the rates before allocation leave nobody to allocate")
        if self.withdrawn + self.left > 1:
            out.append("withdrawn + left is more than everyone allocated")
        return out


@dataclass(frozen=True)
class SyntheticProgress:
    participants_done: int
    participants_total: int
    events_written: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events_written / self.seconds if self.seconds > 0 else 0.0


@dataclass
class SyntheticSummary:
    trial_slug: str
    trial_version: int
    seed: int
    participants: int = 0
    left_before_screening: int = 0
    declined: int = 0
    screened_out: int = 0
    allocated: int = 0
    by_arm: dict[str, int] = field(default_factory=dict)
    completed: int = 0
    withdrawn: int = 0
    left: int = 0
    censored: int = 0  # main task stage timed out with a task not passed
    events: int = 0
    snapshots: int = 0
    runs: int = 0
    assistant_turns: int = 0
    item_responses: int = 0
    main_stage: str = ""
    quiz_shift: float = 0.0  # the latent-ability shift that gives the requested d
    seconds: float = 0.0


# --- writing rows as given ------------------------------------------------------------------


class _AsGiven(models.QuerySet[Any]):
    """``bulk_create`` that stores every field as set on the instance, including the
    ``auto_now_add`` timestamps (Django's raw mode, used for loading fixtures). Without it,
    bulk_create would stamp ``created_at``/``server_time`` with the current time."""

    def _insert(
        self,
        objs: Any,
        fields: Any,
        returning_fields: Any = None,
        raw: bool = False,
        using: Any = None,
        on_conflict: Any = None,
        update_fields: Any = None,
        unique_fields: Any = None,
    ) -> Any:
        return super()._insert(  # type: ignore[misc]
            objs,
            fields,
            returning_fields=returning_fields,
            raw=True,
            using=using,
            on_conflict=on_conflict,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )


def _insert(model: type[models.Model], objs: Iterable[Any]) -> int:
    """Insert in batches of BATCH_SIZE without holding more than a batch of instances;
    returns the number of rows. Primary keys are set on the instances (PostgreSQL, SQLite)."""
    count = 0
    iterator = iter(objs)
    while batch := list(islice(iterator, BATCH_SIZE)):
        _AsGiven(model=model).bulk_create(batch)
        count += len(batch)
    return count


def _copy(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """PostgreSQL's COPY FROM STDIN: several times faster than INSERT for millions of rows
    (no SQL text to build or parse). Runs in the caller's transaction."""
    quote = connection.ops.quote_name
    sql = f"COPY {quote(table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    count = 0
    with connection.cursor() as cursor:
        raw: Any = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


def _insert_many(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """One prepared INSERT run for batches of rows (``executemany``), for databases without
    COPY (SQLite): no SQL is compiled per row."""
    quote = connection.ops.quote_name
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    # Table and column names come from the models, quoted; the values are parameters.
    sql = f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})"  # noqa: S608
    count = 0
    iterator = iter(rows)
    with connection.cursor() as cursor:
        while batch := list(islice(iterator, BATCH_SIZE)):
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


def _store(model: type[models.Model], objs: Iterable[Any]) -> int:
    """Write model instances exactly as given (every value, timestamps included, converted
    by its field as Django would): COPY on PostgreSQL, a prepared INSERT elsewhere. Primary
    keys are not read back; use :func:`_insert` for rows whose keys are needed."""
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.db_returning)]
    columns = [str(f.column) for f in fields]
    rows = (
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields] for obj in objs
    )
    if connection.vendor == "postgresql":
        return _copy(model._meta.db_table, columns, rows)
    return _insert_many(model._meta.db_table, columns, rows)


# --- the trial as the generator sees it -----------------------------------------------------


@dataclass
class _Script:
    """Edits that turn the starter into the target, one change per edit event, each given in
    the positions of the text before it (as the editor reports them); ``docs[k]`` is the text
    after ``k`` edits."""

    steps: list[tuple[int, int, str]]
    docs: list[str]


def _scripts(source: str, target: str, chunks: Sequence[int]) -> list[_Script]:
    """Scripts from ``source`` to ``target`` typing ``chunk`` characters per edit, for each
    chunk size (the diff is computed once)."""
    matcher = difflib.SequenceMatcher(None, source, target, autojunk=False)
    opcodes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    scripts = []
    for chunk in chunks:
        steps: list[tuple[int, int, str]] = []
        for tag, i1, i2, j1, j2 in opcodes:
            # Opcodes go left to right; everything left of j1 already reads as the target.
            if tag in ("delete", "replace"):
                steps.append((j1, j1 + (i2 - i1), ""))
            if tag in ("insert", "replace"):
                for start in range(j1, j2, chunk):
                    steps.append((start, start, target[start : min(j2, start + chunk)]))
        docs = [source]
        for start, end, text in steps:
            doc = docs[-1]
            docs.append(doc[:start] + text + doc[end:])
        if docs[-1] != target:  # pragma: no cover - the opcodes always lead there
            raise SyntheticError("could not derive edits from the starter to the solution")
        scripts.append(_Script(steps, docs))
    return scripts


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


CHUNK_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256, 10**9)


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


@dataclass(frozen=True)
class _Outcome:
    """One way of answering a quiz question, graded with the real rules."""

    response: Any
    answers: dict[str, Any]  # what the quiz form posts for it
    points: float
    status: str
    correct: bool | None
    detail: str


@dataclass
class _Item:
    question: Question
    max_points: float
    right: list[_Outcome]
    other: list[_Outcome]
    other_cum: list[float]  # cumulative probabilities over ``other``
    other_mean: float  # expected points of a not fully right answer
    other_sq: float  # and of their square
    offset: float = 0.0  # difficulty relative to the quiz's base difficulty


def _graded(question: Question, response: Any, answers: dict[str, Any]) -> _Outcome:
    g = grading.grade(question, response)
    return _Outcome(response, answers, g.points, g.status, g.correct, g.detail[:300])


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _quiz_item(question: Question) -> _Item:
    key, qtype = question.key, question.type
    right: list[_Outcome] = []
    wrong: list[_Outcome] = []
    candidates: list[tuple[Any, dict[str, Any]]] = []
    if qtype == "single_choice":
        candidates = [(v, {key: v}) for v in question.choice_values]
    elif qtype == "multi_choice":
        values = list(question.choice_values)
        subsets: list[list[str]] = []
        if len(values) <= 8:
            for mask in range(1, 2 ** len(values)):
                subsets.append([v for i, v in enumerate(values) if mask >> i & 1])
        else:
            subsets = [[v] for v in values] + [list(question.answers)]
        candidates = [(s, {key: s}) for s in subsets]
    elif qtype == "numeric" and isinstance(question.answer, int | float):
        base = float(question.answer)
        step = max(1.0, 3 * question.tolerance)
        for value in (base, base + step, base - step, 2 * base + step, 0.0):
            text = _number_text(value)
            candidates.append((text, {key: text}))
    elif qtype == "short_answer":
        texts = [*question.accepted[:1], "I am not sure", "none"]
        candidates = [(t, {key: t}) for t in texts]
    elif qtype == "predict_output":
        lines = grading.normalise_output(question.expected).split("\n")
        variants = ["\n".join(lines), "\n".join(reversed(lines)), "\n".join(lines[:-1])]
        if len(lines) > 1:
            variants.append("\n".join([lines[1], lines[0], *lines[2:]]))
        variants.append("I don't know what it prints")
        candidates = [(v, {key: v}) for v in dict.fromkeys(variants) if v.strip()]
    for response, answers in candidates:
        outcome = _graded(question, response, answers)
        (right if outcome.correct else wrong).append(outcome)
    points = question.points
    if qtype == "free_text":
        levels = (
            sorted({lv.points for lv in question.rubric.levels})
            if question.rubric and question.rubric.levels
            else [i / 2 for i in range(int(points * 2) + 1)]
        )
        for level in levels:
            outcome = _Outcome(
                f"(synthetic answer worth {level:g} of {points:g} points)",
                {key: f"(synthetic answer worth {level:g} of {points:g} points)"},
                level,
                ItemResponse.Status.HUMAN,
                level == points,
                "graded by people (synthetic)",
            )
            (right if level == points else wrong).append(outcome)
    elif qtype == "code_writing":
        code = (question.code or "") + "\n# (synthetic answer)\n"
        for ok in (True, False):
            outcome = _Outcome(
                code + ("" if ok else "# incomplete\n"),
                {key: code + ("" if ok else "# incomplete\n")},
                points if ok else 0.0,
                ItemResponse.Status.AUTO,
                ok,
                "hidden tests (synthetic)",
            )
            (right if ok else wrong).append(outcome)
    elif not right:
        # A key no response could be built for (e.g. short answers given only as patterns).
        right.append(
            _Outcome("(synthetic)", {key: "(synthetic)"}, points, "auto", True, "synthetic")
        )
    other: list[_Outcome] = []
    weights: list[float] = []
    if question.idk:
        if qtype in CHOICE_TYPES:
            idk_response: Any = [IDK_VALUE] if qtype == "multi_choice" else IDK_VALUE
            other.append(_graded(question, idk_response, {key: idk_response}))
        else:
            other.append(_graded(question, IDK_VALUE, {f"{key}__idk": True}))
        weights.append(IDK_SHARE)
    other.append(_graded(question, None, {}))
    weights.append(BLANK_SHARE)
    rest = 1.0 - sum(weights)
    for outcome in wrong:
        other.append(outcome)
        weights.append(rest / len(wrong))
    if not wrong:
        weights = [w / sum(weights) for w in weights]
    cum = list(np.cumsum(weights))
    cum[-1] = 1.0
    mean = sum(w * o.points for w, o in zip(weights, other, strict=True))
    square = sum(w * o.points**2 for w, o in zip(weights, other, strict=True))
    return _Item(question, points, right, other, cum, mean, square)


@dataclass
class _QuizModel:
    stage: Stage
    quiz: Quiz
    items: list[_Item]  # in the quiz's order
    scored: list[int]  # indices of scored items
    discrimination: float = 1.0
    base: float = 0.0  # base difficulty
    shift: float = 0.0  # latent shift of the treatment arms

    def p_right(self, theta: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        offsets = np.array([self.items[j].offset for j in self.scored])
        logits = self.discrimination * (theta[:, None] - self.base - offsets[None, :])
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -50.0, 50.0)))


_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(64)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()


def _score_moments(quiz: _QuizModel, mean: float) -> tuple[float, float]:
    """Exact mean and variance of the total score for theta ~ N(mean, 1)."""
    items = [quiz.items[j] for j in quiz.scored]
    full = np.array([it.max_points for it in items])
    m_other = np.array([it.other_mean for it in items])
    s_other = np.array([it.other_sq for it in items])
    p = quiz.p_right(_GH_NODES + mean)  # nodes x items
    item_mean = p * full + (1 - p) * m_other
    item_var = p * full**2 + (1 - p) * s_other - item_mean**2
    cond_mean = item_mean.sum(axis=1)
    cond_var = item_var.sum(axis=1)
    mu = float(_GH_WEIGHTS @ cond_mean)
    var = float(_GH_WEIGHTS @ (cond_var + cond_mean**2)) - mu**2
    return mu, max(var, 0.0)


def _bisect(fn: Callable[[float], float], target: float, low: float, high: float) -> float:
    """The x in [low, high] where the monotone fn(x) meets target (clamped to the ends)."""
    f_low, f_high = fn(low) - target, fn(high) - target
    if f_low * f_high > 0:
        return low if abs(f_low) < abs(f_high) else high
    for _ in range(60):
        mid = (low + high) / 2
        f_mid = fn(mid) - target
        if f_mid == 0:
            return mid
        if (f_mid < 0) == (f_low < 0):
            low, f_low = mid, f_mid
        else:
            high = mid
    return (low + high) / 2


def _calibrate(quiz: _QuizModel, effects: SyntheticEffects) -> None:
    """Set discrimination and base difficulty for the reference arm's mean and spread, then
    the treatment shift for the requested d (all exact population values)."""
    if not quiz.scored:
        return
    total = sum(quiz.items[j].max_points for j in quiz.scored)
    ranks = sorted(quiz.scored, key=lambda j: (quiz.items[j].max_points, j))
    spread = np.linspace(-0.75, 0.75, len(ranks)) if len(ranks) > 1 else np.zeros(1)
    for rank, j in enumerate(ranks):
        quiz.items[j].offset = float(spread[rank])
    target_mean = effects.reference_quiz_percent / 100 * total
    target_sd = effects.quiz_sd_percent / 100 * total

    def fit_base(a: float) -> float:
        quiz.discrimination = a

        def mean_at(b: float) -> float:
            quiz.base = b
            return -_score_moments(quiz, 0.0)[0]  # decreasing in b; negate to increase

        quiz.base = _bisect(mean_at, -target_mean, -8.0, 8.0)
        return math.sqrt(_score_moments(quiz, 0.0)[1])

    quiz.discrimination = _bisect(fit_base, target_sd, 0.05, 8.0)
    fit_base(quiz.discrimination)
    ref_mean, ref_var = _score_moments(quiz, 0.0)

    def d_at(shift: float) -> float:
        mean, var = _score_moments(quiz, shift)
        pooled = math.sqrt((ref_var + var) / 2)
        return (mean - ref_mean) / pooled if pooled > 0 else 0.0

    quiz.shift = _bisect(d_at, effects.quiz_d, -8.0, 8.0) if effects.quiz_d else 0.0


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


# --- answers to questions (baseline and surveys) --------------------------------------------


def _answer(question: dict[str, Any], rand: random.Random, *, survey: bool = False) -> Any:
    qtype = question["type"]
    if qtype == "yes_no" and survey:
        return "yes" if rand.random() < SURVEY_YES_SHARE else "no"
    if qtype == "likert" and survey:
        return str(min(7, max(1, round(rand.gauss(4.6, 1.4)))))
    if qtype in ("single_choice", "likert", "yes_no"):
        return rand.choice(question_choices(question))["value"]
    if qtype == "multi_choice":
        values = [c["value"] for c in question_choices(question)]
        return [v for v in values if rand.random() < 0.4] or [rand.choice(values)]
    if qtype == "number":
        low = float(question.get("min", 0))
        high = float(question.get("max", low + 100))
        return float(round(rand.uniform(low, high)))
    if qtype == "short_text":
        return rand.choice(["fine", "ok", "no comment", "it was interesting"])
    return rand.choice(
        ["", "", "", "Interesting tasks.", "The time was a bit short.", "Thanks, I learned a lot."]
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


# --- the population: who does what, when ----------------------------------------------------

# Flow outcomes before allocation.
LEFT_CONSENT, DECLINED, LEFT_SCREENING, SCREENED_OUT, ELIGIBLE = range(5)


@dataclass
class _Record:
    stage: _StageInfo
    start: float
    end: float | None = None
    end_reason: str = ""
    deadline: float | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    # Task stages: per task (window start, window end, first pass or None).
    windows: list[tuple[float, float, float | None]] = field(default_factory=list)
    submitted: bool = False


@dataclass
class _Person:
    index: int
    arrival: float
    flow: int
    rand_seed: int
    ability: float  # z, the person's ability before any arm shift
    time_z: npt.NDArray[np.float64]  # per task stage
    task_split: list[npt.NDArray[np.float64]]  # per task stage: shares of the time per task
    durations: npt.NDArray[np.float64]  # per stage, a standard normal for its duration
    jitter: npt.NDArray[np.float64]  # per stage, uniform in (0, 1): small delays
    stop: str = ""  # "", "withdrawn" or "left"
    stop_stage: int = -1
    stop_fraction: float = 0.5
    quiz_timeout: bool = False
    baseline: dict[str, Any] = field(default_factory=dict)
    eligible: bool | None = None
    reasons: list[str] = field(default_factory=list)
    stratum: str = ""
    allocated_at: float = 0.0
    consented_at: float | None = None
    arm: str = ""
    sequence_stratum: str = ""
    sequence_number: int = 0
    allocation_details: dict[str, Any] = field(default_factory=dict)
    records: list[_Record] = field(default_factory=list)
    status: str = Participant.Status.CONSENTING
    current: _Record | None = None
    completed_at: float | None = None
    public_code: str = ""
    completion_code: str = ""
    pid: str = ""
    session_id: str = ""
    participant_id: str = ""
    event_target: int = 0


def _lognormal_s(median: float, sigma: float, z: float) -> float:
    return median * math.exp(sigma * z)


def _draw_population(
    world: _World, n: int, seed: int, span: float
) -> tuple[list[_Person], np.random.Generator]:
    rng = np.random.default_rng(seed)
    rates = world.rates
    arrivals = np.sort(rng.uniform(0.0, span, n))
    cuts = np.cumsum(
        [rates.left_at_consent, rates.declined, rates.left_at_screening, rates.screened_out]
    )
    flows = np.searchsorted(cuts, rng.random(n), side="right")
    seeds = rng.integers(0, 2**63 - 1, n)
    ability = rng.standard_normal(n)
    n_task_stages = len(world.task_stages)
    time_eps = rng.standard_normal((n, max(1, n_task_stages)))
    durations = rng.standard_normal((n, len(world.stages)))
    stop_u = rng.random(n)
    stop_fraction = rng.uniform(0.1, 0.9, n)
    jitter = rng.random((n, len(world.stages)))
    quiz_u = rng.random(n)
    # Where the lost ones stop: any stage after screening but the debrief; tasks twice as often.
    later = [s for s in world.stages if s.index > world.screening_index and s.type != "debrief"]
    weights = np.array([2.0 if s.type == Stage.Type.TASK else 1.0 for s in later])
    stop_choice = (
        rng.choice(len(later), size=n, p=weights / weights.sum())
        if later
        else np.zeros(n, dtype=int)
    )
    splits = [
        rng.dirichlet(np.full(len(s.tasks), 6.0), size=n) if s.tasks else np.ones((n, 1))
        for s in world.task_stages
    ]
    people = []
    rho = TIME_ABILITY_RHO
    for i in range(n):
        stop = ""
        if stop_u[i] < rates.withdrawn:
            stop = "withdrawn"
        elif stop_u[i] < rates.withdrawn + rates.left:
            stop = "left"
        people.append(
            _Person(
                index=i,
                arrival=float(arrivals[i]),
                flow=int(flows[i]),
                rand_seed=int(seeds[i]),
                ability=float(ability[i]),
                time_z=-rho * ability[i] + math.sqrt(1 - rho**2) * time_eps[i],
                task_split=[split[i] for split in splits],
                durations=durations[i],
                stop=stop if later else "",
                stop_stage=later[int(stop_choice[i])].index if later else -1,
                jitter=jitter[i],
                stop_fraction=float(stop_fraction[i]),
                quiz_timeout=bool(quiz_u[i] < QUIZ_TIMEOUT_RATE),
            )
        )
    return people, rng


def _screen(world: _World, people: list[_Person]) -> None:
    """Baseline answers, eligibility, stratum and the time of allocation."""
    sampler = _BaselineSampler(world.trial)
    strata = world.trial.definition["randomization"].get("strata", [])
    for person in people:
        rand = random.Random(person.rand_seed ^ 0x5EED)
        if person.flow == SCREENED_OUT:
            drawn = sampler.ineligible(rand)
            if drawn is None:
                person.flow = ELIGIBLE
            else:
                person.baseline, person.reasons = drawn
                person.eligible = False
        if person.flow == ELIGIBLE:
            answers = sampler.eligible(rand)
            if answers is None:
                raise SyntheticError(
                    "could not draw baseline answers that pass the eligibility rules; "
                    "do the rules allow anyone in?"
                )
            person.baseline, person.eligible = answers, True
            person.stratum = stratum_key(strata, answers)
        # Times up to allocation (consent, any instructions before screening, screening).
        clock = person.arrival
        for info in world.stages[: world.screening_index + 1]:
            median = STAGE_MEDIAN_S.get(info.type, 60.0)
            clock += _lognormal_s(median, 0.5, float(person.durations[info.index]))
        person.allocated_at = clock


def _allocate(world: _World, people: list[_Person]) -> dict[str, int]:
    """Arms for the eligible, in order of allocation time, continuing the trial's sequences
    exactly as ``allocation_assign`` would. Must run in a transaction; locks the sequence
    rows. Returns the new next_index per sequence stratum."""
    trial = world.trial
    config = trial.definition["randomization"]
    scheme = config["scheme"]
    arm_weights = [randomization.ArmWeight(a.key, a.weight) for a in world.arms.values()]
    seed = trial.randomization_seed
    locked = {
        s.stratum: s
        for s in AllocationSequence.objects.select_for_update().filter(trial=trial).order_by("pk")
    }
    eligible = sorted((p for p in people if p.flow == ELIGIBLE), key=lambda p: p.allocated_at)
    needed = {randomization.sequence_stratum(config, p.stratum) for p in eligible}
    missing = needed - set(locked)
    if missing:
        AllocationSequence.objects.bulk_create(
            [AllocationSequence(trial=trial, stratum=s) for s in sorted(missing)],
            ignore_conflicts=True,
        )
        for s in AllocationSequence.objects.select_for_update().filter(
            trial=trial, stratum__in=missing
        ):
            locked[s.stratum] = s
    next_index = {stratum: row.next_index for stratum, row in locked.items()}
    schedules: dict[str, randomization.BlockSchedule] = {}
    counts: randomization.MinimizationCounts = {}
    if scheme == "minimization":
        counts = randomization.minimization_counts(
            config,
            Allocation.objects.filter(trial=trial).values_list("arm__key", "participant__baseline"),
        )
    for person in eligible:
        seq_stratum = randomization.sequence_stratum(config, person.stratum)
        index = next_index[seq_stratum]
        try:
            assignment = randomization.assign(
                config,
                arm_weights,
                seed,
                index=index,
                stratum=person.stratum,
                baseline=person.baseline,
                counts=counts,
                schedules=schedules,
            )
        except randomization.RandomizationError as exc:
            raise SyntheticError(str(exc)) from exc
        arm_key, details = assignment.arm, dict(assignment.details)
        if scheme == "minimization":
            randomization.add_to_counts(
                counts, randomization.factor_levels(config, person.baseline), arm_key
            )
        person.arm = arm_key
        person.sequence_stratum = seq_stratum
        person.sequence_number = index + 1
        person.allocation_details = details
        next_index[seq_stratum] = index + 1
    return next_index


def _task_stage_record(
    world: _World, person: _Person, info: _StageInfo, start: float, stop_at: float | None
) -> _Record:
    """Completion time of a task stage and the window of each task; ``stop_at`` cuts the
    stage short (the person withdrew or left then)."""
    limit = info.limit
    factor = info.treatment_factor if person.arm != world.reference_arm else 1.0
    z = float(person.time_z[info.task_number])
    jitter = float(person.jitter[info.index])
    total = _lognormal_s(info.median * factor, TIME_SIGMA, z)
    deadline = start + limit if limit else None
    record = _Record(stage=info, start=start, deadline=deadline)
    all_passed = limit is None or total <= limit
    if all_passed:
        slack = (limit - total) * 0.9 if limit else 120.0
        end = start + total + min(slack, 10 + 80 * jitter)
        reason: str = StageRecord.EndReason.COMPLETED
    else:
        end = start + (limit or 0) + 1 + 9 * jitter
        reason = StageRecord.EndReason.TIMED_OUT
    work_end = min(start + total, start + limit) if limit else start + total
    if stop_at is not None:
        end, reason, work_end = stop_at, "", min(work_end, stop_at)
    shares = person.task_split[info.task_number]
    cursor = start
    for k, _task in enumerate(info.tasks):
        planned_end = start + total * float(np.sum(shares[: k + 1]))
        passed = planned_end if planned_end <= work_end + 1e-9 else None
        window_end = min(planned_end, work_end)
        record.windows.append((cursor, max(cursor, window_end), passed))
        cursor = max(cursor, window_end)
    record.end = end
    record.end_reason = reason
    record.submitted = reason == StageRecord.EndReason.COMPLETED
    return record


def _plan_paths(world: _World, people: list[_Person]) -> None:
    """Each person's way through the stages: records with start, end and how it ended."""
    stages = world.stages
    screening = world.screening_index
    for person in people:
        clock = person.arrival
        for info in stages:
            record = _Record(stage=info, start=clock, deadline=_deadline(info, clock))
            person.records.append(record)
            if info.type == Stage.Type.DEBRIEF:
                person.current = record
                person.status = Participant.Status.COMPLETED
                person.completed_at = clock
                break
            if info.index <= screening:
                median = STAGE_MEDIAN_S.get(info.type, 60.0)
                duration = _lognormal_s(median, 0.5, float(person.durations[info.index]))
                if info.type == Stage.Type.CONSENT:
                    if person.flow == LEFT_CONSENT:
                        person.current = record
                        break
                    record.end = clock + duration
                    if person.flow == DECLINED:
                        record.end_reason = StageRecord.EndReason.DECLINED
                        person.status = Participant.Status.DECLINED
                        break
                    record.end_reason = StageRecord.EndReason.COMPLETED
                    record.answers = {"agreed": True}
                    person.consented_at = record.end
                    person.status = Participant.Status.SCREENING
                elif info.type == Stage.Type.SCREENING:
                    if person.flow == LEFT_SCREENING:
                        person.current = record
                        break
                    record.end = person.allocated_at
                    record.answers = dict(person.baseline)
                    if person.flow == SCREENED_OUT:
                        record.end_reason = StageRecord.EndReason.SCREENED_OUT
                        person.status = Participant.Status.SCREENED_OUT
                        break
                    record.end_reason = StageRecord.EndReason.COMPLETED
                    person.status = Participant.Status.ACTIVE
                else:  # instructions before screening
                    record.end = clock + duration
                    record.end_reason = StageRecord.EndReason.COMPLETED
                clock = record.end
                continue
            stopping = person.stop and person.stop_stage == info.index
            z = float(person.durations[info.index])
            if info.type == Stage.Type.TASK:
                full = _task_stage_record(world, person, info, clock, None)
                stop_at = None
                if stopping:
                    assert full.end is not None
                    stop_at = clock + person.stop_fraction * (full.end - clock)
                    full = _task_stage_record(world, person, info, clock, stop_at)
                full.deadline = record.deadline
                person.records[-1] = record = full
            else:
                if info.type == Stage.Type.QUIZ:
                    median = min(QUIZ_MEDIAN_S, 0.5 * info.limit) if info.limit else QUIZ_MEDIAN_S
                    duration = _lognormal_s(median, 0.35, z)
                else:
                    duration = _lognormal_s(STAGE_MEDIAN_S.get(info.type, 60.0), 0.5, z)
                reason = StageRecord.EndReason.COMPLETED
                quiz_timeout = info.type == Stage.Type.QUIZ and person.quiz_timeout
                if info.limit and (duration > info.limit - 5 or quiz_timeout):
                    duration = info.limit + 1 + 9 * float(person.jitter[info.index])
                    reason = StageRecord.EndReason.TIMED_OUT
                record.end_reason = reason
                record.end = clock + duration
                if stopping:
                    record.end = clock + person.stop_fraction * duration
                    record.end_reason = ""
            if stopping:
                if person.stop == "left":
                    record.end = None
                    record.end_reason = ""
                    person.current = record
                else:
                    person.status = Participant.Status.WITHDRAWN
                break
            assert record.end is not None
            clock = record.end


def _deadline(info: _StageInfo, start: float) -> float | None:
    return start + info.limit if info.limit else None


# --- one participant's rows -----------------------------------------------------------------

# An event before ids are given: (time, stage id, type, origin, client time, payload).
_RawEvent = tuple[float, int | None, str, str, float | None, dict[str, Any]]
# A payload value to fill with a primary key once the row has been inserted.
_Fixup = tuple[dict[str, Any], str, models.Model]


@dataclass
class _Rows:
    """Everything generated for a batch of participants, before it is written."""

    records: list[StageRecord] = field(default_factory=list)
    states: list[TaskState] = field(default_factory=list)
    snapshots: list[CodeSnapshot] = field(default_factory=list)
    runs: list[CodeRun] = field(default_factory=list)
    turns: list[AssistantTurn] = field(default_factory=list)
    attempts: list[QuizAttempt] = field(default_factory=list)
    items: list[ItemResponse] = field(default_factory=list)
    # (participant id, stage id, type, client id, client seq, client time, server time,
    #  origin, payload)
    events: list[tuple[str, int | None, str, str, int | None, Any, Any, str, dict[str, Any]]] = (
        field(default_factory=list)
    )
    fixups: list[_Fixup] = field(default_factory=list)


class _Log:
    """One participant's events. The browser stamps its events with its own clock (a little
    off) and sends them in batches, in order, so they reach the server a moment later."""

    def __init__(self, rand: random.Random) -> None:
        self.rand = rand
        self.skew = rand.gauss(0.0, 1.5)
        self.server_events: list[_RawEvent] = []
        self.client_events: list[_RawEvent] = []

    def server(self, t: float, stage: Stage | None, etype: str, payload: dict[str, Any]) -> None:
        self.server_events.append((t, stage.pk if stage else None, etype, "server", None, payload))

    def client(self, t: float, stage: Stage, etype: str, payload: dict[str, Any]) -> None:
        self.client_events.append((t, stage.pk, etype, "client", None, payload))

    def timeline(self) -> list[tuple[float, int | None, str, str, float | None, int | None, Any]]:
        """Every event as (server time, stage id, type, origin, client time, client seq,
        payload), in server-time order."""
        out: list[tuple[float, int | None, str, str, float | None, int | None, Any]] = [
            (t, stage_id, etype, origin, None, None, payload)
            for t, stage_id, etype, origin, _c, payload in self.server_events
        ]
        arrived = -math.inf
        self.client_events.sort(key=lambda e: e[0])
        for seq, (t, stage_id, etype, origin, _c, payload) in enumerate(self.client_events, 1):
            arrived = max(arrived, t + 0.2 + self.rand.random() * 4.0)
            out.append((arrived, stage_id, etype, origin, t + self.skew, seq, payload))
        out.sort(key=lambda e: e[0])
        return out


def _geometric(rand: random.Random, mean: float) -> int:
    """A count >= 0 with the given mean (geometric)."""
    if mean <= 0:
        return 0
    p = 1.0 / (1.0 + mean)
    return int(math.log(1.0 - rand.random()) / math.log(1.0 - p))


@dataclass
class _TaskPlan:
    """What happens on one task, decided before the edits are (their number depends on the
    other events)."""

    task: _TaskModel
    start: float
    end: float
    passed: float | None
    runs: list[float]
    failed_checks: list[float]
    window_switches: list[float]
    hidden: list[float]
    idle: float | None
    paste: float | None
    turns: list[tuple[float, int, bool]]  # time, assistant pool index, failed
    progress: float  # share of the script done when not passed
    periodic: int

    @property
    def length(self) -> float:
        return self.end - self.start

    def event_count(self, submitted: bool) -> int:
        if self.length <= 0:
            return 1  # the "load" snapshot only
        count = 3 + self.periodic  # focus, blur, load snapshot, periodic snapshots
        count += 2 * len(self.runs) + 2 * len(self.failed_checks)
        count += 3 if self.passed is not None else 0  # the passing check and task_completed
        count += 2 * len(self.window_switches) + 2 * len(self.hidden)
        count += (self.idle is not None) + 2 * (self.paste is not None)
        for _t, pool_index, failed in self.turns:
            count += 4 + (2 if not failed and self.task.assistant_pool[pool_index][2] else 0)
        return count + (1 if submitted else 0)


def _plan_task(
    rand: random.Random,
    task: _TaskModel,
    window: tuple[float, float, float | None],
    assistant: bool,
) -> _TaskPlan:
    start, end, passed = window
    length = end - start
    work_end = passed if passed is not None else end

    def within(low: float, high: float) -> float:
        return low + rand.random() * max(0.0, high - low)

    # Failed checks and runs happen before the task is done (the code is not finished yet).
    early = start + 0.85 * (work_end - start)
    runs = sorted(within(start + 5, early) for _ in range(_geometric(rand, 1.5)))
    checks = sorted(
        within(start + 10, early)
        for _ in range(_geometric(rand, 1.0 if passed is not None else 1.5))
    )
    switches = [within(start, end) for _ in range(_geometric(rand, 1.0))]
    hidden = [within(start, end) for _ in range(1 if rand.random() < 0.4 else 0)]
    turns: list[tuple[float, int, bool]] = []
    if assistant and task.assistant_pool and length > 60:
        for _ in range(_geometric(rand, ASSISTANT_TURNS_PER_TASK)):
            turns.append(
                (
                    within(start + 20, work_end - 20),
                    rand.randrange(len(task.assistant_pool)),
                    rand.random() < 0.02,
                )
            )
        turns.sort()
    if length <= 0:
        runs, checks, switches, hidden, turns = [], [], [], [], []
    return _TaskPlan(
        task=task,
        start=start,
        end=end,
        passed=passed,
        runs=runs,
        failed_checks=checks,
        window_switches=switches,
        hidden=hidden,
        idle=within(start, end) if length > 300 and rand.random() < 0.3 else None,
        paste=within(start, work_end) if length > 30 and rand.random() < 0.2 else None,
        turns=turns,
        progress=0.3 + 0.6 * rand.random(),
        periodic=int(length // 600),
    )


class _Builder:
    """Builds the rows of one participant after the other into a :class:`_Rows`. Without
    ``telemetry``: no events, code versions, runs or assistant turns (task states, stage
    records and quiz answers only), for fast statistical tests."""

    def __init__(self, world: _World, origin: datetime, rows: _Rows, telemetry: bool) -> None:
        self.world = world
        self.origin = origin
        self.rows = rows
        self.telemetry = telemetry
        self.arm = ""  # of the participant being built

    def at(self, t: float | None) -> datetime | None:
        return None if t is None else self.origin + timedelta(seconds=t)

    def dt(self, t: float) -> datetime:
        return self.origin + timedelta(seconds=t)

    def person(self, person: _Person) -> None:
        self.arm = person.arm
        rand = random.Random(person.rand_seed)
        log = _Log(rand)
        pid = person.participant_id
        plans: dict[int, list[_TaskPlan]] = {}
        fixed = 0
        for record in person.records:
            info = record.stage
            fixed += 1 + self.leaves(person, record)
            if info.type == Stage.Type.TASK:
                assistant = (
                    person.arm in self.world.assistant_arms and "assistant" in info.row.tools
                )
                plans[info.index] = [
                    _plan_task(rand, task, window, assistant)
                    for task, window in zip(info.tasks, record.windows, strict=True)
                ]
                fixed += 1 + sum(p.event_count(record.submitted) for p in plans[info.index])
        edits_left = max(0, person.event_target - fixed)
        active = [p for ps in plans.values() for p in ps if p.length > 0]
        total_length = sum(p.length for p in active) or 1.0
        for record in person.records:
            info, stage = record.stage, record.stage.row
            log.server(record.start, stage, "stage_entered", {"stage": info.key})
            answers = dict(record.answers)
            if info.type == Stage.Type.TASK:
                log.client(
                    record.start + 1 + 2 * rand.random(),
                    stage,
                    "stage_view",
                    {
                        "tasks": [t.folder for t in info.tasks],
                        "remaining_seconds": int(info.limit) if info.limit else None,
                        "navigation": "navigate",
                    },
                )
                code: dict[str, str] = {}
                for plan in plans[info.index]:
                    share = plan.length / total_length if plan.length > 0 else 0.0
                    code[plan.task.folder] = self.task(
                        rand, log, pid, record, plan, round(edits_left * share)
                    )
                if record.submitted:
                    answers = {"code": code}
            elif info.type == Stage.Type.QUIZ and info.quiz is not None:
                answers = self.quiz(rand, person, record, info.quiz)
            elif info.type == Stage.Type.SURVEY and record.end_reason:
                answers = {}
                for question in info.row.config.get("questions", []):
                    value = _answer(question, rand, survey=True)
                    if value not in (None, "", []):
                        answers[question["key"]] = value
            if self.leaves(person, record) and record.end is not None:
                reason = record.end_reason or "withdrawn"
                log.server(record.end, stage, "stage_left", {"stage": info.key, "reason": reason})
            self.rows.records.append(
                StageRecord(
                    participant_id=pid,
                    stage=stage,
                    started_at=self.dt(record.start),
                    deadline=self.at(record.deadline),
                    ended_at=self.at(record.end),
                    end_reason=record.end_reason,
                    answers=answers,
                    draft={},
                )
            )
        if self.telemetry:
            self.flush(pid, log)

    @staticmethod
    def leaves(person: _Person, record: _Record) -> bool:
        """Whether leaving the stage is logged: passing on (also after a time-out) or
        withdrawing, as the services log it; declining and screen-outs are not."""
        if record.end is None:
            return False
        return record.end_reason in ("completed", "timed_out") or (
            not record.end_reason and person.status == Participant.Status.WITHDRAWN
        )

    def flush(self, pid: str, log: _Log) -> None:
        for n, (t, stage_id, etype, origin, client_t, seq, payload) in enumerate(log.timeline()):
            client_id = f"syn-{n:x}" if origin == "client" else f"srv-syn-{n:x}"
            self.rows.events.append(
                (
                    pid,
                    stage_id,
                    etype,
                    client_id,
                    seq,
                    self.at(client_t),
                    self.dt(t),
                    origin,
                    payload,
                )
            )

    # -- tasks ---------------------------------------------------------------------------

    def task(
        self,
        rand: random.Random,
        log: _Log,
        pid: str,
        record: _Record,
        plan: _TaskPlan,
        n_edits: int,
    ) -> str:
        """Edits, saves, runs, checks and assistant turns on one task; returns the final code."""
        task, stage = plan.task, record.stage.row
        folder = task.folder
        log.client(
            record.start + 2, stage, "snapshot", _snapshot_payload(folder, task.starter, 0, "load")
        )
        state = TaskState(
            participant_id=pid,
            stage=stage,
            task=folder,
            first_passed_at=self.at(plan.passed),
            submitted_at=self.at(record.end) if record.submitted else None,
        )
        self.rows.states.append(state)
        if not self.telemetry:
            state.runs = len(plan.runs)
            state.checks = len(plan.failed_checks) + (plan.passed is not None)
            return task.target if plan.passed is not None else task.starter
        if plan.length <= 0:
            return task.starter
        edit_times, changes, texts = self.edits(rand, plan, n_edits)

        def code_at(t: float) -> str:
            k = bisect.bisect_right(edit_times, t)
            return texts[k - 1] if k else task.starter

        # Saves: two autosaves, one before every run and check, and the final save (the
        # submission, or what the page saved before the participant went).
        saves: list[tuple[float, str, str]] = []  # time, source, code
        if len(edit_times) >= 6:
            for k in (len(edit_times) // 3, 2 * len(edit_times) // 3):
                saves.append((edit_times[k] + 1.5, "autosave", texts[k]))
        actions: list[tuple[float, str, bool]] = [(t, "run", False) for t in plan.runs]
        actions += [(t, "check", False) for t in plan.failed_checks]
        if plan.passed is not None:
            actions.append((plan.passed, "check", True))
        for t, kind, _ok in actions:
            saves.append((t, kind, code_at(t)))
        final = texts[-1] if texts else task.starter
        if record.submitted and record.end is not None:
            saves.append((record.end, "submit", final))
        elif edit_times:
            saves.append((min(plan.end, edit_times[-1] + 2.0), "beacon", final))
        saves.sort(key=lambda s: s[0])
        version, saved_code = 0, None
        version_at: dict[float, int] = {}
        save_times: list[float] = []
        save_versions: list[int] = []
        for t, source, code in saves:
            if code != saved_code or version == 0:
                version += 1
                saved_code = code
                self.rows.snapshots.append(
                    CodeSnapshot(
                        participant_id=pid,
                        stage=stage,
                        task=folder,
                        version=version,
                        code=code,
                        source=source,
                        client_time=self.dt(t + log.skew)
                        if source in ("autosave", "beacon")
                        else None,
                        created_at=self.dt(t),
                    )
                )
            version_at[t] = version
            save_times.append(t)
            save_versions.append(version)
        state.latest_version = version

        def version_before(t: float) -> int:
            k = bisect.bisect_right(save_times, t)
            return save_versions[k - 1] if k else 0

        for n, (t, change) in enumerate(zip(edit_times, changes, strict=True)):
            before = texts[n - 1] if n else task.starter
            start, end, text = change
            log.client(
                t,
                stage,
                "edit",
                {
                    "task": folder,
                    "changes": [[start, end, text]],
                    "version_hint": version_before(t),
                    "base_length": len(before),
                    "length": len(texts[n]),
                    "transactions": 1 + len(text) // 4,
                    "user_events": ["input.type"] if text else ["delete.backward"],
                },
            )
        for j in range(plan.periodic):
            t = plan.start + (j + 1) * plan.length / (plan.periodic + 1)
            log.client(
                t,
                stage,
                "snapshot",
                _snapshot_payload(folder, code_at(t), version_before(t), "periodic"),
            )
        runs = checks = 0
        for t, kind, ok in sorted(actions):
            code = code_at(t)
            if kind == "run":
                runs += 1
            else:
                checks += 1
            self.code_run(rand, log, pid, stage, task, t, kind, ok, code, version_at[t])
        state.runs, state.checks = runs, checks
        # Focus, switching away, idling, pasting.
        log.client(
            plan.start + 1 + rand.random() * 3, stage, "focus", {"scope": "editor", "task": folder}
        )
        log.client(
            plan.end + 0.5 + rand.random() * 2, stage, "blur", {"scope": "editor", "task": folder}
        )
        for t in plan.window_switches:
            log.client(t, stage, "blur", {"scope": "window"})
            log.client(t + 5 + rand.random() * 60, stage, "focus", {"scope": "window"})
        for t in plan.hidden:
            log.client(t, stage, "visibility", {"state": "hidden"})
            log.client(t + 10 + rand.random() * 120, stage, "visibility", {"state": "visible"})
        if plan.idle is not None:
            seconds = 60 + int(rand.random() * 240)
            log.client(
                plan.idle,
                stage,
                "idle",
                {"seconds": seconds, "since": self.dt(plan.idle - seconds).isoformat()},
            )
        if plan.paste is not None:
            self.paste(log, stage, folder, plan.paste, task.snippet, where="instructions")
        for n, (t, pool_index, failed) in enumerate(plan.turns):
            self.assistant_turn(rand, log, pid, stage, task, t, pool_index, failed, n, code_at(t))
        if record.submitted and record.end is not None:
            log.server(record.end, stage, "task_submitted", {"task": folder})
        return final

    def edits(
        self, rand: random.Random, plan: _TaskPlan, n_edits: int
    ) -> tuple[list[float], list[tuple[int, int, str]], list[str]]:
        """Edit events from the starter towards the target: one script step each, with
        typing slips (a character typed and deleted again) to make up the number."""
        task = plan.task
        done = plan.passed is not None
        chosen = task.scripts[-1]
        needed = len(chosen.steps) if done else 0
        for script in task.scripts:
            steps = len(script.steps) if done else int(plan.progress * len(script.steps))
            steps = min(steps, len(script.steps) - (0 if done else 1))
            if steps <= max(n_edits, 1):
                chosen, needed = script, max(0, steps)
                break
        slips = max(0, n_edits - needed) // 2
        changes: list[tuple[int, int, str]] = []
        texts: list[str] = []
        slip_at = sorted(rand.randrange(max(1, needed)) for _ in range(slips))
        cursor, s = 0, 0
        for step_index in range(needed):
            while s < len(slip_at) and slip_at[s] == step_index:
                doc = chosen.docs[step_index]
                cursor = min(cursor, len(doc))
                char = rand.choice("etaoinsr")
                changes.append((cursor, cursor, char))
                texts.append(doc[:cursor] + char + doc[cursor:])
                changes.append((cursor, cursor + 1, ""))
                texts.append(doc)
                s += 1
            start, end, text = chosen.steps[step_index]
            changes.append((start, end, text))
            texts.append(chosen.docs[step_index + 1])
            cursor = start + len(text)
        if needed == 0:
            for _ in range(slips):
                char = rand.choice("etaoinsr")
                doc = task.starter
                changes.append((len(doc), len(doc), char))
                texts.append(doc + char)
                changes.append((len(doc), len(doc) + 1, ""))
                texts.append(doc)
        work_end = plan.passed - 2 if plan.passed is not None else plan.end
        low = plan.start + 3
        high = max(low + 1, work_end)
        times = sorted(low + rand.random() * (high - low) for _ in changes)
        if times and plan.failed_checks and done:
            # The last step (which completes the code) comes after every failed check.
            last_fail = max(max(plan.failed_checks), max(plan.runs, default=low))
            if times[-1] <= last_fail:
                times[-1] = (last_fail + high) / 2
        return times, changes, texts

    def code_run(
        self,
        rand: random.Random,
        log: _Log,
        pid: str,
        stage: Stage,
        task: _TaskModel,
        t: float,
        kind: str,
        ok: bool,
        code: str,
        version: int,
    ) -> None:
        total = len(task.test_names)
        sha = task.sha(code)
        if kind == "run":
            error = rand.random() < 0.25
            exc = rand.choice(["NameError", "TypeError", "AttributeError", "RuntimeError"])
            status = "error" if error else "ok"
            run = CodeRun(
                participant_id=pid,
                stage=stage,
                task=task.folder,
                kind=kind,
                code_sha256=sha,
                snapshot_version=version,
                stdout="" if error else "done\n",
                stderr=(
                    "Traceback (most recent call last):\n"
                    f'  File "main.py", line {5 + rand.randrange(20)}, in <module>\n'
                    f"{exc}: synthetic error\n"
                )
                if error
                else "",
                exit_code=1 if error else 0,
                duration_ms=150 + int(rand.random() * 1500),
                status=status,
                exception_type=exc if error else "",
                sandbox=SANDBOX,
            )
            payload_extra: dict[str, Any] = {"tests_passed": None, "tests_total": None}
        else:
            passed = total if ok else rand.randrange(total)
            flags = [True] * passed + [False] * (total - passed)
            rand.shuffle(flags)
            results = [
                {"name": name, "passed": flag, "message": "" if flag else "not yet"}
                for name, flag in zip(task.test_names, flags, strict=True)
            ]
            run = CodeRun(
                participant_id=pid,
                stage=stage,
                task=task.folder,
                kind=kind,
                code_sha256=sha,
                snapshot_version=version,
                exit_code=0,
                duration_ms=300 + int(rand.random() * 2000),
                status="ok",
                sandbox=SANDBOX,
                tests_passed=passed,
                tests_total=total,
                test_results=results,
            )
            payload_extra = {"tests_passed": passed, "tests_total": total}
        # Stored when the sandbox is done; a first pass counts from the start (as code_run).
        run.created_at = self.dt(t + run.duration_ms / 1000)
        self.rows.runs.append(run)
        payload: dict[str, Any] = {
            "task": task.folder,
            "run_id": None,
            "code_sha256": sha,
            "version": version,
            "status": run.status,
            "exit_code": run.exit_code,
            "exception_type": run.exception_type,
            "duration_ms": run.duration_ms,
            **payload_extra,
            "first_pass": ok,
            "sandbox": SANDBOX,
        }
        self.rows.fixups.append((payload, "run_id", run))
        log.server(t + run.duration_ms / 1000, stage, kind, payload)
        if ok:
            log.server(
                t + run.duration_ms / 1000 + 0.001, stage, "task_completed", {"task": task.folder}
            )
        ms = run.duration_ms + 40 + int(rand.random() * 200)
        if kind == "run":
            client = {"task": task.folder, "ms": ms, "http_status": 200, "status": run.status}
        else:
            client = {
                "task": task.folder,
                "ms": ms,
                "http_status": 200,
                "passed": run.tests_passed,
                "total": total,
                "all_passed": ok,
            }
        # What the page showed: the browser's own record, never the run or check itself.
        log.client(t + ms / 1000, stage, f"{kind}_shown", client)

    def paste(
        self,
        log: _Log,
        stage: Stage,
        folder: str,
        t: float,
        text: str,
        *,
        where: str,
        turn: AssistantTurn | None = None,
    ) -> None:
        sha = hashlib.sha256(text.encode()).hexdigest()
        copy: dict[str, Any] = {
            "task": folder,
            "where": where,
            "length": len(text),
            "sha256": sha,
            "cut": False,
        }
        paste: dict[str, Any] = {
            "task": folder,
            "where": "editor",
            "length": len(text),
            "sha256": sha,
            "text_preview": text[:200],
            "via": "clipboard",
        }
        if turn is not None:
            copy.update(source="assistant", turn=None, via="button")
            paste.update(from_assistant=True, assistant_turn=None)
            self.rows.fixups.append((copy, "turn", turn))
            self.rows.fixups.append((paste, "assistant_turn", turn))
        log.client(t, stage, "copy", copy)
        log.client(t + 2 + 8 * log.rand.random(), stage, "paste", paste)

    def assistant_turn(
        self,
        rand: random.Random,
        log: _Log,
        pid: str,
        stage: Stage,
        task: _TaskModel,
        t: float,
        pool_index: int,
        failed: bool,
        number: int,
        code: str,
    ) -> None:
        question, reply, blocks = task.assistant_pool[pool_index]
        arm_settings = self.world.assistant_settings[self.arm]
        input_tokens = 400 + task.instructions_tokens + len(code) // 4 + 150 * number
        output_tokens = 0 if failed else len(reply) // 4 + 5
        latency = int((600 + output_tokens * 12) * math.exp(rand.gauss(0, 0.3)))
        context = {
            "system": arm_settings.system_prompt,
            "messages": [{"role": "user", "content": question}],
        }
        turn = AssistantTurn(
            participant_id=pid,
            stage=stage,
            task=task.folder,
            question=question,
            reply="" if failed else reply,
            status=AssistantTurn.Status.FAILED if failed else AssistantTurn.Status.COMPLETED,
            provider=arm_settings.provider,
            model=arm_settings.model,
            context=context,
            code_sha256=task.sha(code),
            input_tokens=input_tokens if not failed else 0,
            output_tokens=output_tokens,
            usage_estimated=arm_settings.provider == "scripted",
            cost_usd=estimate_cost(arm_settings, input_tokens, output_tokens)
            if not failed
            else 0.0,
            latency_ms=latency,
            first_text_ms=None if failed else 200 + int(rand.random() * 700),
            stop_reason="" if failed else "end_turn",
            error_kind="timeout" if failed else "",
            error_message="the provider did not answer in time" if failed else "",
            created_at=self.dt(t),
            finished_at=self.dt(t + latency / 1000),
        )
        self.rows.turns.append(turn)
        log.client(
            t - 15 - 30 * rand.random(), stage, "focus", {"scope": "assistant", "task": task.folder}
        )
        request = {
            "task": task.folder,
            "turn": None,
            "question": question,
            "provider": turn.provider,
            "model": turn.model,
            "context": context,
            "code_sha256": turn.code_sha256,
        }
        done = t + latency / 1000
        response: dict[str, Any] = {
            "task": task.folder,
            "turn": None,
            "status": str(turn.status),
            "reply": turn.reply,
            "code_blocks": [hashlib.sha256(b.encode()).hexdigest() for b in blocks]
            if not failed
            else [],
            "latency_ms": latency,
            "input_tokens": turn.input_tokens,
        }
        if not failed:
            response.update(output_tokens=output_tokens, stop_reason="end_turn", model=turn.model)
        else:
            response.update(error_kind=turn.error_kind, error_message=turn.error_message)
        self.rows.fixups.append((request, "turn", turn))
        self.rows.fixups.append((response, "turn", turn))
        log.server(t, stage, "assistant_request", request)
        log.server(done, stage, "assistant_error" if failed else "assistant_response", response)
        log.client(
            done + 5 + 55 * rand.random(),
            stage,
            "blur",
            {"scope": "assistant", "task": task.folder},
        )
        if blocks and not failed and rand.random() < 0.6:
            self.paste(log, stage, task.folder, done + 3, blocks[0], where="assistant", turn=turn)

    # -- quiz ----------------------------------------------------------------------------

    def quiz(
        self, rand: random.Random, person: _Person, record: _Record, model: _QuizModel
    ) -> dict[str, Any]:
        pid = person.participant_id
        seed = participant_seed(Participant(id=pid, trial=self.world.trial))
        order, options = order_for_participant(model.quiz, seed)
        self.rows.attempts.append(
            QuizAttempt(
                participant_id=pid,
                stage=model.stage,
                seed=seed,
                question_order=order,
                option_order=options,
                created_at=self.dt(record.start + 1),
                submitted_at=self.at(record.end) if record.end_reason else None,
            )
        )
        if not record.end_reason or record.end is None:
            return {}
        theta = person.ability + (model.shift if person.arm != self.world.reference_arm else 0.0)
        fail_rate = self.world.rates.attention_fail
        answers: dict[str, Any] = {}
        position = {key: n for n, key in enumerate(order)}
        for item in model.items:
            question = item.question
            if question.attention_check:
                p_right = 1.0 - fail_rate
            elif question.scored and item.max_points:
                logit = model.discrimination * (theta - model.base - item.offset)
                p_right = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))
            else:
                p_right = 0.5
            if rand.random() < p_right:
                outcome = item.right[rand.randrange(len(item.right))]
            else:
                k = bisect.bisect_right(item.other_cum, rand.random())
                outcome = item.other[min(k, len(item.other) - 1)]
            answers.update(outcome.answers)
            human = outcome.status == ItemResponse.Status.HUMAN
            graded = record.end + (3600 * (2 + 46 * rand.random()) if human else 0.0)
            self.rows.items.append(
                ItemResponse(
                    participant_id=pid,
                    stage=model.stage,
                    question_key=question.key,
                    position=position[question.key],
                    response=outcome.response,
                    points=outcome.points,
                    max_points=item.max_points,
                    status=outcome.status,
                    correct=outcome.correct,
                    is_attention_check=question.attention_check,
                    categories=list(question.categories),
                    detail=outcome.detail,
                    graded_at=self.dt(graded),
                    created_at=self.dt(record.end),
                )
            )
        return answers


def _snapshot_payload(folder: str, code: str, version: int, reason: str) -> dict[str, Any]:
    return {
        "task": folder,
        "code": code,
        "length": len(code),
        "version_hint": version,
        "reason": reason,
    }


# --- writing --------------------------------------------------------------------------------


def _identifiers(trial: Trial, people: list[_Person], rng: np.random.Generator) -> str:
    """Public codes, Prolific-style ids and completion codes drawn from the seed, avoiding
    any already used in the trial; returns the synthetic study id."""
    taken_codes = set(Participant.objects.filter(trial=trial).values_list("public_code", flat=True))
    taken_pids = set(
        Participant.objects.filter(trial=trial)
        .exclude(prolific_pid="")
        .values_list("prolific_pid", flat=True)
    )

    def hex_digits(count: int) -> str:
        return "".join(f"{int(b):02x}" for b in rng.integers(0, 256, (count + 1) // 2))[:count]

    study_id = hex_digits(24)
    for person in people:
        code = "P" + hex_digits(8).upper()
        while code in taken_codes:
            code = "P" + hex_digits(8).upper()
        taken_codes.add(code)
        pid = hex_digits(24)
        while pid in taken_pids:
            pid = hex_digits(24)
        taken_pids.add(pid)
        person.public_code, person.pid, person.session_id = code, pid, hex_digits(24)
        person.completion_code = hex_digits(8).upper()
        person.participant_id = new_participant_id()
    return study_id


def _participant_rows(
    world: _World, people: list[_Person], origin: datetime, study_id: str
) -> Iterator[Participant]:
    def at(t: float | None) -> datetime | None:
        return None if t is None else origin + timedelta(seconds=t)

    for person in people:
        last = person.records[-1]
        current = person.current
        yield Participant(
            id=person.participant_id,
            trial=world.trial,
            public_code=person.public_code,
            prolific_pid=person.pid,
            study_id=study_id,
            session_id=person.session_id,
            status=person.status,
            consented_at=at(person.consented_at),
            baseline=person.baseline,
            eligible=person.eligible,
            screen_out_reasons=person.reasons,
            stratum=person.stratum,
            current_stage=current.stage.row if current else None,
            stage_started_at=at(last.start),
            stage_deadline=at(current.deadline) if current else None,
            completion_code=(
                person.completion_code if person.status == Participant.Status.COMPLETED else ""
            ),
            is_synthetic=True,
            created_at=origin + timedelta(seconds=person.arrival),
            completed_at=at(person.completed_at),
        )


def _allocation_rows(
    world: _World, people: list[_Person], origin: datetime
) -> Iterator[Allocation]:
    scheme = world.trial.definition["randomization"]["scheme"]
    for person in people:
        if person.arm:
            yield Allocation(
                participant_id=person.participant_id,
                trial=world.trial,
                arm=world.arms[person.arm],
                stratum=person.stratum,
                scheme=scheme,
                sequence_number=person.sequence_number,
                details=person.allocation_details,
                created_at=origin + timedelta(seconds=person.allocated_at),
            )


EVENT_COLUMNS = (
    "participant_id",
    "stage_id",
    "type",
    "client_id",
    "client_seq",
    "client_time",
    "server_time",
    "origin",
    "payload",
)


def _write_events(rows: _Rows) -> int:
    # Millions of rows: straight from the tuples, without model instances.
    fields = {f.attname: str(f.column) for f in Event._meta.concrete_fields}
    columns = [fields[name] for name in EVENT_COLUMNS]
    dumps = json.dumps  # as JSONField does without an encoder
    if connection.vendor == "postgresql":
        return _copy(
            Event._meta.db_table, columns, ((*row[:8], dumps(row[8])) for row in rows.events)
        )
    adapt = connection.ops.adapt_datetimefield_value
    return _insert_many(
        Event._meta.db_table,
        columns,
        ((*row[:5], adapt(row[5]), adapt(row[6]), row[7], dumps(row[8])) for row in rows.events),
    )


def _write(rows: _Rows) -> int:
    """Insert one batch of participants' rows; returns the number of events written."""
    _store(StageRecord, rows.records)
    _store(TaskState, rows.states)
    _store(CodeSnapshot, rows.snapshots)
    _insert(CodeRun, rows.runs)  # their keys go into the events
    _insert(AssistantTurn, rows.turns)
    _store(QuizAttempt, rows.attempts)
    _store(ItemResponse, rows.items)
    for payload, key, obj in rows.fixups:
        payload[key] = obj.pk
    return _write_events(rows)


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def synthesize_trial(
    trial: Trial,
    *,
    participants: int,
    seed: int,
    effects: SyntheticEffects | None = None,
    rates: FlowRates | None = None,
    events_per_participant: int = 200,
    end: datetime | None = None,
    enrollment_days: float = ENROLLMENT_DAYS,
    chunk_size: int = 250,
    progress: Callable[[SyntheticProgress], None] | None = None,
) -> SyntheticSummary:
    """Add ``participants`` synthetic participants to a live trial.

    Preconditions: the trial is live (its randomization seed and sequences exist). The
    allocations are made in one short transaction that locks the trial's sequence rows (as
    ``allocation_assign`` does), together with the participant rows; everything else is
    written afterwards in one transaction per ``chunk_size`` participants, so real
    participants are never blocked for long. ``events_per_participant`` is the average over
    everyone added (people who decline or are screened out have only a few); 0 writes no
    telemetry at all (no events, code versions, runs or assistant turns). Enrollment
    spans ``enrollment_days`` up to ``end`` (default: an hour ago); no timestamp is later.
    """
    started = time.monotonic()
    effects = effects or SyntheticEffects()
    rates = rates or FlowRates()
    problems = effects.problems() + rates.problems()
    if trial.status != Trial.Status.LIVE:
        problems.append(f"trial '{trial.slug}' version {trial.version} is {trial.status}, not live")
    if participants <= 0:
        problems.append("the number of participants must be positive")
    if events_per_participant < 0:
        problems.append("the number of events per participant cannot be negative")
    if enrollment_days <= 0:
        problems.append("the enrollment period must be positive")
    if problems:
        raise SyntheticError("; ".join(problems))
    world = _build_world(trial, effects, rates)
    finish = end or timezone.now() - timedelta(hours=1)
    span = enrollment_days * 86400.0
    origin = (finish - timedelta(seconds=span + SESSION_ROOM_S)).astimezone(UTC)
    people, rng = _draw_population(world, participants, seed, span)
    _screen(world, people)
    summary = SyntheticSummary(trial_slug=trial.slug, trial_version=trial.version, seed=seed)
    summary.main_stage = world.main_stage.key if world.main_stage else ""
    quizzes = [s.quiz for s in world.stages if s.quiz is not None]
    summary.quiz_shift = quizzes[0].shift if quizzes else 0.0

    with transaction.atomic():
        next_index = _allocate(world, people)
        _plan_paths(world, people)
        _event_targets(people, participants * events_per_participant)
        study_id = _identifiers(trial, people, rng)
        _store(Participant, _participant_rows(world, people, origin, study_id))
        _store(Allocation, _allocation_rows(world, people, origin))
        for stratum, value in next_index.items():
            AllocationSequence.objects.filter(trial=trial, stratum=stratum).update(next_index=value)
    _count(summary, world, people)

    telemetry = events_per_participant > 0

    def batches() -> Iterator[tuple[int, _Rows]]:
        for chunk in _chunks(people, max(1, chunk_size)):
            rows = _Rows()
            builder = _Builder(world, origin, rows, telemetry=telemetry)
            for person in chunk:
                builder.person(person)
            yield len(chunk), rows

    done = 0

    def written(count: int, rows: _Rows, events: int) -> None:
        nonlocal done
        done += count
        summary.events += events
        summary.snapshots += len(rows.snapshots)
        summary.runs += len(rows.runs)
        summary.assistant_turns += len(rows.turns)
        summary.item_responses += len(rows.items)
        if progress is not None:
            progress(
                SyntheticProgress(
                    participants_done=done,
                    participants_total=participants,
                    events_written=summary.events,
                    seconds=time.monotonic() - started,
                )
            )

    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        _write_in_background(batches(), written)
    else:
        for count, rows in batches():
            with transaction.atomic():
                events = _write(rows)
            written(count, rows, events)
    _refresh_planner_statistics()
    summary.seconds = time.monotonic() - started
    return summary


def _refresh_planner_statistics() -> None:
    """After a bulk load the query planner still believes the tables are nearly empty and
    picks nested loops over millions of events (minutes instead of a second for the data
    sets); autovacuum would catch up only later. ANALYZE the tables written to."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    models_written = (
        Participant,
        Allocation,
        StageRecord,
        TaskState,
        CodeSnapshot,
        CodeRun,
        Event,
        AssistantTurn,
        QuizAttempt,
        ItemResponse,
    )
    with connection.cursor() as cursor:
        for model in models_written:
            cursor.execute(f'ANALYZE "{model._meta.db_table}"')


def _write_in_background(
    batches: Iterator[tuple[int, _Rows]], written: Callable[[int, _Rows, int], None]
) -> None:
    """Write each batch in its own transaction on a second connection, in a thread, while
    the next batch is generated: PostgreSQL then works while Python does (the thread waits
    on the network without the GIL). Only outside a transaction: the thread's connection
    sees committed rows only. ``written`` is called from that thread."""
    pending: queue.Queue[tuple[int, _Rows] | None] = queue.Queue(maxsize=1)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while (item := pending.get()) is not None:
                if errors:
                    continue  # drain, so the producer never blocks
                try:
                    with transaction.atomic():
                        events = _write(item[1])
                    written(item[0], item[1], events)
                except BaseException as exc:
                    errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    worker = threading.Thread(target=work, name="synthesize-writer", daemon=True)
    worker.start()
    try:
        for item in batches:
            if errors:
                break
            pending.put(item)
    finally:
        pending.put(None)
        worker.join()
    if errors:
        raise errors[0]


def _event_targets(people: list[_Person], total_events: int) -> None:
    """Share the events out in proportion to the time spent on tasks (where almost all
    telemetry comes from)."""
    active = []
    for person in people:
        seconds = 0.0
        for record in person.records:
            if record.windows:
                seconds += max(0.0, record.windows[-1][1] - record.start)
        active.append(seconds)
    whole = sum(active)
    for person, seconds in zip(people, active, strict=True):
        person.event_target = round(total_events * seconds / whole) if whole else 0


def _count(summary: SyntheticSummary, world: _World, people: list[_Person]) -> None:
    summary.participants = len(people)
    main = world.main_stage
    for person in people:
        if person.flow in (LEFT_CONSENT, LEFT_SCREENING):
            summary.left_before_screening += 1
        elif person.flow == DECLINED:
            summary.declined += 1
        elif person.flow == SCREENED_OUT:
            summary.screened_out += 1
        if person.arm:
            summary.allocated += 1
            summary.by_arm[person.arm] = summary.by_arm.get(person.arm, 0) + 1
        if person.status == Participant.Status.COMPLETED:
            summary.completed += 1
        elif person.status == Participant.Status.WITHDRAWN:
            summary.withdrawn += 1
        elif person.arm and person.stop == "left":
            summary.left += 1
        if main is not None and any(
            r.stage is main and r.end_reason == StageRecord.EndReason.TIMED_OUT
            for r in person.records
        ):
            summary.censored += 1
