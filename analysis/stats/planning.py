"""Planning: power, sample size, minimum detectable effect."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy import optimize
from scipy import stats as sps


def _increasing_root(function: Callable[[float], float], low: float, start: float) -> float:
    """Root of an increasing function on (low, inf), doubling the bracket from ``start``."""
    high = start
    while function(high) < 0:
        low, high = high, high * 2
        if high > 1e9:
            raise ValueError("no solution below 1e9")
    return float(optimize.brentq(function, low, high, xtol=1e-12, rtol=1e-14))


def _smallest_effect(power_at: Callable[[float], float], power: float) -> float:
    """The effect at which ``power_at`` (increasing in the effect) reaches ``power``: the
    minimum detectable effect of every test here is found the same way."""
    return _increasing_root(lambda effect: power_at(effect) - power, low=0.0, start=0.5)


def _smallest_arm(power_at: Callable[[float], float], power: float, *, low: float) -> float:
    """The reference-arm size at which ``power_at`` (increasing in it) reaches ``power``."""
    return _increasing_root(lambda n: power_at(n) - power, low=low, start=4.0)


def t_test_power(
    d: float,
    n1: float,
    n2: float | None = None,
    *,
    alpha: float = 0.05,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
    strict: bool = True,
) -> float:
    """Power of the two-sample pooled t-test for a standardized difference ``d``.

    Exact noncentral t with ncp = d * sqrt(n1 n2 / (n1 + n2)) and n1 + n2 - 2 df; ``n2``
    defaults to ``n1``. ``strict=True`` counts rejections in both tails (``pwr::pwr.t.test``,
    ``power.t.test(strict = TRUE)``); ``strict=False`` only the tail of the effect, which is
    R's ``power.t.test`` default.
    """
    n_other = n1 if n2 is None else n2
    df = n1 + n_other - 2
    ncp = abs(d) * math.sqrt(n1 * n_other / (n1 + n_other))
    if alternative == "one-sided":
        return float(sps.nct.sf(sps.t.isf(alpha, df), df, ncp))
    critical = float(sps.t.isf(alpha / 2, df))
    power = float(sps.nct.sf(critical, df, ncp))
    if strict:
        # P(T < -c | ncp) = P(T > c | -ncp); scipy's nct.cdf returns NaN far in that tail.
        power += float(np.nan_to_num(sps.nct.sf(critical, df, -ncp)))
    return power


def t_test_sample_size(
    d: float,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    ratio: float = 1.0,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
    strict: bool = True,
) -> float:
    """Participants in the reference arm (the other arm has ``ratio`` times as many) for the
    given power. Fractional, as R reports it; round up to plan."""
    # The pooled t-test needs more than one participant in the reference arm (df > 0).
    return _smallest_arm(
        lambda n: t_test_power(
            d, n, ratio * n, alpha=alpha, alternative=alternative, strict=strict
        ),
        power,
        low=1.0 + 1e-9,
    )


def t_test_mde(
    n1: float,
    n2: float | None = None,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
) -> float:
    """Minimum detectable standardized difference (Cohen's d) at the given arm sizes."""
    return _smallest_effect(
        lambda d: t_test_power(d, n1, n2, alpha=alpha, alternative=alternative), power
    )


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p2)), as ``pwr::ES.h``."""
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def proportions_power(
    h: float,
    n1: float,
    n2: float | None = None,
    *,
    alpha: float = 0.05,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
) -> float:
    """Power of the arcsine test of two proportions (``pwr::pwr.2p.test`` / ``pwr.2p2n.test``)."""
    n_other = n1 if n2 is None else n2
    shift = abs(h) * math.sqrt(n1 * n_other / (n1 + n_other))
    if alternative == "one-sided":
        return float(sps.norm.sf(sps.norm.isf(alpha) - shift))
    critical = float(sps.norm.isf(alpha / 2))
    return float(sps.norm.sf(critical - shift) + sps.norm.cdf(-critical - shift))


def proportions_sample_size(
    h: float,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    ratio: float = 1.0,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
) -> float:
    """Participants in the reference arm for the given power (other arm ``ratio`` times)."""
    return _smallest_arm(
        lambda n: proportions_power(h, n, ratio * n, alpha=alpha, alternative=alternative),
        power,
        low=1e-9,
    )


def proportions_mde(
    n1: float,
    n2: float | None = None,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
) -> float:
    """Minimum detectable Cohen's h at the given arm sizes."""
    return _smallest_effect(
        lambda h: proportions_power(h, n1, n2, alpha=alpha, alternative=alternative), power
    )


def proportion_detectable_above(baseline: float, h: float) -> float:
    """The proportion that differs from ``baseline`` by Cohen's h (upwards)."""
    angle = math.asin(math.sqrt(baseline)) + h / 2
    if angle >= math.pi / 2:
        return 1.0
    return math.sin(angle) ** 2
