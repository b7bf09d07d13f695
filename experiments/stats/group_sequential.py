"""Group-sequential boundaries: Lan–DeMets O'Brien–Fleming-type alpha spending.

A look at ``n`` of a maximum of ``planned_n`` units has information fraction
``t = min(1, n / planned_n)``. Under the null the z statistics of the looks
behave as ``Z(t) = B(t)/√t`` for a Brownian motion ``B`` (the canonical joint
distribution, Jennison & Turnbull 2000, "Group Sequential Methods with
Applications to Clinical Trials", ch. 3). Boundaries ``|Z_j| ≥ c_j`` spend

    α(t) = 2 − 2Φ(z_{1−α/2} / √t)

(Lan & DeMets 1983, "Discrete sequential boundaries for clinical trials",
Biometrika 70(3), the O'Brien–Fleming-type spending function): ``c_j`` is the
value for which ``P(cross at some look ≤ j) = α(t_j)``. The crossing
probabilities come from the recursive numerical integration of Armitage,
McPherson & Rowe (1969, J. R. Statist. Soc. A 132) as Jennison & Turnbull
(2000, ch. 19) describe it, in its mass form: the probability of not having
stopped is carried on cells of width ≤ ``GRID_STEP`` of the continuation
region on the ``B`` scale, and moved from look to look with the exact normal
increment (variance ``t_j − t_{j−1}``, plus ``w²/12`` for the spread of the mass
within a source cell of width ``w``). Any number and timing of looks is valid;
the boundary of a look depends only on the information of that look and of
the earlier ones (and their boundaries, which are reused when known).

When the earlier looks are unknown, a boundary valid under continuous
monitoring is used: ``|B(t)| ≥ c`` on ``[0, 1]``, i.e. ``|Z(t)| ≥ c/√t``, with
``c`` solving ``P(sup_{t ≤ 1} |B(t)| ≥ c) = α`` by the reflection-principle
series ``P(sup|B| < c) = Σ_k (−1)^k [Φ((2k+1)c) − Φ((2k−1)c)]`` (Feller 1971,
"An Introduction to Probability Theory", vol. 2, X.5; c = 2.2414 for
α = 0.05). It holds for any looks whatsoever and is a little conservative.

One-sided designs (the harm checks of guardrails) use the same spending with
only the upper boundary; the continuous one-sided boundary is
``c = z_{1−α/2}`` (``P(sup B ≥ c) = 2(1 − Φ(c))``).

The **repeated p-value** of a look is the smallest level α' whose design (the
same looks, boundaries at α') the look's ``z`` crosses (Jennison & Turnbull
2000, Sec. 9.1); the repeated confidence interval is ``estimate ± c_k·se``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import interpolate, optimize, special

FloatArray = npt.NDArray[np.float64]

GRID_STEP = 0.03
"""Largest cell width of the numerical integration, on the ``B(t)`` scale."""
_TAIL = 8.5
"""Standard deviations kept beyond the mean where a region has no boundary."""
_LEVELS = np.array([1e-10, 1e-8, 1e-6, 1e-4, 1e-3, 0.004, 0.012, 0.03, 0.06, 0.12, 0.25, 0.5, 0.8])
"""Levels of the table that inverts the boundary into a repeated p-value."""


def _check_level(level: float) -> None:
    if not (math.isfinite(level) and 0.0 < level < 1.0):
        raise ValueError(f"level must be in (0, 1), got {level}")


def _check_sides(sides: int) -> None:
    if sides not in (1, 2):
        raise ValueError(f"sides must be 1 or 2, got {sides}")


def information_fraction(n: float, planned_n: float) -> float:
    """``min(1, n / planned_n)``, the information fraction of a look."""
    if not planned_n > 0:
        raise ValueError(f"planned_n must be > 0, got {planned_n}")
    if not n > 0:
        raise ValueError(f"n must be > 0, got {n}")
    return min(1.0, n / planned_n)


def spent_alpha(information: float, level: float) -> float:
    """O'Brien–Fleming-type spending ``α(t) = 2 − 2Φ(z_{1−α/2}/√t)`` (Lan & DeMets 1983).

    Args:
        information: the information fraction ``t`` in (0, 1].
        level: the design's level α (two-sided, or one-sided for a one-sided design).

    Returns:
        The level spent by the looks up to ``t``; ``α(1) = α``.
    """
    _check_level(level)
    if not 0.0 < information <= 1.0:
        raise ValueError(f"information must be in (0, 1], got {information}")
    z = float(special.ndtri(1.0 - level / 2.0))
    return float(2.0 * special.ndtr(-z / math.sqrt(information)))


def continuous_crossing(c: float, sides: int = 2) -> float:
    """``P(sup_{t ≤ 1} |B(t)| ≥ c)`` (two-sided) or ``P(sup B(t) ≥ c)`` (one-sided).

    Two-sided: one minus the reflection series
    ``Σ_k (−1)^k [Φ((2k+1)c) − Φ((2k−1)c)]`` (Feller 1971, X.5), or for small
    ``c`` its Fourier form ``(4/π) Σ_k (−1)^k/(2k+1)·exp(−(2k+1)²π²/(8c²))``.
    One-sided: ``2(1 − Φ(c))`` by the reflection principle.
    """
    _check_sides(sides)
    if c <= 0.0:
        return 1.0
    if sides == 1:
        return min(1.0, float(2.0 * special.ndtr(-c)))
    if c >= 1.0:
        # Σ over k of (−1)^k [Φ((2k+1)c) − Φ((2k−1)c)], written with tails for accuracy.
        miss = 0.0
        for k in range(1, 8):
            tail = special.ndtr(-(2 * k - 1) * c) - special.ndtr(-(2 * k + 1) * c)
            miss += (-1) ** (k + 1) * 2.0 * tail
        return float(min(1.0, max(0.0, 2.0 * special.ndtr(-c) + miss)))
    odd = 2.0 * np.arange(0, 60) + 1.0
    signs = np.where(np.arange(0, 60) % 2 == 0, 1.0, -1.0)
    terms = signs / odd * np.exp(-(odd**2) * math.pi**2 / (8 * c * c))
    return float(min(1.0, max(0.0, 1.0 - 4.0 / math.pi * terms.sum())))


@lru_cache(maxsize=256)
def continuous_boundary(level: float, sides: int = 2) -> float:
    """The ``c`` with ``P(sup_{t ≤ 1} |B(t)| ≥ c) = level`` (one-sided: ``z_{1−level/2}``).

    The z-scale boundary at information ``t`` is ``c/√t``; it is valid for any
    number and timing of looks (continuous monitoring).
    """
    _check_level(level)
    _check_sides(sides)
    if sides == 1:
        return float(special.ndtri(1.0 - level / 2.0))
    return float(optimize.brentq(lambda c: continuous_crossing(c) - level, 1e-3, 40.0, xtol=1e-12))


def continuous_p_value(z: float, information: float, sides: int = 2) -> float:
    """Repeated p-value of ``z`` against the continuous-monitoring boundary.

    ``P(sup|B| ≥ |z|√t)`` (two-sided) or ``P(sup B ≥ z√t)`` (one-sided; 1 when z ≤ 0).
    """
    _check_sides(sides)
    if not 0.0 < information <= 1.0:
        raise ValueError(f"information must be in (0, 1], got {information}")
    if not math.isfinite(z):
        return 0.0
    score = (abs(z) if sides == 2 else z) * math.sqrt(information)
    return 1.0 if score <= 0.0 else continuous_crossing(score, sides)


class _Masses:
    """Probability of not having stopped, on the cells of a look's continuation region."""

    def __init__(self, mids: FloatArray, mass: FloatArray, width: float) -> None:
        self.mids, self.mass, self.width = mids, mass, width


def _region(b: float, t: float, sides: int, drift: float) -> tuple[float, float]:
    reach = abs(drift) * t + _TAIL * math.sqrt(t)
    high = min(b, reach) if math.isfinite(b) else reach
    low = -high if sides == 2 else -reach
    return low, high


def _cells(low: float, high: float) -> tuple[FloatArray, float]:
    count = max(1, math.ceil((high - low) / GRID_STEP))
    width = (high - low) / count
    return np.linspace(low, high, count + 1), width


def _cross(prev: _Masses | None, b: float, t: float, dt: float, sides: int, drift: float) -> float:
    """Probability of crossing at this look (boundary ``b`` on the B scale) and not before."""
    if not math.isfinite(b):
        return 0.0
    if prev is None:
        mean, sd = drift * t, math.sqrt(t)
        upper = special.ndtr((mean - b) / sd)
        return float(upper + (special.ndtr((-b - mean) / sd) if sides == 2 else 0.0))
    sd = math.sqrt(dt + prev.width**2 / 12.0)
    centre = prev.mids + drift * dt
    upper = special.ndtr((centre - b) / sd)
    if sides == 2:
        upper = upper + special.ndtr((-b - centre) / sd)
    return float(upper @ prev.mass)


def _advance(
    prev: _Masses | None, b: float, t: float, dt: float, sides: int, drift: float
) -> _Masses:
    """The masses of the continuation region of this look."""
    low, high = _region(b, t, sides, drift)
    edges, width = _cells(low, high)
    if prev is None:
        cdf = special.ndtr((edges - drift * t) / math.sqrt(t))
        mass = np.diff(cdf)
    else:
        sd = math.sqrt(dt + prev.width**2 / 12.0)
        cdf = special.ndtr((edges[:, None] - prev.mids[None, :] - drift * dt) / sd)
        mass = np.diff(cdf, axis=0) @ prev.mass
    mids = 0.5 * (edges[1:] + edges[:-1])
    return _Masses(mids, np.asarray(mass, dtype=np.float64), width)


def _check_information(information: Sequence[float]) -> tuple[float, ...]:
    info = tuple(float(t) for t in information)
    if not info:
        raise ValueError("a design needs at least one look")
    if any(not 0.0 < t <= 1.0 for t in info):
        raise ValueError("information fractions must be in (0, 1]")
    if any(b <= a for a, b in itertools.pairwise(info)):
        raise ValueError("information fractions must increase from look to look")
    return info


def _solve(prev: _Masses | None, target: float, t: float, dt: float, sides: int) -> float:
    """The B-scale boundary whose crossing probability at this look is ``target``."""
    if target <= 1e-15:
        return math.inf

    def gap(b: float) -> float:
        return _cross(prev, b, t, dt, sides, 0.0) - target

    high = 1.0
    while gap(high) > 0.0:
        high *= 2.0
        if high > 1e3:
            return math.inf
    if gap(1e-9) < 0.0:
        return 0.0
    return float(optimize.brentq(gap, 1e-9, high, xtol=1e-10, rtol=1e-12))


@lru_cache(maxsize=4096)
def _design(
    information: tuple[float, ...], level: float, sides: int, given: tuple[float, ...]
) -> tuple[float, ...]:
    boundaries: list[float] = []
    prev: _Masses | None = None
    spent = 0.0
    last_t = 0.0
    for j, t in enumerate(information):
        dt = t - last_t
        if j < len(given):
            c = given[j]
            b = c * math.sqrt(t)
        else:
            b = _solve(prev, spent_alpha(t, level) - spent, t, dt, sides)
            c = b / math.sqrt(t)
        spent += _cross(prev, b, t, dt, sides, 0.0)
        boundaries.append(c)
        if j + 1 < len(information):
            prev = _advance(prev, b, t, dt, sides, 0.0)
        last_t = t
    return tuple(boundaries)


def design_boundaries(
    information: Sequence[float],
    level: float,
    *,
    sides: int = 2,
    given: Sequence[float] = (),
) -> tuple[float, ...]:
    """The z-scale boundaries ``c_j`` of every look of a Lan–DeMets O'Brien–Fleming design.

    Method: module docstring (alpha spending by recursive numerical integration).
    Each ``c_j`` is chosen so that the probability of crossing at a look up to
    ``j`` is exactly ``α(t_j)``, given the boundaries actually used before.

    Args:
        information: increasing information fractions of the looks, in (0, 1].
        level: the design's level (two-sided α, or the one-sided level).
        sides: 2 for ``|Z| ≥ c``, 1 for ``Z ≥ c``.
        given: boundaries already used at the first looks (reused as they are).

    Returns:
        One boundary per look (``inf`` when a look has no level left to spend).
    """
    _check_level(level)
    _check_sides(sides)
    info = _check_information(information)
    if len(given) > len(info):
        raise ValueError("more boundaries given than looks")
    return _design(info, float(level), sides, tuple(float(c) for c in given))


@lru_cache(maxsize=1024)
def _p_curve(
    information: tuple[float, ...], sides: int, knots: tuple[float, ...]
) -> tuple[float, float, interpolate.PchipInterpolator] | None:
    """``log(level)`` as a function of ``c²`` of the last look's boundary (None: no boundary)."""
    levels = np.unique(np.concatenate([_LEVELS, np.asarray(knots, dtype=float)]))
    bounds = np.array([design_boundaries(information, float(a), sides=sides)[-1] for a in levels])
    finite = np.isfinite(bounds)
    levels, bounds = levels[finite], bounds[finite]
    if levels.size == 0:
        return None
    # Boundaries fall as the level grows: ascending c², anchored at (0, log 1).
    order = np.argsort(bounds**2, kind="stable")
    c2 = np.concatenate([[0.0], bounds[order] ** 2])
    log_level = np.concatenate([[0.0], np.log(levels[order])])
    return float(c2[-1]), float(log_level[-1]), interpolate.PchipInterpolator(c2, log_level)


def design_p_value(
    z: float,
    information: Sequence[float],
    *,
    sides: int = 2,
    knots: Sequence[float] = (),
) -> float:
    """The repeated p-value of the last look: the smallest level whose design this ``z`` crosses.

    Method: the last-look boundary ``c_K(α')`` of the design of the same looks at
    level α' is computed for 13 levels from 1e-10 to 0.8 and at ``knots``, and
    inverted by monotone cubic (PCHIP) interpolation of ``log α'`` in ``c²``
    (the normal tail makes it nearly linear). At a knot the inversion is exact, so
    ``p < knot`` exactly when ``|z| > c_K(knot)``; pass the levels a decision
    compares p with (α, α/2, ... for Holm).

    Args:
        z: the z statistic of the last look (for one-sided designs, signed so
            that large is the tested direction).
        information: the information fractions of the looks, the last one this look.
        sides: 2 or 1.
        knots: levels at which the inversion must be exact.

    Returns:
        The repeated p-value in [0, 1].
    """
    _check_sides(sides)
    info = _check_information(information)
    score = abs(z) if sides == 2 else z
    if not math.isfinite(score):
        return 0.0 if score > 0 else 1.0
    if score <= 0.0:
        return 1.0
    clean = tuple(sorted({float(k) for k in knots if 0.0 < k < 1.0}))
    curve = _p_curve(info, sides, clean)
    if curve is None:
        return 1.0
    c2_last, log_last, pchip = curve
    s2 = score * score
    if s2 >= c2_last:
        # Beyond the table the normal tail: log p falls by (c² − c²_last)/2.
        return float(math.exp(log_last - 0.5 * (s2 - c2_last)))
    return min(1.0, math.exp(float(pchip(s2))))


def design_power(
    information: Sequence[float], boundaries: Sequence[float], drift: float, *, sides: int = 2
) -> float:
    """Probability of crossing some boundary when ``B(t)`` has drift ``drift·t``.

    ``drift`` is the z statistic expected at full information (``t = 1``);
    ``boundaries`` are z-scale, one per look. Same recursion as the boundaries.
    """
    _check_sides(sides)
    info = _check_information(information)
    if len(boundaries) != len(info):
        raise ValueError("one boundary per look is needed")
    prev: _Masses | None = None
    total, last_t = 0.0, 0.0
    for j, (t, c) in enumerate(zip(info, boundaries, strict=True)):
        dt, b = t - last_t, c * math.sqrt(t)
        total += _cross(prev, b, t, dt, sides, drift)
        if j + 1 < len(info):
            prev = _advance(prev, b, t, dt, sides, drift)
        last_t = t
    return min(1.0, total)
