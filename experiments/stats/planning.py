"""Planning with the rule the decision applies: each method's own sample size, guardrail power.

The planned sample ``N`` is the smallest total sample at which every
treatment-vs-control comparison of the primary metric reaches the requested
power (:func:`experiments.stats.power.sample_size`) **at the level the decision
uses for it**:

* the correction: with ``k`` treatments, Bonferroni's ``α/k`` per comparison
  (``correction`` ``holm``, ``bonferroni`` or ``bh``). Holm rejects at least
  what Bonferroni rejects, so a Bonferroni plan is a safe plan for Holm (and
  for BH); ``none`` keeps ``α``;
* ``fixed`` — the two-sided z-test at that level;
* ``bayesian`` — the same as ``fixed`` at ``α/k`` whatever the correction: the
  decision threshold ``1 − α/(2k)`` on the chance to beat control is, with a
  flat prior, the two-sided test at ``α/k``; the shrinking prior only makes
  the plan conservative;
* ``sequential`` — the normal-mixture boundary tuned at ``n* = N`` (the
  always-valid test at its tuning point, :mod:`.sequential`);
* ``group_sequential`` — the fixed ``N`` times the inflation factor of the
  O'Brien–Fleming design (:func:`inflation_factor`): for ``K`` equally spaced
  looks the drift ``θ`` whose design power (:func:`.group_sequential.design_power`)
  is the requested power, ``IF = (θ / (z_{1−α/2} + z_{1−β}))²``
  (Jennison & Turnbull 2000, Sec. 2.7 and Table 2.7); for looks unknown (every
  refresh a look), the continuous-monitoring boundary ``c`` with the power of
  the last look, ``IF = ((c + z_{1−β}) / (z_{1−α/2} + z_{1−β}))²``
  (conservative: earlier crossings only add power).

**Blinded re-estimation**: :func:`plan_units` takes a baseline mean and
variance. On the server, when there is no traffic to plan from, pass the mean
and variance **pooled over all variants without their labels** at the first
analysis with at least 100 units per variant (blinded sample-size
re-estimation, Kieser & Friede 2003, Stat. Med. 22: the type I error is kept
because the pooled moments carry almost no information on the effect).

Guardrails (:func:`guardrail_power`): with a margin ``δ``, the power of the
non-inferiority test when the true change is 0, ``Φ(δ/SE − z_{1−α})``; without
one, the power of the harm-only check to flag a harm of ``h`` (default the
MDE), ``Φ(h/SE − z_{1−α/(2G)})`` (the one-sided continuous-monitoring boundary
at ``α/G`` at the planned sample). ``SE`` is that of the smallest-weight
treatment against the control at ``total_units``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from scipy import optimize, special

from experiments.domain import AnalysisMethod, Correction, MarginType, MetricKind
from experiments.stats import group_sequential as gs
from experiments.stats.power import Baseline, sample_size


def comparison_alpha(
    alpha: float, treatments: int, method: AnalysisMethod, correction: Correction
) -> float:
    """Level of each treatment-vs-control comparison that the plan assumes (module docstring)."""
    if treatments <= 1:
        return alpha
    if method is AnalysisMethod.BAYESIAN or Correction(correction) is not Correction.NONE:
        return alpha / treatments
    return alpha


@lru_cache(maxsize=256)
def inflation_factor(alpha: float, power: float, looks: int | None = None) -> float:
    """Sample-size inflation of the Lan–DeMets O'Brien–Fleming design over the fixed test.

    Method: module docstring (computed by the recursion of
    :mod:`.group_sequential`, never a tabulated constant).

    Args:
        alpha: two-sided level, in (0, 1).
        power: requested power, in (0, 1).
        looks: number of equally spaced looks; None for continuous monitoring.

    Returns:
        ``IF >= 1``: the group-sequential maximum sample is ``IF ×`` the fixed one.
    """
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    z_a, z_b = float(special.ndtri(1 - alpha / 2)), float(special.ndtri(power))
    if looks is None:
        c = gs.continuous_boundary(alpha)
        return ((c + z_b) / (z_a + z_b)) ** 2
    if looks < 1:
        raise ValueError(f"looks must be >= 1, got {looks}")
    info = tuple((j + 1) / looks for j in range(looks))
    bounds = gs.design_boundaries(info, alpha)

    def gap(drift: float) -> float:
        return gs.design_power(info, bounds, drift) - power

    drift = float(optimize.brentq(gap, 0.0, 4.0 * (z_a + z_b) + 10.0, xtol=1e-10))
    return max(1.0, (drift / (z_a + z_b)) ** 2)


def plan_sample_size(
    baseline: Baseline,
    *,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    weights: Sequence[float] = (0.5, 0.5),
    method: AnalysisMethod = AnalysisMethod.FIXED,
    correction: Correction = Correction.HOLM,
    looks: int | None = None,
    relative: bool = True,
) -> int:
    """Total units that give each treatment the requested power under the method's decision rule.

    Args:
        baseline: the primary metric's mean and per-unit variance (recent
            traffic, or the blinded pooled baseline).
        mde: the effect to detect (relative by default); not 0.
        alpha: the experiment's two-sided level.
        power: the requested power.
        weights: variant weights, the control first.
        method: ``fixed``, ``sequential``, ``group_sequential`` or ``bayesian``.
        correction: the correction across treatments on the primary metric.
        looks: number of looks of a ``group_sequential`` plan (None: any number).
        relative: whether ``mde`` is relative to the baseline mean.

    Returns:
        The planned total sample size ``planned_n``.
    """
    method = AnalysisMethod(method)
    level = comparison_alpha(alpha, len(weights) - 1, method, correction)
    total = sample_size(
        baseline,
        mde=mde,
        relative=relative,
        alpha=level,
        power=power,
        weights=weights,
        sequential=method is AnalysisMethod.SEQUENTIAL,
    )
    if method is AnalysisMethod.GROUP_SEQUENTIAL:
        total = math.ceil(total * inflation_factor(level, power, looks) - 1e-9)
    return total


def plan_units(
    *,
    kind: MetricKind,
    baseline_mean: float | None,
    baseline_var: float | None,
    mde: float,
    alpha: float,
    power: float,
    weights: Sequence[float],
    method: AnalysisMethod = AnalysisMethod.FIXED,
    correction: Correction = Correction.HOLM,
    looks: int | None = None,
) -> int | None:
    """:func:`plan_sample_size` from a baseline mean and variance, or ``None`` when degenerate.

    ``baseline_var`` is the per-unit variance (ignored for conversions, which
    use ``p(1 − p)``); pass the moments pooled over all variants for a blinded
    re-estimation (module docstring). ``None`` when the baseline is undefined or
    degenerate (mean 0, variance 0, a rate outside (0, 1)).
    """
    if baseline_mean is None or baseline_var is None or len(weights) < 2:
        return None
    if not (math.isfinite(baseline_mean) and math.isfinite(baseline_var)):
        return None
    try:
        if kind is MetricKind.CONVERSION:
            baseline = Baseline.conversion(baseline_mean)
        else:
            baseline = Baseline(kind, baseline_mean, baseline_var)
        if baseline.mean == 0.0:
            return None
        return plan_sample_size(
            baseline,
            mde=mde,
            alpha=alpha,
            power=power,
            weights=weights,
            method=method,
            correction=correction,
            looks=looks,
        )
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def guardrail_power(
    baseline: Baseline,
    *,
    total_units: int,
    alpha: float = 0.05,
    weights: Sequence[float] = (0.5, 0.5),
    guardrails: int = 1,
    margin: float | None = None,
    margin_type: MarginType = MarginType.RELATIVE,
    harm: float = 0.05,
) -> float:
    """Power of a guardrail's rule at ``total_units`` (module docstring).

    Args:
        baseline: the guardrail metric's mean and per-unit variance.
        total_units: the planned total sample.
        alpha: the experiment's level.
        weights: variant weights, the control first.
        guardrails: number of guardrail metrics ``G``.
        margin: the non-inferiority margin, or None for a harm-only guardrail.
        margin_type: whether the margin is relative to the baseline mean.
        harm: the relative harm the harm-only check should flag.

    Returns:
        Non-inferiority power when the true change is 0 (with a margin), else
        the power to flag a harm of ``harm``.
    """
    if total_units <= 0 or guardrails < 1:
        raise ValueError("total_units and guardrails must be >= 1")
    total = math.fsum(weights)
    shares = [w / total for w in weights]
    var = baseline.var
    se = math.sqrt(var / (total_units * shares[0]) + var / (total_units * min(shares[1:])))
    if margin is not None:
        delta = margin * abs(baseline.mean) if margin_type is MarginType.RELATIVE else margin
        return float(special.ndtr(delta / se - special.ndtri(1 - alpha)))
    size = abs(harm * baseline.mean)
    crit = gs.continuous_boundary(alpha / guardrails, sides=1)
    return float(special.ndtr(size / se - crit))
