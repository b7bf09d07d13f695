"""Fixed-horizon tests of treatment − control from sufficient statistics.

Every function returns a :class:`Difference`: the absolute difference, its
standard error, its interval and two-sided p-value, the variances of the two
means, and the sign-safe relative lift ``(treatment − control)/|control|`` with
its Fieller interval (:mod:`.relative`). Undefined numbers are ``None`` with a
reason, never NaN.

Methods (DESIGN.md "Statistical engine"):

* conversion — two-proportion z-test with the pooled standard error
  ``√(p̄(1−p̄)(1/n_c + 1/n_t))`` for the p-value, Wald interval with the
  unpooled ``√(p̂_c(1−p̂_c)/n_c + p̂_t(1−p̂_t)/n_t)``, and Newcombe's hybrid score
  interval (Newcombe 1998, "Interval estimation for the difference between
  independent proportions", method 10) from two Wilson intervals;
* mean and count — Welch's t-test and interval, ddof-1 variances,
  Welch–Satterthwaite degrees of freedom (Welch 1947);
* ratio Σnum/Σden — delta method, ``Var(R) ≈ (σ²_num − 2Rσ_num,den + R²σ²_den)
  / (n μ²_den)`` (Deng, Knoblich & Lu 2018, "Applying the delta method in
  metric analytics"), z-test and normal interval;
* relative lift — ``(m_t − m_c)/|m_c|`` with Fieller's interval from the same
  per-variant variances and the same critical value as the absolute interval
  (t with Welch's ν for means, z otherwise), so that it excludes 0 exactly
  when the absolute interval does (:func:`experiments.stats.relative.relative_lift`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special

from experiments.domain import MetricKind
from experiments.stats.relative import relative_lift
from experiments.stats.summaries import Moments

Interval = tuple[float, float]


@dataclass(frozen=True)
class Difference:
    """Treatment − control on one metric, before any multiple-comparison correction.

    Attributes:
        control_mean: control estimate (rate, mean or ratio).
        treatment_mean: treatment estimate.
        abs_diff: ``treatment_mean − control_mean``.
        std_err: standard error of ``abs_diff`` (unpooled).
        abs_ci: two-sided ``1 − alpha`` interval of ``abs_diff``.
        p_value: two-sided p-value of no difference.
        rel_lift: ``(treatment_mean − control_mean) / |control_mean|``.
        rel_ci: two-sided ``1 − alpha`` Fieller interval of ``rel_lift``.
        df: Welch degrees of freedom, ``None`` for a normal (z) reference.
        n: units in both variants.
        newcombe_ci: Newcombe hybrid score interval (conversions only).
        reasons: why some of the numbers above are ``None``.
        var_control: variance of the control mean (squared standard error).
        var_treatment: variance of the treatment mean.
        scale: the metric's scale for "control mean is 0 within rounding".
    """

    control_mean: float | None
    treatment_mean: float | None
    abs_diff: float | None
    std_err: float | None
    abs_ci: Interval | None
    p_value: float | None
    rel_lift: float | None
    rel_ci: Interval | None
    df: float | None
    n: int
    newcombe_ci: Interval | None = None
    reasons: tuple[str, ...] = ()
    var_control: float | None = None
    var_treatment: float | None = None
    scale: float = 0.0


def finite(value: float | None) -> float | None:
    """``value`` as a float, or ``None`` when it is missing, NaN or infinite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def critical_value(alpha: float, df: float | None = None) -> float:
    """Two-sided critical value ``q(1 − alpha/2)`` of t(df), or of N(0, 1) when df is None."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    # scipy.special's ufuncs are the same functions as scipy.stats.norm/t, ~50x faster.
    if df is None or math.isinf(df):
        return float(special.ndtri(1.0 - alpha / 2.0))
    return float(special.stdtrit(df, 1.0 - alpha / 2.0))


def two_sided_p(statistic: float, df: float | None = None) -> float:
    """Two-sided p-value ``2·P(T > |statistic|)`` (survival function, no 1 − cdf cancellation)."""
    if df is None or math.isinf(df):
        p = 2.0 * float(special.ndtr(-abs(statistic)))
    else:
        p = 2.0 * float(special.stdtr(df, -abs(statistic)))
    return min(1.0, p)


def interval(estimate: float, std_err: float, crit: float) -> Interval | None:
    """``estimate ± crit·std_err``, or ``None`` when an end is not finite."""
    low, high = finite(estimate - crit * std_err), finite(estimate + crit * std_err)
    if low is None or high is None:
        return None
    return (low, high)


def _empty(n_c: int, n_t: int) -> Difference | None:
    missing = [name for name, n in (("control", n_c), ("treatment", n_t)) if n == 0]
    if not missing:
        return None
    reason = f"no units in {' and '.join(missing)}"
    return Difference(
        None, None, None, None, None, None, None, None, None, n_c + n_t, reasons=(reason,)
    )


def normal_test(
    mean_c: float,
    var_mean_c: float,
    mean_t: float,
    var_mean_t: float,
    *,
    n: int,
    alpha: float,
    df: float | None = None,
    scale: float = 0.0,
) -> Difference:
    """Test of two independent estimates from their means and the variances of the means.

    ``z = (m_t − m_c)/√(v_c + v_t)`` against N(0, 1), or against t(df) when ``df``
    is given (Welch). Used by the ratio delta method and by CUPED. ``scale`` is
    the metric's scale for the zero-control test of :mod:`.relative` (the
    per-unit standard deviations are always included).
    """
    crit = critical_value(alpha, df)
    diff = mean_t - mean_c
    reasons: list[str] = []
    var = var_mean_c + var_mean_t
    se = finite(math.sqrt(var)) if math.isfinite(var) and var >= 0.0 else None
    ci: Interval | None = None
    p: float | None = None
    if se is None:
        reasons.append("standard error undefined (fewer than 2 units in a variant)")
    elif se == 0.0:
        reasons.append("standard error is 0 (no variation in either variant)")
    else:
        ci = interval(diff, se, crit)
        p = finite(two_sided_p(diff / se, df))
    scale = max(abs(scale), _unit_sd(var_mean_c, n, 2), _unit_sd(var_mean_t, n, 2))
    rel = relative_lift(mean_c, var_mean_c, mean_t, var_mean_t, crit, scale=scale, abs_ci=ci)
    if rel.reason and rel.rel_lift is None:
        reasons.append(rel.reason)
    return Difference(
        control_mean=finite(mean_c),
        treatment_mean=finite(mean_t),
        abs_diff=finite(diff),
        std_err=se,
        abs_ci=ci,
        p_value=p,
        rel_lift=rel.rel_lift,
        rel_ci=rel.rel_ci,
        df=finite(df),
        n=n,
        reasons=tuple(reasons),
        var_control=finite(var_mean_c),
        var_treatment=finite(var_mean_t),
        scale=scale,
    )


def _unit_sd(var_mean: float, n: int, share: int) -> float:
    """Rough per-unit standard deviation behind a variance of a mean (for the scale only)."""
    if not (math.isfinite(var_mean) and var_mean > 0.0):
        return 0.0
    return math.sqrt(var_mean * max(n / share, 1.0))


def welch_test(
    n_c: int,
    mean_c: float,
    var_c: float,
    n_t: int,
    mean_t: float,
    var_t: float,
    *,
    alpha: float,
    scale: float = 0.0,
) -> Difference:
    """Welch's unequal-variance t-test and interval from per-variant n, mean, ddof-1 variance.

    ``t = (ȳ_t − ȳ_c)/√(s²_c/n_c + s²_t/n_t)``, ``df = (a + b)² / (a²/(n_c−1) + b²/(n_t−1))``
    with ``a = s²_c/n_c``, ``b = s²_t/n_t`` (Welch 1947; scipy ``ttest_ind(equal_var=False)``).
    """
    empty = _empty(n_c, n_t)
    if empty is not None:
        return empty
    a, b = var_c / n_c, var_t / n_t
    df: float | None = None
    if n_c >= 2 and n_t >= 2 and a + b > 0.0:
        # Scaled by a + b so that tiny variances cannot underflow to 0 / 0.
        share_c, share_t = a / (a + b), b / (a + b)
        df = 1.0 / (share_c**2 / (n_c - 1) + share_t**2 / (n_t - 1))
    sd = math.sqrt(max(var_c, var_t)) if math.isfinite(max(var_c, var_t)) else 0.0
    return normal_test(
        mean_c, a, mean_t, b, n=n_c + n_t, alpha=alpha, df=df, scale=max(abs(scale), sd)
    )


def compare_means(
    control: Moments, treatment: Moments, *, alpha: float, column: int = 0
) -> Difference:
    """Welch test of the per-unit mean of ``column`` (mean and count metrics)."""
    return welch_test(
        control.n,
        control.mean(column) if control.n else 0.0,
        control.var(column),
        treatment.n,
        treatment.mean(column) if treatment.n else 0.0,
        treatment.var(column),
        alpha=alpha,
        scale=max(abs(control.shift[column]), abs(treatment.shift[column])),
    )


def wilson_interval(successes: float, n: int, alpha: float) -> Interval:
    """Wilson score interval of a binomial proportion (Wilson 1927).

    ``(p̂ + z²/2n ± z√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)``.
    """
    z = critical_value(alpha)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_interval(
    successes_c: float, n_c: int, successes_t: float, n_t: int, alpha: float
) -> Interval:
    """Newcombe's hybrid score interval of ``p_t − p_c`` (Newcombe 1998, method 10).

    With Wilson intervals ``(l, u)`` of each rate and ``d = p̂_t − p̂_c``:
    ``[d − √((p̂_t − l_t)² + (u_c − p̂_c)²), d + √((u_t − p̂_t)² + (p̂_c − l_c)²)]``.
    """
    p_c, p_t = successes_c / n_c, successes_t / n_t
    l_c, u_c = wilson_interval(successes_c, n_c, alpha)
    l_t, u_t = wilson_interval(successes_t, n_t, alpha)
    d = p_t - p_c
    return (
        d - math.sqrt((p_t - l_t) ** 2 + (u_c - p_c) ** 2),
        d + math.sqrt((u_t - p_t) ** 2 + (p_c - l_c) ** 2),
    )


def _rate(m: Moments) -> float:
    p = m.mean(0)
    if not -1e-9 <= p <= 1.0 + 1e-9:
        raise ValueError(f"conversion rate must be in [0, 1], got {p} (values must be 0/1)")
    return min(1.0, max(0.0, p))


def compare_proportions(control: Moments, treatment: Moments, *, alpha: float) -> Difference:
    """Two-proportion z-test: pooled SE for the p-value, Wald and Newcombe intervals.

    ``z = (p̂_t − p̂_c)/√(p̄(1−p̄)(1/n_c + 1/n_t))`` with ``p̄`` the pooled rate
    (statsmodels ``proportions_ztest``); Wald interval ``d ± z·√(Σ p̂(1−p̂)/n)``;
    Newcombe interval in ``newcombe_ci``.
    """
    n_c, n_t = control.n, treatment.n
    empty = _empty(n_c, n_t)
    if empty is not None:
        return empty
    p_c, p_t = _rate(control), _rate(treatment)
    s_c, s_t = p_c * n_c, p_t * n_t
    crit = critical_value(alpha)
    diff = p_t - p_c
    reasons: list[str] = []
    pooled = (s_c + s_t) / (n_c + n_t)
    pooled_se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t))
    p_value = two_sided_p(diff / pooled_se) if pooled_se > 0.0 else None
    v_c, v_t = p_c * (1 - p_c) / n_c, p_t * (1 - p_t) / n_t
    se = math.sqrt(v_c + v_t)
    ci = interval(diff, se, crit) if se > 0.0 else None
    if p_value is None:
        reasons.append("standard error is 0 (every unit has the same outcome)")
    elif ci is None:
        reasons.append("Wald standard error is 0 (each variant has a rate of 0 or 1)")
    rel = relative_lift(p_c, v_c, p_t, v_t, crit, scale=1.0 if n_c else 0.0, abs_ci=ci)
    if rel.reason and rel.rel_lift is None:
        reasons.append(rel.reason)
    return Difference(
        control_mean=p_c,
        treatment_mean=p_t,
        abs_diff=diff,
        std_err=se,
        abs_ci=ci,
        p_value=finite(p_value),
        rel_lift=rel.rel_lift,
        rel_ci=rel.rel_ci,
        df=None,
        n=n_c + n_t,
        newcombe_ci=newcombe_interval(s_c, n_c, s_t, n_t, alpha),
        reasons=tuple(reasons),
        var_control=v_c,
        var_treatment=v_t,
        scale=1.0,
    )


def ratio_estimate(m: Moments, num: int = 0, den: int = 1) -> tuple[float | None, float | None]:
    """Ratio ``R = Σnum/Σden`` and its delta-method variance.

    ``Var(R) ≈ (σ²_num − 2R·σ_num,den + R²σ²_den) / (n·μ²_den)`` with ddof-1
    (co)variances (Deng, Knoblich & Lu 2018, eq. 3). Returns ``(None, None)``
    when Σden is 0 and ``(R, None)`` when n < 2.
    """
    if m.n == 0:
        return None, None
    mu_den = m.mean(den)
    if mu_den == 0.0:
        return None, None
    r = m.mean(num) / mu_den
    if m.n < 2:
        return r, None
    var = (m.var(num) - 2 * r * m.cov(num, den) + r * r * m.var(den)) / (m.n * mu_den**2)
    return r, max(var, 0.0)


def compare_ratios(control: Moments, treatment: Moments, *, alpha: float) -> Difference:
    """Delta-method z-test and normal interval of ``R_t − R_c`` (columns ``[num, den]``)."""
    empty = _empty(control.n, treatment.n)
    if empty is not None:
        return empty
    r_c, v_c = ratio_estimate(control)
    r_t, v_t = ratio_estimate(treatment)
    if r_c is None or r_t is None:
        which = "control" if r_c is None else "treatment"
        return Difference(
            finite(r_c),
            finite(r_t),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            control.n + treatment.n,
            reasons=(f"denominator sum is 0 in {which}: ratio undefined",),
        )
    return normal_test(
        r_c,
        v_c if v_c is not None else math.nan,
        r_t,
        v_t if v_t is not None else math.nan,
        n=control.n + treatment.n,
        alpha=alpha,
        scale=_ratio_scale(control) + _ratio_scale(treatment),
    )


def _ratio_scale(m: Moments) -> float:
    """``|shift_num| / |mean_den|``: the size of the rounding of a ratio's numerator sums."""
    den = m.mean(1) if m.n else 0.0
    return abs(m.shift[0]) / abs(den) if den else 0.0


def compare(kind: MetricKind, control: Moments, treatment: Moments, *, alpha: float) -> Difference:
    """The fixed-horizon test of a business metric kind (conversion, count, mean, ratio)."""
    if kind is MetricKind.CONVERSION:
        return compare_proportions(control, treatment, alpha=alpha)
    if kind is MetricKind.RATIO:
        return compare_ratios(control, treatment, alpha=alpha)
    if kind.is_ml:
        raise ValueError(f"compare takes a business metric kind, got {kind.value}")
    return compare_means(control, treatment, alpha=alpha)
