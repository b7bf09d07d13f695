"""From a raw difference to a report comparison, through the experiment's method.

* ``fixed`` — the fixed-horizon interval and p-value of :mod:`.frequentist`.
* ``sequential`` — the always-valid normal-mixture interval and p-value of
  :func:`.sequential.sequential_interval` for the same estimate and standard
  error, the mixing tuned at the pair's share of the planned sample.
* ``bayesian`` — the posterior of :mod:`.bayesian`: credible intervals in
  ``abs_ci`` / ``rel_ci``, ``chance_to_beat_control`` and ``expected_loss``;
  a variant is better (worse) when its chance to beat the control is at least
  (at most one minus) ``win_probability``. ``p_value`` stays the raw
  frequentist p-value.

Guardrails need the one-sided ``1 − alpha`` bounds of the difference: the ends
of the two-sided ``1 − 2·alpha`` interval of the same method.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from experiments.domain import AnalysisMethod, MarginType, MetricRole
from experiments.stats import frequentist as fq
from experiments.stats.bayesian import BayesianResult, bayesian_compare, bayesian_compare_normal
from experiments.stats.corrections import guardrail_status
from experiments.stats.results import Comparison
from experiments.stats.sequential import sequential_interval
from experiments.stats.spec import AnalysisSpec, MetricSpec
from experiments.stats.summaries import Moments

Bounds = tuple[float, float] | None


@dataclass(frozen=True)
class PendingComparison:
    """A comparison before correction, with the one-sided bounds guardrails need."""

    comparison: Comparison
    bounds: Bounds
    control_mean: float | None


def _bounds_alpha(alpha: float) -> float:
    """Two-sided level whose interval ends are the one-sided ``1 − alpha`` bounds."""
    return min(2.0 * alpha, 0.99)


class MethodContext:
    """Shared settings of one analysis run."""

    def __init__(self, spec: AnalysisSpec, planned_n: int | None) -> None:
        self.spec = spec
        self.planned_n = planned_n
        self.weight_sum = sum(spec.weights.values())

    def pair_planned_n(self, variant: str, n_now: int) -> tuple[int, str | None]:
        """Planned units of the control-and-``variant`` pair, for the mixing parameter."""
        spec = self.spec
        if self.planned_n is None:
            return max(n_now, 1), "no planned sample size: the sequence is tuned to the current n"
        share = (spec.weights[spec.control] + spec.weights[variant]) / self.weight_sum
        return max(1, round(self.planned_n * share)), None


def read_difference(
    ctx: MethodContext,
    m: MetricSpec,
    variant: str,
    diff: fq.Difference,
    pair: tuple[Moments, Moments] | None,
) -> PendingComparison:
    """A :class:`Comparison` from a raw difference, through the experiment's method."""
    spec = ctx.spec
    reasons = list(diff.reasons)
    abs_ci, rel_ci, p_value = diff.abs_ci, diff.rel_ci, diff.p_value
    bounds: Bounds = None
    chance = loss = None
    est, se = diff.abs_diff, diff.std_err
    if est is not None and se is not None and se > 0.0:
        bounds = fq.interval(est, se, fq.critical_value(_bounds_alpha(spec.alpha), diff.df))
    if spec.method is AnalysisMethod.SEQUENTIAL and diff.n > 0:
        planned, why = ctx.pair_planned_n(variant, diff.n)
        reasons += [why] if why else []
        a2 = (est or 0.0, se or 0.0, diff.n, planned)
        seq = sequential_interval(*a2, spec.alpha)
        one_sided = sequential_interval(*a2, _bounds_alpha(spec.alpha))
        p_value = seq.p_value
        abs_ci = interval_or_none(seq.ci_low, seq.ci_high)
        bounds = interval_or_none(one_sided.ci_low, one_sided.ci_high)
        rel_ci = None
        if diff.rel_lift is not None and diff.rel_std_err:
            rel = sequential_interval(diff.rel_lift, diff.rel_std_err, diff.n, planned, spec.alpha)
            rel_ci = interval_or_none(rel.ci_low, rel.ci_high)
    elif spec.method is AnalysisMethod.BAYESIAN and diff.n > 0:
        post, post2 = posterior(ctx, m, diff, pair, spec.alpha), None
        if m.role is MetricRole.GUARDRAIL:
            post2 = posterior(ctx, m, diff, pair, _bounds_alpha(spec.alpha))
            bounds = post2.abs_ci
        abs_ci, rel_ci = post.abs_ci, post.rel_ci
        chance, loss = post.chance_to_beat_control, post.expected_loss
        reasons += [post.reason] if post.reason else []
    comparison = Comparison(
        variant=variant,
        abs_diff=diff.abs_diff,
        abs_ci=abs_ci,
        rel_lift=diff.rel_lift,
        rel_ci=rel_ci,
        p_value=p_value,
        p_value_adjusted=None,
        significant=False,
        direction="undefined",
        std_err=diff.std_err,
        newcombe_ci=diff.newcombe_ci,
        reason="; ".join(dict.fromkeys(reasons)) or None,
        chance_to_beat_control=chance,
        expected_loss=loss,
    )
    return PendingComparison(comparison, bounds, diff.control_mean)


def interval_or_none(low: float | None, high: float | None) -> Bounds:
    """``(low, high)``, or ``None`` when either end is undefined."""
    return None if low is None or high is None else (low, high)


def posterior(
    ctx: MethodContext,
    m: MetricSpec,
    diff: fq.Difference,
    pair: tuple[Moments, Moments] | None,
    alpha: float,
) -> BayesianResult:
    """Posterior summaries of one comparison.

    From the moments when given (small conversions then use the Beta model),
    else from the delta-method estimates of ``diff`` (CUPED-adjusted values).
    """
    spec = ctx.spec
    if pair is not None:
        return bayesian_compare(
            pair[0],
            pair[1],
            alpha=alpha,
            prior_sd=spec.prior_sd,
            higher_is_better=m.higher_is_better,
            kind=m.kind,
            seed=spec.seed,
        )
    if diff.rel_lift is None or diff.rel_std_err is None or diff.std_err is None:
        return BayesianResult(None, None, None, None, None, None, "relative lift undefined")
    return bayesian_compare_normal(
        diff.rel_lift,
        diff.rel_std_err**2,
        diff.abs_diff or 0.0,
        diff.std_err**2,
        alpha=alpha,
        prior_sd=spec.prior_sd,
        higher_is_better=m.higher_is_better,
    )


def finish_comparison(
    ctx: MethodContext, m: MetricSpec, raw: PendingComparison, p_adj: float | None
) -> Comparison:
    """Set the adjusted p-value, significance, direction and guardrail status."""
    spec, c = ctx.spec, raw.comparison
    higher = m.higher_is_better
    if spec.method is AnalysisMethod.BAYESIAN and not m.kind.is_ml:
        chance = c.chance_to_beat_control
        win = spec.win_probability if spec.win_probability is not None else 1 - spec.alpha / 2
        better = chance is not None and chance >= win
        worse = chance is not None and chance <= 1.0 - win
        significant = better or worse
        direction = "undefined" if chance is None else "inconclusive"
        direction = "better" if better else "worse" if worse else direction
    else:
        significant = p_adj is not None and p_adj < spec.alpha
        direction = "undefined" if p_adj is None else "inconclusive"
        if significant and c.abs_diff is not None:
            direction = "better" if (c.abs_diff > 0) == higher else "worse"
    status = None
    if m.role is MetricRole.GUARDRAIL:
        margin = m.margin or 0.0
        bounds = raw.bounds
        if m.margin_type is MarginType.RELATIVE:
            if raw.control_mean is None:
                bounds = None
            else:
                margin *= abs(raw.control_mean)
        status = str(guardrail_status(bounds, margin=margin, higher_is_better=higher))
    return replace(
        c,
        p_value_adjusted=p_adj,
        significant=significant,
        direction=direction,
        guardrail_status=status,
    )
