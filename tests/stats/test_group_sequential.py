from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import optimize, stats

from experiments.stats import group_sequential as gs

TEN = tuple((j + 1) / 10 for j in range(10))


def test_spending_is_obrien_fleming_type() -> None:
    assert gs.spent_alpha(1.0, 0.05) == pytest.approx(0.05)
    assert gs.spent_alpha(0.25, 0.05) == pytest.approx(2 - 2 * stats.norm.cdf(1.959964 / 0.5))
    assert gs.spent_alpha(0.01, 0.05) < 1e-20


def test_first_look_boundary_is_the_spending_quantile() -> None:
    (c,) = gs.design_boundaries((0.3,), 0.05)
    assert c == pytest.approx(stats.norm.ppf(1 - 0.025) / math.sqrt(0.3), rel=1e-9)


def test_three_looks_match_the_multivariate_normal() -> None:
    info = (0.3, 0.7, 1.0)
    bounds = np.array(gs.design_boundaries(info, 0.05))
    cov = np.array([[math.sqrt(min(a, b) / max(a, b)) for b in info] for a in info])
    for k in (2, 3):
        mvn = stats.multivariate_normal(np.zeros(k), cov[:k, :k])
        crossed = 1 - mvn.cdf(bounds[:k], lower_limit=-bounds[:k])
        spent = gs.spent_alpha(info[k - 1], 0.05)
        # Within the integration error, on the conservative side (and mvn's own 1e-5).
        assert spent - 1e-4 < crossed < spent + 2e-5


def test_continuous_boundary_is_the_reflection_series() -> None:
    c = gs.continuous_boundary(0.05)
    assert c == pytest.approx(2.2414, abs=1e-4)
    # For large c the crossing probability is about 4(1 - Phi(c)).
    assert gs.continuous_crossing(4.0) == pytest.approx(4 * stats.norm.sf(4.0), rel=1e-3)
    # The two series agree where they meet.
    assert gs.continuous_crossing(1.0 - 1e-12) == pytest.approx(gs.continuous_crossing(1.0))
    assert gs.continuous_boundary(0.05, sides=1) == pytest.approx(stats.norm.ppf(0.975))


def test_continuous_boundary_holds_under_dense_looks() -> None:
    info = tuple((j + 1) / 200 for j in range(200))
    c = gs.continuous_boundary(0.05)
    crossed = gs.design_power(info, [c / math.sqrt(t) for t in info], 0.0)
    assert 0.045 < crossed <= 0.05


def test_exact_design_spends_all_alpha_and_reuses_given_boundaries() -> None:
    bounds = gs.design_boundaries(TEN, 0.05)
    assert gs.design_power(TEN, bounds, 0.0) == pytest.approx(0.05, abs=1e-6)
    assert all(a > b for a, b in itertools.pairwise(bounds))
    again = gs.design_boundaries(TEN, 0.05, given=bounds[:4])
    assert again == pytest.approx(bounds, rel=1e-12)
    # A conservative earlier look (a higher boundary) leaves more to spend later.
    looser = gs.design_boundaries(TEN[:5], 0.05, given=[9.0] * 4)
    assert looser[-1] < bounds[4]


@pytest.mark.parametrize("z", [1.5, 2.3, 4.0], ids=str)
def test_repeated_p_value_inverts_the_boundary(z: float) -> None:
    p = gs.design_p_value(z, TEN, knots=[0.05])
    exact = optimize.brentq(lambda a: gs.design_boundaries(TEN, a)[-1] - z, 1e-9, 0.9)
    assert p == pytest.approx(exact, rel=0.01)


def test_repeated_p_value_is_exact_at_the_knots() -> None:
    c = gs.design_boundaries(TEN, 0.05)[-1]
    assert gs.design_p_value(c, TEN, knots=[0.05]) == pytest.approx(0.05, rel=1e-12)
    assert gs.design_p_value(c * (1 + 1e-9), TEN, knots=[0.05]) < 0.05
    assert gs.design_p_value(c * (1 - 1e-9), TEN, knots=[0.05]) > 0.05
    assert gs.design_p_value(0.0, TEN) == 1.0
    assert gs.continuous_p_value(gs.continuous_boundary(0.05), 1.0) == pytest.approx(0.05)


def test_one_sided_design() -> None:
    bounds = gs.design_boundaries(TEN, 0.01, sides=1)
    assert gs.design_power(TEN, bounds, 0.0, sides=1) == pytest.approx(0.01, abs=1e-6)
    assert bounds[-1] < gs.design_boundaries(TEN, 0.01)[-1]


def test_power_of_the_ten_look_design_is_near_fixed() -> None:
    drift = 0.02 / math.sqrt((0.1 * 0.9 + 0.12 * 0.88) / 2000)
    fixed = stats.norm.cdf(drift - 1.959964)
    known = gs.design_power(TEN, gs.design_boundaries(TEN, 0.05), drift)
    c = gs.continuous_boundary(0.05)
    unknown = gs.design_power(TEN, [c / math.sqrt(t) for t in TEN], drift)
    assert fixed - 0.03 < known < fixed
    assert 0.40 < unknown < known


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gs.design_boundaries((), 0.05), "at least one look"),
        (lambda: gs.design_boundaries((0.5, 0.4), 0.05), "increase"),
        (lambda: gs.design_boundaries((0.5, 1.2), 0.05), r"\(0, 1\]"),
        (lambda: gs.design_boundaries((0.5,), 1.5), "level"),
        (lambda: gs.design_boundaries((0.5,), 0.05, sides=3), "sides"),
    ],
    ids=["empty", "decreasing", "beyond-one", "level", "sides"],
)
def test_bad_designs_are_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
