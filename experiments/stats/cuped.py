"""CUPED: variance reduction with a pre-exposure covariate (Deng, Xu, Kohavi & Walker 2013).

Mean, count and conversion metrics (columns ``[y, x]``):

* ``θ = cov(y, x) / var(x)`` over all units of all variants taken as one sample
  (the summed :class:`Moments`), ``x̄`` the mean of ``x`` over all units;
* per variant the adjusted values ``y − θ(x − x̄)`` have mean
  ``ȳ_v − θ(x̄_v − x̄)`` and ddof-1 variance
  ``var_v(y) − 2θ·cov_v(y, x) + θ²·var_v(x)``; Welch's test runs on them;
* ``variance_reduction = 1 − var(y_adj) / var(y)`` over all units.

Ratio metrics (columns ``[num, den, num_pre, den_pre]``): the ratio ``R = Σnum/Σden``
is linearised per unit as ``ψ = (num − R·den) / μ_den`` — its delta-method
influence function, so ``Var(R̂) ≈ var(ψ)/n`` (Deng, Knoblich & Lu 2018,
"Applying the delta method in metric analytics", §3.3 on CUPED for ratios).
We regress ψ on both pre-period columns, ``θ = Σ_xx⁻¹ Σ_xψ`` (ordinary least
squares with a pseudo-inverse, so a constant pre-period denominator is simply
ignored). Two covariates rather than the linearised pre-period ratio because
that ratio's linearisation is one particular combination of ``num_pre`` and
``den_pre``: OLS on both can only remove as much variance or more. Per variant
the adjusted ratio is ``R_v − θ·(x̄_v − x̄)`` with variance
``var_v(ψ_v − θ·x) / n_v``, where ``ψ_v`` uses the variant's own ratio and
denominator mean; the test is a z-test.

Estimating θ from the pooled sample ignores its own sampling error, which is of
order 1/n and standard practice (Deng et al. 2013, §3.3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from experiments.domain import MetricKind
from experiments.stats.frequentist import Difference, finite, normal_test, welch_test
from experiments.stats.summaries import Moments

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CupedFit:
    """The pooled CUPED regression of one metric.

    Attributes:
        kind: the metric kind (ratio metrics use two covariates).
        theta: regression coefficients, one per covariate column.
        covariate_means: ``x̄`` over all units, one per covariate column.
        variance_reduction: ``1 − var(y_adj)/var(y)`` over all units, or ``None``.
        reasons: why θ was set to 0 or the reduction is undefined.
    """

    kind: MetricKind
    theta: tuple[float, ...]
    covariate_means: tuple[float, ...]
    variance_reduction: float | None
    reasons: tuple[str, ...] = ()


def covariance_matrix(m: Moments) -> FloatArray:
    """The ``k × k`` ddof-1 covariance matrix of the columns of ``m`` (NaN when n < 2)."""
    return np.array([[m.cov(i, j) for j in range(m.k)] for i in range(m.k)], dtype=float)


def _layout(kind: MetricKind, k: int) -> tuple[list[int], list[int]]:
    if kind is MetricKind.RATIO:
        if k != 4:
            raise ValueError(
                f"CUPED on a ratio needs 4 columns [num, den, num_pre, den_pre], got {k}"
            )
        return [0, 1], [2, 3]
    if kind.is_ml:
        raise ValueError(f"CUPED does not apply to ML metric kind {kind}")
    if k != 2:
        raise ValueError(f"CUPED on a {kind} metric needs 2 columns [y, x], got {k}")
    return [0], [1]


def _target(m: Moments, kind: MetricKind) -> tuple[float, FloatArray] | None:
    """The estimate and its linearisation weights over the outcome columns."""
    if m.n == 0:
        return None
    if kind is MetricKind.RATIO:
        mu_den = m.mean(1)
        if mu_den == 0.0:
            return None
        r = m.mean(0) / mu_den
        return r, np.array([1.0 / mu_den, -r / mu_den])
    return m.mean(0), np.array([1.0])


def fit_cuped(moments: Sequence[Moments], kind: MetricKind) -> CupedFit:
    """Fit θ on all units of all variants (the sum of the variants' moments)."""
    if not moments:
        raise ValueError("fit_cuped needs the moments of at least one variant")
    outcome, covariates = _layout(kind, moments[0].k)
    pooled = moments[0]
    for m in moments[1:]:
        pooled = pooled + m
    zero = tuple(0.0 for _ in covariates)
    x_bar = tuple(pooled.mean(i) for i in covariates) if pooled.n else zero
    target = _target(pooled, kind)
    if pooled.n < 3 or target is None:
        return CupedFit(kind, zero, x_bar, None, ("too few units to fit the CUPED regression",))
    _, a = target
    s = covariance_matrix(pooled)
    s_xx = s[np.ix_(covariates, covariates)]
    s_xy = s[np.ix_(covariates, outcome)] @ a
    if not np.any(np.diag(s_xx) > 0.0):
        return CupedFit(kind, zero, x_bar, None, ("the covariate has no variance",))
    theta = np.linalg.pinv(s_xx) @ s_xy
    w = np.concatenate([a, -theta])
    order = outcome + covariates
    var_y = float(a @ s[np.ix_(outcome, outcome)] @ a)
    var_adj = float(w @ s[np.ix_(order, order)] @ w)
    reduction = finite(1.0 - var_adj / var_y) if var_y > 0.0 else None
    return CupedFit(
        kind,
        tuple(float(t) for t in theta),
        tuple(float(v) for v in x_bar),
        reduction,
        () if reduction is not None else ("the metric has no variance",),
    )


def adjusted_estimate(m: Moments, fit: CupedFit) -> tuple[float, float] | None:
    """Adjusted estimate of one variant and the ddof-1 variance of its adjusted per-unit values.

    Returns ``None`` when the variant is empty or its ratio undefined; the
    variance is NaN when the variant has fewer than 2 units.
    """
    outcome, covariates = _layout(fit.kind, m.k)
    target = _target(m, fit.kind)
    if target is None:
        return None
    estimate, a = target
    theta = np.array(fit.theta)
    shift = sum(
        t * (m.mean(i) - xb)
        for t, i, xb in zip(theta, covariates, fit.covariate_means, strict=True)
    )
    if m.n < 2:
        return estimate - float(shift), math.nan
    order = outcome + covariates
    w = np.concatenate([a, -theta])
    var = float(w @ covariance_matrix(m)[np.ix_(order, order)] @ w)
    return estimate - float(shift), max(var, 0.0)


def compare_adjusted(
    control: Moments, treatment: Moments, fit: CupedFit, *, alpha: float
) -> Difference:
    """Treatment − control on CUPED-adjusted values.

    Welch's test for mean, count and conversion metrics; a delta-method z-test
    for ratios. The relative lift is over the adjusted control estimate.
    """
    adj_c, adj_t = adjusted_estimate(control, fit), adjusted_estimate(treatment, fit)
    n = control.n + treatment.n
    if adj_c is None or adj_t is None:
        which = "control" if adj_c is None else "treatment"
        why = "no units" if (control if adj_c is None else treatment).n == 0 else "Σden = 0"
        return Difference(
            None, None, None, None, None, None, None, None, None, n,
            reasons=(f"{which} estimate undefined ({why})",),
        )  # fmt: skip
    (mean_c, var_c), (mean_t, var_t) = adj_c, adj_t
    scale = max(abs(control.shift[0]), abs(treatment.shift[0]))
    if fit.kind is MetricKind.RATIO:
        den = abs(control.mean(1)) or 1.0
        return normal_test(
            mean_c, var_c / control.n, mean_t, var_t / treatment.n, n=n, alpha=alpha,
            scale=scale / den,
        )  # fmt: skip
    return welch_test(
        control.n, mean_c, var_c, treatment.n, mean_t, var_t, alpha=alpha, scale=scale
    )
