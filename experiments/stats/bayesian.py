"""Bayesian comparison of a treatment with the control.

Two models, both reporting the posterior of the relative lift
``L = μ_t / μ_c − 1`` and of the absolute difference ``D = μ_t − μ_c``:

* **Normal model** (the default, in the spirit of GrowthBook's Bayesian engine;
  Gelman et al., "Bayesian Data Analysis", 3rd ed., Sec. 2.5). The delta-method
  estimate ``L̂ ~ N(L, v)`` with
  ``L̂ = x̄_t/x̄_c − 1`` and ``v = v_t/x̄_c² + x̄_t² v_c/x̄_c⁴`` (``v_i`` the
  squared standard error of each mean) is combined with the prior
  ``L ~ N(0, τ²)`` (τ = ``prior_sd``, default 0.3; None or 0 is flat) by the
  conjugate update ``L | data ~ N(k L̂, k v)`` with ``k = τ² / (τ² + v)``.
  The absolute difference is shrunk by the same factor ``k``, which is the exact
  update for the prior ``D ~ N(0, τ² x̄_c²)`` when the control mean is known.
* **Beta–binomial model** for conversions with fewer than 30 successes in a
  variant: ``p_i ~ Beta(1 + s_i, 1 + n_i − s_i)`` (uniform priors), and the
  outputs are seeded Monte Carlo averages over ``draws`` posterior draws.

Outputs, with ``G = L`` when higher is better and ``G = −L`` otherwise:
the posterior means, equal-tailed ``(1 − α)`` credible intervals,
``chance_to_beat_control = P(G > 0)`` and ``expected_loss = E[max(0, −G)]``,
which for the normal is ``σφ(μ_G/σ) − μ_G Φ(−μ_G/σ)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from experiments.domain import MetricKind
from experiments.stats.summaries import Moments

DEFAULT_PRIOR_SD = 0.3
BETA_SUCCESS_THRESHOLD = 30
DEFAULT_DRAWS = 100_000


@dataclass(frozen=True)
class BayesianResult:
    """Posterior summaries of one treatment against the control.

    Attributes:
        rel_lift_mean: posterior mean of the relative lift ``μ_t/μ_c − 1``.
        rel_ci: equal-tailed ``(1 − alpha)`` credible interval of the relative lift.
        abs_diff_mean: posterior mean of the difference ``μ_t − μ_c``.
        abs_ci: credible interval of the difference.
        chance_to_beat_control: posterior probability that the treatment is better in
            the metric's good direction.
        expected_loss: ``E[max(0, −lift)]`` in relative-lift units, with the lift
            signed so that positive is good.
        reason: why some fields are None (None when all are defined).
    """

    rel_lift_mean: float | None
    rel_ci: tuple[float, float] | None
    abs_diff_mean: float | None
    abs_ci: tuple[float, float] | None
    chance_to_beat_control: float | None
    expected_loss: float | None
    reason: str | None


def _empty(reason: str) -> BayesianResult:
    return BayesianResult(None, None, None, None, None, None, reason)


def _check_alpha(alpha: float) -> None:
    if not (math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _check_prior(prior_sd: float | None) -> None:
    if prior_sd is not None and not (math.isfinite(prior_sd) and prior_sd >= 0.0):
        raise ValueError(f"prior_sd must be >= 0 or None, got {prior_sd}")


def normal_expected_loss(mean: float, sd: float) -> float:
    """``E[max(0, −G)]`` for ``G ~ N(mean, sd²)``: ``sdφ(mean/sd) − mean Φ(−mean/sd)``.

    Args:
        mean: posterior mean of the lift in its good direction.
        sd: posterior standard deviation (> 0).

    Returns:
        The expected loss (>= 0).
    """
    z = mean / sd
    return float(max(sd * stats.norm.pdf(z) - mean * stats.norm.cdf(-z), 0.0))


def bayesian_compare_normal(
    rel_mean: float,
    rel_var: float,
    abs_mean: float,
    abs_var: float,
    *,
    alpha: float,
    prior_sd: float | None,
    higher_is_better: bool = True,
) -> BayesianResult:
    """Normal–normal conjugate update of a delta-method relative lift.

    Method: prior ``L ~ N(0, τ²)``, likelihood ``L̂ ~ N(L, v)``; posterior
    ``N(kL̂, kv)`` with ``k = τ²/(τ² + v)`` (``k = 1`` when the prior is flat);
    the absolute difference gets the same shrinkage ``N(kD̂, k v_D)``. Credible
    intervals are ``μ ± z_{1−α/2} σ``; ``P(G > 0) = Φ(μ_G/σ)``; expected loss
    ``σφ(μ_G/σ) − μ_G Φ(−μ_G/σ)`` (Gelman et al., BDA3, Sec. 2.5).

    Args:
        rel_mean: delta-method estimate of the relative lift.
        rel_var: its variance.
        abs_mean: estimate of the absolute difference.
        abs_var: its variance.
        alpha: one minus the credible level, in (0, 1).
        prior_sd: prior standard deviation of the relative lift; None or 0 is flat.
        higher_is_better: the metric's good direction.

    Returns:
        The posterior summaries; intervals, chance and loss are None when a
        variance is 0 or not finite (the means stay when they are finite).
    """
    _check_alpha(alpha)
    _check_prior(prior_sd)
    if not (math.isfinite(rel_mean) and math.isfinite(abs_mean)):
        return _empty("estimate is not finite")
    if not (math.isfinite(rel_var) and math.isfinite(abs_var)) or rel_var < 0 or abs_var < 0:
        return _empty("variance is not finite")
    if rel_var == 0.0 or abs_var == 0.0:
        return BayesianResult(rel_mean, None, abs_mean, None, None, None, "standard error is zero")
    shrink = 1.0 if not prior_sd else prior_sd**2 / (prior_sd**2 + rel_var)
    rel_post, rel_sd = shrink * rel_mean, math.sqrt(shrink * rel_var)
    abs_post, abs_sd = shrink * abs_mean, math.sqrt(shrink * abs_var)
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    good = rel_post if higher_is_better else -rel_post
    return BayesianResult(
        rel_lift_mean=rel_post,
        rel_ci=(rel_post - z * rel_sd, rel_post + z * rel_sd),
        abs_diff_mean=abs_post,
        abs_ci=(abs_post - z * abs_sd, abs_post + z * abs_sd),
        chance_to_beat_control=float(stats.norm.cdf(good / rel_sd)),
        expected_loss=normal_expected_loss(good, rel_sd),
        reason=None,
    )


def bayesian_compare_beta(
    control_successes: int,
    control_n: int,
    treatment_successes: int,
    treatment_n: int,
    *,
    alpha: float,
    higher_is_better: bool = True,
    seed: int = 0,
    draws: int = DEFAULT_DRAWS,
) -> BayesianResult:
    """Beta–binomial comparison of two conversion rates by seeded Monte Carlo.

    Method: uniform priors, posteriors ``p_i ~ Beta(1 + s_i, 1 + n_i − s_i)``;
    ``draws`` joint draws from ``numpy.random.default_rng(seed)`` give
    ``L = p_t/p_c − 1`` and ``D = p_t − p_c``; the outputs are their sample means,
    equal-tailed quantiles, ``mean(G > 0)`` and ``mean(max(0, −G))``.

    Args:
        control_successes: units that converted in the control.
        control_n: units in the control.
        treatment_successes: units that converted in the treatment.
        treatment_n: units in the treatment.
        alpha: one minus the credible level, in (0, 1).
        higher_is_better: the metric's good direction.
        seed: seed of the Monte Carlo draws.
        draws: number of posterior draws (>= 100).

    Returns:
        The posterior summaries.
    """
    _check_alpha(alpha)
    if draws < 100:
        raise ValueError(f"draws must be >= 100, got {draws}")
    for name, s, n in (
        ("control", control_successes, control_n),
        ("treatment", treatment_successes, treatment_n),
    ):
        if n < 0 or not 0 <= s <= n:
            raise ValueError(f"{name} successes must be in [0, n], got {s} of {n}")
    rng = np.random.default_rng(seed)
    p_c = rng.beta(1 + control_successes, 1 + control_n - control_successes, size=draws)
    p_t = rng.beta(1 + treatment_successes, 1 + treatment_n - treatment_successes, size=draws)
    rel = p_t / p_c - 1.0
    diff = p_t - p_c
    good = rel if higher_is_better else -rel
    q = [alpha / 2.0, 1.0 - alpha / 2.0]
    rel_lo, rel_hi = (float(v) for v in np.quantile(rel, q))
    abs_lo, abs_hi = (float(v) for v in np.quantile(diff, q))
    return BayesianResult(
        rel_lift_mean=float(rel.mean()),
        rel_ci=(rel_lo, rel_hi),
        abs_diff_mean=float(diff.mean()),
        abs_ci=(abs_lo, abs_hi),
        chance_to_beat_control=float(np.mean(good > 0.0)),
        expected_loss=float(np.mean(np.maximum(0.0, -good))),
        reason=None,
    )


def _mean_and_var(moments: Moments, kind: MetricKind, column: int) -> tuple[float, float]:
    """Estimate of the variant's metric and its squared standard error."""
    n = moments.n
    if kind is MetricKind.RATIO:
        num_mean, den_mean = moments.mean(column), moments.mean(column + 1)
        if den_mean == 0.0:
            return math.nan, math.nan
        ratio = num_mean / den_mean
        # Delta method on Σnum/Σden: var(num − R·den) / (n · mean(den)²).
        lin_var = (
            moments.var(column)
            - 2.0 * ratio * moments.cov(column, column + 1)
            + ratio**2 * moments.var(column + 1)
        )
        return ratio, max(lin_var, 0.0) / (n * den_mean**2)
    mean = moments.mean(column)
    if kind is MetricKind.CONVERSION:
        return mean, mean * (1.0 - mean) / n  # binomial Wald variance p̂(1 − p̂)/n
    return mean, moments.var(column) / n


def bayesian_compare(
    control: Moments,
    treatment: Moments,
    *,
    alpha: float,
    prior_sd: float | None,
    higher_is_better: bool = True,
    kind: MetricKind,
    seed: int = 0,
    column: int = 0,
    draws: int = DEFAULT_DRAWS,
) -> BayesianResult:
    """Posterior of the treatment's lift over the control from sufficient statistics.

    Method: for conversions with fewer than 30 successes in a variant,
    :func:`bayesian_compare_beta` (Beta(1, 1) priors, seeded Monte Carlo; the
    normal prior is not used); otherwise :func:`bayesian_compare_normal` on the
    delta-method relative lift ``x̄_t/x̄_c − 1`` with variance
    ``v_t/x̄_c² + x̄_t² v_c/x̄_c⁴``. The squared standard error of a mean is
    ``p̂(1 − p̂)/n`` for conversions, ``s²/n`` (ddof 1) for counts and means, and
    ``var(num − R·den)/(n·mean(den)²)`` for ratios (columns ``column`` and
    ``column + 1``).

    Args:
        control: moments of the control's per-unit values.
        treatment: moments of the treatment's per-unit values.
        alpha: one minus the credible level, in (0, 1).
        prior_sd: prior standard deviation of the relative lift; None or 0 is flat.
        higher_is_better: the metric's good direction.
        kind: the metric kind (conversion, count, mean or ratio).
        seed: seed of the Monte Carlo draws (Beta model only).
        column: which column holds the metric (the numerator for ratios).
        draws: number of Monte Carlo draws (Beta model only).

    Returns:
        The posterior summaries, or None fields with a reason for degenerate data.
    """
    _check_alpha(alpha)
    _check_prior(prior_sd)
    if kind.is_ml:
        raise ValueError(f"bayesian_compare takes a business metric kind, got {kind.value}")
    needed = column + 2 if kind is MetricKind.RATIO else column + 1
    if control.k < needed or treatment.k < needed:
        raise ValueError(f"moments have too few columns for a {kind.value} metric")
    if control.n < 2 or treatment.n < 2:
        return _empty("fewer than 2 units in a variant")
    if kind is MetricKind.CONVERSION:
        s_c, s_t = round(control.total(column)), round(treatment.total(column))
        if min(s_c, s_t) < BETA_SUCCESS_THRESHOLD:
            return bayesian_compare_beta(
                s_c,
                control.n,
                s_t,
                treatment.n,
                alpha=alpha,
                higher_is_better=higher_is_better,
                seed=seed,
                draws=draws,
            )
    mean_c, var_c = _mean_and_var(control, kind, column)
    mean_t, var_t = _mean_and_var(treatment, kind, column)
    if not (math.isfinite(mean_c) and math.isfinite(mean_t)):
        return _empty("denominator is zero")
    if mean_c == 0.0:
        return _empty("control mean is zero, so the relative lift is undefined")
    rel_mean = mean_t / mean_c - 1.0
    rel_var = var_t / mean_c**2 + mean_t**2 * var_c / mean_c**4
    return bayesian_compare_normal(
        rel_mean,
        rel_var,
        mean_t - mean_c,
        var_t + var_c,
        alpha=alpha,
        prior_sd=prior_sd,
        higher_is_better=higher_is_better,
    )
