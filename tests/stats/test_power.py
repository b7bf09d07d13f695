from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import power_proportions_2indep

from experiments.domain import MetricKind
from experiments.stats.power import (
    Baseline,
    MinimumDetectableEffect,
    days_needed,
    minimum_detectable_effect,
    power,
    sample_size,
    units_needed_for_mde,
)
from experiments.stats.sequential import boundary_z
from experiments.stats.summaries import Moments

MEAN_CASES = [
    (0.2, 1.0, 0.05, 0.8),
    (0.05, 1.0, 0.05, 0.9),
    (0.1, 3.0, 0.01, 0.8),
    (0.3, 0.25, 0.1, 0.7),
]
MEAN_IDS = ["d=0.2", "d=0.05-power-0.9", "d=0.1-ratio-3-alpha-0.01", "d=0.3-ratio-0.25"]


@pytest.mark.parametrize(("d", "ratio", "alpha", "target"), MEAN_CASES, ids=MEAN_IDS)
def test_mean_sample_size_matches_statsmodels(
    d: float, ratio: float, alpha: float, target: float
) -> None:
    sd = 4.0
    baseline = Baseline(MetricKind.MEAN, 20.0, sd**2)
    ours = sample_size(
        baseline, mde=d * sd, relative=False, alpha=alpha, power=target, weights=[1.0, ratio]
    )
    nobs1 = NormalIndPower().solve_power(d, nobs1=None, alpha=alpha, power=target, ratio=ratio)
    reference = nobs1 * (1 + ratio)
    assert ours - 1 < reference <= ours + 1e-6


@pytest.mark.parametrize(("d", "ratio", "alpha", "target"), MEAN_CASES, ids=MEAN_IDS)
def test_mean_power_matches_statsmodels(
    d: float, ratio: float, alpha: float, target: float
) -> None:
    del target
    baseline = Baseline(MetricKind.MEAN, 20.0, 4.0)
    ours = power(
        baseline, effect=-d * 2.0, relative=False, total_units=5000, alpha=alpha, weights=[1, ratio]
    )
    reference = NormalIndPower().power(d, nobs1=5000 / (1 + ratio), alpha=alpha, ratio=ratio)
    assert ours == pytest.approx(reference, rel=1e-10)


@pytest.mark.parametrize(
    ("rate", "diff", "w_t", "n"),
    [(0.1, 0.01, 0.5, 20_000), (0.02, 0.004, 0.3, 50_000), (0.5, -0.03, 0.5, 3000)],
    ids=["10pct", "2pct-unequal", "half-decrease"],
)
def test_conversion_power_matches_statsmodels_pooled_null(
    rate: float, diff: float, w_t: float, n: int
) -> None:
    ours = power(
        Baseline.conversion(rate),
        effect=diff,
        relative=False,
        total_units=n,
        weights=[1 - w_t, w_t],
    )
    reference = power_proportions_2indep(
        diff, rate, nobs1=n * w_t, ratio=(1 - w_t) / w_t, return_results=False
    )
    assert ours == pytest.approx(reference, rel=1e-10)


@pytest.mark.parametrize(
    "baseline",
    [
        Baseline.conversion(0.05),
        Baseline(MetricKind.MEAN, 30.0, 900.0),
        Baseline(MetricKind.COUNT, 2.0, 3.0),
        Baseline.ratio(num_mean=2.0, den_mean=10.0, num_var=3.0, den_var=20.0, cov=5.0),
    ],
    ids=["conversion", "mean", "count", "ratio"],
)
@pytest.mark.parametrize("sequential", [False, True], ids=["fixed", "sequential"])
def test_sample_size_is_the_smallest_with_enough_power(
    baseline: Baseline, sequential: bool
) -> None:
    n = sample_size(baseline, mde=0.05, power=0.8, weights=[0.6, 0.4], sequential=sequential)

    def achieved(total: int) -> float:
        return power(
            baseline,
            effect=0.05,
            total_units=total,
            weights=[0.6, 0.4],
            sequential=sequential,
            planned_n=n,
        )

    assert achieved(n) >= 0.8
    assert achieved(n - 1) < 0.8


def test_sequential_plan_uses_the_constant_boundary() -> None:
    baseline = Baseline(MetricKind.MEAN, 10.0, 25.0)
    fixed = sample_size(baseline, mde=0.02)
    sequential = sample_size(baseline, mde=0.02, sequential=True)
    c = boundary_z(1, 1, 0.05)
    z_alpha, z_beta = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    # Ignoring the far tail, N = 4 (z + z_beta)^2 sigma^2 / delta^2 for a 50/50 split.
    assert fixed == pytest.approx(4 * (z_alpha + z_beta) ** 2 * 25 / 0.2**2, rel=1e-3)
    assert sequential == math.ceil(4 * (c + z_beta) ** 2 * 25 / 0.2**2)
    assert 1.8 < sequential / fixed < 2.1


@pytest.mark.parametrize(
    "baseline",
    [Baseline.conversion(0.1), Baseline(MetricKind.MEAN, 5.0, 4.0)],
    ids=["conversion", "mean"],
)
@pytest.mark.parametrize("sequential", [False, True], ids=["fixed", "sequential"])
def test_mde_inverts_power(baseline: Baseline, sequential: bool) -> None:
    mde = minimum_detectable_effect(
        baseline, total_units=40_000, power=0.85, weights=[0.5, 0.25, 0.25], sequential=sequential
    )
    assert mde.relative == pytest.approx(mde.absolute / baseline.mean)
    achieved = power(
        baseline,
        effect=mde.absolute,
        relative=False,
        total_units=40_000,
        weights=[0.5, 0.25, 0.25],
        sequential=sequential,
    )
    assert achieved == pytest.approx(0.85, abs=1e-9)
    needed = sample_size(
        baseline,
        mde=mde.absolute,
        relative=False,
        power=0.85,
        weights=[0.5, 0.25, 0.25],
        sequential=sequential,
    )
    assert needed == pytest.approx(40_000, abs=1)


def test_several_treatments_bind_on_the_smallest_weight() -> None:
    baseline = Baseline.conversion(0.2)
    three = power(baseline, effect=0.05, total_units=30_000, weights=[0.5, 0.3, 0.2])
    # Control 0.5 N and treatment 0.2 N: the same as a two-variant test on 0.7 N units.
    two = power(baseline, effect=0.05, total_units=21_000, weights=[0.5, 0.2])
    assert three == pytest.approx(two, rel=1e-12)


def test_bonferroni_divides_alpha_by_the_number_of_treatments() -> None:
    baseline = Baseline(MetricKind.MEAN, 1.0, 1.0)
    corrected = sample_size(baseline, mde=0.1, weights=[1, 1, 1, 1], bonferroni=True)
    manual = sample_size(baseline, mde=0.1, weights=[1, 1, 1, 1], alpha=0.05 / 3)
    assert corrected == manual
    assert corrected > sample_size(baseline, mde=0.1, weights=[1, 1, 1, 1])


def test_weights_are_normalised() -> None:
    baseline = Baseline(MetricKind.MEAN, 1.0, 1.0)
    assert sample_size(baseline, mde=0.1, weights=[2, 2]) == sample_size(
        baseline, mde=0.1, weights=[0.5, 0.5]
    )


def test_ratio_baseline_is_the_delta_method_variance() -> None:
    rng = np.random.default_rng(2)
    den = rng.poisson(6, 5000) + 1.0
    num = rng.binomial(den.astype(int), 0.3).astype(float)
    baseline = Baseline.from_moments(
        Moments.from_values(np.column_stack([num, den])), MetricKind.RATIO
    )
    r = num.sum() / den.sum()
    assert baseline.mean == pytest.approx(r)
    assert baseline.var == pytest.approx(((num - r * den) / den.mean()).var(ddof=1), rel=1e-9)


def test_ratio_delta_variance_matches_the_spread_of_simulated_ratios() -> None:
    rng = np.random.default_rng(4)
    sims, n = 4000, 400
    den = rng.poisson(6, (sims, n)) + 1
    num = rng.binomial(den, 0.3)
    ratios = num.sum(axis=1) / den.sum(axis=1)
    big_den = rng.poisson(6, 200_000) + 1.0
    big = Baseline.from_moments(
        Moments.from_values(np.column_stack([rng.binomial(big_den.astype(int), 0.3), big_den])),
        MetricKind.RATIO,
    )
    # The variance of a sample variance: var(s^2) ~ 2 s^4 / (sims - 1).
    tolerance = 4 * math.sqrt(2 / (sims - 1))
    assert ratios.var(ddof=1) == pytest.approx(big.var / n, rel=tolerance)


def test_baseline_from_moments_for_each_kind() -> None:
    values = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    conversion = Baseline.from_moments(Moments.from_values(values), MetricKind.CONVERSION)
    assert (conversion.mean, conversion.var) == pytest.approx((0.6, 0.24))
    mean = Baseline.from_moments(Moments.from_values(values * 3), MetricKind.MEAN)
    assert (mean.mean, mean.var) == pytest.approx((1.8, (values * 3).var(ddof=1)))


def test_units_needed_for_mde_is_sample_size_without_correction() -> None:
    kwargs = {"mde": 0.03, "alpha": 0.05, "power": 0.8, "weights": [0.4, 0.3, 0.3]}
    assert units_needed_for_mde(baseline_mean=50.0, baseline_var=400.0, **kwargs) == sample_size(  # type: ignore[arg-type]
        Baseline(MetricKind.MEAN, 50.0, 400.0),
        **kwargs,  # type: ignore[arg-type]
    )
    assert units_needed_for_mde(
        baseline_mean=0.1,
        baseline_var=0.0,
        kind=MetricKind.CONVERSION,
        sequential=True,
        **kwargs,  # type: ignore[arg-type]
    ) == sample_size(Baseline.conversion(0.1), sequential=True, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("total", "daily", "days"),
    [(0, 10, 0), (100, 10, 10), (101, 10, 11), (1, 1000, 1), (1000, 333.4, 3)],
    ids=["none", "exact", "round-up", "one-day", "fractional-daily"],
)
def test_days_needed(total: int, daily: float, days: int) -> None:
    assert days_needed(total, daily) == days


def test_huge_effect_needs_only_two_units_per_variant() -> None:
    n = sample_size(Baseline(MetricKind.MEAN, 1.0, 1e-6), mde=1.0)
    assert n == 4


def test_mde_has_no_relative_value_for_a_zero_baseline() -> None:
    mde = minimum_detectable_effect(Baseline(MetricKind.MEAN, 0.0, 1.0), total_units=1000)
    assert isinstance(mde, MinimumDetectableEffect)
    assert mde.relative is None
    assert mde.absolute == pytest.approx(
        (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * math.sqrt(4 / 1000), rel=1e-3
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Baseline.conversion(1.0), "conversion rate must be in"),
        (lambda: Baseline(MetricKind.MEAN, 1.0, 0.0), "variance must be > 0"),
        (lambda: Baseline(MetricKind.AUC, 1.0, 1.0), "business metric"),
        (lambda: Baseline.ratio(num_mean=1, den_mean=0, num_var=1, den_var=1, cov=0), "denom"),
        (
            lambda: Baseline.from_moments(Moments.from_values([1.0]), MetricKind.MEAN),
            "at least 2 units",
        ),
        (lambda: sample_size(Baseline.conversion(0.5), mde=0.0), "non-zero"),
        (lambda: sample_size(Baseline.conversion(0.5), mde=1.5), "outside"),
        (lambda: sample_size(Baseline.conversion(0.5), mde=0.1, power=1.0), "power must be"),
        (lambda: sample_size(Baseline.conversion(0.5), mde=0.1, alpha=0), "alpha must be"),
        (lambda: sample_size(Baseline.conversion(0.5), mde=0.1, weights=[1]), "weights need"),
        (lambda: sample_size(Baseline.conversion(0.5), mde=0.1, weights=[1, 0]), "weights must"),
        (lambda: sample_size(Baseline(MetricKind.MEAN, 0, 1), mde=0.1), "non-zero baseline"),
        (lambda: power(Baseline.conversion(0.5), effect=0.1, total_units=0), "total_units"),
        (
            lambda: power(Baseline.conversion(0.5), effect=0.1, total_units=9, planned_n=0),
            "planned_n",
        ),
        (
            lambda: minimum_detectable_effect(Baseline.conversion(0.9), total_units=10),
            "cannot detect",
        ),
        (lambda: days_needed(10, 0), "daily_units"),
        (lambda: days_needed(-1, 5), "total_units"),
    ],
    ids=[
        "rate",
        "variance",
        "ml-kind",
        "ratio-den",
        "one-unit",
        "zero-mde",
        "rate-above-one",
        "power",
        "alpha",
        "one-weight",
        "zero-weight",
        "relative-zero-mean",
        "no-units",
        "planned-n",
        "undetectable",
        "daily",
        "negative-total",
    ],
)
def test_bad_input_is_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("kind", ["conversion", "mean"], ids=["conversion", "mean"])
def test_simulated_power_matches_the_planned_power(kind: str) -> None:
    rng = np.random.default_rng(99)
    sims = 100_000
    if kind == "conversion":
        baseline = Baseline.conversion(0.08)
        n = sample_size(baseline, mde=0.1, weights=[0.6, 0.4])
        n_c, n_t = round(0.6 * n), round(0.4 * n)
        s_c = rng.binomial(n_c, 0.08, sims)
        s_t = rng.binomial(n_t, 0.088, sims)
        pooled = (s_c + s_t) / (n_c + n_t)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
        z = (s_t / n_t - s_c / n_c) / se
        rejected = np.abs(z) >= stats.norm.ppf(0.975)
    else:
        baseline = Baseline(MetricKind.MEAN, 10.0, 36.0)
        n = sample_size(baseline, mde=0.05, weights=[0.6, 0.4])
        n_c, n_t = round(0.6 * n), round(0.4 * n)
        # Exact sufficient statistics of normal samples: mean ~ N, (n - 1)s^2 ~ chi2.
        m_c = rng.normal(10.0, 6 / math.sqrt(n_c), sims)
        m_t = rng.normal(10.5, 6 / math.sqrt(n_t), sims)
        v_c = 36 * rng.chisquare(n_c - 1, sims) / (n_c - 1)
        v_t = 36 * rng.chisquare(n_t - 1, sims) / (n_t - 1)
        _, p = stats.ttest_ind_from_stats(
            m_t, np.sqrt(v_t), n_t, m_c, np.sqrt(v_c), n_c, equal_var=False
        )
        rejected = p <= 0.05
    expected = power(
        baseline, effect=0.1 if kind == "conversion" else 0.05, total_units=n, weights=[0.6, 0.4]
    )
    tolerance = 4 * math.sqrt(expected * (1 - expected) / sims)
    assert float(rejected.mean()) == pytest.approx(expected, abs=tolerance)
    assert expected == pytest.approx(0.8, abs=0.002)
