"""The time-series document: its last point is the report, earlier points the same engine."""

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from experiments.domain import AnalysisMethod, MetricKind, MetricRole
from experiments.service import experiments as svc
from experiments.service.analysis import analysis_spec_for, metric_queries, run_analysis
from experiments.service.simulation import SimulationPlan, simulate_traffic
from experiments.service.specs import validate_spec
from experiments.service.timeseries import build_timeseries, timeseries_document
from experiments.stats.analysis import AnalysisSpec, MetricSpec
from experiments.stats.summaries import Moments
from experiments.storage.aggregates import MetricQuery
from experiments.storage.timeseries import DailyMoments
from tests.factories import spec_document


@pytest.mark.parametrize(
    "method",
    ["fixed", "sequential", "bayesian"],
    ids=["fixed", "sequential", "bayesian"],
)
def test_last_point_is_the_report_and_units_add_up(session, settings, now, method):
    started = now - timedelta(days=3, hours=7)
    svc.create_experiment(session, validate_spec(spec_document(method=method)), now=started)
    svc.start_experiment(session, "ranker-v2", now=started)
    plan = SimulationPlan(users=900, days=3, seed=11, effects={"treatment": {"play": 1.2}})
    simulate_traffic(session, "ranker-v2", plan, settings=settings, now=now - timedelta(minutes=5))
    report = run_analysis(session, "ranker-v2", settings=settings, now=now).report
    experiment = svc.get_experiment(session, "ranker-v2")
    document = build_timeseries(
        session,
        experiment,
        spec=analysis_spec_for(experiment, settings),
        metrics=metric_queries(experiment),
        settings=settings,
        until=now,
    )
    assert json.loads(json.dumps(document, allow_nan=False)) == document
    assert document["days"][-1] == now.date().isoformat()
    assert len(document["days"]) == len(document["ends"]) == len(set(document["days"]))
    assert document["primary"] == "take_rate"
    assert document["control"] == "control"
    cumulative = document["cumulative_units"]
    assert {v: counts[-1] for v, counts in cumulative.items()} == report["srm"]["observed"]
    for variant, new in document["units"].items():
        assert all(n >= 0 for n in new)
        assert np.cumsum(new).tolist() == cumulative[variant]
    assert set(document["metrics"]) == {"take_rate", "revenue", "converted"}  # no ML metric
    assert report["metrics"]["take_rate"]["comparisons"][0]["rel_ci"] is not None
    for name, per_variant in document["metrics"].items():
        for comparison in report["metrics"][name]["comparisons"]:
            series = per_variant[comparison["variant"]]
            for key in ("rel_lift", "abs_diff"):
                assert len(series[key]) == len(document["days"])
                assert series[key][-1] == pytest.approx(comparison[key], rel=1e-9)
            for key in ("rel_ci", "abs_ci"):
                expected = comparison[key]  # None when unbounded (Fieller, small samples)
                assert series[key][-1] == (
                    None if expected is None else pytest.approx(expected, rel=1e-9)
                )


def test_no_exposure_gives_empty_series(session, settings, now):
    svc.create_experiment(session, validate_spec(spec_document()), now=now - timedelta(days=1))
    svc.start_experiment(session, "ranker-v2", now=now - timedelta(days=1))
    experiment = svc.get_experiment(session, "ranker-v2")
    document = build_timeseries(
        session,
        experiment,
        spec=analysis_spec_for(experiment, settings),
        metrics=metric_queries(experiment),
        settings=settings,
        until=now,
    )
    assert document["days"] == []
    assert document["units"] == {"control": [], "treatment": []}
    assert document["metrics"]["take_rate"] == {
        "treatment": {"rel_lift": [], "rel_ci": [], "abs_diff": [], "abs_ci": []}
    }


# --------------------------------------------------------------- pure: hand-built days

END_1 = datetime(2026, 3, 2, tzinfo=UTC)
END_2 = datetime(2026, 3, 2, 18, tzinfo=UTC)


def _spec(method: AnalysisMethod) -> AnalysisSpec:
    return AnalysisSpec(
        control="control",
        weights={"control": 0.5, "treatment": 0.5},
        metrics=[
            MetricSpec("converted", MetricKind.CONVERSION, MetricRole.PRIMARY),
            MetricSpec("auc", MetricKind.AUC, MetricRole.ML),
        ],
        method=method,
        planned_n=4000,
    )


def _bernoulli(n: int, successes: int) -> Moments:
    return Moments.from_values(np.r_[np.ones(successes), np.zeros(n - successes)])


def _daily() -> DailyMoments:
    return DailyMoments(
        ends=[END_1, END_2],
        step_days=1,
        units=[{"control": 400, "treatment": 380}, {"control": 1000, "treatment": 1010}],
        moments=[
            {"converted": {"control": _bernoulli(400, 0), "treatment": _bernoulli(380, 9)}},
            {"converted": {"control": _bernoulli(1000, 100), "treatment": _bernoulli(1010, 131)}},
        ],
        caps={},
    )


QUERIES = [MetricQuery("converted", "conversion", ("buy",))]


def test_fixed_points_are_wald_intervals_and_undefined_lift_is_none():
    document = timeseries_document(_spec(AnalysisMethod.FIXED), QUERIES, _daily())
    assert document["days"] == ["2026-03-01", "2026-03-02"]
    assert document["units"] == {"control": [400, 600], "treatment": [380, 630]}
    series = document["metrics"]["converted"]["treatment"]
    # day 1: control rate 0 → relative lift undefined, absolute difference defined
    assert series["rel_lift"][0] is None
    assert series["rel_ci"][0] is None
    assert series["abs_diff"][0] == pytest.approx(9 / 380)
    # day 2: the unpooled Wald interval of the difference (DESIGN.md)
    p_c, p_t = 0.1, 131 / 1010
    se = math.sqrt(p_c * (1 - p_c) / 1000 + p_t * (1 - p_t) / 1010)
    z = stats.norm.ppf(0.975)
    assert series["abs_diff"][1] == pytest.approx(p_t - p_c)
    assert series["abs_ci"][1] == pytest.approx([p_t - p_c - z * se, p_t - p_c + z * se])
    assert series["rel_lift"][1] == pytest.approx(p_t / p_c - 1)
    assert json.dumps(document, allow_nan=False)


def test_sequential_points_are_always_valid_and_wider_than_fixed():
    fixed = timeseries_document(_spec(AnalysisMethod.FIXED), QUERIES, _daily())
    sequential = timeseries_document(_spec(AnalysisMethod.SEQUENTIAL), QUERIES, _daily())
    for day in (0, 1):
        lo_f, hi_f = fixed["metrics"]["converted"]["treatment"]["abs_ci"][day]
        lo_s, hi_s = sequential["metrics"]["converted"]["treatment"]["abs_ci"][day]
        assert lo_s < lo_f < hi_f < hi_s


def test_bayesian_points_are_credible_intervals_around_the_lift():
    document = timeseries_document(_spec(AnalysisMethod.BAYESIAN), QUERIES, _daily())
    series = document["metrics"]["converted"]["treatment"]
    low, high = series["rel_ci"][1]
    assert low < series["rel_lift"][1] < high
    assert json.dumps(document, allow_nan=False)
