"""From a raw difference to a report comparison, through the experiment's method.

Every method reads the same raw difference (estimate ``D̂``, standard error
``s``, the two means and their variances) and gives a critical value for this
look; the interval of the difference is ``D̂ ± crit·s`` and the relative
interval is Fieller's with the same ``crit`` (:mod:`.relative`), so the two
always agree on excluding 0.

* ``fixed`` — the fixed-horizon test of :mod:`.frequentist` (t with Welch's ν
  for means, z otherwise).
* ``sequential`` — the always-valid normal mixture of :mod:`.sequential`, tuned
  at the frozen ``n*`` (the pair's share of it); the p-value is the running
  minimum and the intervals the running intersections over the looks
  (``AnalysisHistory.running``).
* ``group_sequential`` — the Lan–DeMets O'Brien–Fleming boundary of this look
  (:mod:`.group_sequential`); ``p_value`` is the repeated p-value.
* ``bayesian`` — the posterior of :mod:`.bayesian`: credible intervals in
  ``abs_ci`` / ``rel_ci``, ``chance_to_beat_control`` and ``expected_loss``;
  with ``k`` treatments a variant is better when its chance is at least
  ``1 − (1 − w)/k`` and worse when at most ``(1 − w)/k``, ``w`` =
  ``win_probability`` or ``1 − α/2`` (so ``1 − α/(2k)``: Bonferroni over the
  treatments). ``p_value`` stays the raw frequentist p-value.

Guardrails:

* with a margin, a one-sided non-inferiority test from the method's one-sided
  ``1 − α`` bounds (the ends of its two-sided ``1 − 2α`` interval);
* without a margin, a harm-only check: ``harmed`` when the z statistic in the
  bad direction crosses a one-sided boundary at level ``α/G`` (``G`` guardrails)
  that holds over every look up to ``planned_n``: the one-sided half-normal
  mixture for ``sequential``, otherwise the one-sided O'Brien–Fleming spending
  boundary (exact with the earlier looks, else the continuous-monitoring
  boundary ``z_{1−α/(2G)}/√t``); else ``not_harmed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from experiments.domain import AnalysisMethod, MarginType, MetricRole
from experiments.stats import frequentist as fq
from experiments.stats import group_sequential as gs
from experiments.stats.bayesian import (
    BayesianResult,
    beta_posterior,
    is_beta_model,
    posterior_of_difference,
)
from experiments.stats.corrections import GuardrailStatus, guardrail_status
from experiments.stats.relative import (
    NOT_DISTINGUISHABLE,
    agree_with_difference,
    fieller_interval,
)
from experiments.stats.results import Comparison
from experiments.stats.sequential import (
    boundary_z,
    one_sided_p_value,
    sequential_interval,
    update_running,
)
from experiments.stats.spec import AnalysisSpec, Interval, MetricSpec, RunningBound, running_key
from experiments.stats.summaries import Moments

Bounds = Interval | None


@dataclass(frozen=True)
class PendingComparison:
    """A comparison before correction, with what the guardrail rules need."""

    comparison: Comparison
    bounds: Bounds
    control_mean: float | None
    harmed: bool | None = None


def _bounds_alpha(alpha: float) -> float:
    """Two-sided level whose interval ends are the one-sided ``1 − alpha`` bounds."""
    return min(2.0 * alpha, 0.99)


class MethodContext:
    """Settings and look-level numbers shared by the comparisons of one analysis.

    Attributes:
        spec: the analysis spec.
        planned_n: the planned (maximum) total sample size, or None.
        n_total: total exposed units at this look.
        information: ``min(1, n_total / planned_n)`` (1 when planned_n is unknown).
        earlier: information fractions of the earlier looks, or None when unknown.
        given: boundaries the earlier looks used (server history; reused by
            ``group_sequential``).
        treatments: number of treatments ``k``.
        guardrails: number of guardrail metrics ``G``.
        running: the updated running bounds of ``sequential`` comparisons.
    """

    def __init__(
        self,
        spec: AnalysisSpec,
        planned_n: int | None,
        n_total: int,
        earlier: tuple[float, ...] | None = None,
        given: tuple[float, ...] = (),
    ) -> None:
        self.spec = spec
        self.planned_n = planned_n
        self.n_total = n_total
        self.weight_sum = sum(spec.weights.values())
        self.information = 1.0
        if planned_n is not None and n_total > 0:
            self.information = gs.information_fraction(n_total, planned_n)
        self.earlier = earlier
        self.given = given
        self.treatments = max(1, len(spec.weights) - 1)
        self.guardrails = max(1, sum(m.role is MetricRole.GUARDRAIL for m in spec.metrics))
        self.running: dict[str, RunningBound] = {}

    @property
    def n_star(self) -> int | None:
        """The frozen tuning sample of ``sequential`` (``spec.n_star``, else ``planned_n``)."""
        return self.spec.n_star if self.spec.n_star is not None else self.planned_n

    def pair_share(self, variant: str) -> float:
        """Share of all units that the control-and-``variant`` pair holds."""
        spec = self.spec
        return (spec.weights[spec.control] + spec.weights[variant]) / self.weight_sum

    def pair_n_star(self, variant: str, n_now: int) -> tuple[int, str | None]:
        """Tuning sample of the control-and-``variant`` pair, for the mixing parameter."""
        if self.n_star is None:
            why = "no planned sample size: the mixture is tuned to the current n"
            return max(n_now, 1), why
        return max(1, round(self.n_star * self.pair_share(variant))), None

    def looks(self) -> tuple[float, ...] | None:
        """Information fractions of every look so far, this one last (None when unknown)."""
        if self.earlier is None:
            return None
        return (*(t for t in self.earlier if t < self.information - 1e-12), self.information)

    def knots(self) -> tuple[float, ...]:
        """Levels the decision compares p-values with: ``α/j`` for Holm over ``k`` treatments."""
        alpha = self.spec.alpha
        return tuple(alpha / j for j in range(1, self.treatments + 1))

    def design_boundary(self, level: float, sides: int = 2) -> float:
        """The O'Brien–Fleming boundary (z scale) of this look for a design at ``level``."""
        looks = self.looks()
        if looks is None:
            return gs.continuous_boundary(level, sides) / math.sqrt(self.information)
        given = self.given if level == self.spec.alpha and sides == 2 else ()
        return gs.design_boundaries(looks, level, sides=sides, given=given[: len(looks) - 1])[-1]

    def design_p_value(self, z: float) -> float:
        """The repeated p-value of this look's ``z`` (two-sided design at alpha)."""
        looks = self.looks()
        if looks is None:
            return gs.continuous_p_value(z, self.information)
        return gs.design_p_value(z, looks, knots=self.knots())

    def win_threshold(self) -> float:
        """Bayesian chance to beat control that makes a winner: ``1 − (1 − w)/k``."""
        spec = self.spec
        win = spec.win_probability if spec.win_probability is not None else 1 - spec.alpha / 2
        return 1.0 - (1.0 - win) / self.treatments


def _fieller(diff: fq.Difference, crit: float, abs_ci: Bounds) -> Bounds:
    if None in (diff.control_mean, diff.treatment_mean, diff.var_control, diff.var_treatment):
        return None
    if diff.rel_lift is None:
        return None
    return fieller_interval(
        float(diff.control_mean or 0.0),
        float(diff.var_control or 0.0),
        float(diff.treatment_mean or 0.0),
        float(diff.var_treatment or 0.0),
        crit,
        abs_ci=abs_ci,
    )


@dataclass
class _Read:
    abs_ci: Bounds
    rel_ci: Bounds
    p_value: float | None
    bounds: Bounds
    chance: float | None = None
    loss: float | None = None
    reason: str | None = None


def _fixed(ctx: MethodContext, diff: fq.Difference) -> _Read:
    est, se = diff.abs_diff, diff.std_err
    bounds = None
    if est is not None and se is not None and se > 0.0:
        bounds = fq.interval(est, se, fq.critical_value(_bounds_alpha(ctx.spec.alpha), diff.df))
    return _Read(diff.abs_ci, diff.rel_ci, diff.p_value, bounds)


def _sequential(
    ctx: MethodContext, m: MetricSpec, variant: str, diff: fq.Difference, key: str
) -> _Read:
    spec = ctx.spec
    est, se = diff.abs_diff or 0.0, diff.std_err or 0.0
    n_star, why = ctx.pair_n_star(variant, diff.n)
    seq = sequential_interval(est, se, diff.n, n_star, spec.alpha)
    one_sided = sequential_interval(est, se, diff.n, n_star, _bounds_alpha(spec.alpha))
    abs_ci = interval_or_none(seq.ci_low, seq.ci_high)
    rel_ci = _fieller(diff, boundary_z(diff.n, n_star, spec.alpha), abs_ci)
    running = update_running(spec.history.running.get(key) if spec.history else None,
                             seq.p_value, abs_ci, rel_ci)  # fmt: skip
    ctx.running[key] = running
    rel = running.rel_ci
    if rel is not None:
        rel = agree_with_difference(rel[0], rel[1], running.ci)
    bounds = interval_or_none(one_sided.ci_low, one_sided.ci_high)
    return _Read(running.ci, rel, running.p_value, bounds, reason=why)


def _group_sequential(ctx: MethodContext, diff: fq.Difference) -> _Read:
    est, se = diff.abs_diff, diff.std_err
    if est is None or se is None or not se > 0.0:
        return _Read(None, None, None, None)
    crit = ctx.design_boundary(ctx.spec.alpha)
    abs_ci = fq.interval(est, se, crit) if math.isfinite(crit) else None
    rel_ci = _fieller(diff, crit, abs_ci) if math.isfinite(crit) else None
    one_sided = ctx.design_boundary(_bounds_alpha(ctx.spec.alpha))
    bounds = fq.interval(est, se, one_sided) if math.isfinite(one_sided) else None
    return _Read(abs_ci, rel_ci, ctx.design_p_value(est / se), bounds)


def posterior(
    ctx: MethodContext,
    m: MetricSpec,
    diff: fq.Difference,
    pair: tuple[Moments, Moments] | None,
    alpha: float,
) -> BayesianResult:
    """Posterior summaries of one comparison (Beta model for small conversion counts)."""
    spec = ctx.spec
    if pair is not None and is_beta_model(m.kind, *pair):
        return beta_posterior(*pair, alpha=alpha, higher_is_better=m.higher_is_better)
    return posterior_of_difference(
        diff, alpha=alpha, prior_sd=spec.prior_sd, higher_is_better=m.higher_is_better
    )


def _bayesian(
    ctx: MethodContext, m: MetricSpec, diff: fq.Difference, pair: tuple[Moments, Moments] | None
) -> _Read:
    alpha = ctx.spec.alpha
    post = posterior(ctx, m, diff, pair, alpha)
    bounds = None
    if m.role is MetricRole.GUARDRAIL:
        bounds = posterior(ctx, m, diff, pair, _bounds_alpha(alpha)).abs_ci
    return _Read(
        post.abs_ci,
        post.rel_ci,
        diff.p_value,
        bounds,
        post.chance_to_beat_control,
        post.expected_loss,
        post.reason,
    )


def _harmed(ctx: MethodContext, m: MetricSpec, variant: str, diff: fq.Difference) -> bool | None:
    """The harm-only check of a guardrail without a margin (module docstring)."""
    est, se = diff.abs_diff, diff.std_err
    if est is None or se is None or not se > 0.0:
        return None
    z_harm = (-est if m.higher_is_better else est) / se
    level = ctx.spec.alpha / ctx.guardrails
    if ctx.spec.method is AnalysisMethod.SEQUENTIAL:
        n_star, _ = ctx.pair_n_star(variant, diff.n)
        return one_sided_p_value(z_harm, diff.n, n_star, ctx.spec.alpha) <= level
    return z_harm >= ctx.design_boundary(level, sides=1)


def read_difference(
    ctx: MethodContext,
    m: MetricSpec,
    variant: str,
    diff: fq.Difference,
    pair: tuple[Moments, Moments] | None,
    *,
    adjusted: bool = False,
) -> PendingComparison:
    """A :class:`Comparison` from a raw difference, through the experiment's method."""
    method = ctx.spec.method
    reasons = list(diff.reasons)
    if diff.n == 0 or diff.abs_diff is None:
        read = _Read(diff.abs_ci, diff.rel_ci, diff.p_value, None)
    elif method is AnalysisMethod.SEQUENTIAL:
        read = _sequential(ctx, m, variant, diff, running_key(m.name, variant, adjusted))
    elif method is AnalysisMethod.GROUP_SEQUENTIAL:
        read = _group_sequential(ctx, diff)
    elif method is AnalysisMethod.BAYESIAN:
        read = _bayesian(ctx, m, diff, pair)
    else:
        read = _fixed(ctx, diff)
    reasons += [read.reason] if read.reason else []
    if read.rel_ci is None and diff.rel_lift is not None and read.abs_ci is not None:
        reasons.append(NOT_DISTINGUISHABLE)
    harmed = None
    if m.role is MetricRole.GUARDRAIL and m.margin is None:
        harmed = _harmed(ctx, m, variant, diff)
    comparison = Comparison(
        variant=variant,
        abs_diff=diff.abs_diff,
        abs_ci=read.abs_ci,
        rel_lift=diff.rel_lift,
        rel_ci=read.rel_ci,
        p_value=read.p_value,
        p_value_adjusted=None,
        significant=False,
        direction="undefined",
        std_err=diff.std_err,
        newcombe_ci=diff.newcombe_ci,
        reason="; ".join(dict.fromkeys(reasons)) or None,
        chance_to_beat_control=read.chance,
        expected_loss=read.loss,
    )
    return PendingComparison(comparison, read.bounds, diff.control_mean, harmed)


def interval_or_none(low: float | None, high: float | None) -> Bounds:
    """``(low, high)``, or ``None`` when either end is undefined."""
    return None if low is None or high is None else (low, high)


def _side(c: Comparison) -> float | None:
    """The sign the evidence points to: the side of 0 of the interval, else the estimate."""
    if c.abs_ci is not None and (c.abs_ci[0] > 0.0 or c.abs_ci[1] < 0.0):
        return c.abs_ci[0] if c.abs_ci[0] > 0.0 else c.abs_ci[1]
    return c.abs_diff


def finish_comparison(
    ctx: MethodContext, m: MetricSpec, raw: PendingComparison, p_adj: float | None
) -> Comparison:
    """Set the adjusted p-value, significance, direction and guardrail status."""
    spec, c = ctx.spec, raw.comparison
    higher = m.higher_is_better
    if spec.method is AnalysisMethod.BAYESIAN and not m.kind.is_ml:
        chance, threshold = c.chance_to_beat_control, ctx.win_threshold()
        better = chance is not None and chance >= threshold
        worse = chance is not None and chance <= 1.0 - threshold
        significant = better or worse
        direction = "undefined" if chance is None else "inconclusive"
        direction = "better" if better else "worse" if worse else direction
    else:
        significant = p_adj is not None and p_adj < spec.alpha
        direction = "undefined" if p_adj is None else "inconclusive"
        side = _side(c)
        if significant and side is not None and side != 0.0:
            direction = "better" if (side > 0) == higher else "worse"
    status = None
    if m.role is MetricRole.GUARDRAIL:
        status = _guardrail_status(m, raw)
    return replace(
        c,
        p_value_adjusted=p_adj,
        significant=significant,
        direction=direction,
        guardrail_status=status,
    )


def _guardrail_status(m: MetricSpec, raw: PendingComparison) -> str:
    if m.margin is None:
        if raw.harmed is None:
            return str(GuardrailStatus.NOT_HARMED)
        return str(GuardrailStatus.HARMED if raw.harmed else GuardrailStatus.NOT_HARMED)
    margin, bounds = m.margin, raw.bounds
    if m.margin_type is MarginType.RELATIVE:
        if raw.control_mean is None:
            bounds = None
        else:
            margin *= abs(raw.control_mean)
    return str(guardrail_status(bounds, margin=margin, higher_is_better=m.higher_is_better))
