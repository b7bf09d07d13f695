from __future__ import annotations

import pytest

from experiments.domain import AnalysisMethod, Correction, DecisionStatus, MetricKind, MetricRole
from experiments.stats.decision import Rules, assess_ml, decide, kept_verdict
from experiments.stats.frequentist import Difference
from experiments.stats.planning import plan_units
from experiments.stats.power import units_needed_for_mde
from experiments.stats.results import Comparison, MetricResult, SrmResult, VariantSummary
from experiments.stats.spec import KeptVerdict

CLEAN = SrmResult({"control": 5000, "a": 5000}, {"control": 5000.0, "a": 5000.0}, 0.0, 1.0, False)
UNITS = {"control": 5000, "a": 5000}


def comparison(
    variant: str, direction: str, lift: float = 0.05, guardrail: str | None = None
) -> Comparison:
    significant = direction in ("better", "worse")
    p = 0.001 if significant else 0.4
    return Comparison(
        variant, lift, (lift - 0.01, lift + 0.01), lift, None, p, p, significant, direction,
        guardrail_status=guardrail,
    )  # fmt: skip


def metric(
    name: str, role: MetricRole, *comparisons: Comparison, means: dict[str, float] | None = None
) -> MetricResult:
    variants = {v: VariantSummary(100, m, std_err=0.01) for v, m in (means or {}).items()}
    return MetricResult(
        name, MetricKind.MEAN, role, Correction.HOLM, True, variants, tuple(comparisons)
    )


def never_called(a: str, b: str) -> Difference:
    raise AssertionError("no pairwise test expected")


def rules(planned_n: int | None = 10000, total: int = 10000, **kw: object) -> Rules:
    return Rules(method=kw.pop("method", AnalysisMethod.FIXED), alpha=0.05,  # type: ignore[arg-type]
                 planned_n=planned_n, total=total, **kw)  # type: ignore[arg-type]  # fmt: skip


def run(primary: MetricResult, guardrails: list[MetricResult] | None = None, **kw: object):  # type: ignore[no-untyped-def]
    units = kw.get("units", UNITS)
    args: dict[str, object] = dict(
        primary=primary, guardrails=guardrails or [], srm=CLEAN, units=units, control="control",
        rules=rules(total=sum(units.values())), pairwise=never_called,  # type: ignore[attr-defined]
    )  # fmt: skip
    args.update(kw)
    return decide(**args)  # type: ignore[arg-type]


def test_ship_when_better_and_guardrails_non_inferior() -> None:
    g = metric(
        "revenue", MetricRole.GUARDRAIL, comparison("a", "inconclusive", guardrail="non_inferior")
    )
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", "better")), [g])
    assert d.status is DecisionStatus.SHIP
    assert d.variant == "a"
    assert "every guardrail is non-inferior or not harmed" in d.reasons
    assert d.units_needed is None
    assert d.rule.startswith("fixed:")
    assert d.planned_n == 10000


def test_no_exposures_is_waiting() -> None:
    d = run(
        metric("conv", MetricRole.PRIMARY, comparison("a", "undefined")),
        units={"control": 0, "a": 0},
        rules=rules(total=0),
    )
    assert d.status is DecisionStatus.WAITING


def test_srm_blocks_everything_even_a_kept_verdict() -> None:
    srm = SrmResult(UNITS, {"control": 4000.0, "a": 6000.0}, 500.0, 1e-9, True)
    kept = KeptVerdict("ship", "a", 10000, "fixed", ("a wins",))
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", "better")), srm=srm, kept=kept)
    assert d.status is DecisionStatus.INVALID
    assert d.variant is None
    assert "sample ratio mismatch" in d.reasons[0]


def test_empty_control_is_invalid() -> None:
    d = run(
        metric("conv", MetricRole.PRIMARY, comparison("a", "undefined")),
        units={"control": 0, "a": 9},
    )
    assert d.status is DecisionStatus.INVALID
    assert "control 'control' has no exposed units" in d.reasons


@pytest.mark.parametrize(
    ("primary_direction", "guardrail"),
    [("worse", "non_inferior"), ("better", "inferior"), ("inconclusive", "inferior")],
    ids=["primary-worse", "winner-with-inferior-guardrail", "guardrail-inferior"],
)
def test_rollback(primary_direction: str, guardrail: str) -> None:
    g = metric(
        "latency", MetricRole.GUARDRAIL, comparison("a", "inconclusive", guardrail=guardrail)
    )
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", primary_direction)), [g])
    assert d.status is DecisionStatus.ROLLBACK
    assert d.variant == "a"


def test_fixed_before_planned_n_is_provisional_even_when_significant() -> None:
    primary = metric("conv", MetricRole.PRIMARY, comparison("a", "better"))
    d = run(primary, rules=rules(planned_n=25000, total=10000))
    assert d.status is DecisionStatus.KEEP_RUNNING
    assert d.reasons[0] == "provisional until the planned sample (10000 of 25000 units)"
    assert "not a verdict yet" in d.reasons[1]
    assert d.units_needed == 15000


def test_harmed_guardrail_rolls_back_before_planned_n() -> None:
    g = metric("latency", MetricRole.GUARDRAIL, comparison("a", "worse", guardrail="harmed"))
    primary = metric("conv", MetricRole.PRIMARY, comparison("a", "better"))
    d = run(primary, [g], rules=rules(planned_n=25000, total=10000, guardrails=3))
    assert d.status is DecisionStatus.ROLLBACK
    assert "harmed" in d.reasons[0]
    assert "alpha/G = 0.01667" in d.rule


def test_not_harmed_never_blocks_a_ship() -> None:
    g = metric("latency", MetricRole.GUARDRAIL, comparison("a", "worse", guardrail="not_harmed"))
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", "better")), [g])
    assert d.status is DecisionStatus.SHIP


def test_sequential_ships_before_planned_n() -> None:
    primary = metric("conv", MetricRole.PRIMARY, comparison("a", "better"))
    r = rules(planned_n=25000, total=10000, method=AnalysisMethod.SEQUENTIAL, n_star=25000)
    d = run(primary, rules=r)
    assert d.status is DecisionStatus.SHIP
    assert "n* = 25000" in d.rule


def test_no_effect_when_planned_sample_reached() -> None:
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", "inconclusive")))
    assert d.status is DecisionStatus.NO_EFFECT


def test_keep_running_reports_units_needed() -> None:
    r = rules(planned_n=25000, total=10000, method=AnalysisMethod.GROUP_SEQUENTIAL, boundary=3.1)
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", "inconclusive")), rules=r)
    assert d.status is DecisionStatus.KEEP_RUNNING
    assert d.units_needed == 15000
    assert any("15000 more units" in r for r in d.reasons)
    assert "boundary 3.100" in d.rule


def test_winner_with_inconclusive_guardrail_keeps_running() -> None:
    g = metric(
        "revenue", MetricRole.GUARDRAIL, comparison("a", "inconclusive", guardrail="inconclusive")
    )
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", "better")), [g])
    assert d.status is DecisionStatus.KEEP_RUNNING
    assert "not yet non-inferior" in d.reasons[0]


def test_kept_verdict_is_kept_with_when_it_was_taken() -> None:
    kept = KeptVerdict("rollback", "a", 9000, "fixed: ...", ("a is worse",))
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", "better")), kept=kept)
    assert (d.status, d.variant, d.decided_at_n) == (DecisionStatus.ROLLBACK, "a", 9000)
    assert d.reasons[:2] == ("verdict kept from the look at 9000 units", "a is worse")
    assert kept_verdict(d, rules()) is None  # already kept: nothing new to store


def test_verdicts_to_keep() -> None:
    ship = run(metric("conv", MetricRole.PRIMARY, comparison("a", "better")))
    assert kept_verdict(ship, rules()) == KeptVerdict("ship", "a", 10000, ship.rule, ship.reasons)
    none = run(metric("conv", MetricRole.PRIMARY, comparison("a", "inconclusive")))
    assert kept_verdict(none, rules()) is not None
    assert kept_verdict(none, rules(method=AnalysisMethod.SEQUENTIAL)) is None


@pytest.mark.parametrize(
    ("p_between", "word"), [(0.01, "differs"), (0.3, "does not differ")], ids=["differ", "same"]
)
def test_several_winners_pick_the_largest_improvement(p_between: float, word: str) -> None:
    calls = []

    def pairwise(a: str, b: str) -> Difference:
        calls.append((a, b))
        return Difference(1.0, 1.1, 0.1, 0.05, None, p_between, None, None, None, 200)

    primary = metric(
        "conv", MetricRole.PRIMARY, comparison("a", "better", 0.03), comparison("b", "better", 0.07)
    )
    units = {"control": 3000, "a": 3000, "b": 3000}
    d = run(primary, units=units, pairwise=pairwise, rules=rules(planned_n=9000, total=9000))
    assert d.status is DecisionStatus.SHIP
    assert d.variant == "b"
    assert calls == [("a", "b")]
    assert any(f"'b' has the largest improvement and {word}" in r for r in d.reasons)


def test_lower_is_better_winner_has_most_negative_difference() -> None:
    primary = MetricResult(
        "latency", MetricKind.MEAN, MetricRole.PRIMARY, Correction.HOLM, False, {},
        (comparison("a", "better", -0.02), comparison("b", "better", -0.08)),
    )  # fmt: skip
    pair = Difference(1.0, 1.1, 0.1, 0.05, None, 0.5, None, None, None, 200)
    d = run(
        primary, units={"control": 9, "a": 9, "b": 9}, pairwise=lambda a, b: pair,
        rules=rules(planned_n=27, total=27),
    )  # fmt: skip
    assert d.variant == "b"


def test_ml_divergence_needs_both_significant_in_opposite_directions() -> None:
    primary = metric("conv", MetricRole.PRIMARY, comparison("a", "worse", -0.05))
    auc = metric("auc", MetricRole.ML, comparison("a", "better", 0.08))
    found, reasons, note = assess_ml(primary, [auc], control="control")
    assert found
    assert note is None
    assert "'auc' significantly favours 'a'" in reasons[0]
    d = run(primary, ml_divergence=found, ml_reasons=reasons)
    assert d.ml_divergence
    assert d.reasons[-1] == reasons[0]
    # The symmetric case: ML favours the control, the primary finds the treatment better.
    better = metric("conv", MetricRole.PRIMARY, comparison("a", "better", 0.05))
    worse_auc = metric("auc", MetricRole.ML, comparison("a", "worse", -0.08))
    assert assess_ml(better, [worse_auc], control="control")[0]


def test_ml_better_business_not_shown_is_a_note() -> None:
    primary = metric("conv", MetricRole.PRIMARY, comparison("a", "inconclusive", -0.01))
    auc = metric("auc", MetricRole.ML, comparison("a", "better", 0.08))
    found, reasons, note = assess_ml(primary, [auc], control="control")
    assert not found
    assert reasons == []
    assert note is not None
    assert "ML better, business not shown" in note
    d = run(primary, ml_note=note)
    assert d.ml_note == note
    inconclusive = metric("auc", MetricRole.ML, comparison("a", "inconclusive", 0.001))
    assert assess_ml(primary, [inconclusive], control="control") == (False, [], None)


def test_plan_units_uses_power_and_refuses_degenerate_baselines() -> None:
    args = dict(mde=0.05, alpha=0.05, power=0.8, weights=[0.5, 0.5])
    expected = units_needed_for_mde(
        baseline_mean=10.0, baseline_var=25.0, kind=MetricKind.MEAN, **args
    )  # type: ignore[arg-type]
    assert (
        plan_units(kind=MetricKind.MEAN, baseline_mean=10.0, baseline_var=25.0, **args) == expected
    )  # type: ignore[arg-type]
    assert plan_units(kind=MetricKind.MEAN, baseline_mean=0.0, baseline_var=25.0, **args) is None  # type: ignore[arg-type]
    assert plan_units(kind=MetricKind.MEAN, baseline_mean=10.0, baseline_var=0.0, **args) is None  # type: ignore[arg-type]
    assert plan_units(kind=MetricKind.MEAN, baseline_mean=None, baseline_var=1.0, **args) is None  # type: ignore[arg-type]
