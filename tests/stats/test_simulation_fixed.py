"""Seeded simulations: A/A false positive rates and power of the fixed-horizon tests.

Each check counts rejections over SIMS independent experiments; under a correct
test the count is Binomial(SIMS, rate), so the accepted band is the central
99.9% of that distribution (scipy.stats.binom.ppf).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats as sps

from experiments.domain import MetricKind, MetricRole
from experiments.stats import frequentist as fq
from experiments.stats.analysis import AnalysisData, AnalysisSpec, MetricSpec, analyze
from experiments.stats.cuped import compare_adjusted, fit_cuped
from experiments.stats.power import units_needed_for_mde
from experiments.stats.summaries import Moments

SIMS = 2000
ALPHA = 0.05

pytestmark = pytest.mark.slow


def assert_rate(rejections: int, rate: float) -> None:
    low, high = sps.binom.ppf([0.0005, 0.9995], SIMS, rate)
    assert low <= rejections <= high, f"{rejections}/{SIMS} rejections, expected {rate:.3f}"


def binary_moments(successes: int, n: int) -> Moments:
    return Moments(n, (0.0,), (float(successes),), ((float(successes),),))


def normal_moments(mean: float, ss: float, n: int, mu: float) -> Moments:
    """Moments of a normal sample from its mean and Σ(y − ȳ)², shifted by mu."""
    d = mean - mu
    return Moments(n, (mu,), (n * d,), ((ss + n * d * d,),))


def count(p_values: list[float | None]) -> int:
    return sum(p is not None and p < ALPHA for p in p_values)


def test_aa_conversion_z_test() -> None:
    rng = np.random.default_rng(101)
    n_c, n_t = 1500, 1400
    s_c, s_t = rng.binomial(n_c, 0.08, SIMS), rng.binomial(n_t, 0.08, SIMS)
    p = [
        fq.compare_proportions(binary_moments(a, n_c), binary_moments(b, n_t), alpha=ALPHA).p_value
        for a, b in zip(s_c, s_t, strict=True)
    ]
    assert_rate(count(p), ALPHA)


def raw_pairs(
    seed: int, n: int, draw: Callable[[np.random.Generator, tuple[int, int]], np.ndarray]
) -> list[tuple[Moments, Moments]]:
    rng = np.random.default_rng(seed)
    c, t = draw(rng, (SIMS, n)), draw(rng, (SIMS, n + 50))
    return [(Moments.from_values(a), Moments.from_values(b)) for a, b in zip(c, t, strict=True)]


def test_aa_welch_on_skewed_values() -> None:
    pairs = raw_pairs(102, 400, lambda rng, shape: rng.lognormal(1.0, 0.8, shape))
    p = [fq.compare_means(a, b, alpha=ALPHA).p_value for a, b in pairs]
    assert_rate(count(p), ALPHA)


def test_aa_ratio_delta_method() -> None:
    def draw(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        den = rng.poisson(rng.gamma(2.0, 4.0, shape)) + 1
        num = rng.binomial(den, 0.25)
        return np.stack([num, den], axis=-1).astype(float)

    pairs = raw_pairs(103, 400, draw)
    p = [fq.compare_ratios(a, b, alpha=ALPHA).p_value for a, b in pairs]
    assert_rate(count(p), ALPHA)


def test_aa_cuped() -> None:
    def draw(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        x = rng.gamma(2.0, 5.0, shape)
        y = 1.0 + 0.7 * x + rng.normal(0, 3.0, shape)
        return np.stack([y, x], axis=-1)

    p = []
    for a, b in raw_pairs(104, 300, draw):
        fit = fit_cuped([a, b], MetricKind.MEAN)
        p.append(compare_adjusted(a, b, fit, alpha=ALPHA).p_value)
    assert_rate(count(p), ALPHA)


def test_aa_interval_coverage_of_the_relative_lift() -> None:
    rng = np.random.default_rng(105)
    n = 2000
    s_c, s_t = rng.binomial(n, 0.1, SIMS), rng.binomial(n, 0.1, SIMS)
    misses = 0
    for a, b in zip(s_c, s_t, strict=True):
        d = fq.compare_proportions(binary_moments(a, n), binary_moments(b, n), alpha=ALPHA)
        misses += d.rel_ci is None or not d.rel_ci[0] <= 0.0 <= d.rel_ci[1]
    assert_rate(misses, ALPHA)


def test_power_of_conversion_test_at_planned_size() -> None:
    mde, base = 0.1, 0.1
    total = units_needed_for_mde(
        baseline_mean=base, baseline_var=base * (1 - base), mde=mde, alpha=ALPHA, power=0.8,
        weights=[0.5, 0.5], kind=MetricKind.CONVERSION,
    )  # fmt: skip
    n = total // 2
    rng = np.random.default_rng(106)
    s_c, s_t = rng.binomial(n, base, SIMS), rng.binomial(n, base * (1 + mde), SIMS)
    p = [
        fq.compare_proportions(binary_moments(a, n), binary_moments(b, n), alpha=ALPHA).p_value
        for a, b in zip(s_c, s_t, strict=True)
    ]
    assert_rate(count(p), 0.8)


def test_power_of_welch_test_at_planned_size() -> None:
    mu, sd, mde = 20.0, 15.0, 0.05
    total = units_needed_for_mde(
        baseline_mean=mu, baseline_var=sd**2, mde=mde, alpha=ALPHA, power=0.8, weights=[0.5, 0.5]
    )
    n = total // 2
    rng = np.random.default_rng(107)
    # Exact sampling distributions of a normal sample's mean and Σ(y − ȳ)².
    means = rng.normal([[mu], [mu * (1 + mde)]], sd / np.sqrt(n), (2, SIMS))
    ss = sd**2 * rng.chisquare(n - 1, (2, SIMS))
    control = [normal_moments(m, s, n, mu) for m, s in zip(means[0], ss[0], strict=True)]
    treatment = [normal_moments(m, s, n, mu) for m, s in zip(means[1], ss[1], strict=True)]
    p = [
        fq.compare_means(a, b, alpha=ALPHA).p_value for a, b in zip(control, treatment, strict=True)
    ]
    assert_rate(count(p), 0.8)


def test_aa_holm_controls_the_family_wise_error_through_analyze() -> None:
    variants = ("control", "a", "b")
    spec = AnalysisSpec(
        "control", {v: 1 / 3 for v in variants},
        [MetricSpec("conv", MetricKind.CONVERSION, MetricRole.PRIMARY)], planned_n=3000,
    )  # fmt: skip
    rng = np.random.default_rng(108)
    n = 1000
    successes = rng.binomial(n, 0.1, (SIMS, 3))
    any_raw = any_adjusted = 0
    for row in successes:
        moments = {v: binary_moments(int(s), n) for v, s in zip(variants, row, strict=True)}
        data = AnalysisData({v: n for v in variants}, {"conv": moments})
        comparisons = analyze(spec, data).metrics["conv"].comparisons
        any_raw += any(c.p_value is not None and c.p_value < ALPHA for c in comparisons)
        any_adjusted += any(c.significant for c in comparisons)
    high = sps.binom.ppf(0.9995, SIMS, ALPHA)
    assert any_adjusted <= high, f"family-wise error {any_adjusted}/{SIMS}"
    assert any_raw > high  # without the correction two looks exceed alpha
