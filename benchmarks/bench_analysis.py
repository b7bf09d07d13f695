"""Analysis time on millions of events, against one plain scan of the table.

Seeds an experiment with U units and about E events (impressions, plays,
purchases) into a fresh database, then times, in the same run:

- baseline: ``SELECT count(*), sum(value) FROM events`` (one full scan);
- ``run_analysis``: the SQL pushdown of every metric (one query) + the stats engine.

Usage: python benchmarks/bench_analysis.py [--units 200000] [--url sqlite:///...|postgresql://...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import text

from experiments.config import Settings
from experiments.service.analysis import metric_queries, run_analysis
from experiments.service.experiments import create_experiment, get_experiment, start_experiment
from experiments.service.specs import validate_spec
from experiments.storage.aggregates import compute_metric_moments
from experiments.storage.engine import make_engine, make_session_factory
from experiments.storage.ingest import EVENTS, EXPOSURES, insert_ignoring_duplicates
from experiments.storage.migrate import upgrade
from experiments.storage.timeseries import compute_daily_moments

SPEC = {
    "key": "bench",
    "name": "bench",
    "variants": [
        {"key": "control", "weight": 0.5, "is_control": True},
        {"key": "treatment", "weight": 0.5},
    ],
    "metrics": [
        {
            "name": "take_rate",
            "kind": "ratio",
            "numerator": "play",
            "denominator": "impression",
            "role": "primary",
        },
        {
            "name": "revenue",
            "kind": "mean",
            "event": "purchase",
            "role": "guardrail",
            "margin": 0.05,
        },
        {"name": "converted", "kind": "conversion", "event": "purchase", "role": "secondary"},
        {
            "name": "plays",
            "kind": "count",
            "event": "play",
            "role": "secondary",
            "cuped": {"lookback_days": 7},
        },
    ],
}


def seed(session, units: int, now: datetime) -> int:
    start = now - timedelta(days=14)
    create_experiment(session, validate_spec(SPEC), actor="bench", now=start)
    experiment = start_experiment(session, "bench", actor="bench", now=start)
    rng = np.random.default_rng(0)
    total = 0
    chunk = 20_000
    for first in range(0, units, chunk):
        ids = range(first, min(units, first + chunk))
        exposures, events = [], []
        for i in ids:
            exposed = start + timedelta(seconds=int(rng.integers(0, 13 * 86400)))
            variant = ("control", "treatment")[i % 2]
            exposures.append((experiment.id, 0, f"u{i}", variant, exposed, exposed))
            n_imp = int(rng.poisson(8))
            n_play = int(rng.binomial(n_imp, 0.25))
            for name, count in (
                ("impression", n_imp),
                ("play", n_play),
                ("purchase", int(rng.poisson(0.3))),
            ):
                for _ in range(count):
                    at = exposed + timedelta(seconds=int(rng.integers(-3 * 86400, 86400)))
                    events.append(
                        (uuid.uuid4().hex, f"u{i}", name, float(rng.lognormal(2, 1)), at, {}, at)
                    )
        insert_ignoring_duplicates(session, EXPOSURES, exposures)
        total += insert_ignoring_duplicates(session, EVENTS, events)
        session.commit()
    return total


def best_of(repeats: int, func) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        func()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=200_000)
    parser.add_argument(
        "--url", default=None, help="database URL (default: a temporary SQLite file)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC)
    settings = Settings(database_url=url)
    with sessions() as session:
        began = time.perf_counter()
        events = seed(session, args.units, now)
        seeded = time.perf_counter() - began
    print(
        f"database: {engine.dialect.name}; {args.units:,} units, {events:,} events "
        f"(seeded in {seeded:.1f} s, {events / seeded:,.0f} events/s through the bulk insert)"
    )
    with sessions() as session:
        experiment = get_experiment(session, "bench")
        queries = metric_queries(experiment)

        def scan() -> None:
            session.execute(text("SELECT count(*), sum(value) FROM events")).one()

        def verdict_sql() -> None:
            compute_metric_moments(
                session,
                experiment_id=experiment.id,
                epoch=0,
                metrics=queries,
                until=now,
                skew_seconds=60,
            )

        def daily_sql() -> None:
            compute_daily_moments(
                session,
                experiment_id=experiment.id,
                epoch=0,
                metrics=queries[:1],  # the primary, as run_analysis does
                until=now,
                skew_seconds=60,
            )

        def analysis() -> None:
            run_analysis(session, "bench", settings=settings, now=now)

        steps = [
            ("baseline: one scan of events", best_of(args.repeats, scan)),
            ("verdict SQL: every metric, CUPED", best_of(args.repeats, verdict_sql)),
            ("time-series SQL: primary, own reference", best_of(args.repeats, daily_sql)),
            ("run_analysis: both + stats + snapshot", best_of(args.repeats, analysis)),
        ]
        session.rollback()
    base = steps[0][1]
    print(f"{'step':<40} {'seconds':>8} {'x scan':>8}")
    for name, seconds in steps:
        print(f"{name:<40} {seconds:>8.3f} {seconds / base:>8.2f}")
    engine.dispose()


if __name__ == "__main__":
    main()
