"""The decision: ship, rollback, keep_running, no_effect, invalid or waiting (DESIGN.md "Decision").

Rules, in order; each decision names the rule that produced it (``rule``):

1. ``waiting`` — no exposed unit yet.
2. ``invalid`` — sample-ratio mismatch (the sequential test on the server, the
   chi-square for one analysis), or the control (or every treatment) has no
   exposed units: nothing else is read.
3. A **kept verdict** — once a verdict was taken (below), later refreshes keep
   its status and variant; the numbers update and ``decided_at_n`` says at how
   many units it was taken. Only rule 2 overrides it.
4. ``rollback`` for harm — a guardrail without a margin is ``harmed`` for a
   treatment (one-sided at α/G with a boundary valid at every look): allowed at
   any look, so early harm stops the experiment.
5. Whether the method allows a verdict now: ``fixed`` and ``bayesian`` only at or
   after ``planned_n`` (before it, ``keep_running`` "provisional until the
   planned sample", even when a test is significant); ``sequential`` and
   ``group_sequential`` whenever the always-valid / spending boundary is crossed.
6. ``ship`` — some treatment is significantly better on the primary metric
   (after its correction; CUPED-adjusted when a covariate exists) and every
   guardrail is ``non_inferior`` or ``not_harmed`` for it. With several winners,
   the largest improvement in the good direction (the difference signed by
   ``higher_is_better``) wins, and a direct test of the two best says whether
   they differ significantly.
7. ``rollback`` — a treatment is significantly worse on the primary metric, or a
   guardrail with a margin is ``inferior`` for it.
8. ``no_effect`` — the planned sample is reached and nothing above applies.
9. ``keep_running`` — otherwise, with the units still needed.

``ml_divergence`` (:func:`assess_ml`) is set only when an ML metric
significantly favours a treatment against the control (Holm across the ML
metrics × treatments) that the primary finds significantly worse, or
significantly favours the control while the primary finds the treatment
significantly better. When an ML metric significantly favours a variant and the
primary is inconclusive, ``ml_note`` says "ML better, business not shown".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from experiments.domain import AnalysisMethod, Correction, DecisionStatus
from experiments.stats.corrections import GuardrailStatus
from experiments.stats.frequentist import Difference
from experiments.stats.results import Comparison, Decision, MetricResult, SrmResult
from experiments.stats.spec import KeptVerdict

PairwiseTest = Callable[[str, str], Difference]
KEPT_STATUSES = frozenset({DecisionStatus.SHIP, DecisionStatus.ROLLBACK, DecisionStatus.NO_EFFECT})


@dataclass(frozen=True)
class Rules:
    """What the method allows at this look, and the words that say it.

    Attributes:
        method: the analysis method.
        alpha: the experiment's level.
        planned_n: the planned (maximum) total sample size, or None.
        total: total exposed units now.
        treatments: number of treatments ``k``.
        guardrails: number of guardrail metrics ``G``.
        correction: the primary family's correction.
        win_threshold: Bayesian chance to beat control of a winner.
        n_star: the tuning sample of ``sequential``.
        boundary: this look's group-sequential boundary (z scale).
    """

    method: AnalysisMethod
    alpha: float
    planned_n: int | None
    total: int
    treatments: int = 1
    guardrails: int = 0
    correction: Correction = Correction.HOLM
    win_threshold: float | None = None
    n_star: int | None = None
    boundary: float | None = None

    @property
    def reached(self) -> bool:
        """Whether the planned sample is reached."""
        return self.planned_n is not None and self.total >= self.planned_n

    @property
    def allows_verdict(self) -> bool:
        """Whether a ship / rollback on the primary metric is allowed at this look."""
        if self.method in (AnalysisMethod.SEQUENTIAL, AnalysisMethod.GROUP_SEQUENTIAL):
            return True
        return self.reached

    def describe(self) -> str:
        """The primary rule of the method, in words."""
        a, planned = f"{self.alpha:g}", self.planned_n if self.planned_n is not None else "?"
        corrected = f"{self.correction}-adjusted" if self.treatments > 1 else "two-sided"
        if self.method is AnalysisMethod.BAYESIAN:
            t = self.win_threshold or 1 - self.alpha / 2
            return (
                f"bayesian: better when the chance to beat control is >= {t:.4g} and worse when"
                f" <= {1 - t:.4g} (1 - alpha/(2k), k = {self.treatments} treatment(s)),"
                f" verdict only at the planned sample of {planned} units"
            )
        if self.method is AnalysisMethod.SEQUENTIAL:
            return (
                f"sequential: always-valid mixture test tuned at n* = {self.n_star or '?'},"
                f" verdict when the running {corrected} p-value is below {a}"
            )
        if self.method is AnalysisMethod.GROUP_SEQUENTIAL:
            c = (
                "?"
                if self.boundary is None or not math.isfinite(self.boundary)
                else f"{self.boundary:.3f}"
            )
            return (
                f"group_sequential: O'Brien-Fleming alpha spending up to {planned} units;"
                f" verdict when |z| crosses this look's boundary {c} ({corrected} repeated"
                f" p-value below {a}), no_effect at {planned} units"
            )
        return (
            f"fixed: one {corrected} test at alpha = {a} at the planned sample of {planned}"
            " units; provisional before it"
        )

    def harm_rule(self) -> str:
        """The harm-only rule of guardrails without a margin, in words."""
        level = self.alpha / max(self.guardrails, 1)
        where = (
            "half-normal mixture boundary"
            if self.method is AnalysisMethod.SEQUENTIAL
            else "O'Brien-Fleming spending boundary"
        )
        return (
            f"harm-only guardrail: harmed when worse one-sided at alpha/G = {level:.4g}"
            f" (G = {self.guardrails}) with the {where}, valid at every look up to planned_n"
        )


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
    return "adjusted " + _p(c.p_value_adjusted)


def _guardrails_of(variant: str, guardrails: Sequence[MetricResult]) -> dict[str, list[str]]:
    """Guardrail names of ``variant`` by status."""
    out: dict[str, list[str]] = {}
    for g in guardrails:
        for c in g.decision_comparisons:
            if c.variant == variant:
                out.setdefault(str(c.guardrail_status), []).append(g.name)
    return out


def assess_ml(
    primary: MetricResult, ml_metrics: Sequence[MetricResult], *, control: str
) -> tuple[bool, list[str], str | None]:
    """``ml_divergence``, its reasons and the ``ml_note`` (module docstring).

    The ML comparisons carry their Holm-adjusted direction (``better`` in the ML
    metric's own good direction); the primary's are after its correction.
    """
    verdicts = {c.variant: c.direction for c in primary.decision_comparisons}
    diverges, reasons, notes = False, [], []
    for ml in ml_metrics:
        for c in ml.comparisons:
            if c.direction not in ("better", "worse"):
                continue
            favoured = c.variant if c.direction == "better" else control
            business = verdicts.get(c.variant, "undefined")
            evidence = f"ML adjusted {_p(c.p_value_adjusted)}"
            if (c.direction, business) in (("better", "worse"), ("worse", "better")):
                diverges = True
                reasons.append(
                    f"ML metric '{ml.name}' significantly favours '{favoured}' ({evidence}) but"
                    f" the primary metric '{primary.name}' finds '{c.variant}' significantly"
                    f" {business}"
                )
            elif business in ("inconclusive", "undefined"):
                notes.append(
                    f"ML metric '{ml.name}' significantly favours '{favoured}' ({evidence});"
                    f" the primary metric '{primary.name}' shows no significant difference:"
                    " ML better, business not shown"
                )
    return diverges, reasons, "; ".join(notes) or None


def decide(
    *,
    primary: MetricResult,
    guardrails: Sequence[MetricResult],
    srm: SrmResult,
    units: Mapping[str, int],
    control: str,
    rules: Rules,
    pairwise: PairwiseTest,
    ml_divergence: bool = False,
    ml_reasons: Sequence[str] = (),
    ml_note: str | None = None,
    kept: KeptVerdict | None = None,
) -> Decision:
    """Apply the decision rules of the module docstring.

    Args:
        primary: the primary metric's results (its CUPED comparisons are used when present).
        guardrails: the guardrail metrics' results, with ``guardrail_status`` set.
        srm: the sample-ratio-mismatch check.
        units: exposed units per variant.
        control: the control variant's key.
        rules: what the method allows at this look.
        pairwise: a test of ``b − a`` on the primary metric for two variant keys.
        ml_divergence: see :func:`assess_ml`; reported, never decisive.
        ml_reasons: the explanation of the divergence, appended to the reasons.
        ml_note: the "ML better, business not shown" note.
        kept: the verdict an earlier look took, if any.
    """
    planned_n, total = rules.planned_n, rules.total
    needed = None if planned_n is None else max(0, planned_n - total)

    def done(
        status: DecisionStatus,
        variant: str | None,
        reasons: list[str],
        rule: str,
        decided_at: int | None = None,
    ) -> Decision:
        return Decision(
            status,
            variant,
            (*reasons, *ml_reasons),
            ml_divergence,
            needed if status is DecisionStatus.KEEP_RUNNING else None,
            rule,
            planned_n,
            ml_note,
            decided_at,
        )

    if total == 0:
        return done(DecisionStatus.WAITING, None, ["no exposed units yet"], "waiting: no exposures")
    blockers = []
    if srm.detected:
        p = srm.p_value_sequential if srm.p_value_sequential is not None else srm.p_value
        test = "sequential test" if srm.p_value_sequential is not None else "chi-square"
        blockers.append(
            f"sample ratio mismatch: units per variant do not match the weights ({test}, {_p(p)})"
        )
    if units.get(control, 0) == 0:
        blockers.append(f"control '{control}' has no exposed units")
    comparisons: Sequence[Comparison] = primary.decision_comparisons
    if not any(units.get(c.variant, 0) for c in comparisons):
        blockers.append("no treatment has exposed units")
    if blockers:
        return done(
            DecisionStatus.INVALID, None, blockers, "invalid: data quality blocks a verdict"
        )
    if kept is not None:
        reasons = [f"verdict kept from the look at {kept.n} units", *kept.reasons]
        return done(DecisionStatus(kept.status), kept.variant, reasons, kept.rule, kept.n)

    by_variant = {c.variant: _guardrails_of(c.variant, guardrails) for c in comparisons}
    harmed = [
        (c, by_variant[c.variant][GuardrailStatus.HARMED])
        for c in comparisons
        if by_variant[c.variant].get(GuardrailStatus.HARMED)
    ]
    if harmed:
        c, _names = harmed[0]
        reasons = [
            f"guardrail(s) {', '.join(repr(g) for g in names)} harmed for '{v.variant}'"
            for v, names in harmed
        ]
        return done(DecisionStatus.ROLLBACK, c.variant, reasons, rules.harm_rule())

    rule = rules.describe()
    if not rules.allows_verdict:
        reasons = [
            f"provisional until the planned sample ({total} of "
            f"{planned_n if planned_n is not None else 'an unknown number of'} units)"
        ]
        reasons += [
            f"'{c.variant}' currently looks {c.direction} on '{primary.name}' "
            f"({_pct(c.rel_lift)}, {_evidence(c)}): not a verdict yet"
            for c in comparisons
            if c.direction in ("better", "worse")
        ]
        if planned_n is None:
            reasons.append("the sample needed is unknown (no planned_n and no usable baseline)")
        return done(DecisionStatus.KEEP_RUNNING, None, reasons, rule)

    better, worse, held, offenders = [], [], [], []
    for c in comparisons:
        status = by_variant[c.variant]
        inferior = status.get(GuardrailStatus.INFERIOR, [])
        unsure = status.get(GuardrailStatus.INCONCLUSIVE, [])
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
        ranked = sorted(better, key=lambda c: _good(c.abs_diff, primary.higher_is_better))[::-1]
        best = ranked[0]
        reasons = [
            f"'{best.variant}' is significantly better on '{primary.name}' "
            f"({_pct(best.rel_lift)}, {_evidence(best)})",
            "every guardrail is non-inferior or not harmed" if guardrails else "no guardrails",
        ]
        if len(ranked) > 1:
            runner = ranked[1]
            duel = pairwise(runner.variant, best.variant)
            differ = duel.p_value is not None and duel.p_value < rules.alpha
            reasons.append(
                f"{len(ranked)} variants win; '{best.variant}' has the largest improvement and "
                f"{'differs significantly' if differ else 'does not differ significantly'} "
                f"from the runner-up '{runner.variant}' ({_p(duel.p_value)})"
            )
        reasons.extend(worse)
        return done(DecisionStatus.SHIP, best.variant, reasons, rule)

    if offenders:
        return done(DecisionStatus.ROLLBACK, offenders[0], worse, rule)
    if held:
        return done(DecisionStatus.KEEP_RUNNING, None, held, rule)
    if rules.reached:
        reasons = [
            f"planned sample of {planned_n} units reached and no significant difference "
            f"on '{primary.name}'"
        ]
        return done(DecisionStatus.NO_EFFECT, None, reasons, rule)
    reasons = [f"no significant difference on '{primary.name}' yet"]
    if needed is not None:
        reasons.append(f"{needed} more units needed to reach the planned {planned_n}")
    else:
        reasons.append("the sample needed is unknown (no planned_n and no usable baseline)")
    return done(DecisionStatus.KEEP_RUNNING, None, reasons, rule)


def kept_verdict(decision: Decision, rules: Rules) -> KeptVerdict | None:
    """The verdict later refreshes keep, when this decision is one (ship, rollback, no_effect).

    ``sequential`` is open-ended: its ``no_effect`` is not kept (a later
    crossing is still valid), its ship and rollback are.
    """
    if decision.decided_at_n is not None or decision.status not in KEPT_STATUSES:
        return None
    if decision.status is DecisionStatus.NO_EFFECT and rules.method is AnalysisMethod.SEQUENTIAL:
        return None
    return KeptVerdict(
        str(decision.status), decision.variant, rules.total, decision.rule, decision.reasons
    )
