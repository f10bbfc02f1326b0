"""Properties of the power, sample-size and minimum-detectable-effect calculations."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from statsmodels.stats.power import NormalIndPower, TTestIndPower

from analysis import stats


@settings(max_examples=25, deadline=None)
@given(
    d=st.floats(min_value=0.1, max_value=2.0),
    n1=st.integers(min_value=3, max_value=400),
    n2=st.integers(min_value=3, max_value=400),
)
def test_t_test_power_agrees_with_statsmodels(d: float, n1: int, n2: int) -> None:
    expected = TTestIndPower().power(effect_size=d, nobs1=n1, ratio=n2 / n1, alpha=0.05)
    assume(math.isfinite(expected))  # statsmodels' far noncentral-t tail can be NaN
    assert stats.t_test_power(d, n1, n2) == pytest.approx(expected, abs=1e-9)


def test_t_test_power_stays_defined_where_the_noncentral_t_tail_underflows() -> None:
    # d = 1 with 120 and 162 per arm: statsmodels returns NaN (scipy's nct.cdf far in the
    # opposite tail); that tail is zero to double precision.
    power = stats.t_test_power(1.0, 120, 162)
    assert 0.999999 < power <= 1.0


def test_sample_size_reaches_exactly_the_requested_power() -> None:
    n = stats.t_test_sample_size(0.4, power=0.85, ratio=2.0)
    assert stats.t_test_power(0.4, n, 2 * n) == pytest.approx(0.85, abs=1e-10)
    assert stats.t_test_power(0.4, math.ceil(n), 2 * math.ceil(n)) > 0.85


def test_minimum_detectable_effect_is_the_inverse_of_sample_size() -> None:
    # The published-size trial, 26 per arm: the d it can detect with 80% power...
    d = stats.t_test_mde(26, 26)
    assert stats.t_test_power(d, 26, 26) == pytest.approx(0.8, abs=1e-10)
    # ... needs 26 per arm.
    assert stats.t_test_sample_size(d, power=0.8) == pytest.approx(26, abs=1e-6)


def test_minimum_detectable_effect_shrinks_as_the_trial_grows() -> None:
    assert stats.t_test_mde(200) < stats.t_test_mde(50) < stats.t_test_mde(20)


def test_one_sided_power_is_higher_than_two_sided() -> None:
    assert stats.t_test_power(0.5, 30, alternative="one-sided") > stats.t_test_power(0.5, 30)


def test_cohens_h_is_the_difference_of_arcsine_transforms() -> None:
    assert stats.cohens_h(0.5, 0.5) == 0
    assert stats.cohens_h(1.0, 0.0) == pytest.approx(math.pi)
    assert stats.cohens_h(0.55, 0.70) == pytest.approx(-stats.cohens_h(0.70, 0.55))


@settings(max_examples=25, deadline=None)
@given(
    h=st.floats(min_value=0.05, max_value=1.5),
    n1=st.integers(min_value=5, max_value=1000),
    n2=st.integers(min_value=5, max_value=1000),
)
def test_proportions_power_agrees_with_statsmodels(h: float, n1: int, n2: int) -> None:
    expected = NormalIndPower().power(effect_size=h, nobs1=n1, ratio=n2 / n1, alpha=0.05)
    assert stats.proportions_power(h, n1, n2) == pytest.approx(expected, abs=1e-9)


def test_proportions_mde_and_detectable_proportion_round_trip() -> None:
    h = stats.proportions_mde(26, 26)
    assert stats.proportions_power(h, 26, 26) == pytest.approx(0.8, abs=1e-10)
    detectable = stats.proportion_detectable_above(0.5, h)
    assert stats.cohens_h(detectable, 0.5) == pytest.approx(h)
    assert stats.proportion_detectable_above(0.99, 3.0) == 1.0
