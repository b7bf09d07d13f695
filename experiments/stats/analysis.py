"""The analysis orchestrator: ``analyze(spec, data) -> Report``, the engine's one entry point.

Input is what SQL (or :mod:`experiments.stats.frame`) computed: exposed units per
variant, a :class:`Moments` per metric and variant, and prediction arrays for ML
metrics; and what earlier looks left (``spec.history`` on the server,
``spec.looks`` in a notebook). The steps:

1. sample-ratio mismatch (:mod:`.srm`: the chi-square, and the sequential
   multinomial test when ``spec.sequential_srm``);
2. the planned sample: ``spec.planned_n`` (frozen by the service), else the
   plan (:mod:`.planning`) from the primary metric's moments pooled over all
   variants without their labels (blinded), with the CUPED variance reduction;
3. per business metric and treatment, the raw difference (:mod:`.frequentist`,
   and :mod:`.cuped` on adjusted values when a covariate exists), read through
   the experiment's method (:mod:`.comparisons`);
4. ML metrics per variant (:mod:`.ml_comparisons`), compared as independent samples;
5. corrections per family (:mod:`.corrections`): the spec's correction across the
   treatments on the primary metric, Benjamini–Hochberg across secondary
   metrics × treatments, Holm across ML metrics × treatments, none for guardrails;
6. the decision (:mod:`.decision`) and the history this look leaves (:mod:`.looks`).
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
    read_difference,
)
from experiments.stats.corrections import adjust_p_values
from experiments.stats.cuped import CupedFit, compare_adjusted, fit_cuped
from experiments.stats.decision import Rules, assess_ml, decide, kept_verdict
from experiments.stats.group_sequential import design_boundaries
from experiments.stats.looks import earlier_looks, next_history, reuses_boundaries
from experiments.stats.ml_comparisons import ml_results
from experiments.stats.ml_metrics import is_lower_better
from experiments.stats.ml_summaries import MLSummary
from experiments.stats.planning import plan_units
from experiments.stats.power import Baseline
from experiments.stats.results import (
    Comparison,
    CupedResult,
    MetricResult,
    Report,
    VariantSummary,
)
from experiments.stats.sequential import boundary_z
from experiments.stats.spec import (
    AnalysisData,
    AnalysisHistory,
    AnalysisSpec,
    Look,
    MetricSpec,
    MLArrays,
)
from experiments.stats.srm import check_srm
from experiments.stats.summaries import Moments

__all__ = [
    "AnalysisData",
    "AnalysisHistory",
    "AnalysisSpec",
    "MLArrays",
    "MLSummary",
    "MetricSpec",
    "analyze",
]


def _validate(spec: AnalysisSpec) -> None:
    if spec.control not in spec.weights:
        raise ValueError(f"control '{spec.control}' is not one of the variants")
    if len(spec.weights) < 2:
        raise ValueError("an experiment needs a control and at least one treatment")
    if not 0.0 < spec.alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {spec.alpha}")
    if spec.win_probability is not None and not 0.5 <= spec.win_probability < 1.0:
        raise ValueError(f"win_probability must be in [0.5, 1), got {spec.win_probability}")
    for name, value in (("planned_n", spec.planned_n), ("n_star", spec.n_star)):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if any(n < 0 for n in spec.looks):
        raise ValueError("looks must be unit counts >= 0")
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
        diff = fq.compare(m.kind, control, work.moments[t], alpha=spec.alpha)
        work.raws.append(read_difference(ctx, m, t, diff, (control, work.moments[t])))
        if work.fit is not None:
            adj = work.adjusted
            diff = compare_adjusted(adj[spec.control], adj[t], work.fit, alpha=spec.alpha)
            work.cuped_raws.append(read_difference(ctx, m, t, diff, None, adjusted=True))


def _ml(spec: AnalysisSpec, m: MetricSpec, data: AnalysisData) -> _MetricWork:
    variants, comparisons = ml_results(spec, m, dict(data.ml.get(m.name, {})))
    base = variants[spec.control].mean
    return _MetricWork(m, variants, [PendingComparison(c, None, base) for c in comparisons])


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


def _control_first(spec: AnalysisSpec) -> list[float]:
    order = [spec.control, *(v for v in spec.weights if v != spec.control)]
    return [spec.weights[v] for v in order]


def _planned_n(spec: AnalysisSpec, work: _MetricWork) -> int | None:
    """``spec.planned_n``, else the plan from the blinded pooled baseline of the primary."""
    if spec.planned_n is not None:
        return spec.planned_n
    pooled = Moments.empty(next(iter(work.moments.values())).k)
    for mo in work.moments.values():
        pooled = mo if pooled.n == 0 else pooled + mo
    try:
        base = Baseline.from_moments(pooled, work.spec.kind)
    except ValueError:
        return None
    kind, var = base.kind, base.var
    if work.fit is not None and work.fit.variance_reduction is not None:
        var *= max(0.0, 1.0 - work.fit.variance_reduction)
        kind = MetricKind.MEAN if kind is MetricKind.CONVERSION else kind
    return plan_units(
        kind=kind,
        baseline_mean=base.mean,
        baseline_var=var,
        mde=spec.mde,
        alpha=spec.alpha,
        power=spec.power,
        weights=_control_first(spec),
        method=spec.method,
        correction=spec.correction,
    )


def _look_boundary(ctx: MethodContext) -> float:
    """The critical ``|z|`` of the primary method at this look (recorded in the history)."""
    spec = ctx.spec
    if spec.method is AnalysisMethod.GROUP_SEQUENTIAL:
        return ctx.design_boundary(spec.alpha)
    if spec.method is AnalysisMethod.SEQUENTIAL and ctx.n_star is not None:
        return boundary_z(ctx.n_total, ctx.n_star, spec.alpha)
    return fq.critical_value(spec.alpha)


def analyze(spec: AnalysisSpec, data: AnalysisData) -> Report:
    """Analyse an experiment from its sufficient statistics (one look).

    Args:
        spec: variants and weights, metrics with roles, alpha, method, correction,
            and what earlier looks left (``history`` or ``looks``).
        data: exposed units, moments per metric and variant, ML prediction arrays.

    Returns:
        The full report, with ``history`` the state to pass to the next look;
        serialise it with :func:`experiments.stats.results.report_to_dict`.

    Raises:
        ValueError: the spec is inconsistent (unknown control, not exactly one
            primary metric, moments with too few columns...).
    """
    _validate(spec)
    history = spec.history
    srm = check_srm(
        data.units,
        spec.weights,
        sequential=spec.sequential_srm,
        previous_p_value=history.srm_p_value if history is not None else None,
    )
    n_total = sum(srm.observed.values())
    primary_spec = next(m for m in spec.metrics if m.role is MetricRole.PRIMARY)
    # The planned sample sets the information and the sequential tuning: fixed before any test.
    works = {primary_spec.name: _prepare(spec, primary_spec, data)}
    planned_n = _planned_n(spec, works[primary_spec.name])
    ctx = MethodContext(spec, planned_n, n_total)
    known = earlier_looks(spec, planned_n, ctx.information)
    if known is not None:
        ctx.earlier = tuple(look.information for look in known)
        if reuses_boundaries(spec):
            ctx.given = tuple(look.boundary_z for look in known)
    for m in spec.metrics:
        if m.kind.is_ml:
            m = replace(m, higher_is_better=not is_lower_better(m.kind))
            works[m.name] = _ml(spec, m, data)
        elif m.name not in works:
            works[m.name] = _prepare(spec, m, data)
    for w in works.values():
        if not w.spec.kind.is_ml:
            _compare_business(ctx, w)

    families = {
        MetricRole.PRIMARY: spec.correction,
        MetricRole.SECONDARY: Correction.BH,
        MetricRole.ML: Correction.HOLM,
    }
    adjusted: dict[tuple[str, bool], list[float | None]] = {}
    for role, correction in families.items():
        family = [w for w in works.values() if w.spec.role is role]
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
        results[name] = MetricResult(
            name=name,
            kind=m.kind,
            role=m.role,
            correction=families.get(m.role, Correction.NONE),
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
        return fq.compare(primary_spec.kind, mo[a], mo[b], alpha=spec.alpha)

    boundary = _look_boundary(ctx) if n_total > 0 else None
    rules = Rules(
        method=spec.method,
        alpha=spec.alpha,
        planned_n=planned_n,
        total=n_total,
        treatments=ctx.treatments,
        guardrails=sum(m.role is MetricRole.GUARDRAIL for m in spec.metrics),
        correction=spec.correction,
        win_threshold=ctx.win_threshold(),
        n_star=ctx.n_star,
        boundary=boundary,
    )
    ml = [r for r in results.values() if r.role is MetricRole.ML]
    diverges, ml_reasons, ml_note = assess_ml(primary, ml, control=spec.control)
    decision = decide(
        primary=primary,
        guardrails=[r for r in results.values() if r.role is MetricRole.GUARDRAIL],
        srm=srm,
        units=srm.observed,
        control=spec.control,
        rules=rules,
        pairwise=pairwise,
        ml_divergence=diverges,
        ml_reasons=ml_reasons,
        ml_note=ml_note,
        kept=history.verdict if history is not None else None,
    )
    earlier = list(known or [])
    if known is not None and not reuses_boundaries(spec):
        earlier = _with_boundaries(ctx, earlier)
    this_look = None
    if boundary is not None:
        this_look = Look(n_total, ctx.information, boundary)
    new_history = next_history(
        spec,
        earlier,
        this_look,
        ctx.running,
        srm.p_value_sequential,
        kept_verdict(decision, rules),
    )
    return Report(
        spec.alpha, spec.method, spec.control, srm, results, decision, planned_n, new_history
    )


def _with_boundaries(ctx: MethodContext, looks: list[Look]) -> list[Look]:
    """Earlier looks given as unit counts, with the boundaries their design used."""
    spec = ctx.spec
    if not looks:
        return looks
    if spec.method is AnalysisMethod.GROUP_SEQUENTIAL:
        info = [look.information for look in looks]
        bounds = list(design_boundaries(info, spec.alpha))
    elif spec.method is AnalysisMethod.SEQUENTIAL and ctx.n_star is not None:
        bounds = [boundary_z(look.n, ctx.n_star, spec.alpha) for look in looks]
    else:
        bounds = [fq.critical_value(spec.alpha)] * len(looks)
    return [replace(look, boundary_z=b) for look, b in zip(looks, bounds, strict=True)]
