from __future__ import annotations

import pytest

from experiments.domain import Correction, DecisionStatus, MetricKind, MetricRole
from experiments.stats.decision import decide, detect_ml_divergence, plan_units
from experiments.stats.frequentist import Difference
from experiments.stats.power import units_needed_for_mde
from experiments.stats.results import Comparison, MetricResult, SrmResult, VariantSummary

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


def run(primary: MetricResult, guardrails: list[MetricResult] | None = None, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = dict(
        primary=primary, guardrails=guardrails or [], srm=CLEAN, units=UNITS, control="control",
        planned_n=20000, alpha=0.05, pairwise=never_called,
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
    assert "every guardrail is non-inferior" in d.reasons
    assert d.units_needed is None


def test_srm_blocks_everything() -> None:
    srm = SrmResult(UNITS, {"control": 4000.0, "a": 6000.0}, 500.0, 1e-9, True)
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", "better")), srm=srm)
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


def test_no_effect_when_planned_sample_reached() -> None:
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", "inconclusive")), planned_n=10000)
    assert d.status is DecisionStatus.NO_EFFECT


def test_keep_running_reports_units_needed() -> None:
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", "inconclusive")), planned_n=25000)
    assert d.status is DecisionStatus.KEEP_RUNNING
    assert d.units_needed == 15000
    assert any("15000 more units" in r for r in d.reasons)


def test_winner_with_inconclusive_guardrail_keeps_running() -> None:
    g = metric(
        "revenue", MetricRole.GUARDRAIL, comparison("a", "inconclusive", guardrail="inconclusive")
    )
    d = run(metric("conv", MetricRole.PRIMARY, comparison("a", "better")), [g], planned_n=5000)
    assert d.status is DecisionStatus.KEEP_RUNNING
    assert "not yet non-inferior" in d.reasons[0]


@pytest.mark.parametrize(
    ("p_between", "word"), [(0.01, "differs"), (0.3, "does not differ")], ids=["differ", "same"]
)
def test_several_winners_pick_highest_lift(p_between: float, word: str) -> None:
    calls = []

    def pairwise(a: str, b: str) -> Difference:
        calls.append((a, b))
        return Difference(1.0, 1.1, 0.1, 0.05, None, p_between, None, None, None, None, 200)

    primary = metric(
        "conv", MetricRole.PRIMARY, comparison("a", "better", 0.03), comparison("b", "better", 0.07)
    )
    units = {"control": 3000, "a": 3000, "b": 3000}
    d = run(primary, units=units, pairwise=pairwise)
    assert d.status is DecisionStatus.SHIP
    assert d.variant == "b"
    assert calls == [("a", "b")]
    assert any(f"'b' has the highest lift and {word}" in r for r in d.reasons)


def test_lower_is_better_winner_has_most_negative_lift() -> None:
    primary = MetricResult(
        "latency", MetricKind.MEAN, MetricRole.PRIMARY, Correction.HOLM, False, {},
        (comparison("a", "better", -0.02), comparison("b", "better", -0.08)),
    )  # fmt: skip
    pair = Difference(1.0, 1.1, 0.1, 0.05, None, 0.5, None, None, None, None, 200)
    d = run(primary, units={"control": 9, "a": 9, "b": 9}, pairwise=lambda a, b: pair)
    assert d.variant == "b"


def test_ml_divergence_flags_a_better_model_that_loses_the_kpi() -> None:
    primary = metric("conv", MetricRole.PRIMARY, comparison("a", "worse", -0.05))
    auc = metric("auc", MetricRole.ML, means={"control": 0.70, "a": 0.78})
    pair = Difference(0.1, 0.09, -0.01, 0.002, None, 1e-6, None, None, None, None, 200)
    found, reasons = detect_ml_divergence(
        primary, [auc], control="control", alpha=0.05, pairwise=lambda a, b: pair
    )
    assert found
    assert "'auc' is best for 'a'" in reasons[0]
    d = run(primary, ml_divergence=found, ml_reasons=reasons)
    assert d.ml_divergence
    assert d.reasons[-1] == reasons[0]


def test_no_divergence_when_nothing_is_significant_or_they_agree() -> None:
    pair = Difference(0.1, 0.1, 0.0, 0.01, None, 0.9, None, None, None, None, 200)
    primary = metric("conv", MetricRole.PRIMARY, comparison("a", "inconclusive", -0.01))
    close = metric("auc", MetricRole.ML, means={"control": 0.700, "a": 0.701})
    found, _ = detect_ml_divergence(
        primary, [close], control="control", alpha=0.05, pairwise=lambda a, b: pair
    )
    assert not found
    agree = metric("auc", MetricRole.ML, means={"control": 0.8, "a": 0.7})
    found, _ = detect_ml_divergence(
        primary, [agree], control="control", alpha=0.05, pairwise=never_called
    )
    assert not found


def test_plan_units_uses_power_and_refuses_degenerate_baselines() -> None:
    args = dict(mde=0.05, alpha=0.05, power=0.8, weights=[0.5, 0.5], sequential=False)
    expected = units_needed_for_mde(
        baseline_mean=10.0, baseline_var=25.0, kind=MetricKind.MEAN, **args
    )  # type: ignore[arg-type]
    assert (
        plan_units(kind=MetricKind.MEAN, baseline_mean=10.0, baseline_var=25.0, **args) == expected
    )  # type: ignore[arg-type]
    assert plan_units(kind=MetricKind.MEAN, baseline_mean=0.0, baseline_var=25.0, **args) is None  # type: ignore[arg-type]
    assert plan_units(kind=MetricKind.MEAN, baseline_mean=10.0, baseline_var=0.0, **args) is None  # type: ignore[arg-type]
    assert plan_units(kind=MetricKind.MEAN, baseline_mean=None, baseline_var=1.0, **args) is None  # type: ignore[arg-type]
