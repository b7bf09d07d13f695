from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import optimize, stats

from experiments.stats.sequential import (
    SequentialInterval,
    boundary_z,
    mixing_units,
    optimal_mixing_ratio,
    sequential_interval,
)

ALPHAS = [0.01, 0.05, 0.1, 0.2]


def _half_width_z(n: float, r: float, alpha: float) -> float:
    """Howard et al. (2021) eq. (14) in z units, written from the mixture martingale."""
    return math.sqrt((n + r) / n * math.log((n + r) / (r * alpha**2)))


@pytest.mark.parametrize("alpha", ALPHAS, ids=[f"alpha={a}" for a in ALPHAS])
def test_optimal_ratio_solves_its_equation(alpha: float) -> None:
    x = optimal_mixing_ratio(alpha)
    assert x > 1.0
    assert x - 1.0 - math.log(x) == pytest.approx(2.0 * math.log(1.0 / alpha), rel=1e-12)


@pytest.mark.parametrize("alpha", ALPHAS, ids=[f"alpha={a}" for a in ALPHAS])
def test_mixing_scale_minimises_the_boundary_at_the_planned_n(alpha: float) -> None:
    planned = 20_000
    best = optimize.minimize_scalar(
        lambda log_r: _half_width_z(planned, math.exp(log_r), alpha),
        bounds=(0.0, 20.0),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert mixing_units(planned, alpha) == pytest.approx(math.exp(best.x), rel=1e-4)
    assert boundary_z(planned, planned, alpha) == pytest.approx(best.fun, rel=1e-9)


def test_boundary_at_planned_n_is_the_known_constant() -> None:
    # c = sqrt(x/(x-1) log(x/alpha^2)) with x = -W_{-1}(-alpha^2/e) ~ 9.21197 at alpha = 0.05
    assert optimal_mixing_ratio(0.05) == pytest.approx(9.211968, abs=1e-6)
    assert boundary_z(1000, 1000, 0.05) == pytest.approx(3.035122, abs=1e-6)
    assert boundary_z(7, 7, 0.05) == pytest.approx(boundary_z(10**7, 10**7, 0.05), rel=1e-12)


@pytest.mark.parametrize(
    ("estimate", "std_err", "n", "planned_n", "alpha"),
    [
        (0.1, 0.03, 1000, 1000, 0.05),
        (-0.02, 0.01, 500, 4000, 0.05),
        (0.5, 0.2, 90_000, 10_000, 0.1),
        (0.0, 1.0, 10, 10, 0.01),
    ],
    ids=["at-plan", "early", "late", "null-estimate"],
)
def test_interval_and_p_value_match_the_closed_form(
    estimate: float, std_err: float, n: int, planned_n: int, alpha: float
) -> None:
    x = optimal_mixing_ratio(alpha)
    r = planned_n / (x - 1.0)
    result = sequential_interval(estimate, std_err, n, planned_n, alpha)
    half = std_err * _half_width_z(n, r, alpha)
    assert result.ci_low == pytest.approx(estimate - half, rel=1e-12, abs=1e-15)
    assert result.ci_high == pytest.approx(estimate + half, rel=1e-12, abs=1e-15)
    # mSPRT: Lambda = sqrt(rho/(V + rho)) exp(S^2 / (2(V + rho))) with V = n^2 s^2, rho = r n s^2
    sigma2 = n * std_err**2
    big_s, big_v, rho = n * estimate, n * sigma2, r * sigma2
    lam = math.sqrt(rho / (big_v + rho)) * math.exp(big_s**2 / (2 * (big_v + rho)))
    assert result.p_value == pytest.approx(min(1.0, 1.0 / lam), rel=1e-10)


@given(
    z=st.floats(-8.0, 8.0),
    n=st.integers(1, 10**7),
    planned_n=st.integers(1, 10**7),
    alpha=st.floats(0.001, 0.3),
)
def test_p_value_below_alpha_exactly_when_zero_is_outside_the_interval(
    z: float, n: int, planned_n: int, alpha: float
) -> None:
    result = sequential_interval(z * 0.5, 0.5, n, planned_n, alpha)
    assert result.p_value is not None
    assert result.ci_low is not None
    assert result.ci_high is not None
    assert 0.0 < result.p_value <= 1.0
    excluded = result.ci_low > 0.0 or result.ci_high < 0.0
    margin = abs(abs(z) - boundary_z(n, planned_n, alpha))
    if margin > 1e-9:  # away from the boundary itself, where rounding decides
        assert excluded == (result.p_value <= alpha)


@pytest.mark.parametrize("alpha", ALPHAS, ids=[f"alpha={a}" for a in ALPHAS])
@pytest.mark.parametrize("n", [10, 1000, 10_000, 100_000, 10**6], ids=lambda n: f"n={n}")
def test_always_valid_interval_contains_the_fixed_horizon_one(alpha: float, n: int) -> None:
    result = sequential_interval(0.3, 0.1, n, 10_000, alpha)
    z = stats.norm.ppf(1 - alpha / 2)
    assert result.ci_low is not None
    assert result.ci_high is not None
    assert result.ci_low < 0.3 - z * 0.1
    assert result.ci_high > 0.3 + z * 0.1
    fixed_p = 2 * stats.norm.sf(3.0)
    assert result.p_value is not None
    assert result.p_value > fixed_p


def test_p_value_is_one_at_no_difference_and_shrinks_with_evidence() -> None:
    assert sequential_interval(0.0, 0.1, 1000, 1000, 0.05).p_value == 1.0
    ps = [sequential_interval(d, 0.1, 1000, 1000, 0.05).p_value for d in (0.1, 0.2, 0.4, 0.8)]
    assert all(p is not None for p in ps)
    assert ps == sorted(ps, reverse=True)  # type: ignore[type-var]


def test_swapping_the_variants_mirrors_the_interval() -> None:
    a = sequential_interval(0.2, 0.1, 5000, 8000, 0.05)
    b = sequential_interval(-0.2, 0.1, 5000, 8000, 0.05)
    assert a.ci_low == pytest.approx(-(b.ci_high or 0.0))
    assert a.ci_high == pytest.approx(-(b.ci_low or 0.0))
    assert a.p_value == pytest.approx(b.p_value)


def test_previous_p_value_makes_the_running_minimum() -> None:
    now = sequential_interval(0.05, 0.1, 1000, 1000, 0.05)
    assert now.p_value is not None
    assert now.p_value > 0.2
    assert sequential_interval(0.05, 0.1, 1000, 1000, 0.05, previous_p_value=0.2).p_value == 0.2
    assert (
        sequential_interval(0.05, 0.1, 1000, 1000, 0.05, previous_p_value=1.0).p_value
        == now.p_value
    )


@pytest.mark.parametrize(
    ("estimate", "std_err"),
    [(0.1, 0.0), (0.1, math.nan), (math.nan, 0.1), (math.inf, 0.1), (0.1, math.inf)],
    ids=["zero-se", "nan-se", "nan-estimate", "inf-estimate", "inf-se"],
)
def test_undefined_standard_error_gives_nulls(estimate: float, std_err: float) -> None:
    assert sequential_interval(estimate, std_err, 100, 100, 0.05) == SequentialInterval(
        None, None, None
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be > 0"),
        ({"planned_n": 0}, "planned_n must be > 0"),
        ({"alpha": 0.0}, "alpha must be in"),
        ({"alpha": 1.0}, "alpha must be in"),
        ({"alpha": math.nan}, "alpha must be in"),
        ({"previous_p_value": 1.5}, "previous_p_value must be in"),
    ],
    ids=["n", "planned_n", "alpha-0", "alpha-1", "alpha-nan", "previous-p"],
)
def test_bad_input_is_named(kwargs: dict[str, float], message: str) -> None:
    args: dict[str, float] = {
        "estimate": 0.1,
        "std_err": 0.1,
        "n": 100,
        "planned_n": 100,
        "alpha": 0.05,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sequential_interval(**args)  # type: ignore[arg-type]


def test_boundary_is_finite_and_decreasing_towards_large_n() -> None:
    values = np.array([boundary_z(n, 1000, 0.05) for n in (1, 10, 100, 1000)])
    assert np.isfinite(values).all()
    assert (np.diff(values) < 0).all()
