"""Relative lift and its Fieller interval, sign-safe (DESIGN.md "Statistical engine").

The relative lift of a treatment is ``L = (m_t − m_c) / |m_c|``: it has the sign
of the change whatever the sign of the control mean (a control of −10 and a
treatment of −8 is a lift of +20%).

**Zero within rounding.** A control mean with ``|m_c| ≤ ZERO_TOLERANCE·scale``,
``scale = max(|shift|, sd, |m_t|)`` (the per-metric reference the sums were
shifted by, the larger per-unit standard deviation of the two variants, the
treatment mean), is 0 up to floating-point rounding of sums of that size: the
lift is then ``None`` with a reason, never 1e16.

**Fieller's interval** (Fieller 1954, "Some problems in interval estimation",
J. R. Statist. Soc. B 16(2); for two independent means e.g. Franz 2007,
"Ratios: a short guide to confidence limits and proper use", arXiv:0710.2024).
With ``v_c, v_t`` the variances of the two means and ``c`` the critical value of
the interval of the difference, the set of ratios ``ρ = μ_t/μ_c`` that the test
of ``μ_t − ρμ_c = 0`` does not reject,

    (m_t − ρ m_c)² ≤ c² (v_t + ρ² v_c),

is the interval

    ρ = (m_t m_c ± c √(m_t² v_c + m_c² v_t − c² v_c v_t)) / (m_c² − c² v_c)

when ``m_c² > c² v_c`` (the control mean is distinguishable from 0); otherwise
it is unbounded and reported as ``None``. It maps to the lift by
``L = sign(m_c)(ρ − 1)``. At ``ρ = 1`` the inequality is ``(m_t − m_c)² ≤ c²(v_c + v_t)``,
the interval of the difference: the relative interval excludes 0 exactly when
the interval of the difference does (a tie lost to rounding is resolved in
favour of the interval of the difference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Interval = tuple[float, float]

ZERO_TOLERANCE = 1e-12
NOT_DISTINGUISHABLE = "control mean not distinguishable from 0: relative interval unbounded"
ZERO_CONTROL = "control mean is 0 (within rounding): relative lift undefined"


@dataclass(frozen=True)
class RelativeLift:
    """A relative lift, its interval and why either is missing.

    Attributes:
        rel_lift: ``(m_t − m_c)/|m_c|``, or None.
        rel_ci: Fieller interval of the lift, or None.
        reason: why ``rel_lift`` or ``rel_ci`` is None.
    """

    rel_lift: float | None
    rel_ci: Interval | None
    reason: str | None


def is_zero_within_rounding(mean_c: float, scale: float) -> bool:
    """Whether ``|m_c| ≤ ZERO_TOLERANCE · scale`` (or m_c is exactly 0)."""
    return mean_c == 0.0 or abs(mean_c) <= ZERO_TOLERANCE * abs(scale)


def is_distinguishable_from_zero(mean_c: float, var_mean_c: float, crit: float) -> bool:
    """``m_c² > crit²·v_c``: the interval of the control mean excludes 0."""
    return math.isfinite(var_mean_c) and mean_c * mean_c > crit * crit * var_mean_c


def agree_with_difference(low: float, high: float, abs_ci: Interval | None) -> Interval:
    """Move an end of a relative interval to 0 so it excludes 0 exactly when ``abs_ci`` does.

    For one Fieller interval this only resolves rounding ties. For the running
    intersections of ``sequential`` it also carries the sign established by the
    interval of the difference (an always-valid interval that excluded 0 once).
    """
    if abs_ci is None:
        return low, high
    if abs_ci[0] > 0.0 and low <= 0.0:
        low = math.nextafter(0.0, 1.0)
    elif abs_ci[1] < 0.0 and high >= 0.0:
        high = -math.nextafter(0.0, 1.0)
    elif abs_ci[0] <= 0.0 <= abs_ci[1]:
        low, high = min(low, 0.0), max(high, 0.0)
    return low, high


def fieller_interval(
    mean_c: float,
    var_mean_c: float,
    mean_t: float,
    var_mean_t: float,
    crit: float,
    *,
    abs_ci: Interval | None = None,
) -> Interval | None:
    """Fieller interval of the sign-safe lift ``(μ_t − μ_c)/|μ_c|`` of two independent means.

    Method: module docstring (Fieller 1954).

    Args:
        mean_c: control mean ``m_c``.
        var_mean_c: variance of the control mean ``v_c``.
        mean_t: treatment mean ``m_t``.
        var_mean_t: variance of the treatment mean ``v_t``.
        crit: the critical value of the interval of the difference.
        abs_ci: ``m_t − m_c ± crit·√(v_c + v_t)``, to break rounding ties in its favour.

    Returns:
        ``(low, high)`` of the lift, or None when ``m_c² ≤ crit²·v_c`` (unbounded)
        or an input is not finite.
    """
    values = (mean_c, var_mean_c, mean_t, var_mean_t, crit)
    if not all(math.isfinite(v) for v in values) or var_mean_c < 0 or var_mean_t < 0:
        return None
    a = mean_c * mean_c - crit * crit * var_mean_c
    if not a > 0.0:
        return None
    disc = (
        mean_t * mean_t * var_mean_c
        + mean_c * mean_c * var_mean_t
        - crit * crit * var_mean_c * var_mean_t
    )
    root = crit * math.sqrt(max(disc, 0.0))
    # ρ − 1 = (m_c (m_t − m_c) + c² v_c ± root) / a, written without cancellation.
    centre = mean_c * (mean_t - mean_c) + crit * crit * var_mean_c
    low, high = (centre - root) / a, (centre + root) / a
    if mean_c < 0.0:
        low, high = -high, -low
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return agree_with_difference(low, high, abs_ci)


def relative_lift(
    mean_c: float,
    var_mean_c: float,
    mean_t: float,
    var_mean_t: float,
    crit: float,
    *,
    scale: float,
    abs_ci: Interval | None = None,
) -> RelativeLift:
    """Sign-safe relative lift ``(m_t − m_c)/|m_c|`` with its Fieller interval.

    Args:
        mean_c: control mean.
        var_mean_c: variance of the control mean.
        mean_t: treatment mean.
        var_mean_t: variance of the treatment mean.
        crit: critical value of the interval of the difference (t with Welch's ν
            for means, z otherwise, the boundary of a sequential method).
        scale: the metric's scale for the zero-within-rounding test (module docstring).
        abs_ci: the interval of the difference (ties are resolved in its favour).

    Returns:
        The lift, its interval and the reason for what is None.
    """
    if not (math.isfinite(mean_c) and math.isfinite(mean_t)):
        return RelativeLift(None, None, "means are not finite: relative lift undefined")
    if is_zero_within_rounding(mean_c, max(abs(scale), abs(mean_t))):
        return RelativeLift(None, None, ZERO_CONTROL)
    lift = (mean_t - mean_c) / abs(mean_c)
    if not math.isfinite(lift):
        return RelativeLift(None, None, "relative lift is not a finite number")
    ci = fieller_interval(mean_c, var_mean_c, mean_t, var_mean_t, crit, abs_ci=abs_ci)
    reason = None
    if ci is None:
        finite = math.isfinite(var_mean_c) and math.isfinite(var_mean_t)
        reason = NOT_DISTINGUISHABLE if finite else "variance undefined: no relative interval"
    return RelativeLift(lift, ci, reason)
