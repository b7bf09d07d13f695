"""SQL sufficient statistics against numpy on the same per-unit values."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from experiments.storage.aggregates import MetricQuery, compute_metric_moments
from experiments.storage.ingest import EVENTS, EXPOSURES, insert_ignoring_duplicates
from tests.factories import add_experiment_row, event_row

T0 = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = T0 + timedelta(days=30)


@pytest.fixture
def experiment(session):
    return add_experiment_row(session, "agg", at=T0, epoch=0)


_event = event_row


def test_moments_match_numpy_with_windows_cuped_and_large_means(session, experiment):
    rng = np.random.default_rng(3)
    exposures, events, truth = [], [], {}
    for i in range(200):
        unit, variant = f"u{i}", ("control", "treatment")[i % 2]
        exposed = T0 + timedelta(hours=i)
        exposures.append((experiment.id, 0, unit, variant, exposed, exposed))
        revenue = pre = 0.0
        plays = impressions = 0
        for _ in range(int(rng.integers(0, 5))):
            # mean/sd = 1e6: naive sums of squares would lose every digit
            value = 1e6 + float(rng.normal())
            offset = timedelta(minutes=int(rng.integers(-3000, 3000)))
            events.append(_event(unit, "purchase", value, exposed + offset))
            if offset >= timedelta(seconds=-60):
                revenue += value
            elif offset >= timedelta(days=-14):
                pre += value
        for _ in range(int(rng.integers(1, 6))):
            events.append(_event(unit, "impression", 1.0, exposed + timedelta(minutes=5)))
            impressions += 1
            if rng.random() < 0.3:
                events.append(_event(unit, "play", 1.0, exposed + timedelta(minutes=6)))
                plays += 1
        truth[unit] = (variant, revenue, pre, plays, impressions)
    # noise: another experiment's exposure and an unrelated event name
    events.append(_event("u1", "other", 5.0, T0 + timedelta(hours=2)))
    insert_ignoring_duplicates(session, EXPOSURES, exposures)
    insert_ignoring_duplicates(session, EVENTS, events)
    result = compute_metric_moments(
        session,
        experiment_id=experiment.id,
        epoch=0,
        metrics=[
            MetricQuery("revenue", "mean", ("purchase",), lookback_days=14),
            MetricQuery("converted", "conversion", ("purchase",)),
            MetricQuery("take_rate", "ratio", ("play", "impression")),
        ],
        until=UNTIL,
        skew_seconds=60,
    )
    for variant in ("control", "treatment"):
        rows = [t for t in truth.values() if t[0] == variant]
        y = np.array([r[1] for r in rows])
        x = np.array([r[2] for r in rows])
        num = np.array([r[3] for r in rows], dtype=float)
        den = np.array([r[4] for r in rows], dtype=float)
        assert result.units[variant] == len(rows)
        revenue = result.moments["revenue"][variant]
        assert revenue.mean(0) == pytest.approx(y.mean(), rel=1e-12)
        assert revenue.var(0) == pytest.approx(y.var(ddof=1), rel=1e-9)
        assert revenue.cov(0, 1) == pytest.approx(np.cov(y, x)[0, 1], rel=1e-9)
        assert result.moments["converted"][variant].mean() == pytest.approx((y > 0).mean())
        ratio = result.moments["take_rate"][variant]
        assert ratio.total(0) / ratio.total(1) == pytest.approx(num.sum() / den.sum())
        assert ratio.cov(0, 1) == pytest.approx(np.cov(num, den)[0, 1])


def test_window_boundaries_and_skew(session, experiment):
    exposed = T0
    insert_ignoring_duplicates(
        session, EXPOSURES, [(experiment.id, 0, "u", "control", exposed, exposed)]
    )
    insert_ignoring_duplicates(
        session,
        EVENTS,
        [
            _event("u", "buy", 1.0, exposed - timedelta(seconds=60)),  # at the tolerance: counts
            _event("u", "buy", 10.0, exposed - timedelta(seconds=61)),  # before it: does not
            _event("u", "buy", 100.0, exposed + timedelta(days=1)),  # at window end: does not
            _event("u", "buy", 1000.0, UNTIL),  # at analysis time: does not
        ],
    )
    windowed = compute_metric_moments(
        session,
        experiment_id=experiment.id,
        epoch=0,
        metrics=[
            MetricQuery("w", "mean", ("buy",), window_days=1),
            MetricQuery("all", "mean", ("buy",)),
        ],
        until=UNTIL,
        skew_seconds=60,
    )
    assert windowed.moments["w"]["control"].mean() == 1.0
    assert windowed.moments["all"]["control"].mean() == 101.0


def test_caps_value_and_percentile(session, experiment):
    exposures = [(experiment.id, 0, f"u{i}", "control", T0, T0) for i in range(100)]
    events = [_event(f"u{i}", "buy", float(i + 1), T0 + timedelta(hours=1)) for i in range(100)]
    insert_ignoring_duplicates(session, EXPOSURES, exposures)
    insert_ignoring_duplicates(session, EVENTS, events)
    result = compute_metric_moments(
        session,
        experiment_id=experiment.id,
        epoch=0,
        metrics=[
            MetricQuery("v", "mean", ("buy",), cap=50.0),
            MetricQuery("p", "mean", ("buy",), cap_percentile=90),
        ],
        until=UNTIL,
        skew_seconds=60,
    )
    values = np.arange(1, 101, dtype=float)
    assert result.moments["v"]["control"].mean() == pytest.approx(np.minimum(values, 50).mean())
    assert result.caps["p"] == 90.0  # nearest rank: ceil(0.9 * 100) = 90th value
    assert result.moments["p"]["control"].var() == pytest.approx(np.minimum(values, 90).var(ddof=1))


def test_no_exposures_gives_no_units(session, experiment):
    result = compute_metric_moments(
        session,
        experiment_id=experiment.id,
        epoch=0,
        metrics=[MetricQuery("v", "mean", ("buy",))],
        until=UNTIL,
        skew_seconds=60,
    )
    assert result.units == {}
    assert result.moments == {"v": {}}
