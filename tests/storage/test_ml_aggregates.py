"""ML summaries computed in SQL against the same statistics computed in numpy."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy.orm import Session

from experiments.domain import MetricKind
from experiments.stats.ml_metrics import compute_ml_metric, delong_auc
from experiments.stats.ml_summaries import (
    AUC_BINS,
    CalibrationSummary,
    LossSummary,
    MLSummary,
    ScoreHistogram,
    estimate_from_summary,
    summarize_predictions,
)
from experiments.stats.summaries import Moments
from experiments.storage.ingest import LABELS, PREDICTIONS, insert_ignoring_duplicates
from experiments.storage.ml_aggregates import compute_ml_summaries
from experiments.storage.models import Experiment
from tests.factories import add_experiment_row

K = MetricKind
T0 = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = T0 + timedelta(days=10)
ML_KINDS = [k for k in MetricKind if k.is_ml]
Array = npt.NDArray[np.float64]


def _experiment(session: Session, key: str) -> Experiment:
    experiment: Experiment = add_experiment_row(session, key, at=T0)
    return experiment


@pytest.fixture
def experiment(session: Session) -> Experiment:
    return _experiment(session, "ml-agg")


def _store(
    session: Session,
    experiment_id: int,
    variant: str,
    scores: Array,
    labels: Array | None,
    units: list[str],
    *,
    model: str = "ranker",
    at: datetime = T0,
) -> None:
    """Insert predictions (and their labels unless None); labels may precede predictions."""
    ids = [uuid.uuid4().hex for _ in units]
    predictions = [
        (pid, unit, experiment_id, variant, model, float(s), at, at)
        for pid, unit, s in zip(ids, units, scores, strict=True)
    ]
    insert_ignoring_duplicates(session, PREDICTIONS, predictions)
    if labels is not None:
        rows = [(pid, float(y), at, at) for pid, y in zip(ids, labels, strict=True)]
        insert_ignoring_duplicates(session, LABELS, rows)


def _variant_data(seed: int, clustered: bool) -> tuple[Array, Array, list[str]]:
    rng = np.random.default_rng(seed)
    if clustered:  # 150 units with 1–6 correlated predictions each
        sizes = rng.integers(1, 7, 150)
        owner = np.repeat(np.arange(150), sizes)
        effect = rng.normal(0.0, 1.0, 150)[owner]
    else:
        owner = np.arange(500)
        effect = np.zeros(500)
    scores = 1.0 / (1.0 + np.exp(-(effect + rng.normal(0.0, 1.2, owner.size))))
    scores[:5] = [0.0, 1.0, 0.5, 1e-17, 1.0 - 1e-17]  # clip and bin edges
    labels = (rng.random(owner.size) < 1.0 / (1.0 + np.exp(-1.5 * effect))).astype(float)
    return scores, labels, [f"{seed}-u{g}" for g in owner]


@pytest.fixture
def stored(session: Session, experiment: Experiment) -> dict[str, tuple[Array, Array, list[str]]]:
    """Control: one prediction per unit; treatment: units with several. Plus noise."""
    data = {"control": _variant_data(1, False), "treatment": _variant_data(2, True)}
    for variant, (scores, labels, units) in data.items():
        _store(session, experiment.id, variant, scores, labels, units)
    # noise the analysis must ignore: no label, another model, after the cut-off,
    # another experiment, and a label without a prediction
    _store(session, experiment.id, "control", np.array([0.9]), None, ["x1"])
    _store(session, experiment.id, "control", np.array([0.1]), np.array([1.0]), ["x2"], model="o")
    _store(session, experiment.id, "control", np.array([0.2]), np.array([1.0]), ["x3"], at=UNTIL)
    other = _experiment(session, "other")
    _store(session, other.id, "control", np.array([0.3]), np.array([1.0]), ["x4"])
    insert_ignoring_duplicates(session, LABELS, [("orphan", 1.0, T0, T0)])
    return data


def _assert_moments_close(got: Moments, expected: Moments) -> None:
    assert got.n == expected.n
    for i in range(expected.k):
        assert got.mean(i) == pytest.approx(expected.mean(i), rel=1e-9, abs=1e-12)
        for j in range(expected.k):
            assert got.cov(i, j) == pytest.approx(expected.cov(i, j), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kind", ML_KINDS, ids=[k.value for k in ML_KINDS])
def test_sql_summaries_match_numpy_and_the_array_path(
    session: Session,
    experiment: Experiment,
    stored: dict[str, tuple[Array, Array, list[str]]],
    kind: MetricKind,
) -> None:
    found = compute_ml_summaries(
        session, experiment_id=experiment.id, kind=kind, until=UNTIL, model="ranker", threshold=0.6
    )
    assert set(found) == {"control", "treatment"}
    for variant, (scores, labels, units) in stored.items():
        got = found[variant]
        expected = summarize_predictions(kind, scores, labels, clusters=units, threshold=0.6)
        assert got.profile == expected.profile
        _assert_same_summary(got, expected)
        clusters = units if variant == "treatment" else None
        reference = compute_ml_metric(
            kind, scores, labels, alpha=0.05, threshold=0.6, clusters=clusters
        )
        result = estimate_from_summary(kind, got, alpha=0.05)
        estimate = result.estimate
        assert estimate.n == reference.n == len(units)
        assert estimate.estimate is not None
        assert reference.estimate is not None
        assert result.error_bound is not None
        assert abs(estimate.estimate - reference.estimate) <= result.error_bound + 1e-9 * abs(
            reference.estimate
        )
        assert estimate.std_err is not None
        assert reference.std_err is not None
        if kind is K.AUC:
            assert result.error_bound < 1e-3
        if variant == "control" and kind not in (K.AUC, K.CALIBRATION_ERROR):
            # one prediction per unit: the same Student t interval
            assert estimate.std_err == pytest.approx(reference.std_err, rel=1e-9)
            assert estimate.ci_low == pytest.approx(reference.ci_low, rel=1e-9)
        else:
            # against the seeded (cluster) bootstrap or DeLong on the raw scores
            assert estimate.std_err == pytest.approx(reference.std_err, rel=0.25)


def _assert_same_summary(got: MLSummary, expected: MLSummary) -> None:
    if isinstance(expected, ScoreHistogram):
        assert isinstance(got, ScoreHistogram)
        assert got.positives == expected.positives
        assert got.negatives == expected.negatives
        assert len(got.positives) == AUC_BINS
        assert (got.placements is None) == (expected.placements is None)
        if expected.placements is not None:
            assert got.placements is not None
            _assert_moments_close(got.placements, expected.placements)
        return
    assert isinstance(got, LossSummary | CalibrationSummary)
    assert isinstance(expected, LossSummary | CalibrationSummary)
    assert type(got) is type(expected)
    _assert_moments_close(got.moments, expected.moments)


def test_auc_from_sql_is_within_its_bound_of_the_exact_auc(
    session: Session, experiment: Experiment
) -> None:
    rng = np.random.default_rng(11)
    scores = rng.beta(2, 5, 4000)
    labels = (rng.random(4000) < scores).astype(float)
    _store(session, experiment.id, "control", scores, labels, [f"u{i}" for i in range(4000)])
    summary = compute_ml_summaries(
        session, experiment_id=experiment.id, kind=K.AUC, until=UNTIL, bins=1000
    )["control"]
    result = estimate_from_summary(K.AUC, summary, alpha=0.05)
    exact, variance = delong_auc(scores, labels)
    assert isinstance(summary, ScoreHistogram)
    assert len(summary.positives) == 1000
    assert result.estimate.estimate is not None
    assert result.error_bound is not None
    assert abs(result.estimate.estimate - exact) <= result.error_bound
    assert 0 < result.error_bound < 2e-3
    assert result.estimate.std_err == pytest.approx(math.sqrt(variance), rel=0.01)


def test_degenerate_variants_give_a_reason(session: Session, experiment: Experiment) -> None:
    # control: positives only; treatment: labels 0/1 but a label of 2 elsewhere
    _store(
        session, experiment.id, "control", np.array([0.2, 0.7]), np.array([1.0, 1.0]), ["a", "b"]
    )
    _store(
        session,
        experiment.id,
        "treatment",
        np.array([0.2, 0.7, 0.4]),
        np.array([0.0, 1.0, 2.0]),
        ["c", "d", "e"],
    )
    _store(session, experiment.id, "unlabelled", np.array([0.5]), None, ["f"])
    auc = compute_ml_summaries(session, experiment_id=experiment.id, kind=K.AUC, until=UNTIL)
    assert set(auc) == {"control", "treatment"}  # no labels: no summary
    reasons = {v: estimate_from_summary(K.AUC, s, alpha=0.05).estimate for v, s in auc.items()}
    assert reasons["control"].reason == "auc needs both positive and negative labels"
    assert reasons["treatment"].reason == "auc needs labels 0 or 1"
    assert reasons["control"].estimate is None
    assert reasons["treatment"].n == 3
    mae = compute_ml_summaries(session, experiment_id=experiment.id, kind=K.MAE, until=UNTIL)
    got = estimate_from_summary(K.MAE, mae["treatment"], alpha=0.05).estimate
    assert got.estimate == pytest.approx((0.2 + 0.3 + 1.6) / 3)


def test_no_labelled_predictions_give_nothing(session: Session, experiment: Experiment) -> None:
    _store(session, experiment.id, "control", np.array([0.5]), None, ["a"])
    for kind in ML_KINDS:
        assert (
            compute_ml_summaries(session, experiment_id=experiment.id, kind=kind, until=UNTIL) == {}
        )


def test_bad_arguments_raise(session: Session, experiment: Experiment) -> None:
    with pytest.raises(ValueError, match="bins must be >= 1000"):
        compute_ml_summaries(session, experiment_id=experiment.id, kind=K.AUC, until=UNTIL, bins=10)
    with pytest.raises(ValueError, match="ML metric kind"):
        compute_ml_summaries(session, experiment_id=experiment.id, kind=K.MEAN, until=UNTIL)


@pytest.mark.parametrize("kind", ML_KINDS, ids=[k.value for k in ML_KINDS])
def test_invalid_rows_give_a_reason_not_an_sql_error(
    session: Session, experiment: Experiment, kind: MetricKind
) -> None:
    scores, labels = np.array([-3.0, 0.7, 1e6, 0.2]), np.array([0.0, 1.0, 2.0, 0.0])
    _store(session, experiment.id, "control", scores, labels, ["a", "b", "c", "d"])
    summary = compute_ml_summaries(session, experiment_id=experiment.id, kind=kind, until=UNTIL)
    got = estimate_from_summary(kind, summary["control"], alpha=0.05).estimate
    expected = compute_ml_metric(kind, scores, labels, alpha=0.05)
    assert got.reason == expected.reason
    assert (got.estimate is None) == (expected.estimate is None)
    if expected.estimate is not None:  # RMSE and MAE take any real label
        assert got.estimate == pytest.approx(expected.estimate, rel=1e-9)
