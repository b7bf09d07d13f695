from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from experiments.domain import (
    AnalysisMethod,
    Correction,
    DecisionStatus,
    MarginType,
    MetricKind,
    MetricRole,
)
from experiments.stats.analysis import AnalysisData, AnalysisSpec, MetricSpec, MLArrays, analyze
from experiments.stats.bayesian import bayesian_compare
from experiments.stats.frequentist import compare_means, compare_proportions
from experiments.stats.results import report_to_dict
from experiments.stats.sequential import sequential_interval
from experiments.stats.summaries import Moments

VARIANTS = ("control", "a", "b")
N = 3000


def build(seed: int = 0, lift: float = 0.0) -> tuple[AnalysisSpec, AnalysisData]:
    rng = np.random.default_rng(seed)
    moments: dict[str, dict[str, Moments]] = {m: {} for m in ("conv", "revenue", "clicks", "take")}
    ml = {}
    for i, v in enumerate(VARIANTS):
        effect = lift * i
        conv = rng.binomial(1, 0.1 * (1 + effect), N)
        pre = rng.gamma(2, 5, N)
        revenue = 2 + 0.9 * pre + rng.normal(0, 3, N) + 5 * effect
        clicks = rng.binomial(1, 0.3, N)
        den = rng.poisson(6, N) + 1
        num = rng.binomial(den, 0.2)
        moments["conv"][v] = Moments.from_values(conv)
        moments["revenue"][v] = Moments.from_values(np.c_[revenue, pre])
        moments["clicks"][v] = Moments.from_values(clicks)
        moments["take"][v] = Moments.from_values(np.c_[num, den])
        scores = rng.random(800)
        labels = (rng.random(800) < scores ** (1 + i)).astype(float)
        ml[v] = MLArrays(scores, labels)
    spec = AnalysisSpec(
        control="control",
        weights={v: 1 / 3 for v in VARIANTS},
        metrics=[
            MetricSpec("conv", MetricKind.CONVERSION, MetricRole.PRIMARY),
            MetricSpec("revenue", MetricKind.MEAN, MetricRole.GUARDRAIL, margin=0.02),
            MetricSpec("clicks", MetricKind.CONVERSION, MetricRole.SECONDARY),
            MetricSpec("take", MetricKind.RATIO, MetricRole.SECONDARY),
            MetricSpec("auc", MetricKind.AUC, MetricRole.ML),
        ],
        planned_n=20000,
    )
    data = AnalysisData(
        units={v: N for v in VARIANTS},
        moments=moments,
        ml={"auc": ml},
        has_covariate={"revenue": True},
    )
    return spec, data


def test_report_follows_the_json_contract() -> None:
    report = report_to_dict(analyze(*build()))
    json.dumps(report, allow_nan=False)
    assert {"alpha", "method", "control", "srm", "metrics", "decision"} <= set(report)
    assert set(report["srm"]) == {
        "observed", "expected", "chi2", "p_value", "p_value_sequential", "detected",
    }  # fmt: skip
    assert {"status", "variant", "reasons", "ml_divergence"} <= set(report["decision"])
    for name, m in report["metrics"].items():
        assert {"kind", "role", "correction", "variants", "comparisons", "cuped"} <= set(m), name
        assert set(m["variants"]) == set(VARIANTS)
        for v in m["variants"].values():
            assert {"n", "mean"} <= set(v)
        assert [c["variant"] for c in m["comparisons"]] == ["a", "b"]
        for c in m["comparisons"]:
            assert {
                "variant", "abs_diff", "abs_ci", "rel_lift", "rel_ci", "p_value",
                "p_value_adjusted", "significant", "direction",
            } <= set(c)  # fmt: skip
            assert c["direction"] in {"better", "worse", "inconclusive", "undefined"}
    metrics = report["metrics"]
    assert metrics["conv"]["correction"] == "holm"
    assert metrics["clicks"]["correction"] == "bh"
    assert metrics["revenue"]["cuped"]["variance_reduction"] > 0.5
    assert all("guardrail_status" in c for c in metrics["revenue"]["comparisons"])
    assert all("newcombe_ci" in c for c in metrics["conv"]["comparisons"])
    assert "estimate" in metrics["auc"]["variants"]["a"]


def test_corrections_per_family() -> None:
    spec, data = build(seed=3, lift=0.08)
    report = report_to_dict(analyze(spec, data))
    metrics = report["metrics"]
    primary_raw = [c["p_value"] for c in metrics["conv"]["comparisons"]]
    holm = multipletests(primary_raw, method="holm")[1]
    assert [c["p_value_adjusted"] for c in metrics["conv"]["comparisons"]] == pytest.approx(
        list(holm)
    )
    secondary = metrics["clicks"]["comparisons"] + metrics["take"]["comparisons"]
    bh = multipletests([c["p_value"] for c in secondary], method="fdr_bh")[1]
    assert [c["p_value_adjusted"] for c in secondary] == pytest.approx(list(bh))
    for c in metrics["revenue"]["comparisons"]:
        assert c["p_value_adjusted"] == c["p_value"]
    ml_holm = multipletests([c["p_value"] for c in metrics["auc"]["comparisons"]], method="holm")
    assert [c["p_value_adjusted"] for c in metrics["auc"]["comparisons"]] == pytest.approx(
        list(ml_holm[1])
    )
    assert metrics["auc"]["correction"] == "holm"
    bonferroni = report_to_dict(analyze(replace(spec, correction=Correction.BONFERRONI), data))
    adjusted = [c["p_value_adjusted"] for c in bonferroni["metrics"]["conv"]["comparisons"]]
    assert adjusted == pytest.approx([min(1.0, 2 * p) for p in primary_raw])


def test_top_level_comparisons_are_unadjusted_and_cuped_ones_adjusted() -> None:
    spec, data = build(seed=1)
    report = report_to_dict(analyze(spec, data))
    revenue = data.moments["revenue"]
    plain = compare_means(revenue["control"].select([0]), revenue["a"].select([0]), alpha=0.05)
    top = report["metrics"]["revenue"]["comparisons"][0]
    assert top["p_value"] == pytest.approx(plain.p_value)
    adjusted = report["metrics"]["revenue"]["cuped"]["comparisons"][0]
    assert adjusted["std_err"] < 0.5 * top["std_err"]


def test_decision_uses_cuped_comparisons() -> None:
    rng = np.random.default_rng(8)
    moments = {}
    for v, shift in (("control", 0.0), ("treatment", 0.25)):
        pre = rng.normal(50, 10, 2000)
        moments[v] = Moments.from_values(np.c_[pre + shift + rng.normal(0, 1, 2000), pre])
    spec = AnalysisSpec(
        "control", {"control": 0.5, "treatment": 0.5},
        [MetricSpec("revenue", MetricKind.MEAN, MetricRole.PRIMARY)], planned_n=4000,
    )  # fmt: skip
    data = AnalysisData(
        {"control": 2000, "treatment": 2000}, {"revenue": moments}, has_covariate={"revenue": True}
    )
    report = report_to_dict(analyze(spec, data))
    metric = report["metrics"]["revenue"]
    assert not metric["comparisons"][0]["significant"]
    assert metric["cuped"]["comparisons"][0]["direction"] == "better"
    assert report["decision"]["status"] == "ship"
    assert report["decision"]["variant"] == "treatment"


def guardrail_report(margin: float, margin_type: str = "relative", higher: bool = True) -> str:
    rng = np.random.default_rng(12)
    moments = {
        "conv": {v: Moments.from_values(rng.binomial(1, 0.1, 4000)) for v in ("control", "t")},
        "latency": {
            "control": Moments.from_values(rng.normal(100, 5, 4000)),
            "t": Moments.from_values(rng.normal(90, 5, 4000)),  # 10% lower
        },
    }
    spec = AnalysisSpec(
        "control", {"control": 0.5, "t": 0.5},
        [MetricSpec("conv", MetricKind.CONVERSION, MetricRole.PRIMARY),
         MetricSpec("latency", MetricKind.MEAN, MetricRole.GUARDRAIL, higher_is_better=higher,
                    margin=margin, margin_type=MarginType(margin_type))],
    )  # fmt: skip
    report = report_to_dict(analyze(spec, AnalysisData({"control": 4000, "t": 4000}, moments)))
    return str(report["metrics"]["latency"]["comparisons"][0]["guardrail_status"])


@pytest.mark.parametrize(
    ("margin", "margin_type", "higher", "expected"),
    [
        (0.02, "relative", True, "inferior"),  # −10% is beyond a 2% margin
        (0.5, "relative", True, "non_inferior"),  # within 50%
        (0.101, "relative", True, "inconclusive"),  # the interval straddles −10.1%
        (0.02, "relative", False, "non_inferior"),  # lower is better: −10% is good
        (5.0, "absolute", True, "inferior"),  # −10 units beyond 5
        (20.0, "absolute", True, "non_inferior"),
    ],
    ids=["inferior", "loose", "straddles", "lower-better", "abs-inferior", "abs-ok"],
)
def test_guardrail_margins(margin: float, margin_type: str, higher: bool, expected: str) -> None:
    assert guardrail_report(margin, margin_type, higher) == expected


def test_sequential_method_fills_the_same_fields() -> None:
    spec, data = build(seed=4)
    report = report_to_dict(analyze(replace(spec, method=AnalysisMethod.SEQUENTIAL), data))
    c = report["metrics"]["conv"]["comparisons"][0]
    conv = data.moments["conv"]
    d = compare_proportions(conv["control"], conv["a"], alpha=0.05)
    planned_pair = round(20000 * 2 / 3)
    ref = sequential_interval(d.abs_diff, d.std_err, 2 * N, planned_pair, 0.05)
    assert report["method"] == "sequential"
    assert c["abs_ci"] == pytest.approx([ref.ci_low, ref.ci_high])
    assert c["p_value"] == pytest.approx(ref.p_value)
    assert c["abs_ci"][1] - c["abs_ci"][0] > d.abs_ci[1] - d.abs_ci[0]


def test_bayesian_method_adds_posterior_fields() -> None:
    spec, data = build(seed=5)
    bayes = replace(spec, method=AnalysisMethod.BAYESIAN)
    report = report_to_dict(analyze(bayes, data))
    c = report["metrics"]["conv"]["comparisons"][1]
    conv = data.moments["conv"]
    ref = bayesian_compare(
        conv["control"], conv["b"], alpha=0.05, prior_sd=0.3, kind=MetricKind.CONVERSION
    )
    assert c["chance_to_beat_control"] == pytest.approx(ref.chance_to_beat_control)
    assert c["expected_loss"] == pytest.approx(ref.expected_loss)
    assert c["rel_ci"] == pytest.approx(list(ref.rel_ci))
    # Two treatments: the chance must reach 1 - alpha/(2k) = 0.9875 (or fall to 0.0125).
    assert c["significant"] == (
        ref.chance_to_beat_control >= 0.9875 or ref.chance_to_beat_control <= 0.0125
    )
    assert "chance_to_beat_control" in report["metrics"]["revenue"]["cuped"]["comparisons"][0]


def test_ml_divergence_end_to_end() -> None:
    rng = np.random.default_rng(9)
    moments, ml = {}, {}
    for v, rate, power in (("control", 0.12, 1.0), ("treatment", 0.09, 3.0)):
        moments[v] = Moments.from_values(rng.binomial(1, rate, 8000))
        scores = rng.random(4000)
        ml[v] = MLArrays(scores, (rng.random(4000) < scores**power).astype(float))
    spec = AnalysisSpec(
        "control", {"control": 0.5, "treatment": 0.5},
        [MetricSpec("conv", MetricKind.CONVERSION, MetricRole.PRIMARY),
         MetricSpec("auc", MetricKind.AUC, MetricRole.ML)],
        planned_n=16000,
    )  # fmt: skip
    data = AnalysisData({"control": 8000, "treatment": 8000}, {"conv": moments}, ml={"auc": ml})
    report = report_to_dict(analyze(spec, data))
    assert report["metrics"]["auc"]["comparisons"][0]["direction"] == "better"
    assert report["decision"]["status"] == "rollback"
    assert report["decision"]["ml_divergence"] is True


def test_degenerate_data_renders_without_nan() -> None:
    spec, data = build()
    moments = {name: dict(by_variant) for name, by_variant in data.moments.items()}
    moments["conv"]["b"] = Moments.empty()
    moments["clicks"] = {v: Moments.from_values(np.zeros(50)) for v in VARIANTS}
    degenerate = AnalysisData({"control": N, "a": N, "b": 0}, moments, data.ml, data.has_covariate)
    report = report_to_dict(analyze(spec, degenerate))
    json.dumps(report, allow_nan=False)
    b = report["metrics"]["conv"]["comparisons"][1]
    assert b["p_value"] is None
    assert b["direction"] == "undefined"
    assert "no units in treatment" in b["reason"]
    clicks = report["metrics"]["clicks"]["comparisons"][0]
    assert clicks["rel_lift"] is None
    assert "control mean is 0" in clicks["reason"]
    assert report["srm"]["detected"]
    assert report["decision"]["status"] == "invalid"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"control": "nope"}, "control 'nope' is not one of the variants"),
        ({"metrics": []}, "exactly one primary metric"),
        ({"alpha": 1.5}, "alpha must be in"),
        ({"metrics": [MetricSpec("x", MetricKind.AUC, MetricRole.PRIMARY)]}, "ML kinds take role"),
    ],
    ids=["unknown-control", "no-primary", "bad-alpha", "ml-as-primary"],
)
def test_inconsistent_spec_raises(change: dict[str, object], message: str) -> None:
    spec, data = build()
    with pytest.raises(ValueError, match=message):
        analyze(replace(spec, **change), data)  # type: ignore[arg-type]


def test_moments_with_too_few_columns_raise() -> None:
    spec, data = build()
    moments = dict(data.moments)
    moments["take"] = {v: Moments.from_values(np.ones(3)) for v in VARIANTS}
    with pytest.raises(ValueError, match="metric 'take': variant 'control' has 1 columns, need 2"):
        analyze(spec, AnalysisData(data.units, moments, data.ml, data.has_covariate))


def test_planned_n_from_power_when_not_given() -> None:
    spec, data = build()
    report = report_to_dict(analyze(replace(spec, planned_n=None), data))
    assert report["planned_n"] > 0
    if report["decision"]["status"] == DecisionStatus.KEEP_RUNNING:
        assert report["decision"]["units_needed"] == report["planned_n"] - 3 * N


small_values = st.lists(st.integers(0, 3), min_size=0, max_size=6)


@settings(max_examples=40, deadline=None)
@given(
    conv=st.tuples(small_values, small_values, small_values),
    method=st.sampled_from(list(AnalysisMethod)),
    covariate=st.booleans(),
)
def test_analyze_never_crashes_or_returns_nan(
    conv: tuple[list[int], list[int], list[int]], method: AnalysisMethod, covariate: bool
) -> None:
    moments: dict[str, dict[str, Moments]] = {"conv": {}, "value": {}, "ratio": {}}
    for v, values in zip(VARIANTS, conv, strict=True):
        y = np.array(values, dtype=float)
        moments["conv"][v] = Moments.from_values(np.minimum(y, 1.0))
        value = np.c_[y, y[::-1]] if covariate else y[:, None]
        moments["value"][v] = Moments.from_values(value.reshape(len(y), 2 if covariate else 1))
        moments["ratio"][v] = Moments.from_values(np.c_[y, y % 2].reshape(len(y), 2))
    spec = AnalysisSpec(
        "control", {v: 1 / 3 for v in VARIANTS},
        [MetricSpec("conv", MetricKind.CONVERSION, MetricRole.PRIMARY),
         MetricSpec("value", MetricKind.MEAN, MetricRole.GUARDRAIL, margin=0.1),
         MetricSpec("ratio", MetricKind.RATIO, MetricRole.SECONDARY)],
        method=method,
    )  # fmt: skip
    units = {v: len(c) for v, c in zip(VARIANTS, conv, strict=True)}
    report = report_to_dict(
        analyze(spec, AnalysisData(units, moments, has_covariate={"value": covariate}))
    )
    json.dumps(report, allow_nan=False)
    assert report["decision"]["status"] in {s.value for s in DecisionStatus}


@pytest.mark.parametrize("method", list(AnalysisMethod), ids=str)
def test_harm_only_guardrail_rolls_back_early_under_every_method(method: AnalysisMethod) -> None:
    rng = np.random.default_rng(12)
    moments = {"conv": {}, "latency": {}}
    for v, shift in (("control", 0.0), ("t", 15.0)):
        moments["conv"][v] = Moments.from_values(rng.binomial(1, 0.1, 2000))
        moments["latency"][v] = Moments.from_values(rng.normal(200 + shift, 40, 2000))
    spec = AnalysisSpec(
        "control", {"control": 0.5, "t": 0.5},
        [MetricSpec("conv", MetricKind.CONVERSION, MetricRole.PRIMARY),
         MetricSpec("latency", MetricKind.MEAN, MetricRole.GUARDRAIL, higher_is_better=False)],
        method=method, planned_n=40000,
    )  # fmt: skip
    report = analyze(spec, AnalysisData({"control": 2000, "t": 2000}, moments))
    comparison = report.metrics["latency"].comparisons[0]
    assert comparison.guardrail_status == "harmed"
    assert report.decision.status is DecisionStatus.ROLLBACK
    assert "harm-only guardrail" in report.decision.rule
    # The same data with a small harm is not harmed, and that never blocks anything.
    small = {**moments, "latency": {v: Moments.from_values(rng.normal(200, 40, 2000))
                                    for v in ("control", "t")}}  # fmt: skip
    calm = analyze(spec, AnalysisData({"control": 2000, "t": 2000}, small))
    assert calm.metrics["latency"].comparisons[0].guardrail_status == "not_harmed"
    assert calm.decision.status is DecisionStatus.KEEP_RUNNING
