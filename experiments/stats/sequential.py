"""Always-valid inference: normal-mixture confidence sequences and mSPRT p-values.

Method (Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform, nonparametric,
nonasymptotic confidence sequences", Ann. Statist. 49(2), the two-sided normal
mixture boundary, Prop. 5 / eq. (14); Johari, Koomen, Pekelis & Walsh 2017,
"Peeking at A/B tests", KDD, the mixture SPRT). Let ``S_t`` be a sum of ``t``
centred observations of variance ``σ²`` and ``V_t = tσ²`` its intrinsic time.
Mixing the exponential supermartingale ``exp(λS_t − λ²V_t/2)`` over
``λ ~ N(0, 1/ρ)`` gives

    M_t = √(ρ / (V_t + ρ)) · exp(S_t² / (2(V_t + ρ))),

a nonnegative martingale with ``M_0 = 1``, so by Ville's inequality
``P(∃t: M_t ≥ 1/α) ≤ α``. Solving ``M_t < 1/α`` for ``S_t`` gives the
two-sided boundary ``|S_t| < √((V_t + ρ) log((V_t + ρ) / (ρα²)))``.

For a difference of means (treatment − control) with estimate ``θ̂`` and plug-in
standard error ``s`` at ``n`` total units, write ``σ² = n s²`` (so ``s² = σ²/n``),
``S_n = n(θ̂ − θ)`` and ``ρ = r σ²`` with ``r`` measured in units. Then, with
``z = θ̂ / s``:

    half-width_n = s · √( (n + r)/n · log((n + r) / (r α²)) )
    Λ_n          = √(r / (n + r)) · exp( z² n / (2(n + r)) )      (mSPRT ratio, θ₀ = 0)
    p_n          = min(1, 1/Λ_n)

and ``p_n ≤ α`` exactly when 0 lies outside ``θ̂ ± half-width_n``.

One-sided (the harm check of a guardrail): mixing over ``λ > 0`` only, with the
half-normal density ``2·N(0, 1/ρ)``, gives the martingale

    M⁺_n = 2√(r/(n + r)) · exp(z² n / (2(n + r))) · Φ(z √(n/(n + r))),

so ``p⁺_n = min(1, 1/M⁺_n)`` is an always-valid p-value of "no harm" (θ ≤ 0
against θ > 0, ``z`` signed so that positive is harm): Ville's inequality again.

Running state (Johari et al. 2017, Sec. 4): the reported p-value is the running
minimum over the looks and the interval the running intersection, so a crossed
boundary stays crossed. Both are valid because the bound holds simultaneously
for every look. :func:`update_running` keeps them (an empty intersection, an
event of probability ≤ α under a constant effect, keeps the end of the earlier
interval nearest the new one, so the side of 0 it established is kept).

Tuning (Howard et al. 2021, Sec. 3.5): the boundary at a target time
``m = n*`` is smallest when ``x = 1 + n*/r`` solves ``x − 1 − log x = 2 log(1/α)``,
i.e. ``x* = −W₋₁(−α²/e)`` with ``W₋₁`` the lower branch of Lambert's W, so
``r* = n* / (x* − 1)``. At ``n = n*`` the interval is ``θ̂ ± c_α s`` with the
constant ``c_α = √(x*/(x* − 1) · log(x*/α²))`` (≈ 3.03 for α = 0.05, against
1.96 for a single look).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special

from experiments.stats.spec import Interval, RunningBound


@dataclass(frozen=True)
class SequentialInterval:
    """An always-valid interval and p-value for a difference at one look.

    Attributes:
        ci_low: lower end of the confidence sequence at this look (None when undefined).
        ci_high: upper end (None when undefined).
        p_value: always-valid two-sided p-value of "no difference" (None when undefined).
    """

    ci_low: float | None
    ci_high: float | None
    p_value: float | None


def _check_alpha(alpha: float) -> None:
    if not (math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def optimal_mixing_ratio(alpha: float) -> float:
    """The ``x* = 1 + n*/r*`` that makes the boundary tightest at ``n*``.

    Solves ``x − 1 − log x = 2 log(1/α)`` for ``x > 1`` in closed form,
    ``x* = −W₋₁(−α²/e)`` (Howard et al. 2021, Sec. 3.5).

    Args:
        alpha: the level of the confidence sequence, in (0, 1).

    Returns:
        ``x*`` (> 1).
    """
    _check_alpha(alpha)
    return float(-special.lambertw(-(alpha**2) / math.e, k=-1).real)


def mixing_units(planned_n: int, alpha: float) -> float:
    """The mixing scale ``r*`` (in units) tuned so the boundary is tightest at ``planned_n``.

    ``r* = n* / (x* − 1)`` with ``x*`` from :func:`optimal_mixing_ratio`.

    Args:
        planned_n: the planned total sample size ``n*`` (> 0).
        alpha: the level, in (0, 1).

    Returns:
        ``r*`` (> 0).
    """
    if planned_n <= 0:
        raise ValueError(f"planned_n must be > 0, got {planned_n}")
    return planned_n / (optimal_mixing_ratio(alpha) - 1.0)


def boundary_z(n: float, planned_n: int, alpha: float) -> float:
    """The critical ``|z| = |θ̂|/s`` of the normal-mixture boundary at ``n`` units.

    ``c(n) = √((n + r)/n · log((n + r)/(r α²)))`` with ``r = r*(planned_n)``; the
    always-valid interval is ``θ̂ ± c(n)·s`` and the test rejects when ``|z| ≥ c(n)``.

    Args:
        n: current total number of units (> 0).
        planned_n: planned total sample size the mixture is tuned for (> 0).
        alpha: the level, in (0, 1).

    Returns:
        The critical value ``c(n)``.
    """
    if not n > 0:
        raise ValueError(f"n must be > 0, got {n}")
    r = mixing_units(planned_n, alpha)
    return math.sqrt((n + r) / n * (math.log((n + r) / r) - 2.0 * math.log(alpha)))


def sequential_interval(
    estimate: float,
    std_err: float,
    n: int,
    planned_n: int,
    alpha: float,
    *,
    previous_p_value: float | None = None,
) -> SequentialInterval:
    """Always-valid normal-mixture confidence sequence for a difference, at one look.

    Method: the two-sided normal-mixture boundary of Howard et al. (2021, eq. 14)
    and the mixture SPRT of Johari et al. (2017) with plug-in variance, the mixing
    variance tuned so the boundary is tightest at ``planned_n`` (see the module
    docstring for the formulas)::

        θ̂ ± s·√((n + r)/n · log((n + r)/(r α²))),   r = n*/(x* − 1)
        p = min(1, √((n + r)/r) · exp(−z² n / (2(n + r)))),   z = θ̂/s

    Peeking at every look keeps ``P(any p ≤ α) ≤ α`` (Ville's inequality). Passing
    the previous look's p-value makes the reported p-value the running minimum,
    as Johari et al. define it.

    Args:
        estimate: the difference ``θ̂`` (treatment − control) at this look.
        std_err: its plug-in standard error ``s`` at ``n`` units.
        n: the current total number of units (all variants compared).
        planned_n: the planned total number of units ``n*``.
        alpha: the level, in (0, 1).
        previous_p_value: the always-valid p-value at the previous look, if any.

    Returns:
        The interval and p-value; all None when ``std_err`` is 0 or not finite,
        or the estimate is not finite.
    """
    _check_alpha(alpha)
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n}")
    if planned_n <= 0:
        raise ValueError(f"planned_n must be > 0, got {planned_n}")
    if previous_p_value is not None and not 0.0 <= previous_p_value <= 1.0:
        raise ValueError(f"previous_p_value must be in [0, 1], got {previous_p_value}")
    if not (math.isfinite(estimate) and math.isfinite(std_err)) or std_err <= 0.0:
        return SequentialInterval(None, None, None)
    r = mixing_units(planned_n, alpha)
    half_width = std_err * boundary_z(n, planned_n, alpha)
    z = estimate / std_err
    # log Λ = ½ log(r/(n + r)) + z² n / (2(n + r)); p = min(1, e^{−log Λ}).
    log_lr = 0.5 * math.log(r / (n + r)) + z * z * n / (2.0 * (n + r))
    p_value = math.exp(-log_lr) if log_lr > 0.0 else 1.0
    if previous_p_value is not None:
        p_value = min(p_value, previous_p_value)
    return SequentialInterval(estimate - half_width, estimate + half_width, p_value)


def one_sided_p_value(z: float, n: int, n_star: int, alpha: float) -> float:
    """Always-valid one-sided p-value ``min(1, 1/M⁺_n)`` of the half-normal mixture.

    Method: module docstring (half-normal mixture of Howard et al. 2021's
    exponential supermartingales; Ville's inequality). ``z`` is signed so that a
    large positive value is evidence against the null (harm, for a guardrail).

    Args:
        z: the z statistic at this look, signed in the tested direction.
        n: current total units of the two variants (> 0).
        n_star: the frozen tuning sample (> 0).
        alpha: the level the mixture is tuned for, in (0, 1).

    Returns:
        The p-value in (0, 1].
    """
    _check_alpha(alpha)
    if n <= 0 or n_star <= 0:
        raise ValueError(f"n and n_star must be > 0, got {n} and {n_star}")
    if not math.isfinite(z):
        return 0.0 if z > 0 else 1.0
    r = mixing_units(n_star, alpha)
    log_m = (
        math.log(2.0)
        + 0.5 * math.log(r / (n + r))
        + z * z * n / (2.0 * (n + r))
        + float(special.log_ndtr(z * math.sqrt(n / (n + r))))
    )
    return 1.0 if log_m <= 0.0 else math.exp(-log_m)


def intersect(previous: Interval | None, current: Interval | None) -> Interval | None:
    """Running intersection of two intervals (module docstring for an empty one)."""
    if previous is None:
        return current
    if current is None:
        return previous
    low, high = max(previous[0], current[0]), min(previous[1], current[1])
    if low <= high:
        return (low, high)
    end = previous[1] if current[0] > previous[1] else previous[0]
    return (end, end)


def update_running(
    previous: RunningBound | None,
    p_value: float | None,
    ci: Interval | None,
    rel_ci: Interval | None,
) -> RunningBound:
    """The running minimum p-value and running intersections after this look."""
    if previous is None:
        return RunningBound(p_value, ci, rel_ci)
    p = p_value if previous.p_value is None else previous.p_value
    if p_value is not None and previous.p_value is not None:
        p = min(p_value, previous.p_value)
    return RunningBound(p, intersect(previous.ci, ci), intersect(previous.rel_ci, rel_ci))
