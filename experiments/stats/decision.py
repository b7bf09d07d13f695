"""The decision: ship, rollback, keep_running, no_effect or invalid (DESIGN.md "Decision").

Rules, in order:

1. ``invalid`` — sample-ratio mismatch, or the control (or every treatment) has
   no exposed units: the data cannot be trusted, nothing else is read.
2. ``ship`` — some treatment is significantly better on the primary metric
   (after its correction; CUPED-adjusted when a covariate exists) and every
   guardrail is ``non_inferior`` for it. With several such winners, the highest
   lift in the good direction wins, and a direct test of the two best says
   whether they differ significantly.
3. ``rollback`` — a treatment is significantly worse on the primary metric, or
   a guardrail is ``inferior`` for it.
4. ``no_effect`` — the planned sample is reached and nothing above applies.
5. ``keep_running`` — otherwise, with the units still needed to reach the planned
   sample (``planned_n`` of the spec, else the power calculation for the MDE).

``ml_divergence`` is set when, for some ML metric, the variant best on that
metric is not the one best on the primary metric and at least one of the two
differences between those two variants is significant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from experiments.domain import DecisionStatus, MetricKind
from experiments.stats.corrections import GuardrailStatus
from experiments.stats.frequentist import Difference, normal_test
from experiments.stats.power import units_needed_for_mde
from experiments.stats.results import Comparison, Decision, MetricResult, SrmResult

PairwiseTest = Callable[[str, str], Difference]


def plan_units(
    *,
    kind: MetricKind,
    baseline_mean: float | None,
    baseline_var: float | None,
    mde: float,
    alpha: float,
    power: float,
    weights: Sequence[float],
    sequential: bool,
) -> int | None:
    """Total units to detect a relative ``mde`` on the primary metric, or ``None``.

    Calls :func:`experiments.stats.power.units_needed_for_mde` (smallest-weight
    treatment against the control, weights control first); ``None`` when the
    baseline is undefined or degenerate (mean 0, variance 0).
    """
    if baseline_mean is None or baseline_var is None or len(weights) < 2:
        return None
    if not (math.isfinite(baseline_mean) and math.isfinite(baseline_var)):
        return None
    if baseline_mean == 0.0 or (baseline_var <= 0.0 and kind is not MetricKind.CONVERSION):
        return None
    try:
        return units_needed_for_mde(
            baseline_mean=baseline_mean,
            baseline_var=baseline_var,
            mde=mde,
            alpha=alpha,
            power=power,
            weights=weights,
            sequential=sequential,
            kind=kind,
        )
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def _good(value: float | None, higher_is_better: bool) -> float:
    if value is None:
        return -math.inf
    return value if higher_is_better else -value


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2%}"


def _p(value: float | None) -> str:
    if value is None:
        return "p undefined"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3g}"


def _evidence(c: Comparison) -> str:
    """The number that made a comparison significant: P(better) (Bayesian) or adjusted p."""
    if c.chance_to_beat_control is not None:
        return f"chance to beat control {c.chance_to_beat_control:.1%}"
    return _p(c.p_value_adjusted)


def _guardrail_reasons(
    variant: str, guardrails: Sequence[MetricResult]
) -> tuple[list[str], list[str]]:
    """Guardrails of ``variant`` that are inferior, and those not (yet) non-inferior."""
    inferior, unsure = [], []
    for g in guardrails:
        for c in g.decision_comparisons:
            if c.variant != variant:
                continue
            if c.guardrail_status == GuardrailStatus.INFERIOR:
                inferior.append(g.name)
            elif c.guardrail_status != GuardrailStatus.NON_INFERIOR:
                unsure.append(g.name)
    return inferior, unsure


def detect_ml_divergence(
    primary: MetricResult,
    ml_metrics: Sequence[MetricResult],
    *,
    control: str,
    alpha: float,
    pairwise: PairwiseTest,
) -> tuple[bool, list[str]]:
    """Whether an ML metric favours another variant than the primary metric does."""
    lifts: dict[str, float | None] = {control: 0.0}
    lifts.update({c.variant: c.abs_diff for c in primary.decision_comparisons})
    best_primary = max(lifts, key=lambda v: _good(lifts[v], primary.higher_is_better))
    found, reasons = False, []
    for ml in ml_metrics:
        defined = {v: s for v, s in ml.variants.items() if s.mean is not None}
        if len(defined) < 2 or best_primary not in defined:
            continue
        best_ml = max(defined, key=lambda v: _good(defined[v].mean, ml.higher_is_better))
        if best_ml == best_primary:
            continue
        a, b = defined[best_primary], defined[best_ml]
        ml_test = normal_test(
            a.mean or 0.0,
            (a.std_err or math.nan) ** 2,
            b.mean or 0.0,
            (b.std_err or math.nan) ** 2,
            n=a.n + b.n,
            alpha=alpha,
        )
        primary_test = pairwise(best_primary, best_ml)
        significant = [t.p_value is not None and t.p_value < alpha for t in (ml_test, primary_test)]
        if any(significant):
            found = True
            reasons.append(
                f"ML metric '{ml.name}' is best for '{best_ml}' but the primary metric "
                f"'{primary.name}' is best for '{best_primary}' "
                f"(ML difference {_p(ml_test.p_value)}, primary {_p(primary_test.p_value)})"
            )
    return found, reasons


def decide(
    *,
    primary: MetricResult,
    guardrails: Sequence[MetricResult],
    srm: SrmResult,
    units: Mapping[str, int],
    control: str,
    planned_n: int | None,
    alpha: float,
    pairwise: PairwiseTest,
    ml_divergence: bool = False,
    ml_reasons: Sequence[str] = (),
) -> Decision:
    """Apply the decision rules of the module docstring.

    Args:
        primary: the primary metric's results (its CUPED comparisons are used when present).
        guardrails: the guardrail metrics' results, with ``guardrail_status`` set.
        srm: the sample-ratio-mismatch check.
        units: exposed units per variant.
        control: the control variant's key.
        planned_n: the planned total sample size, or ``None`` when unknown.
        alpha: the experiment's level (for the test between two winners).
        pairwise: a test of ``b − a`` on the primary metric for two variant keys.
        ml_divergence: whether ML metrics diverge from the primary (see
            :func:`detect_ml_divergence`); reported, never decisive.
        ml_reasons: the explanation of the divergence, appended to the reasons.
    """
    total = sum(units.values())
    needed = None if planned_n is None else max(0, planned_n - total)

    def done(status: DecisionStatus, variant: str | None, reasons: list[str]) -> Decision:
        return Decision(
            status,
            variant,
            (*reasons, *ml_reasons),
            ml_divergence,
            needed if status is DecisionStatus.KEEP_RUNNING else None,
        )

    blockers = []
    if srm.detected:
        blockers.append(
            f"sample ratio mismatch: units per variant do not match the weights ({_p(srm.p_value)})"
        )
    if units.get(control, 0) == 0:
        blockers.append(f"control '{control}' has no exposed units")
    comparisons: Sequence[Comparison] = primary.decision_comparisons
    if not any(units.get(c.variant, 0) for c in comparisons):
        blockers.append("no treatment has exposed units")
    if blockers:
        return done(DecisionStatus.INVALID, None, blockers)

    better, worse, held, offenders = [], [], [], []
    for c in comparisons:
        inferior, unsure = _guardrail_reasons(c.variant, guardrails)
        if c.direction == "worse" or inferior:
            offenders.append(c.variant)
        if c.direction == "worse":
            worse.append(
                f"'{c.variant}' is significantly worse on '{primary.name}' "
                f"({_pct(c.rel_lift)}, {_evidence(c)})"
            )
        worse.extend(f"guardrail '{g}' is inferior for '{c.variant}'" for g in inferior)
        if c.direction == "better" and not inferior and not unsure:
            better.append(c)
        elif c.direction == "better":
            held.append(
                f"'{c.variant}' is better on '{primary.name}' but guardrails "
                f"{', '.join(repr(g) for g in inferior + unsure)} are not yet non-inferior"
            )

    if better:
        lift = {c.variant: c.rel_lift if c.rel_lift is not None else c.abs_diff for c in better}
        ranked = sorted(better, key=lambda c: _good(lift[c.variant], primary.higher_is_better))[
            ::-1
        ]
        best = ranked[0]
        reasons = [
            f"'{best.variant}' is significantly better on '{primary.name}' "
            f"({_pct(best.rel_lift)}, {_evidence(best)})",
            "every guardrail is non-inferior" if guardrails else "no guardrail metrics",
        ]
        if len(ranked) > 1:
            runner = ranked[1]
            test = pairwise(runner.variant, best.variant)
            differ = test.p_value is not None and test.p_value < alpha
            reasons.append(
                f"{len(ranked)} variants win; '{best.variant}' has the highest lift and "
                f"{'differs significantly' if differ else 'does not differ significantly'} "
                f"from '{runner.variant}' ({_p(test.p_value)})"
            )
        reasons.extend(worse)
        return done(DecisionStatus.SHIP, best.variant, reasons)

    if offenders:
        return done(DecisionStatus.ROLLBACK, offenders[0], worse)

    reached = planned_n is not None and total >= planned_n
    if held:
        return done(DecisionStatus.KEEP_RUNNING, None, held)
    if reached:
        return done(
            DecisionStatus.NO_EFFECT,
            None,
            [f"planned sample of {planned_n} units reached and no significant difference "
             f"on '{primary.name}'"],
        )  # fmt: skip
    reasons = [f"no significant difference on '{primary.name}' yet"]
    if needed is not None:
        reasons.append(f"{needed} more units needed to reach the planned {planned_n}")
    else:
        reasons.append("the sample needed is unknown (no planned_n and no usable baseline)")
    return done(DecisionStatus.KEEP_RUNNING, None, reasons)
