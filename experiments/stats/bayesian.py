"""Bayesian comparison of a treatment with the control, on the absolute difference.

Two models, both giving the posterior of the absolute difference
``D = μ_t − μ_c`` (the relative lift is derived from it):

* **Normal model** (Gelman et al., "Bayesian Data Analysis", 3rd ed., Sec. 2.5;
  in the spirit of GrowthBook's engine, on the absolute scale). The estimate
  ``D̂ = m_t − m_c`` has likelihood ``D̂ ~ N(D, V)``, ``V = v_c + v_t`` (the
  squared standard errors of the two means). When the control mean is
  distinguishable from 0 (``m_c² > z²·v_c``, ``z = z_{1−α/2}``) the prior is the
  relative prior scaled by the control: ``D ~ N(0, (τ·|m_c|)²)`` (τ =
  ``prior_sd``, default 0.3: a relative lift of ±60% is a 2-sd surprise), and
  the conjugate update gives ``D | data ~ N(kD̂, kV)`` with ``k = τ²m_c²/(τ²m_c² + V)``.
  Otherwise (or with τ None or 0) the prior is flat: ``N(D̂, V)``. Which prior
  was used is stated in ``reason``. Because the posterior is on ``D``, whose
  estimate is symmetric under the null even for skewed data, the A/A rates of
  "better" and "worse" are equal; the lopsided null distribution of a
  relative-lift estimate never enters.
* **Beta–binomial model** for conversions with fewer than 30 successes in a
  variant: ``p_i ~ Beta(1 + s_i, 1 + n_i − s_i)`` (uniform priors), outputs from
  seeded Monte Carlo draws of ``D = p_t − p_c``.

Outputs, with ``G = D`` when higher is better and ``G = −D`` otherwise: the
equal-tailed ``(1 − α)`` credible interval of ``D``; the relative lift
``D/|m_c|`` and its Fieller-type interval from the posterior of ``D`` and the
uncertainty of the control mean (None when the control mean is not
distinguishable from 0);
``chance_to_beat_control = P(G > 0)``; ``expected_loss = E[max(0, −G)]`` **in the
metric's units** (the expected shortfall of shipping the treatment), which for
the normal is ``σφ(μ_G/σ) − μ_G Φ(−μ_G/σ)``.

The decision rule that uses these numbers (thresholds ``1 − α/(2k)`` for ``k``
treatments, no verdict before ``planned_n``) is in :mod:`.comparisons` and
:mod:`.decision`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from experiments.domain import MetricKind
from experiments.stats.frequentist import Difference, compare
from experiments.stats.relative import (
    agree_with_difference,
    is_distinguishable_from_zero,
    is_zero_within_rounding,
)
from experiments.stats.summaries import Moments

DEFAULT_PRIOR_SD = 0.3
BETA_SUCCESS_THRESHOLD = 30
DEFAULT_DRAWS = 100_000


@dataclass(frozen=True)
class BayesianResult:
    """Posterior summaries of one treatment against the control.

    Attributes:
        rel_lift_mean: posterior mean of the relative lift ``D/|μ_c|``.
        rel_ci: credible interval of the relative lift.
        abs_diff_mean: posterior mean of the difference ``μ_t − μ_c``.
        abs_ci: equal-tailed ``(1 − alpha)`` credible interval of the difference.
        chance_to_beat_control: posterior probability that the treatment is better in
            the metric's good direction.
        expected_loss: ``E[max(0, −G)]`` in the metric's units, ``G`` the
            difference signed so that positive is good.
        reason: the prior used, and why some fields are None.
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
        mean: posterior mean of the difference in its good direction.
        sd: posterior standard deviation (> 0).

    Returns:
        The expected loss (>= 0).
    """
    z = mean / sd
    density = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return float(max(sd * density - mean * special.ndtr(-z), 0.0))


def bayesian_compare_difference(
    mean_c: float,
    var_mean_c: float,
    mean_t: float,
    var_mean_t: float,
    *,
    alpha: float,
    prior_sd: float | None,
    higher_is_better: bool = True,
    scale: float = 0.0,
) -> BayesianResult:
    """Normal posterior of the absolute difference with the control-scaled relative prior.

    Method: module docstring. Prior ``D ~ N(0, (τ|m_c|)²)`` when
    ``m_c² > z²_{1−α/2}·v_c`` and τ > 0, else flat; posterior
    ``N(kD̂, kV)``, ``k = τ²m_c²/(τ²m_c² + V)``; interval ``μ ± z σ``;
    ``P(G > 0) = Φ(μ_G/σ)``; expected loss ``σφ(μ_G/σ) − μ_G Φ(−μ_G/σ)`` (BDA3, Sec. 2.5).

    Args:
        mean_c: control mean (or adjusted mean, ratio...).
        var_mean_c: its squared standard error.
        mean_t: treatment mean.
        var_mean_t: its squared standard error.
        alpha: one minus the credible level, in (0, 1).
        prior_sd: prior sd τ of the relative lift; None or 0 is flat.
        higher_is_better: the metric's good direction.
        scale: the metric's scale for "control mean is 0 within rounding".

    Returns:
        The posterior summaries; intervals, chance and loss are None when the
        variance is 0 or not finite.
    """
    _check_alpha(alpha)
    _check_prior(prior_sd)
    if not (math.isfinite(mean_c) and math.isfinite(mean_t)):
        return _empty("estimate is not finite")
    var = var_mean_c + var_mean_t
    if not math.isfinite(var) or var_mean_c < 0 or var_mean_t < 0:
        return _empty("variance is not finite")
    diff = mean_t - mean_c
    z = float(special.ndtri(1.0 - alpha / 2.0))
    distinct = is_distinguishable_from_zero(mean_c, var_mean_c, z)
    zero = is_zero_within_rounding(mean_c, max(abs(scale), abs(mean_t)))
    if var == 0.0:
        return BayesianResult(None, None, diff, None, None, None, "standard error is zero")
    if prior_sd and distinct:
        prior_var = (prior_sd * mean_c) ** 2
        shrink = prior_var / (prior_var + var)
        reason = f"prior N(0, ({prior_sd:g}·|control mean|)²) on the difference"
    else:
        shrink = 1.0
        reason = "flat prior" + (
            "" if not prior_sd else " (control mean not distinguishable from 0)"
        )
    post, sd = shrink * diff, math.sqrt(shrink * var)
    good = post if higher_is_better else -post
    rel_mean = rel_ci = None
    if distinct and not zero:
        rel_mean = post / abs(mean_c)
        rel_ci = _relative_interval(post, sd, mean_c, var_mean_c, shrink, z)
    elif zero:
        reason += "; control mean is 0 (within rounding): relative lift undefined"
    else:
        reason += "; relative interval unbounded"
    return BayesianResult(
        rel_lift_mean=rel_mean,
        rel_ci=rel_ci,
        abs_diff_mean=post,
        abs_ci=(post - z * sd, post + z * sd),
        chance_to_beat_control=float(special.ndtr(good / sd)),
        expected_loss=normal_expected_loss(good, sd),
        reason=reason,
    )


def _relative_interval(
    post: float, sd: float, mean_c: float, var_mean_c: float, shrink: float, z: float
) -> tuple[float, float] | None:
    """Fieller-type interval of ``L = D/|μ_c|`` from the posterior of ``D`` and the control mean.

    The set of ``L`` with ``(μ − L|m_c|)² ≤ z²·Var(D − L|μ_c|)``, where
    ``Var(D − L|μ_c|) = σ² + L² v_c + 2L·sign(m_c)·k·v_c`` (the posterior
    difference ``kD̂`` covaries with the control mean by ``−k v_c``). With a
    flat prior it is Fieller's interval; it excludes 0 exactly when the
    credible interval of ``D`` does.
    """
    a = mean_c * mean_c - z * z * var_mean_c
    if not a > 0.0:
        return None
    sign = 1.0 if mean_c > 0 else -1.0
    centre = post * abs(mean_c) + z * z * sign * shrink * var_mean_c
    disc = centre * centre - a * (post * post - z * z * sd * sd)
    root = math.sqrt(max(disc, 0.0))
    low, high = (centre - root) / a, (centre + root) / a
    return agree_with_difference(low, high, (post - z * sd, post + z * sd))


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
    ``D = p_t − p_c`` and ``L = D/p_c``; the outputs are their sample means,
    equal-tailed quantiles, ``mean(G > 0)`` and ``mean(max(0, −G))`` (G = ±D).

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
    diff = p_t - p_c
    rel = diff / p_c
    good = diff if higher_is_better else -diff
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
        reason=f"Beta(1, 1) priors (fewer than {BETA_SUCCESS_THRESHOLD} conversions in a variant)",
    )


def beta_posterior(
    control: Moments,
    treatment: Moments,
    *,
    alpha: float,
    higher_is_better: bool,
    seed: int,
    draws: int = DEFAULT_DRAWS,
) -> BayesianResult:
    """:func:`bayesian_compare_beta` on the moments of two 0/1 columns."""
    return bayesian_compare_beta(
        round(control.total(0)),
        control.n,
        round(treatment.total(0)),
        treatment.n,
        alpha=alpha,
        higher_is_better=higher_is_better,
        seed=seed,
        draws=draws,
    )


def is_beta_model(kind: MetricKind, control: Moments, treatment: Moments) -> bool:
    """Whether a conversion comparison has too few successes for the normal model."""
    if kind is not MetricKind.CONVERSION or control.n == 0 or treatment.n == 0:
        return False
    return min(round(control.total(0)), round(treatment.total(0))) < BETA_SUCCESS_THRESHOLD


def bayesian_compare(
    control: Moments,
    treatment: Moments,
    *,
    alpha: float,
    prior_sd: float | None,
    higher_is_better: bool = True,
    kind: MetricKind,
    seed: int = 0,
    draws: int = DEFAULT_DRAWS,
) -> BayesianResult:
    """Posterior of the treatment's difference from the control, from sufficient statistics.

    Method: for conversions with fewer than 30 successes in a variant,
    :func:`bayesian_compare_beta`; otherwise :func:`bayesian_compare_difference`
    on the two means and their squared standard errors: ``p̂(1 − p̂)/n`` for
    conversions, ``s²/n`` (ddof 1) for counts and means, and the delta-method
    ``var(num − R·den)/(n·mean(den)²)`` for ratios (columns 0 and 1).

    Args:
        control: moments of the control's per-unit values.
        treatment: moments of the treatment's per-unit values.
        alpha: one minus the credible level, in (0, 1).
        prior_sd: prior standard deviation of the relative lift; None or 0 is flat.
        higher_is_better: the metric's good direction.
        kind: the metric kind (conversion, count, mean or ratio).
        seed: seed of the Monte Carlo draws (Beta model only).
        draws: number of Monte Carlo draws (Beta model only).

    Returns:
        The posterior summaries, or None fields with a reason for degenerate data.
    """
    _check_alpha(alpha)
    _check_prior(prior_sd)
    if kind.is_ml:
        raise ValueError(f"bayesian_compare takes a business metric kind, got {kind.value}")
    needed = 2 if kind is MetricKind.RATIO else 1
    if control.k < needed or treatment.k < needed:
        raise ValueError(f"moments have too few columns for a {kind.value} metric")
    if control.n < 2 or treatment.n < 2:
        return _empty("fewer than 2 units in a variant")
    if is_beta_model(kind, control, treatment):
        return beta_posterior(
            control, treatment, alpha=alpha, higher_is_better=higher_is_better, seed=seed,
            draws=draws,
        )  # fmt: skip
    return posterior_of_difference(
        compare(kind, control, treatment, alpha=alpha),
        alpha=alpha,
        prior_sd=prior_sd,
        higher_is_better=higher_is_better,
    )


def posterior_of_difference(
    diff: Difference, *, alpha: float, prior_sd: float | None, higher_is_better: bool
) -> BayesianResult:
    """:func:`bayesian_compare_difference` on a :class:`Difference` (any kind, CUPED too)."""
    values = (diff.control_mean, diff.treatment_mean, diff.var_control, diff.var_treatment)
    if any(v is None for v in values):
        return _empty(
            "; ".join(diff.reasons) or "estimate or standard error undefined (denominator 0?)"
        )
    mean_c, mean_t, var_c, var_t = (float(v) for v in values if v is not None)
    return bayesian_compare_difference(
        mean_c,
        var_c,
        mean_t,
        var_t,
        alpha=alpha,
        prior_sd=prior_sd,
        higher_is_better=higher_is_better,
        scale=diff.scale,
    )
