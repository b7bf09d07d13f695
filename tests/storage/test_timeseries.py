"""Daily cumulative moments in SQL against compute_metric_moments and plain Python."""

import itertools
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from experiments.storage.aggregates import MetricQuery, compute_metric_moments
from experiments.storage.ingest import EVENTS, EXPOSURES, insert_ignoring_duplicates
from experiments.storage.timeseries import MAX_POINTS, compute_daily_moments, day_boundaries
from tests.factories import add_experiment_row, event_row

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
UNTIL = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
SKEW = 60.0
METRICS = [
    MetricQuery("revenue", "mean", ("purchase",), cap_percentile=90, lookback_days=7),
    MetricQuery("converted", "conversion", ("purchase",), window_days=2),
    MetricQuery("plays", "count", ("play",), cap=3),
    MetricQuery("take_rate", "ratio", ("play", "impression")),
]


@pytest.fixture
def experiment(session):
    return add_experiment_row(session, "daily", at=T0, epoch=1)


_event = event_row


def _daily(session, experiment, metrics=METRICS, until=UNTIL, **kwargs):
    return compute_daily_moments(
        session,
        experiment_id=experiment.id,
        epoch=experiment.epoch,
        metrics=metrics,
        until=until,
        skew_seconds=SKEW,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("first", "until", "expected"),
    [
        (
            datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
            datetime(2026, 3, 3, 15, 0, tzinfo=UTC),
            ["2026-03-02T00:00", "2026-03-03T00:00", "2026-03-03T15:00"],
        ),
        (
            datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
            datetime(2026, 3, 3, 0, 0, tzinfo=UTC),
            ["2026-03-02T00:00", "2026-03-03T00:00"],
        ),
        (
            datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
            datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
            ["2026-03-01T08:00"],
        ),
        (datetime(2026, 3, 1, 9, 30, tzinfo=UTC), datetime(2026, 3, 1, 9, 30, tzinfo=UTC), []),
    ],
    ids=["partial-last-day", "until-at-midnight", "within-one-day", "until-not-after-first"],
)
def test_day_boundaries(first, until, expected):
    ends, step = day_boundaries(first, until)
    assert [e.isoformat()[:16] for e in ends] == expected
    assert step == 1


def test_day_boundaries_are_capped_and_keep_until_last():
    first = datetime(2026, 1, 1, 12, tzinfo=UTC)
    until = first + timedelta(days=400)
    ends, step = day_boundaries(first, until)
    assert len(ends) <= MAX_POINTS
    assert ends[-1] == until
    assert step == math.ceil(400 / (MAX_POINTS - 1))
    gaps = {b - a for a, b in itertools.pairwise(ends[:-1])}
    assert gaps == {timedelta(days=step)}
    assert until - ends[-2] <= timedelta(days=step)
    assert all(e.hour == 0 for e in ends[:-1])


def test_day_boundaries_refuse_naive_datetimes():
    with pytest.raises(ValueError, match="timezone-aware"):
        day_boundaries(datetime(2026, 1, 1), UNTIL)


def _simulate(experiment, seed=5, units=160):
    """Random exposures over five days and events around them; returns the raw rows."""
    rng = np.random.default_rng(seed)
    exposures, events = [], []
    for i in range(units):
        unit = f"u{i}"
        exposed = T0 + timedelta(minutes=int(rng.integers(0, 5 * 24 * 60)))
        exposures.append(
            (experiment.id, 1, unit, ("control", "treatment")[i % 2], exposed, exposed)
        )
        for _ in range(int(rng.integers(0, 4))):
            # mean/sd ≈ 1e6 checks the per-day centering
            at = exposed + timedelta(minutes=int(rng.integers(-600, 4 * 24 * 60)))
            events.append(_event(unit, "purchase", 1e6 + float(rng.normal()), at))
        for _ in range(int(rng.integers(0, 5))):
            at = exposed + timedelta(minutes=int(rng.integers(0, 3 * 24 * 60)))
            events.append(_event(unit, "impression", 1.0, at))
            if rng.random() < 0.5:
                events.append(_event(unit, "play", 1.0, at + timedelta(seconds=5)))
    # noise: another epoch's exposure and an unrelated event name
    exposures.append((experiment.id, 0, "old", "control", T0, T0))
    events.append(_event("u1", "other", 5.0, T0 + timedelta(hours=2)))
    return exposures, events


def _per_unit(exposures, events, end, cap_revenue):
    """Per-unit values at ``end`` the slow way: {variant: {metric: array (n, k)}}."""
    skew = timedelta(seconds=SKEW)
    out = {}
    for _exp, epoch, unit, variant, exposed, _ in exposures:
        if epoch != 1 or exposed >= end:
            continue
        mine = [e for e in events if e[1] == unit and exposed - skew <= e[4] < end]
        revenue = sum(e[3] for e in mine if e[2] == "purchase")
        converted = float(
            any(e[2] == "purchase" and e[4] < exposed + timedelta(days=2) for e in mine)
        )
        plays = sum(1 for e in mine if e[2] == "play")
        impressions = sum(1 for e in mine if e[2] == "impression")
        rows = out.setdefault(variant, {"revenue": [], "converted": [], "plays": [], "take": []})
        rows["revenue"].append([revenue if cap_revenue is None else min(revenue, cap_revenue)])
        rows["converted"].append([converted])
        rows["plays"].append([min(plays, 3)])
        rows["take"].append([plays, impressions])
    return out


def test_every_day_matches_python_and_the_last_matches_the_report_query(session, experiment):
    exposures, events = _simulate(experiment)
    insert_ignoring_duplicates(session, EXPOSURES, exposures)
    insert_ignoring_duplicates(session, EVENTS, events)
    daily = _daily(session, experiment)
    assert daily.step_days == 1
    assert [e.isoformat()[:16] for e in daily.ends] == [
        *(f"2026-03-0{d}T00:00" for d in range(2, 7)),
        "2026-03-06T15:00",
    ]
    report = compute_metric_moments(
        session,
        experiment_id=experiment.id,
        epoch=1,
        metrics=METRICS,
        until=UNTIL,
        skew_seconds=SKEW,
    )
    assert daily.caps == report.caps
    assert daily.units[-1] == report.units
    for name, per_variant in report.moments.items():
        for variant, expected in per_variant.items():
            got = daily.moments[-1][name][variant]
            k = got.k  # the report's extra CUPED columns come after the plain ones
            assert got.n == expected.n
            for i in range(k):
                assert got.mean(i) == pytest.approx(expected.mean(i), rel=1e-12)
                for j in range(k):
                    assert got.cov(i, j) == pytest.approx(expected.cov(i, j), rel=1e-9, abs=1e-12)

    columns = {
        "revenue": "revenue",
        "converted": "converted",
        "plays": "plays",
        "take_rate": "take",
    }
    for day, end in enumerate(daily.ends):
        truth = _per_unit(exposures, events, end, daily.caps["revenue"])
        assert daily.units[day] == {v: len(rows["plays"]) for v, rows in truth.items()}
        for name, key in columns.items():
            for variant, rows in truth.items():
                x = np.asarray(rows[key], dtype=float)
                got = daily.moments[day][name][variant]
                assert got.n == len(x)
                assert got.mean(0) == pytest.approx(x[:, 0].mean(), rel=1e-12)
                if len(x) > 1:
                    assert got.var(0) == pytest.approx(x[:, 0].var(ddof=1), rel=1e-8, abs=1e-12)
                if x.shape[1] == 2:
                    assert got.total(1) == pytest.approx(x[:, 1].sum())
                    if len(x) > 1:
                        assert got.cov(0, 1) == pytest.approx(np.cov(x.T)[0, 1], abs=1e-12)


MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC)


def test_hand_built_two_days(session, experiment):
    day1 = datetime(2026, 3, 1, 10, tzinfo=UTC)
    day2 = datetime(2026, 3, 2, 10, tzinfo=UTC)
    until = datetime(2026, 3, 2, 20, tzinfo=UTC)
    insert_ignoring_duplicates(
        session,
        EXPOSURES,
        [
            (experiment.id, 1, "a", "control", day1, day1),
            (experiment.id, 1, "b", "treatment", day1, day1),
            (experiment.id, 1, "c", "treatment", day2, day2),
            (experiment.id, 1, "late", "control", until, until),  # at `until`: not counted
            (experiment.id, 1, "d", "treatment", MIDNIGHT + timedelta(seconds=20), day2),
        ],
    )
    insert_ignoring_duplicates(
        session,
        EVENTS,
        [
            _event("a", "buy", 2.0, day1 + timedelta(hours=1)),
            _event("a", "buy", 3.0, day2),  # second day
            _event("b", "buy", 5.0, day1 - timedelta(seconds=30)),  # within the skew
            _event("c", "buy", 7.0, day2 - timedelta(hours=1)),  # before c's exposure
            _event("c", "buy", 11.0, until),  # at `until`: not counted
            _event("c", "buy", 13.0, day2 + timedelta(hours=2)),
            # within the skew of d's exposure but on the day before it: counts from d's day
            _event("d", "buy", 17.0, MIDNIGHT - timedelta(seconds=10)),
        ],
    )
    daily = _daily(
        session,
        experiment,
        metrics=[
            MetricQuery("spend", "mean", ("buy",)),
            MetricQuery("bought", "conversion", ("buy",)),
        ],
        until=until,
    )
    assert daily.ends == [MIDNIGHT, until]
    assert daily.units == [{"control": 1, "treatment": 1}, {"control": 1, "treatment": 3}]
    spend = [{v: (m.n, m.total()) for v, m in day["spend"].items()} for day in daily.moments]
    assert spend == [
        {"control": (1, 2.0), "treatment": (1, 5.0)},
        {"control": (1, 5.0), "treatment": (3, 35.0)},
    ]
    treatment = daily.moments[1]["spend"]["treatment"]
    assert treatment.var() == pytest.approx(np.var([5.0, 13.0, 17.0], ddof=1))
    assert daily.moments[1]["bought"]["treatment"].mean() == 1.0


def test_many_days_are_sampled(session, experiment):
    first = datetime(2025, 1, 1, 12, tzinfo=UTC)
    until = first + timedelta(days=200)
    exposures = [
        (experiment.id, 1, f"u{d}", "control", first + timedelta(days=d), first) for d in range(200)
    ]
    insert_ignoring_duplicates(session, EXPOSURES, exposures)
    daily = _daily(session, experiment, metrics=[], until=until, max_points=10)
    step = math.ceil(200 / 9)  # 200 midnights before `until`, at most 9 kept
    assert daily.step_days == step
    assert len(daily.ends) == 200 // step + 1
    assert [u["control"] for u in daily.units] == [
        sum(1 for e in exposures if e[4] < end) for end in daily.ends
    ]
    assert daily.moments[-1] == {}


def test_no_exposures_gives_no_days(session, experiment):
    daily = _daily(session, experiment)
    assert daily.ends == []
    assert daily.units == []
    assert daily.moments == []
