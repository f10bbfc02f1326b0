"""Allocation algorithms for randomized trials: pure functions, no Django.

Every function takes an explicit ``random.Random``; nothing here touches global random state, so
an allocation can be replayed from what the service stores (seed, stratum, sequence index and
``ALGORITHM_VERSION``).

Reproducibility rests on CPython's Mersenne Twister seeded from an ``int`` and on
``Random.shuffle``/``Random.randrange``, whose output for a given seed has been stable since
Python 3.2. If an algorithm here ever changes the sequence it produces for the same inputs,
bump ``ALGORITHM_VERSION`` so that stored allocations stay explainable.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = [
    "ALGORITHM_VERSION",
    "ArmWeight",
    "Assignment",
    "BlockSchedule",
    "MinimizationFactor",
    "MinimizationResult",
    "RandomizationError",
    "add_to_counts",
    "assign",
    "factor_levels",
    "make_rng",
    "minimization_assign",
    "minimization_counts",
    "permuted_block",
    "sequence_stratum",
    "simple_assign",
    "validate_arms",
    "validate_block_sizes",
]

ALGORITHM_VERSION = 1


class RandomizationError(ValueError):
    """Invalid randomization configuration or input."""


@dataclass(frozen=True)
class ArmWeight:
    key: str
    weight: int  # allocation ratio, e.g. 1:1 or 2:1


def make_rng(seed: str, *parts: str | int) -> random.Random:
    """An independent, deterministic stream for ``(seed, *parts)``.

    Each component is tagged with its type and length before hashing, so ``("a", "bc")``,
    ``("ab", "c")`` and ``(1,)`` vs ``("1",)`` give different streams.
    """
    digest = hashlib.sha256()
    for component in (seed, *parts):
        if isinstance(component, bool) or not isinstance(component, str | int):
            raise RandomizationError(
                f"RNG seed parts must be str or int, got {type(component).__name__}"
            )
        tag = "s" if isinstance(component, str) else "i"
        text = str(component).encode()
        digest.update(f"{tag}{len(text)}:".encode())
        digest.update(text)
    return random.Random(int.from_bytes(digest.digest(), "big"))


def validate_arms(arms: Sequence[ArmWeight]) -> None:
    """At least two arms, unique non-empty string keys, positive integer weights."""
    if len(arms) < 2:
        raise RandomizationError(f"A trial needs at least 2 arms, got {len(arms)}.")
    seen: set[str] = set()
    for arm in arms:
        if not isinstance(arm.key, str) or not arm.key:
            raise RandomizationError(f"Arm key must be a non-empty string, got {arm.key!r}.")
        if arm.key in seen:
            raise RandomizationError(f"Duplicate arm key {arm.key!r}.")
        seen.add(arm.key)
        # bool is an int subclass; True as a weight is a bug, not a ratio.
        if isinstance(arm.weight, bool) or not isinstance(arm.weight, int) or arm.weight < 1:
            raise RandomizationError(
                f"Arm {arm.key!r} weight must be a positive integer, got {arm.weight!r}."
            )


def _total_weight(arms: Sequence[ArmWeight]) -> int:
    return sum(arm.weight for arm in arms)


def validate_block_sizes(arms: Sequence[ArmWeight], block_sizes: Sequence[int]) -> None:
    """Non-empty, distinct, each a positive multiple of the sum of the arm weights."""
    validate_arms(arms)
    if len(block_sizes) == 0:
        raise RandomizationError("At least one block size is required.")
    total = _total_weight(arms)
    seen: set[int] = set()
    for size in block_sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % total:
            raise RandomizationError(
                f"Block size {size!r} is not a positive multiple of {total} "
                f"(the sum of the arm weights)."
            )
        if size in seen:
            # Sizes are drawn uniformly from the distinct values; a repeat would silently
            # change that distribution.
            raise RandomizationError(f"Duplicate block size {size}.")
        seen.add(size)


def _weighted_choice(arms: Sequence[ArmWeight], rng: random.Random) -> str:
    # Integer arithmetic: exact probabilities weight / total, no float rounding.
    ticket = rng.randrange(_total_weight(arms))
    for arm in arms:
        if ticket < arm.weight:
            return arm.key
        ticket -= arm.weight
    raise AssertionError("unreachable: ticket below total weight")  # pragma: no cover


def simple_assign(arms: Sequence[ArmWeight], rng: random.Random) -> str:
    """Weighted coin: P(arm) = weight / sum(weights), independent of earlier allocations."""
    validate_arms(arms)
    return _weighted_choice(arms, rng)


def _block(arms: Sequence[ArmWeight], block_size: int, rng: random.Random) -> list[str]:
    copies = block_size // _total_weight(arms)
    block = [arm.key for arm in arms for _ in range(copies * arm.weight)]
    rng.shuffle(block)
    return block


def permuted_block(arms: Sequence[ArmWeight], block_size: int, rng: random.Random) -> list[str]:
    """One block: ``block_size // sum(weights) * weight`` copies of each arm, uniformly shuffled."""
    validate_block_sizes(arms, [block_size])
    return _block(arms, block_size, rng)


class BlockSchedule:
    """The deterministic allocation sequence of one stratum under permuted blocks whose sizes are
    drawn at random (uniformly) from block_sizes. Fully determined by (seed, stratum); so a
    service can recompute the arm for sequence index n without storing RNG state.

    Block sizes are sorted before drawing, so their listed order does not matter; arm order
    does (it fixes the unshuffled block), so services must pass arms in a stable order.
    """

    def __init__(
        self, arms: Sequence[ArmWeight], block_sizes: Sequence[int], seed: str, stratum: str
    ) -> None:
        validate_block_sizes(arms, block_sizes)
        self._arms: tuple[ArmWeight, ...] = tuple(arms)
        self._block_sizes: tuple[int, ...] = tuple(sorted(block_sizes))
        self._rng = make_rng(seed, "permuted-blocks", stratum)
        self._blocks: list[list[str]] = []
        self._sequence: list[str] = []

    def _extend(self) -> None:
        # One stream draws the size then shuffles, block after block; the cache makes the
        # result independent of the order in which indices are requested.
        size = self._rng.choice(self._block_sizes)
        block = _block(self._arms, size, self._rng)
        self._blocks.append(block)
        self._sequence.extend(block)

    def arm_at(self, index: int) -> str:
        """Arm of the ``index``-th (0-based) allocation in this stratum."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise RandomizationError(f"Sequence index must be a non-negative int, got {index!r}.")
        while len(self._sequence) <= index:
            self._extend()
        return self._sequence[index]

    def blocks(self) -> Iterator[list[str]]:
        """All blocks from the start, without end (each a fresh list)."""
        position = 0
        while True:
            while len(self._blocks) <= position:
                self._extend()
            yield list(self._blocks[position])
            position += 1


@dataclass(frozen=True)
class MinimizationFactor:
    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class MinimizationResult:
    arm: str
    scores: dict[str, float]  # total weighted imbalance if the participant went to each arm
    preferred: tuple[str, ...]  # arms with the minimal score (ties)
    used_preferred: bool  # whether the biased coin chose the preferred arm


def _imbalance(values: list[Fraction], imbalance: Literal["range", "variance"]) -> Fraction:
    if imbalance == "range":
        return max(values) - min(values)
    mean = sum(values, Fraction(0)) / len(values)
    return sum(((v - mean) ** 2 for v in values), Fraction(0)) / len(values)


def _validate_minimization_input(
    arms: Sequence[ArmWeight],
    factors: Sequence[MinimizationFactor],
    counts: Mapping[str, Mapping[str, Mapping[str, int]]],
    participant: Mapping[str, str],
    imbalance: str,
    p_preferred: float,
) -> None:
    validate_arms(arms)
    if imbalance not in ("range", "variance"):
        raise RandomizationError(
            f"Unknown imbalance measure {imbalance!r}; use 'range' or 'variance'."
        )
    if not (isinstance(p_preferred, int | float) and 0 < p_preferred <= 1):
        raise RandomizationError(f"p_preferred must be in (0, 1], got {p_preferred!r}.")
    if not factors:
        raise RandomizationError("Minimization needs at least one factor.")
    names: set[str] = set()
    for factor in factors:
        if factor.name in names:
            raise RandomizationError(f"Duplicate minimization factor {factor.name!r}.")
        names.add(factor.name)
        if not (
            isinstance(factor.weight, int | float)
            and math.isfinite(factor.weight)
            and factor.weight > 0
        ):
            raise RandomizationError(
                f"Factor {factor.name!r} weight must be a positive finite number, "
                f"got {factor.weight!r}."
            )
    for name in participant:
        if name not in names:
            raise RandomizationError(f"Participant has a level for unknown factor {name!r}.")
    for name in names:
        if name not in participant:
            raise RandomizationError(f"Participant has no level for factor {name!r}.")
        if not isinstance(participant[name], str):
            raise RandomizationError(
                f"Participant level for factor {name!r} must be a string, "
                f"got {participant[name]!r}."
            )
    arm_keys = {arm.key for arm in arms}
    for name, levels in counts.items():
        if name not in names:
            raise RandomizationError(f"Counts given for unknown factor {name!r}.")
        for level, by_arm in levels.items():
            for arm_key, n in by_arm.items():
                if arm_key not in arm_keys:
                    raise RandomizationError(
                        f"Counts for factor {name!r} level {level!r} name unknown arm {arm_key!r}."
                    )
                if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                    raise RandomizationError(
                        f"Count for factor {name!r} level {level!r} arm {arm_key!r} must be a "
                        f"non-negative int, got {n!r}."
                    )


def minimization_assign(
    arms: Sequence[ArmWeight],
    factors: Sequence[MinimizationFactor],
    counts: Mapping[str, Mapping[str, Mapping[str, int]]],
    participant: Mapping[str, str],
    rng: random.Random,
    *,
    imbalance: Literal["range", "variance"] = "range",
    p_preferred: float = 0.8,
) -> MinimizationResult:
    """Pocock-Simon minimization with a biased coin.

    ``counts[factor][level][arm]`` are participants already allocated (missing keys are 0).
    Counts are divided by the arm weight so that unequal ratios are balanced in proportion.
    For each candidate arm the imbalance (range or population variance) of the normalised counts
    at the participant's level, after hypothetically adding them to that arm, is summed over
    factors with the factor weights. Scores are computed exactly (``Fraction``, factor weights
    taken as the decimals they print as) so ties are real ties, not float noise.

    Ties among the minimal arms are broken at random in proportion to the arm weights (uniform
    for equal weights): where minimization expresses no preference, allocation follows the
    target ratio rather than favouring the small arm. With probability
    ``p_preferred`` the preferred arm is taken; otherwise one of the other arms, in proportion
    to their weights. The same three draws are made whatever the outcome.
    """
    _validate_minimization_input(arms, factors, counts, participant, imbalance, p_preferred)

    weights = {arm.key: arm.weight for arm in arms}
    # Read factor weights as the decimals they were written as (0.1 -> 1/10), so that e.g.
    # 0.1 + 0.2 ties with 0.3 as the trial designer intended.
    factor_weights = {factor.name: Fraction(str(factor.weight)) for factor in factors}
    exact_scores: dict[str, Fraction] = {}
    for candidate in arms:
        total = Fraction(0)
        for factor in factors:
            at_level = counts.get(factor.name, {}).get(participant[factor.name], {})
            normalised = [
                Fraction(at_level.get(arm.key, 0) + (arm.key == candidate.key), weights[arm.key])
                for arm in arms
            ]
            total += factor_weights[factor.name] * _imbalance(normalised, imbalance)
        exact_scores[candidate.key] = total

    best = min(exact_scores.values())
    preferred_arms = [arm for arm in arms if exact_scores[arm.key] == best]
    preferred_key = _weighted_choice(preferred_arms, rng)
    used_preferred = rng.random() < p_preferred
    others = [arm for arm in arms if arm.key != preferred_key]
    other_key = _weighted_choice(others, rng)
    return MinimizationResult(
        arm=preferred_key if used_preferred else other_key,
        scores={key: float(score) for key, score in exact_scores.items()},
        preferred=tuple(arm.key for arm in preferred_arms),
        used_preferred=used_preferred,
    )


# --- one rule for "which arm is next", used by enrollment and by synthesis ----------------------

MinimizationCounts = dict[str, dict[str, dict[str, int]]]


@dataclass(frozen=True)
class Assignment:
    arm: str
    sequence_stratum: str  # the sequence the index belongs to ("" unless stratified blocks)
    details: dict[str, object]  # stored with the allocation: algorithm version, scores, ...


def sequence_stratum(scheme: Mapping[str, object], stratum: str) -> str:
    """Which allocation sequence a participant of ``stratum`` draws from under ``scheme``:
    one per stratum for stratified blocks, one for the whole trial otherwise."""
    return stratum if scheme["scheme"] == "stratified_blocks" else ""


def factor_levels(scheme: Mapping[str, object], baseline: Mapping[str, object]) -> dict[str, str]:
    """The minimization factor levels of one participant (missing answers are level "")."""
    factors = scheme.get("factors") or []
    assert isinstance(factors, list)
    return {f["question"]: str(baseline.get(f["question"], "")) for f in factors}


def minimization_counts(
    scheme: Mapping[str, object], allocated: Iterable[tuple[str, Mapping[str, object]]]
) -> MinimizationCounts:
    """``counts[factor][level][arm]`` from (arm key, baseline answers) of those allocated."""
    factors = scheme.get("factors") or []
    assert isinstance(factors, list)
    counts: MinimizationCounts = {f["question"]: {} for f in factors}
    for arm_key, baseline in allocated:
        add_to_counts(counts, factor_levels(scheme, baseline or {}), arm_key)
    return counts


def add_to_counts(counts: MinimizationCounts, levels: Mapping[str, str], arm_key: str) -> None:
    for name, level in levels.items():
        per_arm = counts.setdefault(name, {}).setdefault(level, {})
        per_arm[arm_key] = per_arm.get(arm_key, 0) + 1


def assign(
    scheme: Mapping[str, object],
    arms: Sequence[ArmWeight],
    seed: str,
    *,
    index: int,
    stratum: str,
    baseline: Mapping[str, object],
    counts: MinimizationCounts | None = None,
    schedules: dict[str, BlockSchedule] | None = None,
) -> Assignment:
    """The arm of the ``index``-th (0-based) allocation of its sequence under the trial's
    randomization ``scheme`` (the ``[randomization]`` table of the definition).

    ``counts`` is needed for minimization (see :func:`minimization_counts`); the caller adds the
    new allocation to it (:func:`add_to_counts`) when it allocates several in a row.
    ``schedules`` lets a caller that allocates many in a row keep block schedules between calls.
    """
    name = scheme["scheme"]
    seq = sequence_stratum(scheme, stratum)
    details: dict[str, object] = {"algorithm_version": ALGORITHM_VERSION}
    if name == "simple":
        arm = simple_assign(arms, make_rng(seed, "simple", index))
    elif name in ("blocks", "stratified_blocks"):
        cache = schedules if schedules is not None else {}
        if seq not in cache:
            block_sizes = scheme["block_sizes"]
            assert isinstance(block_sizes, list)
            cache[seq] = BlockSchedule(arms, block_sizes, seed, seq)
        arm = cache[seq].arm_at(index)
    elif name == "minimization":
        factors = scheme["factors"]
        assert isinstance(factors, list)
        result = minimization_assign(
            arms,
            [MinimizationFactor(f["question"], f["weight"]) for f in factors],
            counts if counts is not None else {},
            factor_levels(scheme, baseline),
            make_rng(seed, "minimization", index),
            imbalance=scheme["imbalance"],  # type: ignore[arg-type]
            p_preferred=float(scheme["p_preferred"]),  # type: ignore[arg-type]
        )
        arm = result.arm
        details.update(scores=result.scores, used_preferred=result.used_preferred)
    else:
        raise RandomizationError(f"unknown randomization scheme {name!r}")
    return Assignment(arm=arm, sequence_stratum=seq, details=details)
