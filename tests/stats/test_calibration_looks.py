"""Calibration over looks, analysed like the server (issue 9).

Each simulated experiment is analysed at every look with the history of the
previous report (stored as JSON and read back, as the service does), so kept
verdicts, running always-valid bounds and group-sequential boundaries behave as
they do on the server. The family-wise error over the looks (any ship or
rollback, the first one kept) must stay at most alpha.
"""

from __future__ import annotations

import numpy as np
import pytest

from experiments.domain import AnalysisMethod, MetricKind, MetricRole
from experiments.stats.analysis import AnalysisData, AnalysisSpec, MetricSpec, analyze
from tests.stats.calibration import (
    assert_at_most,
    conversion_moments,
    cumulative_conversions,
    first_verdict,
    run_looks,
)

ALPHA = 0.05
REPS = 800  # enough for a 95% bound to see 1.3 x alpha


def _spec(variants: list[str], method: AnalysisMethod, planned_n: int) -> AnalysisSpec:
    return AnalysisSpec(
        control=variants[0],
        weights={v: 1 / len(variants) for v in variants},
        metrics=[MetricSpec("conv", MetricKind.CONVERSION, MetricRole.PRIMARY)],
        alpha=ALPHA,
        method=method,
        planned_n=planned_n,
    )


def _looks(successes: np.ndarray, sim: int, batch: int, variants: list[str]) -> list[AnalysisData]:
    out = []
    for look in range(successes.shape[2]):
        n = batch * (look + 1)
        moments = {
            v: conversion_moments(successes[i, sim, look], n) for i, v in enumerate(variants)
        }
        out.append(AnalysisData({v: n for v in variants}, {"conv": moments}))
    return out


@pytest.mark.slow
def test_fixed_gives_no_verdict_before_planned_n_and_keeps_the_one_at_it() -> None:
    variants, looks, batch = ["control", "treatment"], 20, 100
    planned = 2 * batch * 10  # reached at the 10th of 20 daily looks
    spec = _spec(variants, AnalysisMethod.FIXED, planned)
    reps = 2 * REPS  # the verdict is a nominal-level test: a tighter estimate
    successes = cumulative_conversions(np.random.default_rng(51), reps, looks, batch, [0.1, 0.1])
    wrong, early_significant = 0, 0
    for sim in range(reps):
        reports = run_looks(spec, _looks(successes, sim, batch, variants))
        for report in reports[:9]:
            assert report.decision.status == "keep_running"
            assert report.decision.reasons[0].startswith("provisional until the planned sample")
            comparison = report.metrics["conv"].comparisons[0]
            early_significant += comparison.significant
        verdict = reports[9].decision
        assert verdict.status in ("ship", "rollback", "no_effect")
        for later in reports[10:]:
            assert (later.decision.status, later.decision.decided_at_n) == (verdict.status, planned)
        wrong += verdict.status in ("ship", "rollback")
    assert early_significant > 0  # peeking would have found "significant" looks
    assert_at_most("fixed A/A, 20 looks, kept verdict: FPR", wrong, reps, ALPHA)


@pytest.mark.slow
def test_group_sequential_aa_over_ten_looks() -> None:
    variants, looks, batch = ["control", "treatment"], 10, 200
    spec = _spec(variants, AnalysisMethod.GROUP_SEQUENTIAL, 2 * batch * looks)
    successes = cumulative_conversions(np.random.default_rng(52), REPS, looks, batch, [0.1, 0.1])
    wrong = 0
    for sim in range(REPS):
        reports = run_looks(spec, _looks(successes, sim, batch, variants))
        wrong += first_verdict(reports) != ""
        assert [look.n for look in reports[-1].history.looks] == [400 * (j + 1) for j in range(10)]
    assert_at_most("group_sequential A/A, 10 looks: FPR", wrong, REPS, ALPHA)


@pytest.mark.slow
@pytest.mark.parametrize("method", list(AnalysisMethod), ids=str)
def test_three_arm_family_wise_error_under_every_method(method: AnalysisMethod) -> None:
    variants, looks, batch = ["control", "a", "b"], 5, 400
    spec = _spec(variants, method, 3 * batch * looks)
    seed = 60 + list(AnalysisMethod).index(method)
    rates = [0.1, 0.1, 0.1]
    successes = cumulative_conversions(np.random.default_rng(seed), REPS, looks, batch, rates)
    wrong = 0
    for sim in range(REPS):
        wrong += first_verdict(run_looks(spec, _looks(successes, sim, batch, variants))) != ""
    assert_at_most(f"3-arm A/A FWER, {method}, 5 looks", wrong, REPS, ALPHA)


def test_sequential_running_bounds_stay_crossed() -> None:
    """A boundary crossed at one look stays crossed at the next, whatever the data do."""
    variants, batch = ["control", "treatment"], 2000
    spec = _spec(variants, AnalysisMethod.SEQUENTIAL, 8000)

    def look(n: int, control: int, treatment: int) -> AnalysisData:
        moments = {
            "control": conversion_moments(control, n),
            "treatment": conversion_moments(treatment, n),
        }
        return AnalysisData({v: n for v in variants}, {"conv": moments})

    first, later = look(batch, 200, 290), look(2 * batch, 400, 420)
    reports = run_looks(spec, [first, later])
    c0, c1 = (r.metrics["conv"].comparisons[0] for r in reports)
    alone = analyze(spec, later).metrics["conv"].comparisons[0]
    assert c0.significant
    assert not alone.significant  # on its own the second look does not cross
    assert c1.significant  # with its history it stays crossed
    assert c1.p_value == pytest.approx(c0.p_value)
    assert c1.abs_ci is not None
    assert c1.abs_ci[0] > 0  # the running intersection
    assert c1.rel_ci is not None
    assert c1.rel_ci[0] > 0
    assert reports[1].decision.status == "ship"
    assert reports[1].history.running["conv|treatment|raw"].ci == c1.abs_ci
