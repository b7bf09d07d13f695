"""Power, minimum detectable effect and sample size, fixed-horizon and sequential.

Method: the two-sided z-test of ``D = μ_t − μ_c`` between the control and each
treatment, with ``n_i = N w_i`` units out of ``N`` (weights normalised to sum to
1; ``weights[0]`` is the control). With per-unit variances ``σ_c², σ_t²`` under
the alternative and ``σ₀²`` under the null,

    SE₁ = √(σ_c²/n_c + σ_t²/n_t),   SE₀ = √(σ₀²/n_c + σ₀²/n_t)
    power = Φ((D − c·SE₀)/SE₁) + Φ((−D − c·SE₀)/SE₁)

(Chow, Shao & Wang, "Sample Size Calculations in Clinical Research", Sec. 4.2;
statsmodels ``normal_power_het``). Per kind:

* conversion: ``σ_c² = p(1 − p)``, ``σ_t² = p_t(1 − p_t)`` with ``p_t = p + D``,
  and the pooled ``σ₀² = p̄(1 − p̄)``, ``p̄ = (n_c p + n_t p_t)/(n_c + n_t)``,
  matching the pooled two-proportion z-test;
* count and mean: ``σ_c² = σ_t² = σ₀² = σ²``;
* ratio ``R = E[num]/E[den]``: the delta-method variance of the linearised
  per-unit value, ``σ² = (var(num) − 2R cov(num, den) + R² var(den)) / E[den]²``
  (Deng, Knoblich & Lu 2018, "Applying the delta method in metric analytics").

The critical value ``c`` is ``z_{1−α'/2}`` for a fixed horizon (``α' = α/(k − 1)``
with the optional Bonferroni over ``k − 1`` treatments). For a sequential
analysis it is the normal-mixture boundary ``c(N)`` of
:func:`experiments.stats.sequential.boundary_z` tuned for the planned ``N*``
(plug-in variances, so ``SE₀ = SE₁``); the power is then that of the look at
``N`` alone, a lower bound of the power with peeking at every look. Sample
sizes and effects are found numerically (Brent's method) on these formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import optimize, stats

from experiments.domain import MetricKind
from experiments.stats.sequential import boundary_z
from experiments.stats.summaries import Moments


@dataclass(frozen=True)
class Baseline:
    """The control's metric before the experiment: its mean and per-unit variance.

    Attributes:
        kind: conversion, count, mean or ratio.
        mean: the conversion rate, the mean per unit, or the ratio ``R``.
        var: the per-unit variance (for ratios, of the linearised value; for
            conversions it is ``p(1 − p)``).
    """

    kind: MetricKind
    mean: float
    var: float

    def __post_init__(self) -> None:
        if self.kind.is_ml:
            raise ValueError(f"power takes a business metric kind, got {self.kind.value}")
        if not math.isfinite(self.mean):
            raise ValueError(f"baseline mean must be finite, got {self.mean}")
        if not (math.isfinite(self.var) and self.var > 0.0):
            raise ValueError(f"baseline variance must be > 0, got {self.var}")
        if self.kind is MetricKind.CONVERSION and not 0.0 < self.mean < 1.0:
            raise ValueError(f"baseline conversion rate must be in (0, 1), got {self.mean}")

    @classmethod
    def conversion(cls, rate: float) -> Baseline:
        """A conversion rate ``p`` in (0, 1); the variance is ``p(1 − p)``."""
        if not 0.0 < rate < 1.0:
            raise ValueError(f"baseline conversion rate must be in (0, 1), got {rate}")
        return cls(MetricKind.CONVERSION, rate, rate * (1.0 - rate))

    @classmethod
    def ratio(
        cls, *, num_mean: float, den_mean: float, num_var: float, den_var: float, cov: float
    ) -> Baseline:
        """A ratio metric from per-unit moments of its numerator and denominator.

        ``R = E[num]/E[den]`` and ``σ² = (var(num) − 2R cov + R² var(den)) / E[den]²``.
        """
        if den_mean == 0.0 or not math.isfinite(den_mean):
            raise ValueError(f"baseline denominator mean must be non-zero, got {den_mean}")
        r = num_mean / den_mean
        var = (num_var - 2.0 * r * cov + r * r * den_var) / den_mean**2
        return cls(MetricKind.RATIO, r, var)

    @classmethod
    def from_moments(cls, moments: Moments, kind: MetricKind, column: int = 0) -> Baseline:
        """The baseline of a metric from the moments of recent (or pre-period) units.

        Conversions use the rate; counts and means the mean and ddof-1 variance;
        ratios columns ``column`` (numerator) and ``column + 1`` (denominator).
        """
        if moments.n < 2:
            raise ValueError(f"baseline needs at least 2 units, got {moments.n}")
        if kind is MetricKind.CONVERSION:
            return cls.conversion(moments.mean(column))
        if kind is MetricKind.RATIO:
            return cls.ratio(
                num_mean=moments.mean(column),
                den_mean=moments.mean(column + 1),
                num_var=moments.var(column),
                den_var=moments.var(column + 1),
                cov=moments.cov(column, column + 1),
            )
        return cls(kind, moments.mean(column), moments.var(column))


@dataclass(frozen=True)
class MinimumDetectableEffect:
    """The smallest increase detectable with the requested power.

    Attributes:
        absolute: the difference ``μ_t − μ_c``.
        relative: ``absolute / μ_c`` (None when the baseline mean is 0).
    """

    absolute: float
    relative: float | None


def _check_probability(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"{name} must be in (0, 1), got {value}")


def _shares(weights: Sequence[float]) -> tuple[float, list[float]]:
    """Normalised control share and treatment shares."""
    if len(weights) < 2:
        raise ValueError(f"weights need a control and at least one treatment, got {len(weights)}")
    if not all(math.isfinite(w) and w > 0.0 for w in weights):
        raise ValueError("weights must be finite and > 0")
    total = math.fsum(weights)
    return weights[0] / total, [w / total for w in weights[1:]]


def _absolute(baseline: Baseline, effect: float, relative: bool) -> float:
    if not math.isfinite(effect):
        raise ValueError(f"effect must be finite, got {effect}")
    if not relative:
        return effect
    if baseline.mean == 0.0:
        raise ValueError("a relative effect needs a non-zero baseline mean")
    return effect * baseline.mean


def _power_one(
    baseline: Baseline,
    delta: float,
    total: float,
    w_c: float,
    w_t: float,
    alpha: float,
    planned_n: float | None,
    sequential: bool,
) -> float:
    """Power of one treatment-vs-control comparison at ``total`` units."""
    n_c, n_t = total * w_c, total * w_t
    if baseline.kind is MetricKind.CONVERSION:
        p_c, p_t = baseline.mean, baseline.mean + delta
        if not 0.0 < p_t < 1.0:
            raise ValueError(f"treatment conversion rate {p_t:.6g} is outside (0, 1)")
        var_c, var_t = p_c * (1.0 - p_c), p_t * (1.0 - p_t)
        pooled = (n_c * p_c + n_t * p_t) / (n_c + n_t)
        var_null_c = var_null_t = pooled * (1.0 - pooled)
    else:
        var_c = var_t = var_null_c = var_null_t = baseline.var
    se_alt = math.sqrt(var_c / n_c + var_t / n_t)
    if sequential:
        crit = boundary_z(total, max(1, round(planned_n or total)), alpha)
        se_null = se_alt  # the confidence sequence uses plug-in (unpooled) variances
    else:
        crit = float(stats.norm.ppf(1.0 - alpha / 2.0))
        se_null = math.sqrt(var_null_c / n_c + var_null_t / n_t)
    upper = stats.norm.cdf((delta - crit * se_null) / se_alt)
    lower = stats.norm.cdf((-delta - crit * se_null) / se_alt)
    return float(upper + lower)


def _power_all(
    baseline: Baseline,
    delta: float,
    total: float,
    weights: Sequence[float],
    alpha: float,
    bonferroni: bool,
    sequential: bool,
    planned_n: float | None,
) -> float:
    """Smallest power over the treatments (each compared with the control)."""
    w_c, w_ts = _shares(weights)
    alpha_each = alpha / len(w_ts) if bonferroni else alpha
    return min(
        _power_one(baseline, delta, total, w_c, w_t, alpha_each, planned_n, sequential)
        for w_t in w_ts
    )


def power(
    baseline: Baseline,
    *,
    effect: float,
    total_units: int,
    relative: bool = True,
    alpha: float = 0.05,
    weights: Sequence[float] = (0.5, 0.5),
    bonferroni: bool = False,
    sequential: bool = False,
    planned_n: int | None = None,
) -> float:
    """Probability that the two-sided test detects ``effect`` with ``total_units`` units.

    See the module docstring for the formula. With several treatments it is the
    smallest power over the treatment-vs-control comparisons.

    Args:
        baseline: the control's mean and per-unit variance.
        effect: the true effect of the treatment (relative or absolute).
        total_units: units in all variants together.
        relative: whether ``effect`` is relative to the baseline mean.
        alpha: the test's level, in (0, 1).
        weights: variant weights, the control first.
        bonferroni: divide alpha by the number of treatments.
        sequential: use the always-valid normal-mixture boundary.
        planned_n: the ``N*`` the sequential boundary is tuned for (default
            ``total_units``).

    Returns:
        The power, in [0, 1].
    """
    _check_probability("alpha", alpha)
    if total_units <= 0:
        raise ValueError(f"total_units must be > 0, got {total_units}")
    if planned_n is not None and planned_n <= 0:
        raise ValueError(f"planned_n must be > 0, got {planned_n}")
    delta = _absolute(baseline, effect, relative)
    return _power_all(
        baseline, delta, total_units, weights, alpha, bonferroni, sequential, planned_n
    )


def sample_size(
    baseline: Baseline,
    *,
    mde: float,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    weights: Sequence[float] = (0.5, 0.5),
    bonferroni: bool = False,
    sequential: bool = False,
) -> int:
    """Total units (all variants) needed to detect ``mde`` with the requested power.

    The smallest ``N`` whose power (module docstring) reaches ``power``, found
    by Brent's method on ``N`` and rounded up. A sequential plan is tuned for its
    own ``N* = N``, where the boundary is the constant
    ``c_α = √(x*/(x* − 1) · log(x*/α²))``.

    Args:
        baseline: the control's mean and per-unit variance.
        mde: the effect to detect (relative or absolute); not 0.
        relative: whether ``mde`` is relative to the baseline mean.
        alpha: the test's level, in (0, 1).
        power: the requested power, in (0, 1).
        weights: variant weights, the control first.
        bonferroni: divide alpha by the number of treatments.
        sequential: plan for always-valid (sequential) analysis.

    Returns:
        The total number of units.
    """
    _check_probability("alpha", alpha)
    _check_probability("power", power)
    delta = _absolute(baseline, mde, relative)
    if delta == 0.0:
        raise ValueError("mde must be non-zero")
    w_c, w_ts = _shares(weights)
    smallest = 2.0 / min(w_c, *w_ts)  # at least 2 units in every variant

    def gap(total: float) -> float:
        achieved = _power_all(baseline, delta, total, weights, alpha, bonferroni, sequential, None)
        return achieved - power

    if gap(smallest) >= 0.0:
        return math.ceil(smallest)
    high = smallest * 2.0
    while gap(high) < 0.0:
        high *= 2.0
        if high > 1e15:
            raise ValueError("the effect is too small to detect with any sample size")
    root = float(optimize.brentq(gap, smallest, high, xtol=1e-6, rtol=1e-12))
    total = math.ceil(root - 1e-9)
    while gap(total) < 0.0:  # guard against the root landing a hair below the target
        total += 1
    return total


def minimum_detectable_effect(
    baseline: Baseline,
    *,
    total_units: int,
    alpha: float = 0.05,
    power: float = 0.8,
    weights: Sequence[float] = (0.5, 0.5),
    bonferroni: bool = False,
    sequential: bool = False,
    planned_n: int | None = None,
) -> MinimumDetectableEffect:
    """The smallest increase detectable with the requested power at ``total_units``.

    Solves ``power(D) = power`` for ``D > 0`` by Brent's method (module
    docstring). For conversions the increase must keep the rate below 1.

    Args:
        baseline: the control's mean and per-unit variance.
        total_units: units in all variants together.
        alpha: the test's level, in (0, 1).
        power: the requested power, in (0, 1).
        weights: variant weights, the control first.
        bonferroni: divide alpha by the number of treatments.
        sequential: use the always-valid normal-mixture boundary.
        planned_n: the ``N*`` the sequential boundary is tuned for (default
            ``total_units``).

    Returns:
        The absolute and relative minimum detectable effect.
    """
    _check_probability("alpha", alpha)
    _check_probability("power", power)
    if total_units <= 0:
        raise ValueError(f"total_units must be > 0, got {total_units}")
    if planned_n is not None and planned_n <= 0:
        raise ValueError(f"planned_n must be > 0, got {planned_n}")

    def gap(delta: float) -> float:
        achieved = _power_all(
            baseline, delta, total_units, weights, alpha, bonferroni, sequential, planned_n
        )
        return achieved - power

    if baseline.kind is MetricKind.CONVERSION:
        high = (1.0 - baseline.mean) * (1.0 - 1e-9)
        if gap(high) < 0.0:
            raise ValueError(f"{total_units} units cannot detect any increase of this rate")
    else:
        high = math.sqrt(baseline.var)
        while gap(high) < 0.0:
            high *= 2.0
    delta = float(optimize.brentq(gap, 0.0, high, xtol=1e-12 * high, rtol=1e-12))
    relative = delta / baseline.mean if baseline.mean != 0.0 else None
    return MinimumDetectableEffect(absolute=delta, relative=relative)


def days_needed(total_units: int, daily_units: float) -> int:
    """Whole days until ``total_units`` units have entered, at ``daily_units`` a day.

    Args:
        total_units: units needed in all variants together (>= 0).
        daily_units: units entering the experiment per day (> 0).

    Returns:
        ``⌈total_units / daily_units⌉``.
    """
    if total_units < 0:
        raise ValueError(f"total_units must be >= 0, got {total_units}")
    if not (math.isfinite(daily_units) and daily_units > 0.0):
        raise ValueError(f"daily_units must be > 0, got {daily_units}")
    return math.ceil(total_units / daily_units - 1e-12)


def units_needed_for_mde(
    *,
    baseline_mean: float,
    baseline_var: float,
    mde: float,
    alpha: float,
    power: float,
    weights: Sequence[float],
    sequential: bool = False,
    kind: MetricKind = MetricKind.MEAN,
) -> int:
    """Total units (all variants) for a two-sided test to detect a relative effect ``mde``.

    The binding comparison is the smallest-weight treatment against the control,
    without any multiple-comparison correction. ``kind=conversion`` uses the
    pooled null variance of the two-proportion test (``baseline_var`` is then
    ignored); other kinds use ``baseline_var`` for both variants.

    Args:
        baseline_mean: the control's mean (non-zero).
        baseline_var: its per-unit variance (> 0).
        mde: the relative effect to detect (non-zero).
        alpha: the test's level, in (0, 1).
        power: the requested power, in (0, 1).
        weights: variant weights, the control first.
        sequential: plan for always-valid (sequential) analysis.
        kind: the metric kind.

    Returns:
        The total number of units.
    """
    if kind is MetricKind.CONVERSION:
        baseline = Baseline.conversion(baseline_mean)
    else:
        baseline = Baseline(kind, baseline_mean, baseline_var)
    return sample_size(
        baseline,
        mde=mde,
        relative=True,
        alpha=alpha,
        power=power,
        weights=weights,
        sequential=sequential,
    )
