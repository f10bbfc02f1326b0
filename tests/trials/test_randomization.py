"""Tests of the pure allocation algorithms in ``trials.randomization``.

Statistical checks use fixed seeds, so they are deterministic; their tolerances are chosen so
that a correct implementation passes for essentially any seed (p > 0.001 or 4 standard errors)
while the usual bugs (biased shuffle, off-by-one weights, float ties) fail.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from trials.randomization import (
    ArmWeight,
    BlockSchedule,
    MinimizationFactor,
    RandomizationError,
    make_rng,
    minimization_assign,
    permuted_block,
    simple_assign,
    validate_arms,
    validate_block_sizes,
)

TWO_ARMS = (ArmWeight("A", 1), ArmWeight("B", 1))


def _normalised_spread(counts: Counter[str], arms: Sequence[ArmWeight]) -> Fraction:
    """max - min over arms of count / weight."""
    values = [Fraction(counts[arm.key], arm.weight) for arm in arms]
    return max(values) - min(values)


def _is_proportional(counts: Counter[str], arms: Sequence[ArmWeight]) -> bool:
    return _normalised_spread(counts, arms) == 0


# --- make_rng ---------------------------------------------------------------------------------


def test_make_rng_same_inputs_give_the_same_stream() -> None:
    first = make_rng("seed", "stratum", 3)
    second = make_rng("seed", "stratum", 3)
    assert [first.random() for _ in range(20)] == [second.random() for _ in range(20)]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("seed",), ("seed2",)),
        (("seed", "a"), ("seed", "b")),
        (("seed", "ab", "c"), ("seed", "a", "bc")),  # no ambiguity from concatenation
        (("seed", 1), ("seed", "1")),  # type is part of the identity
        (("seed",), ("seed", "")),
    ],
)
def test_make_rng_different_inputs_give_different_streams(
    left: tuple[str, ...], right: tuple[str, ...]
) -> None:
    a = make_rng(*left)
    b = make_rng(*right)
    assert [a.random() for _ in range(5)] != [b.random() for _ in range(5)]


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ([], "at least 2 arms, got 0"),
        ([ArmWeight("A", 1)], "at least 2 arms, got 1"),
        ([ArmWeight("A", 1), ArmWeight("A", 2)], "Duplicate arm key 'A'"),
        ([ArmWeight("A", 1), ArmWeight("", 1)], "non-empty string"),
        ([ArmWeight("A", 1), ArmWeight("B", 0)], "'B' weight must be a positive integer, got 0"),
        ([ArmWeight("A", -1), ArmWeight("B", 1)], "'A' weight must be a positive integer"),
        ([ArmWeight("A", 1), ArmWeight("B", 1.5)], "positive integer, got 1.5"),  # type: ignore[arg-type]
        ([ArmWeight("A", True), ArmWeight("B", 1)], "positive integer, got True"),
    ],
)
def test_validate_arms_rejects_bad_arms(arms: list[ArmWeight], message: str) -> None:
    with pytest.raises(RandomizationError, match=message):
        validate_arms(arms)


def test_validate_arms_accepts_unequal_ratios() -> None:
    validate_arms([ArmWeight("A", 2), ArmWeight("B", 1), ArmWeight("C", 3)])


@pytest.mark.parametrize(
    ("weights", "block_sizes", "message"),
    [
        ((1, 1), [], "At least one block size"),
        ((2, 2), [3], "Block size 3 is not a positive multiple of 4"),
        ((2, 1), [6, 4], "Block size 4 is not a positive multiple of 3"),
        ((2, 1), [0], "Block size 0 is not a positive multiple of 3"),
        ((2, 1), [-3], "Block size -3 is not a positive multiple of 3"),
        ((2, 1), [6, 6], "Duplicate block size 6"),
    ],
)
def test_validate_block_sizes_names_the_offending_size_and_multiple(
    weights: tuple[int, int], block_sizes: list[int], message: str
) -> None:
    arms = [ArmWeight("A", weights[0]), ArmWeight("B", weights[1])]
    with pytest.raises(RandomizationError, match=message):
        validate_block_sizes(arms, block_sizes)


def test_validate_block_sizes_also_validates_arms() -> None:
    with pytest.raises(RandomizationError, match="at least 2 arms"):
        validate_block_sizes([ArmWeight("A", 1)], [2])


def test_permuted_block_and_schedule_reject_invalid_block_sizes() -> None:
    with pytest.raises(RandomizationError, match="Block size 5 is not a positive multiple of 2"):
        permuted_block(TWO_ARMS, 5, random.Random(0))
    with pytest.raises(RandomizationError, match="Block size 3 is not a positive multiple of 2"):
        BlockSchedule(TWO_ARMS, [2, 3], seed="s", stratum="x")


def test_arm_at_rejects_negative_index() -> None:
    schedule = BlockSchedule(TWO_ARMS, [4], seed="s", stratum="x")
    with pytest.raises(RandomizationError, match="non-negative"):
        schedule.arm_at(-1)


# --- simple randomization ---------------------------------------------------------------------


def test_simple_assign_follows_the_weights() -> None:
    arms = [ArmWeight("A", 2), ArmWeight("B", 1), ArmWeight("C", 1)]
    rng = make_rng("simple-weights")
    n = 8000
    observed = Counter(simple_assign(arms, rng) for _ in range(n))
    expected = [n * arm.weight / 4 for arm in arms]
    result = stats.chisquare([observed[arm.key] for arm in arms], expected)
    assert result.pvalue > 0.001


# --- permuted blocks --------------------------------------------------------------------------


def test_permuted_block_has_exact_composition() -> None:
    arms = [ArmWeight("A", 2), ArmWeight("B", 1)]
    block = permuted_block(arms, 9, random.Random(7))
    assert Counter(block) == {"A": 6, "B": 3}


@pytest.mark.parametrize(
    ("arms", "block_size"),
    [
        (TWO_ARMS, 4),  # 4! / (2! 2!) = 6 orderings
        ((ArmWeight("A", 1), ArmWeight("B", 1), ArmWeight("C", 2)), 4),  # 4! / 2! = 12
    ],
)
def test_permuted_block_orderings_are_uniform(arms: tuple[ArmWeight, ...], block_size: int) -> None:
    copies = block_size // sum(arm.weight for arm in arms)
    keys = [arm.key for arm in arms for _ in range(copies * arm.weight)]
    orderings = sorted(set(itertools.permutations(keys)))
    rng = make_rng("block-uniformity", block_size, len(arms))
    n = 1000 * len(orderings)
    observed = Counter(tuple(permuted_block(arms, block_size, rng)) for _ in range(n))
    assert set(observed) == set(orderings)
    result = stats.chisquare([observed[o] for o in orderings])
    assert result.pvalue > 0.001


def test_schedule_block_orderings_are_uniform() -> None:
    schedule = BlockSchedule(TWO_ARMS, [4], seed="schedule-uniformity", stratum="all")
    observed = Counter(tuple(block) for block in itertools.islice(schedule.blocks(), 6000))
    assert len(observed) == 6
    assert stats.chisquare(list(observed.values())).pvalue > 0.001


def test_schedule_draws_block_sizes_uniformly() -> None:
    schedule = BlockSchedule(TWO_ARMS, [6, 2, 4], seed="sizes", stratum="all")
    observed = Counter(len(block) for block in itertools.islice(schedule.blocks(), 3000))
    assert set(observed) == {2, 4, 6}
    assert stats.chisquare(list(observed.values())).pvalue > 0.001


# --- BlockSchedule determinism ----------------------------------------------------------------


def _first(schedule: BlockSchedule, n: int) -> list[str]:
    return [schedule.arm_at(i) for i in range(n)]


def test_schedule_is_determined_by_seed_and_stratum() -> None:
    one = BlockSchedule(TWO_ARMS, [2, 4, 6], seed="trial-1", stratum="site=X")
    two = BlockSchedule(TWO_ARMS, [2, 4, 6], seed="trial-1", stratum="site=X")
    assert _first(one, 200) == _first(two, 200)


def test_block_size_order_does_not_change_the_schedule() -> None:
    one = BlockSchedule(TWO_ARMS, [2, 4, 6], seed="trial-1", stratum="site=X")
    two = BlockSchedule(TWO_ARMS, [6, 2, 4], seed="trial-1", stratum="site=X")
    assert _first(one, 200) == _first(two, 200)


def test_different_seed_or_stratum_gives_a_different_schedule() -> None:
    base = _first(BlockSchedule(TWO_ARMS, [4], seed="trial-1", stratum="X"), 60)
    other_seed = _first(BlockSchedule(TWO_ARMS, [4], seed="trial-2", stratum="X"), 60)
    other_stratum = _first(BlockSchedule(TWO_ARMS, [4], seed="trial-1", stratum="Y"), 60)
    # Each has 15 blocks of 6 equally likely orderings: equal by chance with p = 6**-15.
    assert base != other_seed
    assert base != other_stratum
    assert other_seed != other_stratum


def test_arm_at_is_independent_of_the_order_of_calls() -> None:
    sequential = _first(BlockSchedule(TWO_ARMS, [2, 4, 6], seed="s", stratum="x"), 150)
    jumping = BlockSchedule(TWO_ARMS, [2, 4, 6], seed="s", stratum="x")
    indices = list(range(150))
    random.Random(3).shuffle(indices)
    assert {i: jumping.arm_at(i) for i in indices} == dict(enumerate(sequential))


def test_blocks_match_arm_at_whether_or_not_already_cached() -> None:
    warmed = BlockSchedule(TWO_ARMS, [2, 4, 6], seed="s", stratum="x")
    warmed.arm_at(100)
    fresh = BlockSchedule(TWO_ARMS, [2, 4, 6], seed="s", stratum="x")
    warmed_blocks = list(itertools.islice(warmed.blocks(), 40))
    assert warmed_blocks == list(itertools.islice(fresh.blocks(), 40))
    flat = [arm for block in warmed_blocks for arm in block]
    assert flat == _first(fresh, len(flat))


# --- balance (property-based) -----------------------------------------------------------------


@st.composite
def block_designs(draw: st.DrawFn) -> tuple[list[ArmWeight], list[int]]:
    weights = draw(st.lists(st.integers(1, 3), min_size=2, max_size=4))
    arms = [ArmWeight(f"arm{i}", w) for i, w in enumerate(weights)]
    multipliers = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True))
    return arms, [m * sum(weights) for m in multipliers]


@settings(max_examples=80, deadline=None)
@given(design=block_designs(), seed=st.text(max_size=10), stratum=st.text(max_size=10))
def test_schedule_is_balanced_after_every_block_and_bounded_within(
    design: tuple[list[ArmWeight], list[int]], seed: str, stratum: str
) -> None:
    arms, block_sizes = design
    total_weight = sum(arm.weight for arm in arms)
    bound = Fraction(max(block_sizes), total_weight)
    schedule = BlockSchedule(arms, block_sizes, seed=seed, stratum=stratum)
    counts: Counter[str] = Counter()
    index = 0
    for block in itertools.islice(schedule.blocks(), 12):
        assert len(block) in block_sizes
        for arm in block:
            assert schedule.arm_at(index) == arm
            index += 1
            counts[arm] += 1
            assert _normalised_spread(counts, arms) <= bound
        assert _is_proportional(counts, arms)


@settings(max_examples=40, deadline=None)
@given(
    design=block_designs(),
    seed=st.text(max_size=10),
    enrolment=st.lists(st.integers(0, 3), min_size=1, max_size=150),
)
def test_each_stratum_is_balanced_independently(
    design: tuple[list[ArmWeight], list[int]], seed: str, enrolment: list[int]
) -> None:
    """Participants arrive in arbitrary interleaving across strata; the service allocates the
    n-th participant of a stratum with ``arm_at(n)`` of that stratum's schedule."""
    arms, block_sizes = design
    bound = Fraction(max(block_sizes), sum(arm.weight for arm in arms))
    schedules = {s: BlockSchedule(arms, block_sizes, seed=seed, stratum=f"s{s}") for s in range(4)}
    counts: dict[int, Counter[str]] = {s: Counter() for s in range(4)}
    for stratum in enrolment:
        n = sum(counts[stratum].values())
        counts[stratum][schedules[stratum].arm_at(n)] += 1
        assert _normalised_spread(counts[stratum], arms) <= bound

    for stratum, stratum_counts in counts.items():
        enrolled = sum(stratum_counts.values())
        block_ends = set(
            itertools.accumulate(len(b) for b in _blocks_upto(schedules[stratum], enrolled))
        )
        if enrolled in block_ends:
            assert _is_proportional(stratum_counts, arms)


def _blocks_upto(schedule: BlockSchedule, n: int) -> list[list[str]]:
    blocks: list[list[str]] = []
    covered = 0
    for block in schedule.blocks():
        if covered >= n:
            break
        blocks.append(block)
        covered += len(block)
    return blocks


# --- predictability: Blackwell-Hodges convergence guessing (REFERENCE_VALUES.md section 8) ----

# Expected proportion of correct guesses for fixed blocks, 2 arms 1:1.
BLACKWELL_HODGES = {
    2: Fraction(3, 4),
    4: Fraction(17, 24),
    6: Fraction(41, 60),
    8: Fraction(373, 560),
}


def _convergence_correct(sequence: Sequence[str], rng: random.Random) -> int:
    """Guess the arm used less so far in the whole sequence; coin flip on ties."""
    used = {"A": 0, "B": 0}
    correct = 0
    for arm in sequence:
        if used["A"] < used["B"]:
            guess = "A"
        elif used["B"] < used["A"]:
            guess = "B"
        else:
            guess = rng.choice("AB")
        correct += guess == arm
        used[arm] += 1
    return correct


def _proportion_and_se(
    sequences: Sequence[Sequence[str]], rng: random.Random
) -> tuple[float, float]:
    """Ratio estimate sum(correct) / sum(length) over independent sequences and its
    delta-method standard error (sequences may differ in length with random block sizes)."""
    correct = [_convergence_correct(seq, rng) for seq in sequences]
    lengths = [len(seq) for seq in sequences]
    n = len(sequences)
    ratio = sum(correct) / sum(lengths)
    mean_length = sum(lengths) / n
    residual_ss = sum((c - ratio * m) ** 2 for c, m in zip(correct, lengths, strict=True))
    se = math.sqrt(residual_ss / (n * (n - 1))) / mean_length
    return ratio, se


def _block_sequences(block_sizes: list[int], n_sequences: int, blocks_each: int) -> list[list[str]]:
    sequences = []
    for i in range(n_sequences):
        schedule = BlockSchedule(TWO_ARMS, block_sizes, seed="blackwell-hodges", stratum=str(i))
        blocks = itertools.islice(schedule.blocks(), blocks_each)
        sequences.append([arm for block in blocks for arm in block])
    return sequences


def test_simple_randomization_is_unpredictable() -> None:
    rng = make_rng("bh-simple")
    sequences = [[simple_assign(TWO_ARMS, rng) for _ in range(100)] for _ in range(400)]
    proportion, se = _proportion_and_se(sequences, make_rng("bh-guesser", "simple"))
    assert abs(proportion - 0.5) < 4 * se
    assert se < 0.005  # enough draws for the 4 SE check to mean something


@pytest.mark.parametrize("block_size", sorted(BLACKWELL_HODGES))
def test_fixed_blocks_match_blackwell_hodges(block_size: int) -> None:
    """Classical setting: the guesser knows the block boundaries. Each completed 1:1 block is
    balanced, so the difference of counts over the whole sequence equals the difference within
    the current block, and the guesser below (counting over the whole sequence) makes exactly
    the guesses of one that resets at every boundary. The reference values apply unchanged."""
    sequences = _block_sequences([block_size], n_sequences=400, blocks_each=240 // block_size)
    proportion, se = _proportion_and_se(sequences, make_rng("bh-guesser", block_size))
    expected = float(BLACKWELL_HODGES[block_size])
    assert abs(proportion - expected) < 4 * se, (proportion, expected, se)
    # The reference values for neighbouring sizes differ by >= 0.017; 4 SE must resolve that.
    assert 4 * se < 0.008


@pytest.mark.parametrize("block_sizes", [[2, 4, 6], [4, 6, 8]])
def test_random_block_sizes_are_less_predictable_than_the_smallest_fixed_block(
    block_sizes: list[int],
) -> None:
    """The guesser does not know where blocks end, so it counts over the whole sequence. By the
    argument in the fixed-block test this loses nothing against a boundary-aware convergence
    guesser (the counts are balanced at every boundary), so both designs face the same strategy
    and the comparison is fair. With sizes drawn uniformly, a renewal-reward argument gives the
    expected proportion as the length-weighted mixture sum_s s*p(s) / sum_s s of the reference
    values p(s); since p(s) decreases in s it lies strictly below p(smallest size). We check the
    simulation against that mixture and against the reference value of the smallest size."""
    sequences = _block_sequences(block_sizes, n_sequences=400, blocks_each=240 // 6)
    proportion, se = _proportion_and_se(sequences, make_rng("bh-guesser", *block_sizes))
    mixture = float(sum(s * BLACKWELL_HODGES[s] for s in block_sizes) / sum(block_sizes))
    assert abs(proportion - mixture) < 4 * se, (proportion, mixture, se)
    assert proportion + 4 * se < float(BLACKWELL_HODGES[min(block_sizes)])


# --- minimization -----------------------------------------------------------------------------


def test_minimization_scores_match_a_hand_computed_example() -> None:
    factors = [MinimizationFactor("sex"), MinimizationFactor("site", weight=2.0)]
    counts = {"sex": {"F": {"A": 3, "B": 1}, "M": {"A": 0, "B": 9}}, "site": {"X": {"B": 2}}}
    participant = {"sex": "F", "site": "X"}
    # range: to A -> |4-1| + 2*|1-2| = 5; to B -> |3-2| + 2*|0-3| = 7 (level M is irrelevant)
    result = minimization_assign(
        TWO_ARMS, factors, counts, participant, random.Random(0), p_preferred=1.0
    )
    assert result.scores == {"A": 5.0, "B": 7.0}
    assert result.preferred == ("A",)
    assert result.arm == "A"
    assert result.used_preferred
    # population variance of two values = (difference / 2) ** 2
    variance = minimization_assign(
        TWO_ARMS, factors, counts, participant, random.Random(0), imbalance="variance"
    )
    assert variance.scores == {"A": 9 / 4 + 2 * 1 / 4, "B": 1 / 4 + 2 * 9 / 4}


def test_minimization_normalises_counts_by_arm_weight() -> None:
    arms = [ArmWeight("A", 2), ArmWeight("B", 1)]
    counts = {"site": {"X": {"A": 2, "B": 0}}}
    # to A: (3/2, 0/1) -> range 3/2; to B: (2/2, 1/1) -> range 0
    result = minimization_assign(
        arms, [MinimizationFactor("site")], counts, {"site": "X"}, random.Random(0), p_preferred=1
    )
    assert result.scores == {"A": 1.5, "B": 0.0}
    assert result.arm == "B"


def test_minimization_ties_are_exact_not_float_noise() -> None:
    """Factor weights 0.1, 0.2, 0.3: to A scores 2 * 0.3, to B 2 * 0.1 + 2 * 0.2. In floats
    the latter is 0.6000000000000001 and A would win outright; as written they tie."""
    factors = [
        MinimizationFactor("f1", 0.1),
        MinimizationFactor("f2", 0.2),
        MinimizationFactor("f3", 0.3),
    ]
    counts = {"f1": {"x": {"B": 1}}, "f2": {"x": {"B": 1}}, "f3": {"x": {"A": 1}}}
    participant = {"f1": "x", "f2": "x", "f3": "x"}
    result = minimization_assign(TWO_ARMS, factors, counts, participant, random.Random(0))
    assert result.preferred == ("A", "B")
    assert result.scores["A"] == result.scores["B"] == pytest.approx(0.6)


Counts = dict[str, dict[str, Counter[str]]]


def _simulate(
    arms: Sequence[ArmWeight],
    factors: Sequence[MinimizationFactor],
    participants: Sequence[dict[str, str]],
    rng: random.Random,
    *,
    method: Literal["minimization", "simple"] = "minimization",
    p_preferred: float = 0.8,
) -> tuple[Counts, list[str]]:
    """Allocate participants one by one as the service would, keeping counts[factor][level]."""
    counts: Counts = {f.name: {} for f in factors}
    allocations: list[str] = []
    for participant in participants:
        if method == "simple":
            arm = simple_assign(arms, rng)
        else:
            arm = minimization_assign(
                arms, factors, counts, participant, rng, p_preferred=p_preferred
            ).arm
        allocations.append(arm)
        for factor in factors:
            counts[factor.name].setdefault(participant[factor.name], Counter())[arm] += 1
    return counts, allocations


LEVELS = {"sex": ["F", "M"], "age": ["<30", "30-50", ">50"], "site": ["1", "2", "3", "4"]}
FACTORS = [MinimizationFactor(name) for name in LEVELS]


def _participants(rng: random.Random, n: int) -> list[dict[str, str]]:
    return [{name: rng.choice(levels) for name, levels in LEVELS.items()} for _ in range(n)]


@settings(max_examples=60, deadline=None)
@given(
    levels=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=60),
    seed=st.integers(0, 2**32),
)
def test_single_factor_deterministic_minimization_keeps_each_level_within_one(
    levels: list[str], seed: int
) -> None:
    """Guaranteed bound: with one factor, 2 arms 1:1 and p_preferred = 1, a level with
    difference 0 moves to +-1 and a level at +-1 always moves back to 0."""
    participants = [{"site": level} for level in levels]
    factors = [MinimizationFactor("site")]
    counts, _ = _simulate(TWO_ARMS, factors, participants, random.Random(seed), p_preferred=1.0)
    for by_arm in counts["site"].values():
        assert abs(by_arm["A"] - by_arm["B"]) <= 1


def test_several_factors_have_no_hard_bound_per_level() -> None:
    """Why the multi-factor test below is statistical: Pocock-Simon minimizes the sum over
    factors, so a tie can let one level grow. Here sex=F is already at +2, site=X at -1;
    both candidates score 3 and the tie may send the participant to A, making F +3.
    (Repeating the pattern, adversarial arrivals reach +k after about 3k participants.)"""
    counts = {"sex": {"F": {"A": 2}}, "site": {"X": {"B": 1}}}
    factors = [MinimizationFactor("sex"), MinimizationFactor("site")]
    participant = {"sex": "F", "site": "X"}
    arms_chosen = {
        minimization_assign(
            TWO_ARMS, factors, counts, participant, random.Random(s), p_preferred=1
        ).arm
        for s in range(20)
    }
    assert arms_chosen == {"A", "B"}


def _mean_level_imbalance(counts: Counts) -> float:
    differences = [
        abs(by_arm["A"] - by_arm["B"]) for levels in counts.values() for by_arm in levels.values()
    ]
    return sum(differences) / len(differences)


@pytest.mark.parametrize("p_preferred", [1.0, 0.8])
def test_minimization_balances_marginals_far_better_than_simple_randomization(
    p_preferred: float,
) -> None:
    """3 factors with 2, 3 and 4 levels, 300 participants, 4 replicates. Under simple
    randomization |n_A - n_B| at a level with m participants has mean about sqrt(2m/pi), i.e.
    5-10 here; minimization keeps it around 1. We require at most a quarter of the simple
    figure, and a mean below 2 per level."""
    minimization: list[float] = []
    simple: list[float] = []
    for replicate in range(4):
        participants = _participants(make_rng("minimization-marginals", replicate), 300)
        counts, _ = _simulate(
            TWO_ARMS,
            FACTORS,
            participants,
            make_rng("minimization-coin", replicate),
            p_preferred=p_preferred,
        )
        minimization.append(_mean_level_imbalance(counts))
        simple_counts, _ = _simulate(
            TWO_ARMS, FACTORS, participants, make_rng("simple-coin", replicate), method="simple"
        )
        simple.append(_mean_level_imbalance(simple_counts))
    assert sum(minimization) / 4 < 2
    assert sum(minimization) < sum(simple) / 4, (minimization, simple)


def test_minimization_with_two_to_one_ratio_allocates_about_two_thirds() -> None:
    """Balancing counts / weight drives every level, hence the total, towards 2:1. The
    binomial standard error sqrt(p(1-p)/n) is a conservative yardstick: minimization controls
    the total more tightly than independent draws."""
    arms = [ArmWeight("A", 2), ArmWeight("B", 1)]
    n = 1500
    participants = _participants(make_rng("minimization-ratio-participants"), n)
    counts, allocations = _simulate(arms, FACTORS, participants, make_rng("minimization-ratio"))
    share = allocations.count("A") / n

    assert abs(share - 2 / 3) < 4 * math.sqrt(2 / 9 / n), share
    for levels in counts.values():
        for by_arm in levels.values():
            assert abs(by_arm["A"] / 2 - by_arm["B"]) < 5


TIE_FACTORS = [MinimizationFactor("f1"), MinimizationFactor("f2")]
TIE_PARTICIPANT = {"f1": "x", "f2": "y"}


@pytest.mark.parametrize(
    ("arms", "counts", "expected_share_a"),
    [
        # Nobody allocated yet: both candidates score 1.
        (TWO_ARMS, {}, 0.5),
        # 2:1, normalised f1 = (1, 0) and f2 = (0, 1): to A -> 3/2 + 1/2, to B -> 0 + 2.
        (
            (ArmWeight("A", 2), ArmWeight("B", 1)),
            {"f1": {"x": {"A": 2}}, "f2": {"y": {"B": 1}}},
            2 / 3,
        ),
    ],
)
def test_minimization_breaks_ties_at_random_in_proportion_to_weights(
    arms: tuple[ArmWeight, ...],
    counts: dict[str, dict[str, dict[str, int]]],
    expected_share_a: float,
) -> None:
    rng = make_rng("minimization-ties", arms[0].weight)
    n = 2000
    results = [
        minimization_assign(arms, TIE_FACTORS, counts, TIE_PARTICIPANT, rng, p_preferred=1.0)
        for _ in range(n)
    ]
    assert all(r.preferred == ("A", "B") for r in results)
    assert all(r.scores["A"] == r.scores["B"] for r in results)
    chosen_a = sum(r.arm == "A" for r in results)
    assert 0 < chosen_a < n
    assert stats.binomtest(chosen_a, n, expected_share_a).pvalue > 0.001


def test_biased_coin_takes_preferred_arm_with_p_preferred_else_others_by_weight() -> None:
    arms = [ArmWeight("A", 1), ArmWeight("B", 1), ArmWeight("C", 2)]
    # A strictly preferred: B and C are ahead at this level.
    counts = {"site": {"X": {"B": 1, "C": 2}}}
    rng = make_rng("biased-coin")
    n = 4000
    results = [
        minimization_assign(
            arms, [MinimizationFactor("site")], counts, {"site": "X"}, rng, p_preferred=0.7
        )
        for _ in range(n)
    ]
    assert {r.preferred for r in results} == {("A",)}
    used = [r for r in results if r.used_preferred]
    assert all(r.arm == "A" for r in used)
    assert stats.binomtest(len(used), n, 0.7).pvalue > 0.001
    others = Counter(r.arm for r in results if not r.used_preferred)
    assert set(others) == {"B", "C"}
    assert stats.binomtest(others["C"], others["B"] + others["C"], 2 / 3).pvalue > 0.001


def test_minimization_is_reproducible_from_the_rng_seed() -> None:
    participants = _participants(make_rng("repro-participants"), 50)
    first = _simulate(TWO_ARMS, FACTORS, participants, make_rng("repro"))
    assert _simulate(TWO_ARMS, FACTORS, participants, make_rng("repro")) == first


GOOD_FACTORS = [MinimizationFactor("sex"), MinimizationFactor("site")]
GOOD_PARTICIPANT = {"sex": "F", "site": "X"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arms": [ArmWeight("A", 1)]}, "at least 2 arms"),
        ({"factors": []}, "at least one factor"),
        ({"factors": [MinimizationFactor("sex"), MinimizationFactor("sex")]}, "Duplicate"),
        ({"factors": [MinimizationFactor("sex", 0.0)]}, "'sex' weight must be a positive"),
        ({"factors": [MinimizationFactor("sex", -1.0)]}, "'sex' weight must be a positive"),
        ({"factors": [MinimizationFactor("sex", math.inf)]}, "positive finite number"),
        ({"participant": {"sex": "F"}}, "no level for factor 'site'"),
        ({"participant": {**GOOD_PARTICIPANT, "age": "old"}}, "unknown factor 'age'"),
        ({"participant": {"sex": "F", "site": 3}}, "'site' must be a string"),
        ({"counts": {"age": {"old": {"A": 1}}}}, "Counts given for unknown factor 'age'"),
        ({"counts": {"sex": {"F": {"Z": 1}}}}, "unknown arm 'Z'"),
        ({"counts": {"sex": {"F": {"A": -1}}}}, "non-negative int, got -1"),
        ({"p_preferred": 0.0}, r"p_preferred must be in \(0, 1\], got 0.0"),
        ({"p_preferred": 1.5}, r"p_preferred must be in \(0, 1\]"),
        ({"p_preferred": math.nan}, r"p_preferred must be in \(0, 1\]"),
        ({"imbalance": "sd"}, "Unknown imbalance measure 'sd'"),
    ],
)
def test_minimization_rejects_invalid_input(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "arms": TWO_ARMS,
        "factors": GOOD_FACTORS,
        "counts": {},
        "participant": GOOD_PARTICIPANT,
        "rng": random.Random(0),
    }
    arguments.update(kwargs)
    with pytest.raises(RandomizationError, match=message):
        minimization_assign(**arguments)  # type: ignore[arg-type]
