"""Ingestion throughput: validation and the API on top of the raw bulk insert.

For batches of 10,000 events, measured in the same run on the same database:

- baseline: ``insert_ignoring_duplicates`` of ready-made rows (the bulk SQL alone);
- ``ingest_events``: pydantic validation, in-batch dedup and the same insert;
- ``POST /api/v1/events`` through the Flask app (orjson parsing, API key check,
  the service, the commit), with the test client (no socket);
- a retried batch (every item a duplicate).

Usage: python benchmarks/bench_ingest.py [--batches 10] [--url sqlite:///...|postgresql://...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from experiments.config import Settings
from experiments.service.ingestion import ingest_events
from experiments.service.keys import create_api_key
from experiments.storage.engine import make_engine, make_session_factory
from experiments.storage.ingest import EVENTS, insert_ignoring_duplicates
from experiments.storage.migrate import upgrade
from web import create_app

BATCH = 10_000


def items(count: int, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "event_id": uuid.uuid4().hex,
            "unit_id": f"user-{i % 5000}",
            "name": "play" if i % 3 else "impression",
            "value": 1.0,
            "timestamp": (now - timedelta(seconds=i)).isoformat(),
            "properties": {"slot": i % 10},
        }
        for i in range(count)
    ]


def timed(batches: int, run: Callable[[int], None]) -> float:
    began = time.perf_counter()
    for b in range(batches):
        run(b)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    settings = Settings(database_url=url, secret_key="bench")
    now = datetime.now(UTC)
    n = args.batches

    raw = [
        [
            (e["event_id"], e["unit_id"], e["name"], e["value"], now, e["properties"], now)
            for e in items(BATCH, now)
        ]
        for _ in range(n)
    ]

    def insert_raw(b: int) -> None:
        with sessions() as session:
            insert_ignoring_duplicates(session, EVENTS, raw[b])
            session.commit()

    service_batches = [items(BATCH, now) for _ in range(n)]

    def insert_service(b: int) -> None:
        with sessions() as session:
            ingest_events(session, service_batches[b], settings=settings, now=now)
            session.commit()

    app = create_app(settings)
    client = app.test_client()
    with sessions() as session:
        _, token = create_api_key(session, scope="ingest", name="bench", actor="bench", now=now)
        session.commit()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [orjson.dumps({"events": items(BATCH, now)}) for _ in range(n)]

    def post(b: int) -> None:
        response = client.post("/api/v1/events", data=bodies[b], headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)

    def retry(b: int) -> None:
        response = client.post("/api/v1/events", data=bodies[b], headers=headers)
        assert response.get_json()["duplicates"] == BATCH

    results = [
        ("baseline: bulk insert of ready rows", timed(n, insert_raw)),
        ("ingest_events (validate + insert)", timed(n, insert_service)),
        ("POST /api/v1/events (app, no socket)", timed(n, post)),
        ("POST of a retried batch (duplicates)", timed(n, retry)),
    ]
    base = results[0][1]
    print(f"database: {engine.dialect.name}; {n} batches of {BATCH:,} events")
    print(f"{'path':<40} {'events/s':>10} {'x baseline time':>16}")
    for name, seconds in results:
        print(f"{name:<40} {n * BATCH / seconds:>10,.0f} {seconds / base:>16.2f}")
    engine.dispose()


if __name__ == "__main__":
    main()
