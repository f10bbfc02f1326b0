"""The generator's model of people and outcomes: effect sizes, flow rates, the quiz's item model
and its calibration, task scripts, answer sampling. Pure: no Django.
"""

from __future__ import annotations

import difflib
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from quizzes import grading
from quizzes.quizfile import CHOICE_TYPES, IDK_VALUE, Question, Quiz
from trials.definition import question_choices

if TYPE_CHECKING:  # a row type in an annotation only: this module imports no Django
    from trials.models import Stage


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


CHUNK_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256, 10**9)


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


def _candidates(question: Question) -> list[tuple[Any, dict[str, Any]]]:
    """Responses worth grading for an auto-graded question: each with the answers it posts."""
    key, qtype = question.key, question.type
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
    return candidates


def _quiz_item(question: Question) -> _Item:
    key, qtype = question.key, question.type
    right: list[_Outcome] = []
    wrong: list[_Outcome] = []
    candidates = _candidates(question)
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
                "human",  # ItemResponse.Status.HUMAN (no Django here)
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
                "auto",  # ItemResponse.Status.AUTO
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
        p: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(logits, -50.0, 50.0)))
        return p


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


def _lognormal_s(median: float, sigma: float, z: float) -> float:
    return median * math.exp(sigma * z)


def _geometric(rand: random.Random, mean: float) -> int:
    """A count >= 0 with the given mean (geometric)."""
    if mean <= 0:
        return 0
    p = 1.0 / (1.0 + mean)
    return int(math.log(1.0 - rand.random()) / math.log(1.0 - p))


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
