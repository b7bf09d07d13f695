"""ML metrics in an analysis: each variant's estimate from its own predictions, and the differences.

Each variant serves its own model, so its ML metric is estimated from its own
labelled predictions (:mod:`.ml_metrics` on arrays, :mod:`.ml_summaries` on
what SQL summarised) and treatment − control is a comparison of independent
estimates (:func:`.ml_metrics.compare_ml_metric`). The relative change uses
the sign-safe lift and Fieller's interval of :mod:`.relative` with the normal
critical value. The Holm correction across ML metrics × treatments is applied
by :mod:`.analysis`; :func:`.decision.assess_ml` reads the result.
"""

from __future__ import annotations

import math

from experiments.stats import frequentist as fq
from experiments.stats.ml_metrics import MLEstimate, compare_ml_metric, compute_ml_metric
from experiments.stats.ml_summaries import MLSummary, ScoreHistogram, estimate_from_summary
from experiments.stats.relative import relative_lift
from experiments.stats.results import Comparison, VariantSummary
from experiments.stats.spec import AnalysisSpec, MetricSpec, MLArrays

NO_PREDICTIONS = "no predictions with labels"


def ml_estimate(
    spec: AnalysisSpec, m: MetricSpec, given: MLArrays | MLSummary | None
) -> tuple[MLEstimate, str | None]:
    """One variant's ML estimate and a note on its approximation (histogram AUC)."""
    if isinstance(given, MLArrays):
        if len(given.scores) == 0:
            return MLEstimate(None, None, None, None, 0, NO_PREDICTIONS), None
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
        return MLEstimate(None, None, None, None, 0, NO_PREDICTIONS), None
    result = estimate_from_summary(m.kind, given, alpha=spec.alpha, seed=spec.seed)
    note = None
    if isinstance(given, ScoreHistogram) and result.error_bound is not None:
        note = (
            f"AUC from a {len(given.positives)}-bin score histogram:"
            f" within {result.error_bound:.2g} of the exact AUC"
        )
    return result.estimate, note


def ml_results(
    spec: AnalysisSpec, m: MetricSpec, given: dict[str, MLArrays | MLSummary]
) -> tuple[dict[str, VariantSummary], list[Comparison]]:
    """Per-variant ML estimates and the raw (uncorrected) treatment − control comparisons."""
    estimates, notes = {}, {}
    for v in spec.weights:
        estimates[v], notes[v] = ml_estimate(spec, m, given.get(v))
    variants = {
        v: VariantSummary(
            e.n,
            e.estimate,
            std_err=e.std_err,
            ci=None if e.ci_low is None or e.ci_high is None else (e.ci_low, e.ci_high),
            reason="; ".join(r for r in (e.reason, notes[v]) if r) or None,
        )
        for v, e in estimates.items()
    }
    base = estimates[spec.control]
    crit = fq.critical_value(spec.alpha)
    comparisons = []
    for t in (v for v in spec.weights if v != spec.control):
        e = estimates[t]
        abs_diff, abs_ci, p_value = compare_ml_metric(base, e, alpha=spec.alpha)
        rel = rel_ci = None
        if base.estimate is not None and e.estimate is not None:
            var_c = math.nan if base.std_err is None else base.std_err**2
            var_t = math.nan if e.std_err is None else e.std_err**2
            lift = relative_lift(base.estimate, var_c, e.estimate, var_t, crit, scale=1.0,
                                 abs_ci=abs_ci)  # fmt: skip
            rel, rel_ci = lift.rel_lift, lift.rel_ci
        se = None
        if base.std_err is not None and e.std_err is not None:
            se = math.hypot(base.std_err, e.std_err)
        reason = base.reason or e.reason
        if reason is None and p_value is None:
            reason = "standard error of the difference is 0 or undefined"
        comparisons.append(
            Comparison(
                t,
                abs_diff,
                abs_ci,
                rel,
                rel_ci,
                p_value,
                None,
                False,
                "undefined",
                se,
                reason=reason,
            )
        )
    return variants, comparisons
