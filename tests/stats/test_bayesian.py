from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from experiments.domain import MetricKind
from experiments.stats.bayesian import (
    bayesian_compare,
    bayesian_compare_beta,
    bayesian_compare_difference,
    normal_expected_loss,
)
from experiments.stats.relative import fieller_interval
from experiments.stats.summaries import Moments

Z95 = stats.norm.ppf(0.975)


@pytest.mark.parametrize(
    ("mean_c", "var_c", "mean_t", "var_t", "prior_sd"),
    [
        (10.0, 0.04, 10.5, 0.05, 0.3),
        (-10.0, 0.04, -8.0, 0.05, 0.1),
        (2.0, 0.01, 2.6, 0.2, 0.05),
        (100.0, 1e-6, 100.001, 1e-6, 0.3),
    ],
    ids=["precise", "negative-control", "prior-dominates", "tiny-variance"],
)
def test_normal_posterior_is_the_conjugate_update_on_the_difference(
    mean_c: float, var_c: float, mean_t: float, var_t: float, prior_sd: float
) -> None:
    result = bayesian_compare_difference(
        mean_c, var_c, mean_t, var_t, alpha=0.05, prior_sd=prior_sd
    )
    # Prior D ~ N(0, (tau |m_c|)^2), likelihood D_hat ~ N(D, v_c + v_t).
    precision = 1 / (var_c + var_t) + 1 / (prior_sd * mean_c) ** 2
    post_mean = (mean_t - mean_c) / (var_c + var_t) / precision
    post_sd = math.sqrt(1 / precision)
    assert result.abs_diff_mean == pytest.approx(post_mean, rel=1e-12)
    assert result.abs_ci == pytest.approx((post_mean - Z95 * post_sd, post_mean + Z95 * post_sd))
    assert result.chance_to_beat_control == pytest.approx(stats.norm.sf(0, post_mean, post_sd))
    assert result.rel_lift_mean == pytest.approx(post_mean / abs(mean_c))
    # The relative interval is the set of L with (mu - L|m_c|)^2 <= z^2 Var(D - L|m_c|).
    shrink = post_sd**2 / (var_c + var_t)
    low, high = result.rel_ci  # type: ignore[misc]
    for lift in (low, high):
        var = post_sd**2 + lift**2 * var_c + 2 * lift * np.sign(mean_c) * shrink * var_c
        assert (post_mean - lift * abs(mean_c)) ** 2 == pytest.approx(Z95**2 * var, rel=1e-6)
    assert result.expected_loss == pytest.approx(normal_expected_loss(post_mean, post_sd))
    assert result.reason is not None
    assert "prior N(0" in result.reason


def test_negative_control_mean_gives_a_positive_lift_and_a_high_chance() -> None:
    result = bayesian_compare_difference(-10.0, 0.04, -8.0, 0.04, alpha=0.05, prior_sd=0.3)
    assert result.rel_lift_mean is not None
    assert result.rel_lift_mean > 0.19
    assert result.chance_to_beat_control == pytest.approx(1.0)


def test_control_mean_not_distinguishable_from_zero_uses_a_flat_prior() -> None:
    # Net revenue +0.01 -> +0.60 with a control mean well inside its own noise.
    result = bayesian_compare_difference(0.01, 0.05**2, 0.60, 0.05**2, alpha=0.05, prior_sd=0.3)
    se = math.sqrt(2 * 0.05**2)
    assert result.abs_diff_mean == pytest.approx(0.59)
    assert result.chance_to_beat_control == pytest.approx(stats.norm.cdf(0.59 / se))
    assert result.chance_to_beat_control > 0.999
    assert result.rel_ci is None
    assert result.reason is not None
    assert "flat prior" in result.reason
    assert "not distinguishable" in result.reason


def test_control_mean_zero_within_rounding_has_no_relative_lift() -> None:
    result = bayesian_compare_difference(
        1.4e-17, 0.01, 0.3, 0.01, alpha=0.05, prior_sd=0.3, scale=10.0
    )
    assert result.rel_lift_mean is None
    assert result.chance_to_beat_control is not None
    assert result.reason is not None
    assert "within rounding" in result.reason


@pytest.mark.parametrize(
    ("mean", "sd"), [(0.0, 1.0), (0.02, 0.01), (-0.05, 0.02), (3.0, 0.5)], ids=str
)
def test_expected_loss_matches_numerical_integration(mean: float, sd: float) -> None:
    expected, _ = integrate.quad(
        lambda g: -g * stats.norm.pdf(g, mean, sd), mean - 12 * sd, 0.0, epsabs=1e-14
    )
    assert normal_expected_loss(mean, sd) == pytest.approx(max(expected, 0.0), abs=1e-12)


def test_lower_is_better_flips_the_chance_and_moves_the_loss_by_the_mean() -> None:
    args = (10.0, 0.2**2, 10.3, 0.2**2)
    up = bayesian_compare_difference(*args, alpha=0.05, prior_sd=0.3)
    down = bayesian_compare_difference(*args, alpha=0.05, prior_sd=0.3, higher_is_better=False)
    assert down.chance_to_beat_control == pytest.approx(1 - up.chance_to_beat_control)  # type: ignore[operator]
    # E[max(0, D)] - E[max(0, -D)] = E[D], in the metric's units
    assert down.expected_loss - up.expected_loss == pytest.approx(up.abs_diff_mean)  # type: ignore[operator]
    assert down.abs_ci == up.abs_ci


@pytest.mark.parametrize("prior_sd", [None, 0.0], ids=["none", "zero"])
def test_flat_prior_on_conversions_equals_the_wald_interval(prior_sd: float | None) -> None:
    rng = np.random.default_rng(3)
    y_c, y_t = rng.binomial(1, 0.10, 4000), rng.binomial(1, 0.12, 4200)
    result = bayesian_compare(
        Moments.from_values(y_c),
        Moments.from_values(y_t),
        alpha=0.05,
        prior_sd=prior_sd,
        kind=MetricKind.CONVERSION,
    )
    low, high = confint_proportions_2indep(
        y_t.sum(), y_t.size, y_c.sum(), y_c.size, method="wald", compare="diff"
    )
    diff = y_t.mean() - y_c.mean()
    assert result.abs_diff_mean == pytest.approx(diff)
    assert result.abs_ci == pytest.approx((low, high), rel=1e-9)
    se = (high - low) / (2 * Z95)
    assert result.rel_lift_mean == pytest.approx(diff / y_c.mean())
    # A flat prior gives Fieller's interval of the lift.
    fieller = fieller_interval(
        y_c.mean(), y_c.mean() * (1 - y_c.mean()) / y_c.size,
        y_t.mean(), y_t.mean() * (1 - y_t.mean()) / y_t.size, Z95,
    )  # fmt: skip
    assert result.rel_ci == pytest.approx(fieller)
    assert result.chance_to_beat_control == pytest.approx(stats.norm.cdf(diff / se))


@pytest.mark.parametrize("kind", [MetricKind.MEAN, MetricKind.COUNT], ids=["mean", "count"])
def test_flat_prior_on_means_equals_the_normal_interval(kind: MetricKind) -> None:
    rng = np.random.default_rng(11)
    x_c, x_t = rng.gamma(2.0, 5.0, 3000), rng.gamma(2.0, 5.3, 2500)
    if kind is MetricKind.COUNT:
        x_c, x_t = np.round(x_c), np.round(x_t)
    result = bayesian_compare(
        Moments.from_values(x_c), Moments.from_values(x_t), alpha=0.1, prior_sd=None, kind=kind
    )
    compare = CompareMeans(DescrStatsW(x_t), DescrStatsW(x_c))
    low, high = compare.zconfint_diff(alpha=0.1, usevar="unequal")
    assert result.abs_ci == pytest.approx((low, high), rel=1e-9)
    fieller = fieller_interval(
        x_c.mean(), x_c.var(ddof=1) / x_c.size, x_t.mean(), x_t.var(ddof=1) / x_t.size,
        stats.norm.ppf(0.95),
    )  # fmt: skip
    assert result.rel_ci == pytest.approx(fieller)


def test_flat_prior_on_ratios_uses_the_delta_method() -> None:
    rng = np.random.default_rng(5)

    def sample(rate: float, n: int) -> np.ndarray:
        den = rng.poisson(8, n) + 1.0
        return np.column_stack([rng.binomial(den.astype(int), rate), den])

    control, treatment = sample(0.2, 3000), sample(0.21, 3000)
    result = bayesian_compare(
        Moments.from_values(control),
        Moments.from_values(treatment),
        alpha=0.05,
        prior_sd=None,
        kind=MetricKind.RATIO,
    )

    def ratio_and_var(data: np.ndarray) -> tuple[float, float]:
        r = data[:, 0].sum() / data[:, 1].sum()
        linear = (data[:, 0] - r * data[:, 1]) / data[:, 1].mean()
        return r, linear.var(ddof=1) / len(data)

    (r_c, v_c), (r_t, v_t) = ratio_and_var(control), ratio_and_var(treatment)
    half = Z95 * math.sqrt(v_c + v_t)
    assert result.abs_diff_mean == pytest.approx(r_t - r_c)
    assert result.abs_ci == pytest.approx((r_t - r_c - half, r_t - r_c + half))
    assert result.rel_lift_mean == pytest.approx((r_t - r_c) / r_c)


def test_prior_shrinks_towards_no_effect() -> None:
    args = (1.0, 0.05**2, 1.2, 0.05**2)
    flat = bayesian_compare_difference(*args, alpha=0.05, prior_sd=None)
    wide = bayesian_compare_difference(*args, alpha=0.05, prior_sd=0.3)
    narrow = bayesian_compare_difference(*args, alpha=0.05, prior_sd=0.01)
    means = [r.abs_diff_mean for r in (flat, wide, narrow)]
    assert means[0] > means[1] > means[2] > 0  # type: ignore[operator]
    assert narrow.abs_diff_mean == pytest.approx(0.0, abs=0.01)


def test_swapping_the_variants_flips_the_difference() -> None:
    rng = np.random.default_rng(8)
    a, b = (
        Moments.from_values(rng.normal(10, 3, 500)),
        Moments.from_values(rng.normal(10.5, 3, 500)),
    )
    ab = bayesian_compare(a, b, alpha=0.05, prior_sd=None, kind=MetricKind.MEAN)
    ba = bayesian_compare(b, a, alpha=0.05, prior_sd=None, kind=MetricKind.MEAN)
    assert ab.abs_diff_mean == pytest.approx(-ba.abs_diff_mean)  # type: ignore[operator]
    assert ab.abs_ci == pytest.approx((-ba.abs_ci[1], -ba.abs_ci[0]))  # type: ignore[index]
    # On the absolute scale the chance is exactly antisymmetric.
    assert ab.chance_to_beat_control == pytest.approx(1 - ba.chance_to_beat_control)  # type: ignore[operator]


def _conversions(successes: int, n: int) -> Moments:
    return Moments.from_values(np.r_[np.ones(successes), np.zeros(n - successes)])


def test_few_conversions_use_the_beta_model_by_quadrature() -> None:
    control, treatment = _conversions(12, 800), _conversions(25, 820)
    kwargs = {"alpha": 0.05, "prior_sd": 0.3, "kind": MetricKind.CONVERSION}
    first = bayesian_compare(control, treatment, **kwargs)  # type: ignore[arg-type]
    assert first == bayesian_compare(control, treatment, **kwargs)  # type: ignore[arg-type]
    assert first == bayesian_compare_beta(12, 800, 25, 820, alpha=0.05)
    assert first.reason is not None
    assert "Beta(1, 1)" in first.reason
    # P(p_t > p_c), E[max(0, p_c - p_t)] and the quantiles of p_t - p_c by independent means.
    post_c, post_t = stats.beta(13, 789), stats.beta(26, 796)
    exact, _ = integrate.quad(lambda x: post_c.pdf(x) * post_t.sf(x), 0, 0.2, points=[0.015])
    assert first.chance_to_beat_control == pytest.approx(exact, abs=1e-5)
    loss, _ = integrate.dblquad(
        lambda t, c: (c - t) * post_c.pdf(c) * post_t.pdf(t), 0, 0.1, 0, lambda c: c
    )
    assert first.expected_loss == pytest.approx(loss, rel=1e-3)
    assert first.abs_diff_mean == pytest.approx(post_t.mean() - post_c.mean(), rel=1e-12)
    for end, q in zip(first.abs_ci, (0.025, 0.975), strict=True):  # type: ignore[arg-type]
        cdf, _ = integrate.quad(
            lambda x, end=end: post_c.pdf(x) * post_t.cdf(x + end), 0, 0.1, limit=200
        )
        assert cdf == pytest.approx(q, abs=2e-5)


def test_beta_and_normal_models_agree_for_large_counts() -> None:
    beta = bayesian_compare_beta(600, 6000, 672, 6000, alpha=0.05)
    normal = bayesian_compare(
        _conversions(600, 6000),
        _conversions(672, 6000),
        alpha=0.05,
        prior_sd=None,
        kind=MetricKind.CONVERSION,
    )
    assert beta.rel_lift_mean == pytest.approx(normal.rel_lift_mean, abs=0.005)
    assert beta.rel_ci == pytest.approx(normal.rel_ci, abs=0.01)
    assert beta.abs_ci == pytest.approx(normal.abs_ci, abs=0.001)
    assert beta.chance_to_beat_control == pytest.approx(normal.chance_to_beat_control, abs=0.01)
    assert beta.expected_loss == pytest.approx(normal.expected_loss, abs=1e-4)


def test_thirty_successes_switch_to_the_normal_model() -> None:
    kwargs = {"alpha": 0.05, "prior_sd": None, "kind": MetricKind.CONVERSION}
    at_30 = bayesian_compare(_conversions(30, 900), _conversions(40, 900), **kwargs)  # type: ignore[arg-type]
    at_29 = bayesian_compare(_conversions(29, 900), _conversions(40, 900), **kwargs)  # type: ignore[arg-type]
    assert at_30.abs_diff_mean == pytest.approx(10 / 900, rel=1e-12)  # exact: no draws
    assert at_29.abs_diff_mean == pytest.approx(41 / 902 - 30 / 902)  # Beta posterior means


@pytest.mark.parametrize(
    ("control", "treatment", "reason"),
    [
        (Moments.from_values([1.0]), Moments.from_values([1.0, 2.0]), "fewer than 2"),
        (Moments.from_values(np.full(9, 2.0)), Moments.from_values(np.full(9, 3.0)), "zero"),
    ],
    ids=["one-unit", "no-variance"],
)
def test_degenerate_data_gives_a_reason(control: Moments, treatment: Moments, reason: str) -> None:
    result = bayesian_compare(control, treatment, alpha=0.05, prior_sd=0.3, kind=MetricKind.MEAN)
    assert result.reason is not None
    assert reason in result.reason
    assert result.rel_ci is None
    assert result.chance_to_beat_control is None
    values = [result.rel_lift_mean, result.abs_diff_mean, result.expected_loss]
    assert all(v is None or math.isfinite(v) for v in values)


def test_zero_control_still_gives_the_posterior_of_the_difference() -> None:
    control, treatment = Moments.from_values(np.zeros(50)), Moments.from_values(np.ones(50))
    result = bayesian_compare(control, treatment, alpha=0.05, prior_sd=0.3, kind=MetricKind.MEAN)
    assert result.abs_diff_mean == pytest.approx(1.0)
    assert result.rel_lift_mean is None


def test_zero_denominator_ratio_is_a_reason_not_nan() -> None:
    zero = Moments.from_values(np.zeros((5, 2)))
    ok = Moments.from_values(np.column_stack([np.arange(5.0), np.arange(5.0) + 1]))
    result = bayesian_compare(zero, ok, alpha=0.05, prior_sd=0.3, kind=MetricKind.RATIO)
    assert result.chance_to_beat_control is None
    assert result.reason is not None
    assert "denominator" in result.reason


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bayesian_compare_difference(1, 0.01, 1, 1, alpha=1.5, prior_sd=0.3), "alpha"),
        (lambda: bayesian_compare_difference(1, 0.01, 1, 1, alpha=0.05, prior_sd=-1), "prior_sd"),
        (lambda: bayesian_compare_beta(5, 4, 1, 10, alpha=0.05), "control successes"),
        (lambda: bayesian_compare_beta(1, 4, 1, 10, alpha=0.05, nodes=5), "nodes"),
        (
            lambda: bayesian_compare(
                Moments.from_values([1.0, 2]),
                Moments.from_values([1.0, 2]),
                alpha=0.05,
                prior_sd=0.3,
                kind=MetricKind.AUC,
            ),
            "business metric",
        ),
        (
            lambda: bayesian_compare(
                Moments.from_values([1.0, 2]),
                Moments.from_values([1.0, 2]),
                alpha=0.05,
                prior_sd=0.3,
                kind=MetricKind.RATIO,
            ),
            "too few columns",
        ),
    ],
    ids=["alpha", "prior", "successes", "nodes", "ml-kind", "columns"],
)
def test_bad_input_is_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
