from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from experiments.stats import frequentist as fq
from experiments.stats.relative import (
    NOT_DISTINGUISHABLE,
    ZERO_CONTROL,
    fieller_interval,
    relative_lift,
)


def test_sign_safe_lift_with_a_negative_control() -> None:
    # Profit: control -10, treatment -8 is an improvement of +20%, whatever the sign.
    lift = relative_lift(-10.0, 0.01, -8.0, 0.01, 1.96, scale=1.0)
    assert lift.rel_lift == pytest.approx(0.2)
    assert lift.rel_ci is not None
    assert 0.0 < lift.rel_ci[0] < 0.2 < lift.rel_ci[1]


def test_fieller_ends_solve_the_quadratic() -> None:
    m_c, v_c, m_t, v_t, c = 4.0, 0.3, 5.0, 0.5, 2.1
    low, high = fieller_interval(m_c, v_c, m_t, v_t, c)  # type: ignore[misc]
    for lift in (low, high):
        rho = 1 + lift
        assert (m_t - rho * m_c) ** 2 == pytest.approx(c * c * (v_t + rho * rho * v_c))
    # The interval is not symmetric around the estimate (skewed like the ratio).
    assert high - 0.25 > 0.25 - low


def test_negative_control_maps_rho_to_the_sign_safe_lift() -> None:
    low, high = fieller_interval(-4.0, 0.3, -5.0, 0.5, 2.1)  # type: ignore[misc]
    ref_low, ref_high = fieller_interval(4.0, 0.3, 5.0, 0.5, 2.1)  # type: ignore[misc]
    assert (low, high) == pytest.approx((-ref_high, -ref_low))


def test_control_not_distinguishable_from_zero_is_unbounded() -> None:
    lift = relative_lift(0.01, 0.05**2, 0.6, 0.05**2, 1.96, scale=1.0)
    assert lift.rel_lift == pytest.approx(59.0)
    assert lift.rel_ci is None
    assert lift.reason == NOT_DISTINGUISHABLE


@pytest.mark.parametrize("residue", [1.4e-17, -3e-15, 0.0], ids=["positive", "negative", "zero"])
def test_control_zero_within_rounding_gives_no_lift(residue: float) -> None:
    lift = relative_lift(residue, 0.01, 0.3, 0.01, 1.96, scale=10.0)
    assert lift.rel_lift is None
    assert lift.rel_ci is None
    assert lift.reason == ZERO_CONTROL


def test_a_tiny_but_real_control_mean_keeps_its_lift() -> None:
    # Every value is ~1e-17: the scale is tiny too, so the mean is not rounding residue.
    lift = relative_lift(1e-17, 1e-38, 2e-17, 1e-38, 1.96, scale=2e-17)
    assert lift.rel_lift == pytest.approx(1.0)


means = st.floats(-1e3, 1e3, allow_nan=False).filter(lambda v: abs(v) > 1e-6)
variances = st.floats(1e-8, 1e2, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(m_c=means, v_c=variances, m_t=means, v_t=variances, crit=st.floats(0.5, 5.0))
def test_relative_interval_excludes_zero_exactly_when_the_difference_does(
    m_c: float, v_c: float, m_t: float, v_t: float, crit: float
) -> None:
    d = fq.normal_test(m_c, v_c, m_t, v_t, n=100, alpha=fq.two_sided_p(crit))
    assume(d.abs_ci is not None and d.rel_ci is not None)
    abs_low, abs_high = d.abs_ci  # type: ignore[misc]
    rel_low, rel_high = d.rel_ci  # type: ignore[misc]
    assert (abs_low > 0 or abs_high < 0) == (rel_low > 0 or rel_high < 0)
    assert (abs_low > 0) == (rel_low > 0)
    assert rel_low <= d.rel_lift <= rel_high  # type: ignore[operator]
    assert math.isfinite(rel_low)
    assert math.isfinite(rel_high)


@settings(max_examples=200, deadline=None)
@given(m_c=means, v_c=variances, m_t=means, v_t=variances)
def test_fixed_intervals_agree_at_every_level(
    m_c: float, v_c: float, m_t: float, v_t: float
) -> None:
    d = fq.normal_test(m_c, v_c, m_t, v_t, n=100, alpha=0.05)
    if d.abs_ci is None or d.rel_ci is None:
        return
    assert (d.abs_ci[0] > 0) == (d.rel_ci[0] > 0)
    assert (d.abs_ci[1] < 0) == (d.rel_ci[1] < 0)
