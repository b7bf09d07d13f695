"""The analysis orchestrator: ``analyze(spec, data) -> Report``, the engine's one entry point.

Input is what SQL (or :mod:`experiments.stats.frame`) computed: exposed units per
variant, a :class:`Moments` per metric and variant, and prediction arrays for ML
metrics. The steps:

1. sample-ratio mismatch (:mod:`.srm`);
2. per business metric and treatment, the raw difference (:mod:`.frequentist`,
   and :mod:`.cuped` on adjusted values when a covariate exists), read through
   the experiment's method: fixed-horizon intervals, always-valid intervals
   (:mod:`.sequential`) or posterior summaries (:mod:`.bayesian`);
3. ML metrics per variant (:mod:`.ml_metrics` on arrays, :mod:`.ml_summaries` on
   what SQL summarised), compared as independent samples;
4. corrections per family (:mod:`.corrections`): the spec's correction across the
   treatments on the primary metric, Benjamini–Hochberg across secondary
   metrics × treatments, none for guardrails (one-sided non-inferiority) and ML;
5. the decision (:mod:`.decision`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from experiments.domain import AnalysisMethod, Correction, MetricKind, MetricRole
from experiments.stats import frequentist as fq
from experiments.stats.comparisons import (
    MethodContext,
    PendingComparison,
    finish_comparison,
    interval_or_none,
    read_difference,
)
from experiments.stats.corrections import adjust_p_values
from experiments.stats.cuped import CupedFit, compare_adjusted, fit_cuped
from experiments.stats.decision import decide, detect_ml_divergence, plan_units
from experiments.stats.ml_metrics import (
    MLEstimate,
    compare_ml_metric,
    compute_ml_metric,
    is_lower_better,
)
from experiments.stats.ml_summaries import MLSummary, ScoreHistogram, estimate_from_summary
from experiments.stats.results import (
    Comparison,
    CupedResult,
    MetricResult,
    Report,
    VariantSummary,
)
from experiments.stats.spec import (
    AnalysisData,
    AnalysisHistory,
    AnalysisSpec,
    MetricSpec,
    MLArrays,
)
from experiments.stats.srm import check_srm
from experiments.stats.summaries import Moments

__all__ = ["AnalysisData", "AnalysisSpec", "MLArrays", "MLSummary", "MetricSpec", "analyze"]


def _validate(spec: AnalysisSpec) -> None:
    if spec.control not in spec.weights:
        raise ValueError(f"control '{spec.control}' is not one of the variants")
    if len(spec.weights) < 2:
        raise ValueError("an experiment needs a control and at least one treatment")
    if not 0.0 < spec.alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {spec.alpha}")
    if spec.win_probability is not None and not 0.5 <= spec.win_probability < 1.0:
        raise ValueError(f"win_probability must be in [0.5, 1), got {spec.win_probability}")
    names = [m.name for m in spec.metrics]
    if len(set(names)) != len(names):
        raise ValueError("metric names must be unique")
    primaries = [m for m in spec.metrics if m.role is MetricRole.PRIMARY]
    if len(primaries) != 1:
        raise ValueError(f"exactly one primary metric is required, got {len(primaries)}")
    for m in spec.metrics:
        if m.kind.is_ml != (m.role is MetricRole.ML):
            raise ValueError(f"metric '{m.name}': ML kinds take role 'ml' and only they do")
        if m.margin is not None and not (math.isfinite(m.margin) and m.margin >= 0):
            raise ValueError(f"metric '{m.name}': margin must be >= 0")


def _columns(kind: MetricKind, covariate: bool) -> int:
    base = 2 if kind is MetricKind.RATIO else 1
    return 2 * base if covariate else base


def _variant_moments(spec: AnalysisSpec, m: MetricSpec, data: AnalysisData) -> dict[str, Moments]:
    k = _columns(m.kind, data.has_covariate.get(m.name, False))
    given = data.moments.get(m.name, {})
    out = {}
    for variant in spec.weights:
        mo = given.get(variant, Moments.empty(k))
        if mo.k < k:
            raise ValueError(f"metric '{m.name}': variant '{variant}' has {mo.k} columns, need {k}")
        out[variant] = mo
    return out


def _summary(mo: Moments, kind: MetricKind) -> VariantSummary:
    if mo.n == 0:
        return VariantSummary(0, None, reason="no units")
    if kind is MetricKind.RATIO:
        r, var_r = fq.ratio_estimate(mo)
        if r is None:
            return VariantSummary(mo.n, None, reason="denominator sum is 0")
        se = None if var_r is None else math.sqrt(var_r)
        return VariantSummary(mo.n, r, fq.finite(None if se is None else se * math.sqrt(mo.n)), se)
    sd = fq.finite(math.sqrt(mo.var(0))) if mo.n >= 2 else None
    return VariantSummary(mo.n, mo.mean(0), sd, None if sd is None else sd / math.sqrt(mo.n))


def _compare(kind: MetricKind, control: Moments, treatment: Moments, alpha: float) -> fq.Difference:
    if kind is MetricKind.CONVERSION:
        return fq.compare_proportions(control, treatment, alpha=alpha)
    if kind is MetricKind.RATIO:
        return fq.compare_ratios(control, treatment, alpha=alpha)
    return fq.compare_means(control, treatment, alpha=alpha)


@dataclass
class _MetricWork:
    """A metric's results before correction."""

    spec: MetricSpec
    variants: dict[str, VariantSummary]
    raws: list[PendingComparison]
    fit: CupedFit | None = None
    cuped_raws: list[PendingComparison] = field(default_factory=list)
    moments: dict[str, Moments] = field(default_factory=dict)
    adjusted: dict[str, Moments] = field(default_factory=dict)


def _prepare(spec: AnalysisSpec, m: MetricSpec, data: AnalysisData) -> _MetricWork:
    """Per-variant summaries, the moments to compare and the CUPED fit of a business metric."""
    moments = _variant_moments(spec, m, data)
    outcome = [0, 1] if m.kind is MetricKind.RATIO else [0]
    plain = {v: mo.select(outcome) for v, mo in moments.items()}
    work = _MetricWork(m, {v: _summary(mo, m.kind) for v, mo in plain.items()}, [])
    work.moments = plain
    if data.has_covariate.get(m.name, False):
        k = _columns(m.kind, True)
        work.adjusted = {v: mo.select(range(k)) for v, mo in moments.items()}
        work.fit = fit_cuped([work.adjusted[v] for v in spec.weights], m.kind)
    return work


def _compare_business(ctx: MethodContext, work: _MetricWork) -> None:
    """Fill the raw comparisons (plain and CUPED-adjusted) of a prepared metric."""
    spec, m = ctx.spec, work.spec
    control = work.moments[spec.control]
    for t in (v for v in spec.weights if v != spec.control):
        diff = _compare(m.kind, control, work.moments[t], spec.alpha)
        work.raws.append(read_difference(ctx, m, t, diff, (control, work.moments[t])))
        if work.fit is not None:
            adj = work.adjusted
            diff = compare_adjusted(adj[spec.control], adj[t], work.fit, alpha=spec.alpha)
            work.cuped_raws.append(read_difference(ctx, m, t, diff, None))


def _ml_estimate(
    spec: AnalysisSpec, m: MetricSpec, given: MLArrays | MLSummary | None
) -> tuple[MLEstimate, str | None]:
    """One variant's ML estimate and a note on its approximation (histogram AUC)."""
    if isinstance(given, MLArrays):
        if len(given.scores) == 0:
            return MLEstimate(None, None, None, None, 0, "no predictions with labels"), None
        estimate = compute_ml_metric(
            m.kind,
            given.scores,
            given.labels,
            alpha=spec.alpha,
            threshold=m.threshold,
            clusters=given.clusters,
            seed=spec.seed,
        )
        return estimate, None
    if given is None or given.profile.n == 0:
        return MLEstimate(None, None, None, None, 0, "no predictions with labels"), None
    result = estimate_from_summary(m.kind, given, alpha=spec.alpha, seed=spec.seed)
    note = None
    if isinstance(given, ScoreHistogram) and result.error_bound is not None:
        note = (
            f"AUC from a {len(given.positives)}-bin score histogram:"
            f" within {result.error_bound:.2g} of the exact AUC"
        )
    return result.estimate, note


def _ml(ctx: MethodContext, m: MetricSpec, data: AnalysisData) -> _MetricWork:
    spec = ctx.spec
    given = data.ml.get(m.name, {})
    estimates, notes = {}, {}
    for v in spec.weights:
        estimates[v], notes[v] = _ml_estimate(spec, m, given.get(v))
    variants = {
        v: VariantSummary(
            e.n,
            e.estimate,
            std_err=e.std_err,
            ci=interval_or_none(e.ci_low, e.ci_high),
            reason="; ".join(r for r in (e.reason, notes[v]) if r) or None,
        )
        for v, e in estimates.items()
    }
    work = _MetricWork(m, variants, [])
    base = estimates[spec.control]
    crit = fq.critical_value(spec.alpha)
    for t in (v for v in spec.weights if v != spec.control):
        e = estimates[t]
        abs_diff, abs_ci, p_value = compare_ml_metric(base, e, alpha=spec.alpha)
        rel = rel_ci = None
        if base.estimate is not None and e.estimate is not None:
            var_c = math.nan if base.std_err is None else base.std_err**2
            var_t = math.nan if e.std_err is None else e.std_err**2
            rel, _, rel_ci, _ = fq.relative_lift(base.estimate, var_c, e.estimate, var_t, crit)
        se = None
        if base.std_err is not None and e.std_err is not None:
            se = math.hypot(base.std_err, e.std_err)
        reason = base.reason or e.reason
        if reason is None and p_value is None:
            reason = "standard error of the difference is 0 or undefined"
        comparison = Comparison(
            t, abs_diff, abs_ci, rel, rel_ci, p_value, None, False, "undefined", se, reason=reason
        )
        work.raws.append(PendingComparison(comparison, None, base.estimate))
    return work


def _correct(
    works: Sequence[_MetricWork], correction: Correction, adjusted: bool
) -> list[list[float | None]]:
    """Adjusted p-values of one family made of all comparisons of ``works``."""
    raws = [w.cuped_raws if adjusted else w.raws for w in works]
    flat = adjust_p_values([r.comparison.p_value for rs in raws for r in rs], correction)
    out, i = [], 0
    for rs in raws:
        out.append(flat[i : i + len(rs)])
        i += len(rs)
    return out


def _planned_n(ctx: MethodContext, work: _MetricWork) -> int | None:
    spec, m = ctx.spec, work.spec
    if spec.planned_n is not None:
        return spec.planned_n
    base = work.variants[spec.control]
    if base.mean is None or base.std_dev is None:
        return None
    kind = m.kind
    var = base.mean * (1 - base.mean) if kind is MetricKind.CONVERSION else base.std_dev**2
    if work.fit is not None and work.fit.variance_reduction is not None:
        var *= max(0.0, 1.0 - work.fit.variance_reduction)
        kind = MetricKind.MEAN if kind is MetricKind.CONVERSION else kind
    control_first = [spec.control, *(v for v in spec.weights if v != spec.control)]
    return plan_units(
        kind=kind,
        baseline_mean=base.mean,
        baseline_var=var,
        mde=spec.mde,
        alpha=spec.alpha,
        power=spec.power,
        weights=[spec.weights[v] for v in control_first],
        sequential=spec.method is AnalysisMethod.SEQUENTIAL,
    )


def analyze(spec: AnalysisSpec, data: AnalysisData) -> Report:
    """Analyse an experiment from its sufficient statistics.

    Args:
        spec: variants and weights, metrics with roles, alpha, method, correction...
        data: exposed units, moments per metric and variant, ML prediction arrays.

    Returns:
        The full report; serialise it with :func:`experiments.stats.results.report_to_dict`.

    Raises:
        ValueError: the spec is inconsistent (unknown control, not exactly one
            primary metric, moments with too few columns...).
    """
    _validate(spec)
    srm = check_srm(data.units, spec.weights)
    primary_spec = next(m for m in spec.metrics if m.role is MetricRole.PRIMARY)
    # The planned sample tunes the sequential mixing, so it is fixed before any test.
    works = {primary_spec.name: _prepare(spec, primary_spec, data)}
    ctx = MethodContext(spec, None)
    ctx.planned_n = _planned_n(ctx, works[primary_spec.name])
    for m in spec.metrics:
        if m.kind.is_ml:
            m = replace(m, higher_is_better=not is_lower_better(m.kind))
            works[m.name] = _ml(ctx, m, data)
        elif m.name not in works:
            works[m.name] = _prepare(spec, m, data)
    for w in works.values():
        if not w.spec.kind.is_ml:
            _compare_business(ctx, w)

    def by_role(role: MetricRole) -> list[_MetricWork]:
        return [w for w in works.values() if w.spec.role is role]

    adjusted: dict[tuple[str, bool], list[float | None]] = {}
    for role, correction in (
        (MetricRole.PRIMARY, spec.correction),
        (MetricRole.SECONDARY, Correction.BH),
    ):
        family = by_role(role)
        for cuped in (False, True):
            members = [w for w in family if not cuped or w.fit is not None]
            for w, ps in zip(members, _correct(members, correction, cuped), strict=True):
                adjusted[(w.spec.name, cuped)] = ps

    results: dict[str, MetricResult] = {}
    for name, w in works.items():
        m = w.spec

        def finish(
            raws: list[PendingComparison], cuped: bool, m: MetricSpec = m
        ) -> tuple[Comparison, ...]:
            ps = adjusted.get((m.name, cuped), [r.comparison.p_value for r in raws])
            return tuple(finish_comparison(ctx, m, r, p) for r, p in zip(raws, ps, strict=True))

        cuped_result = None
        if w.fit is not None:
            cuped_result = CupedResult(
                w.fit.theta,
                w.fit.variance_reduction,
                finish(w.cuped_raws, True),
                "; ".join(w.fit.reasons) or None,
            )
        family_correction = {
            MetricRole.PRIMARY: spec.correction,
            MetricRole.SECONDARY: Correction.BH,
        }.get(m.role, Correction.NONE)
        results[name] = MetricResult(
            name=name,
            kind=m.kind,
            role=m.role,
            correction=family_correction,
            higher_is_better=m.higher_is_better,
            variants=w.variants,
            comparisons=finish(w.raws, False),
            cuped=cuped_result,
            margin=m.margin if m.role is MetricRole.GUARDRAIL else None,
            margin_type=m.margin_type if m.role is MetricRole.GUARDRAIL else None,
        )

    primary_work = works[primary_spec.name]
    primary = results[primary_spec.name]

    def pairwise(a: str, b: str) -> fq.Difference:
        if primary_work.fit is not None:
            adj = primary_work.adjusted
            return compare_adjusted(adj[a], adj[b], primary_work.fit, alpha=spec.alpha)
        mo = primary_work.moments
        return _compare(primary_spec.kind, mo[a], mo[b], spec.alpha)

    ml_results = [r for r in results.values() if r.role is MetricRole.ML]
    diverges, ml_reasons = detect_ml_divergence(
        primary, ml_results, control=spec.control, alpha=spec.alpha, pairwise=pairwise
    )
    decision = decide(
        primary=primary,
        guardrails=[r for r in results.values() if r.role is MetricRole.GUARDRAIL],
        srm=srm,
        units=srm.observed,
        control=spec.control,
        planned_n=ctx.planned_n,
        alpha=spec.alpha,
        pairwise=pairwise,
        ml_divergence=diverges,
        ml_reasons=ml_reasons,
    )
    decision = replace(decision, planned_n=ctx.planned_n)
    history = spec.history if spec.history is not None else AnalysisHistory()
    return Report(
        spec.alpha, spec.method, spec.control, srm, results, decision, ctx.planned_n, history
    )
