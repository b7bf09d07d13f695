"""Planning from recent traffic: baseline and arrivals from SQL, size from power."""

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from experiments.service.experiments import create_experiment
from experiments.service.planning import plan_experiment
from experiments.service.specs import validate_spec
from experiments.stats.power import Baseline, sample_size
from experiments.storage.ingest import EVENTS, insert_ignoring_duplicates
from tests.factories import spec_document

NOW = datetime(2026, 6, 15, tzinfo=UTC)


def _conversion_spec(**changes):
    doc = spec_document(**changes)
    doc["metrics"] = [
        {"name": "converted", "kind": "conversion", "event": "buy", "role": "primary"}
    ]
    return doc


def test_plan_uses_baseline_and_arrivals_from_recent_events(session, settings):
    rng = np.random.default_rng(5)
    rows, converted = [], []
    # 50 new units a day for 10 days; each converts with probability 0.2.
    for day in range(10):
        for i in range(50):
            unit = f"d{day}-u{i}"
            seen = NOW - timedelta(days=10 - day) + timedelta(hours=1)
            rows.append((uuid.uuid4().hex, unit, "visit", 1.0, seen, {}, seen))
            buys = rng.random() < 0.2
            converted.append(buys)
            if buys:
                rows.append(
                    (uuid.uuid4().hex, unit, "buy", 1.0, seen + timedelta(minutes=5), {}, seen)
                )
    # Older activity outside a 10-day lookback is ignored.
    old = NOW - timedelta(days=40)
    rows.append((uuid.uuid4().hex, "ancient", "buy", 1.0, old, {}, old))
    insert_ignoring_duplicates(session, EVENTS, rows)
    create_experiment(
        session, validate_spec(_conversion_spec(traffic=0.5, mde=0.5)), actor="test", now=NOW
    )
    plan = plan_experiment(session, "ranker-v2", settings=settings, now=NOW, lookback_days=10)
    rate = float(np.mean(converted))
    assert plan["active_units"] == 500
    assert plan["baseline_mean"] == pytest.approx(rate)
    assert plan["cumulative_units"] == [50 * (d + 1) for d in range(10)]
    expected = sample_size(Baseline.conversion(rate), mde=0.5, weights=[0.5, 0.5])
    assert plan["sample_size"] == expected
    # 25 units a day enter (traffic 0.5), observed or extrapolated at the same rate.
    days = -(-expected // 25)
    assert plan["days_needed"] == days


def test_plan_without_traffic_says_so(session, settings):
    create_experiment(session, validate_spec(_conversion_spec()), actor="test", now=NOW)
    plan = plan_experiment(session, "ranker-v2", settings=settings, now=NOW)
    assert plan["sample_size"] is None
    assert "no usable baseline" in plan["reasons"][0]


def test_plan_extrapolates_beyond_the_window(session, settings):
    rows = []
    for day in range(7):
        for i in range(10):
            seen = NOW - timedelta(days=7 - day) + timedelta(hours=2)
            unit = f"x{day}-{i}"
            rows.append((uuid.uuid4().hex, unit, "visit", 1.0, seen, {}, seen))
            if i % 4 == 0:
                rows.append((uuid.uuid4().hex, unit, "buy", 1.0, seen, {}, seen))
    insert_ignoring_duplicates(session, EVENTS, rows)
    create_experiment(session, validate_spec(_conversion_spec(mde=0.1)), actor="test", now=NOW)
    plan = plan_experiment(session, "ranker-v2", settings=settings, now=NOW, lookback_days=7)
    assert plan["sample_size"] > 70
    assert plan["days_needed"] == 7 + -(-(plan["sample_size"] - 70) // 10)
    assert "extrapolated at 10 new units/day" in plan["reasons"][0]
