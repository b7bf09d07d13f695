"""Analysis from the database: snapshots, and the empty and bad cases."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from experiments.errors import InvalidStateError, NotFoundError
from experiments.service.analysis import load_report, run_analysis
from experiments.service.experiments import create_experiment, start_experiment
from experiments.service.specs import validate_spec
from experiments.storage.ingest import (
    EVENTS,
    EXPOSURES,
    LABELS,
    PREDICTIONS,
    insert_ignoring_duplicates,
)
from tests.factories import spec_document

T0 = datetime(2026, 5, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=7)


def _started(session, **changes):
    create_experiment(session, validate_spec(spec_document(**changes)), now=T0)
    return start_experiment(session, changes.get("key", "ranker-v2"), now=T0)


def _no_nan(report):
    json.dumps(report, allow_nan=False)  # raises on NaN or infinity


def test_unknown_key_and_draft(session, settings):
    with pytest.raises(NotFoundError, match="experiment 'nope' does not exist"):
        run_analysis(session, "nope", settings=settings, now=NOW)
    create_experiment(session, validate_spec(spec_document()), now=T0)
    with pytest.raises(InvalidStateError, match="is a draft"):
        run_analysis(session, "ranker-v2", settings=settings, now=NOW)


def test_no_exposures_yet_gives_a_report_that_says_so(session, settings):
    _started(session)
    report = run_analysis(session, "ranker-v2", settings=settings, now=NOW).report
    _no_nan(report)
    assert report["srm"]["observed"] == {"control": 0, "treatment": 0}
    assert report["decision"]["status"] == "waiting"
    assert "no exposed units yet" in report["decision"]["reasons"]
    comparison = report["metrics"]["take_rate"]["comparisons"][0]
    assert comparison["p_value"] is None
    assert comparison["direction"] == "undefined"
    assert comparison["reason"]


def test_a_variant_without_units_and_events_that_never_arrived(session, settings):
    experiment = _started(session)
    exposures = [(experiment.id, 0, f"u{i}", "control", T0, T0) for i in range(50)]
    insert_ignoring_duplicates(session, EXPOSURES, exposures)
    report = run_analysis(session, "ranker-v2", settings=settings, now=NOW).report
    _no_nan(report)
    assert report["srm"]["observed"] == {"control": 50, "treatment": 0}
    assert report["decision"]["status"] == "invalid"  # 50 vs 0 is a sample-ratio mismatch
    take_rate = report["metrics"]["take_rate"]
    assert take_rate["variants"]["treatment"]["n"] == 0
    assert take_rate["variants"]["control"]["mean"] is None  # no impressions: 0/0
    assert take_rate["comparisons"][0]["reason"]


def test_a_model_without_labels(session, settings):
    experiment = _started(session)
    insert_ignoring_duplicates(
        session,
        PREDICTIONS,
        [(f"p{i}", f"u{i}", experiment.id, "control", "ranker_a", 0.5, T0, T0) for i in range(5)],
    )
    report = run_analysis(session, "ranker-v2", settings=settings, now=NOW).report
    _no_nan(report)
    auc = report["metrics"]["ranker_auc"]
    assert auc["variants"]["control"]["estimate"] is None
    assert auc["variants"]["control"]["reason"]


def test_snapshot_keeps_inputs_and_reports_are_reproducible(session, settings):
    experiment = _started(session)
    exposures, events, labels, predictions = [], [], [], []
    for i in range(400):
        unit, variant = f"u{i}", ("control", "treatment")[i % 2]
        exposures.append((experiment.id, 0, unit, variant, T0, T0))
        for _ in range(1 + i % 3):
            events.append(
                (uuid.uuid4().hex, unit, "impression", 1.0, T0 + timedelta(hours=1), {}, T0)
            )
        if i % 4 == 0:
            events.append((uuid.uuid4().hex, unit, "play", 1.0, T0 + timedelta(hours=2), {}, T0))
        if i % 5 == 0:
            events.append(
                (uuid.uuid4().hex, unit, "purchase", 9.5, T0 + timedelta(hours=3), {}, T0)
            )
        predictions.append((f"p{i}", unit, experiment.id, variant, "m", (i % 10) / 10, T0, T0))
        labels.append((f"p{i}", float(i % 10 >= 5 or i % 7 == 0), T0, T0))
    for target, rows in (
        (EXPOSURES, exposures),
        (EVENTS, events),
        (PREDICTIONS, predictions),
        (LABELS, labels),
    ):
        insert_ignoring_duplicates(session, target, rows)
    snapshot = run_analysis(session, "ranker-v2", settings=settings, now=NOW)
    report = snapshot.report
    _no_nan(report)
    assert snapshot.inputs["units"] == {"control": 200, "treatment": 200}
    moments = snapshot.inputs["moments"]["take_rate"]["control"]
    assert moments["n"] == 200
    assert snapshot.settings["alpha"] == 0.05
    assert report["experiment"]["variants"]["treatment"]["params"]["model"] == "ranker_b"
    assert report["metrics"]["ranker_auc"]["variants"]["control"]["estimate"] is not None
    # The latest snapshot is served until a refresh is asked for.
    assert (
        load_report(session, "ranker-v2", settings=settings, now=NOW + timedelta(hours=1)) == report
    )
    refreshed = load_report(
        session, "ranker-v2", settings=settings, now=NOW + timedelta(hours=1), refresh=True
    )
    assert refreshed["experiment"]["computed_at"] != report["experiment"]["computed_at"]
    assert refreshed["metrics"] == report["metrics"]
