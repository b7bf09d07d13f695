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
  variant: ``p_i ~ Beta(1 + s_i, 1 + n_i − s_i)`` (uniform priors), outputs by
  deterministic quadrature over the control's posterior (:func:`bayesian_compare_beta`).

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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from experiments.domain import MetricKind
from experiments.stats.frequentist import Difference, compare
from experiments.stats.relative import (
    agree_with_difference,
    is_distinguishable_from_zero,
    is_zero_within_rounding,
)
from experiments.stats.summaries import Moments

FloatArray = npt.NDArray[np.float64]

DEFAULT_PRIOR_SD = 0.3
BETA_SUCCESS_THRESHOLD = 30
BETA_NODES = 801


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


def _beta_grid(a: float, b: float, nodes: int) -> tuple[FloatArray, FloatArray]:
    """Grid over ``Beta(a, b)``'s mass (mean ± 12 sd within [0, 1]) and trapezoid weights."""
    mean = a / (a + b)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
    grid = np.linspace(max(0.0, mean - 12.0 * sd), min(1.0, mean + 12.0 * sd), nodes)
    inside = np.clip(grid, 1e-300, 1.0 - 1e-16)
    log_pdf = (a - 1.0) * np.log(inside) + (b - 1.0) * np.log1p(-inside)
    weight = np.exp(log_pdf - log_pdf.max()) * np.gradient(grid)
    return grid, weight / weight.sum()


def bayesian_compare_beta(
    control_successes: int,
    control_n: int,
    treatment_successes: int,
    treatment_n: int,
    *,
    alpha: float,
    higher_is_better: bool = True,
    nodes: int = BETA_NODES,
) -> BayesianResult:
    """Beta–binomial comparison of two conversion rates by deterministic quadrature.

    Method: uniform priors, posteriors ``p_i ~ Beta(a_i, b_i)`` with
    ``a_i = 1 + s_i``, ``b_i = 1 + n_i − s_i``. Every output is an integral over
    the control's posterior, computed by the trapezoid rule on ``nodes`` points
    spanning its mean ± 12 sd, with the treatment's Beta distribution function
    ``F_t = I_x(a_t, b_t)`` tabulated on ``2·nodes`` points and interpolated:

    * ``P(p_t > p_c) = 1 − E[F_t(p_c)]``;
    * ``E[max(0, p_c − p_t)] = E[∫_0^{p_c} F_t(y) dy]``, the expected loss in
      rate units (``E[max(0, p_t − p_c)]`` adds the mean difference);
    * quantiles of ``D = p_t − p_c`` and of ``L = D/p_c`` by root finding on
      ``P(D ≤ d) = E[F_t(p_c + d)]`` and ``P(L ≤ r) = E[F_t((1 + r)p_c)]``.

    No Monte Carlo: the same counts give the same numbers, to about
    ``(24/nodes)²`` of a posterior standard deviation.

    Args:
        control_successes: units that converted in the control.
        control_n: units in the control.
        treatment_successes: units that converted in the treatment.
        treatment_n: units in the treatment.
        alpha: one minus the credible level, in (0, 1).
        higher_is_better: the metric's good direction.
        nodes: quadrature points (>= 100).

    Returns:
        The posterior summaries.
    """
    _check_alpha(alpha)
    if nodes < 100:
        raise ValueError(f"nodes must be >= 100, got {nodes}")
    for name, s, n in (
        ("control", control_successes, control_n),
        ("treatment", treatment_successes, treatment_n),
    ):
        if n < 0 or not 0 <= s <= n:
            raise ValueError(f"{name} successes must be in [0, n], got {s} of {n}")
    a_c, b_c = 1.0 + control_successes, 1.0 + control_n - control_successes
    a_t, b_t = 1.0 + treatment_successes, 1.0 + treatment_n - treatment_successes
    x, weight = _beta_grid(a_c, b_c, nodes)
    y, _ = _beta_grid(a_t, b_t, 2 * nodes)
    cdf_t = special.betainc(a_t, b_t, y)
    # ∫_0^v F_t = E[(v − p_t)⁺], cumulated on the grid (F_t is 0 below y[0] to rounding).
    partial = np.concatenate([[0.0], np.cumsum(0.5 * (cdf_t[1:] + cdf_t[:-1]) * np.diff(y))])
    mean_t = a_t / (a_t + b_t)

    def below(values: FloatArray) -> float:
        return float(weight @ np.interp(values, y, cdf_t, left=0.0, right=1.0))

    beaten = below(x)  # P(p_t < p_c)
    # Above the treatment's grid F_t = 1, so ∫ F_t grows by (v − y_max) there.
    tail = np.maximum(x - y[-1], 0.0)
    shortfall = float(weight @ (np.interp(x, y, partial, left=0.0) + tail))
    diff_mean = mean_t - a_c / (a_c + b_c)
    q_low, q_high = alpha / 2.0, 1.0 - alpha / 2.0

    def quantile(cdf: Callable[[float], float], q: float, low: float, high: float) -> float:
        return float(optimize.brentq(lambda v: cdf(v) - q, low, high, xtol=1e-12, rtol=1e-9))

    abs_ci = [quantile(lambda d: below(x + d), q, -1.0, 1.0) for q in (q_low, q_high)]
    top = float(y[-1]) / max(float(x[x > 0].min(initial=1.0)), 1e-300)
    rel_ci = [quantile(lambda r: below(x * (1.0 + r)), q, -1.0, top) for q in (q_low, q_high)]
    rel_mean = mean_t * (a_c + b_c - 1.0) / (a_c - 1.0) - 1.0 if a_c > 1.0 else None
    chance = 1.0 - beaten if higher_is_better else beaten
    loss = shortfall if higher_is_better else diff_mean + shortfall
    return BayesianResult(
        rel_lift_mean=rel_mean,
        rel_ci=(rel_ci[0], rel_ci[1]),
        abs_diff_mean=diff_mean,
        abs_ci=(abs_ci[0], abs_ci[1]),
        chance_to_beat_control=min(1.0, max(0.0, chance)),
        expected_loss=max(0.0, loss),
        reason=f"Beta(1, 1) priors (fewer than {BETA_SUCCESS_THRESHOLD} conversions in a variant)",
    )


def beta_posterior(
    control: Moments, treatment: Moments, *, alpha: float, higher_is_better: bool
) -> BayesianResult:
    """:func:`bayesian_compare_beta` on the moments of two 0/1 columns."""
    return bayesian_compare_beta(
        round(control.total(0)),
        control.n,
        round(treatment.total(0)),
        treatment.n,
        alpha=alpha,
        higher_is_better=higher_is_better,
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
        return beta_posterior(control, treatment, alpha=alpha, higher_is_better=higher_is_better)
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
