from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from experiments.domain import MetricKind
from experiments.stats.cuped import adjusted_estimate, compare_adjusted, fit_cuped
from experiments.stats.frequentist import compare_means
from experiments.stats.summaries import Moments


def mean_data(seed: int = 1, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x_c, x_t = rng.gamma(2, 5, n), rng.gamma(2, 5, n + 37)
    y_c = 3 + 0.8 * x_c + rng.normal(0, 2, n)
    y_t = 3.4 + 0.8 * x_t + rng.normal(0, 2, n + 37)
    return np.c_[y_c, x_c], np.c_[y_t, x_t]


def test_mean_cuped_matches_explicit_adjusted_values() -> None:
    c, t = mean_data()
    fit = fit_cuped([Moments.from_values(c), Moments.from_values(t)], MetricKind.MEAN)
    pooled = np.r_[c, t]
    theta = np.cov(pooled[:, 0], pooled[:, 1], ddof=1)[0, 1] / np.var(pooled[:, 1], ddof=1)
    assert fit.theta[0] == pytest.approx(theta, rel=1e-10)
    x_bar = pooled[:, 1].mean()
    adj_c = c[:, 0] - theta * (c[:, 1] - x_bar)
    adj_t = t[:, 0] - theta * (t[:, 1] - x_bar)
    d = compare_adjusted(Moments.from_values(c), Moments.from_values(t), fit, alpha=0.05)
    ref = sps.ttest_ind(adj_t, adj_c, equal_var=False)
    assert d.abs_diff == pytest.approx(adj_t.mean() - adj_c.mean(), rel=1e-10)
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert d.rel_lift == pytest.approx(adj_t.mean() / adj_c.mean() - 1, rel=1e-10)
    adj_all = pooled[:, 0] - theta * (pooled[:, 1] - x_bar)
    reduction = 1 - np.var(adj_all, ddof=1) / np.var(pooled[:, 0], ddof=1)
    assert fit.variance_reduction == pytest.approx(reduction, rel=1e-9)
    assert fit.variance_reduction > 0.5
    plain = compare_means(Moments.from_values(c[:, 0]), Moments.from_values(t[:, 0]), alpha=0.05)
    assert d.std_err < plain.std_err


def test_conversion_is_adjusted_like_a_mean() -> None:
    rng = np.random.default_rng(4)
    x = rng.binomial(1, 0.3, 2000).astype(float)
    y = np.where(rng.random(2000) < 0.7, x, rng.binomial(1, 0.3, 2000))
    c, t = np.c_[y[:1000], x[:1000]], np.c_[y[1000:], x[1000:]]
    fit = fit_cuped([Moments.from_values(c), Moments.from_values(t)], MetricKind.CONVERSION)
    d = compare_adjusted(Moments.from_values(c), Moments.from_values(t), fit, alpha=0.05)
    theta, x_bar = fit.theta[0], x.mean()
    ref = sps.ttest_ind(
        t[:, 0] - theta * (t[:, 1] - x_bar), c[:, 0] - theta * (c[:, 1] - x_bar), equal_var=False
    )
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert fit.variance_reduction > 0.3


def ratio_data(seed: int = 2, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)

    def variant(size: int, rate: float) -> np.ndarray:
        activity = rng.gamma(2, 3, size)
        taste = rng.beta(2, 4.67, size)  # each unit's own take rate, mean 0.3
        den_pre = rng.poisson(activity) + 1
        num_pre = rng.binomial(den_pre, taste)
        den = rng.poisson(activity) + 1
        num = rng.binomial(den, np.minimum(1.0, taste * rate / 0.3))
        return np.c_[num, den, num_pre, den_pre].astype(float)

    return variant(n, 0.30), variant(n - 50, 0.32)


def test_ratio_cuped_is_ols_on_the_linearised_ratio() -> None:
    c, t = ratio_data()
    m_c, m_t = Moments.from_values(c), Moments.from_values(t)
    fit = fit_cuped([m_c, m_t], MetricKind.RATIO)
    pooled = np.r_[c, t]
    r = pooled[:, 0].sum() / pooled[:, 1].sum()
    psi = (pooled[:, 0] - r * pooled[:, 1]) / pooled[:, 1].mean()
    x = pooled[:, 2:] - pooled[:, 2:].mean(axis=0)
    theta, *_ = np.linalg.lstsq(x, psi - psi.mean(), rcond=None)
    assert fit.theta == pytest.approx(tuple(theta), rel=1e-8)
    resid = psi - x @ theta
    assert fit.variance_reduction == pytest.approx(1 - resid.var() / psi.var(), rel=1e-8)
    assert fit.variance_reduction > 0.2
    # per variant: R_v − θ·(x̄_v − x̄), variance var(ψ_v − θ·x)/n with the variant's own ψ
    r_t = t[:, 0].sum() / t[:, 1].sum()
    psi_t = (t[:, 0] - r_t * t[:, 1]) / t[:, 1].mean()
    estimate, var = adjusted_estimate(m_t, fit)
    x_bar = pooled[:, 2:].mean(axis=0)
    assert estimate == pytest.approx(r_t - theta @ (t[:, 2:].mean(axis=0) - x_bar), rel=1e-10)
    assert var == pytest.approx(np.var(psi_t - t[:, 2:] @ theta, ddof=1), rel=1e-8)
    d = compare_adjusted(m_c, m_t, fit, alpha=0.05)
    est_c, var_c = adjusted_estimate(m_c, fit)
    se = math.sqrt(var_c / len(c) + var / len(t))
    assert d.std_err == pytest.approx(se)
    assert d.p_value == pytest.approx(2 * sps.norm.sf(abs(estimate - est_c) / se))
    assert d.df is None  # z-test for ratios


def test_constant_covariate_gives_theta_zero_and_unadjusted_results() -> None:
    c, t = mean_data()
    c[:, 1] = 5.0
    t[:, 1] = 5.0
    fit = fit_cuped([Moments.from_values(c), Moments.from_values(t)], MetricKind.MEAN)
    assert fit.theta == (0.0,)
    assert fit.variance_reduction is None
    assert "no variance" in fit.reasons[0]
    d = compare_adjusted(Moments.from_values(c), Moments.from_values(t), fit, alpha=0.05)
    plain = compare_means(Moments.from_values(c[:, 0]), Moments.from_values(t[:, 0]), alpha=0.05)
    assert d.p_value == pytest.approx(plain.p_value)


def test_constant_pre_denominator_is_ignored_by_the_pseudo_inverse() -> None:
    c, t = ratio_data()
    c[:, 3] = 1.0
    t[:, 3] = 1.0
    fit = fit_cuped([Moments.from_values(c), Moments.from_values(t)], MetricKind.RATIO)
    assert fit.theta[1] == 0.0
    assert fit.theta[0] != 0.0


def test_empty_treatment_gives_reason() -> None:
    c, _ = mean_data()
    empty = Moments.empty(2)
    fit = fit_cuped([Moments.from_values(c), empty], MetricKind.MEAN)
    d = compare_adjusted(Moments.from_values(c), empty, fit, alpha=0.05)
    assert d.abs_diff is None
    assert "treatment estimate undefined (no units)" in d.reasons[0]


@pytest.mark.parametrize(
    ("kind", "columns"),
    [(MetricKind.MEAN, 1), (MetricKind.RATIO, 2), (MetricKind.AUC, 2)],
    ids=["mean-without-covariate", "ratio-without-pre", "ml-kind"],
)
def test_wrong_layout_is_rejected(kind: MetricKind, columns: int) -> None:
    m = Moments.from_values(np.ones((3, columns)))
    with pytest.raises(ValueError, match="CUPED"):
        fit_cuped([m], kind)
