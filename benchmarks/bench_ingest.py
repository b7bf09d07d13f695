"""Ingestion: ``POST /api/v1/events`` against the database's own bulk load, same run.

    .venv/bin/python benchmarks/bench_ingest.py [--runs 7] [--url sqlite:///...|postgresql://...]

Batches of 10,000 events (distinct ids, the same shape in every row). Each run
times, one after the other on the same database:

- the floor: SQLite, a bare ``executemany`` of ready-made rows (integer
  microseconds, JSON text) into ``events`` in one transaction, committed;
  PostgreSQL, ``COPY events_copy FROM STDIN`` of the same rows pre-formatted
  as COPY text, into a copy of ``events`` (``LIKE events INCLUDING ALL``: same
  indexes and constraints; a logged table, ``synchronous_commit`` on),
  committed;
- ``POST /api/v1/events`` through the whole Flask app (the test client, no
  socket: body decoding, validation, the API key check, the bulk insert,
  the commit before the answer);
- the same body POSTed again: every item a duplicate, nothing written.

Medians of the runs; the ratio is floor time / POST time (events/s of the
POST as a share of the floor's). Targets (issue 12): ≥ 0.30 on SQLite, ≥ 0.4
on PostgreSQL, with ``accepted``/``duplicates`` exact (checked every run).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text

from experiments.config import Settings
from experiments.service.keys import create_api_key
from experiments.storage.base import to_micros
from experiments.storage.engine import make_engine, make_session_factory
from experiments.storage.migrate import upgrade
from web import create_app

BATCH = 10_000


def make_items(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "event_id": uuid.uuid4().hex,
            "unit_id": f"user-{i % 5000}",
            "name": "play" if i % 3 else "impression",
            "value": 1.0,
            "timestamp": (now - timedelta(seconds=i)).isoformat(),
            "properties": {"slot": i % 10, "surface": "home"},
        }
        for i in range(BATCH)
    ]


def sqlite_floor(url: str, items: list[dict[str, Any]], now: datetime) -> float:
    """Bare executemany of ready rows into events, one transaction, committed."""
    import sqlite3

    path = url.removeprefix("sqlite:///")
    received = to_micros(now)
    rows = [
        (
            e["event_id"],
            e["unit_id"],
            e["name"],
            e["value"],
            to_micros(datetime.fromisoformat(e["timestamp"])),
            orjson.dumps(e["properties"]).decode(),
            received,
        )
        for e in items
    ]
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")  # as the app's engine sets it
    began = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(
        'INSERT INTO events (event_id, unit_id, name, value, "timestamp", properties, received_at)'
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    connection.execute("COMMIT")
    seconds = time.perf_counter() - began
    connection.close()
    return seconds


def postgres_floor(engine: Any, items: list[dict[str, Any]], now: datetime) -> float:
    """COPY FROM STDIN of pre-formatted rows into a copy of events, committed."""
    buffer = io.StringIO()
    received = now.isoformat()
    for e in items:
        props = orjson.dumps(e["properties"]).decode().replace("\\", "\\\\")
        buffer.write(
            f"{e['event_id']}\t{e['unit_id']}\t{e['name']}\t{e['value']}\t"
            f"{e['timestamp']}\t{props}\t{received}\n"
        )
    data = buffer.getvalue().encode()
    raw = engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()
        began = time.perf_counter()
        with cursor.copy(
            'COPY events_copy (event_id, unit_id, name, value, "timestamp", properties,'
            " received_at) FROM STDIN"
        ) as copy:
            copy.write(data)
        raw.driver_connection.commit()
        return time.perf_counter() - began
    finally:
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    engine = make_engine(url)
    upgrade(engine)
    dialect = engine.dialect.name
    sessions = make_session_factory(engine)
    if dialect == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS events_copy"))
            conn.execute(text("CREATE TABLE events_copy (LIKE events INCLUDING ALL)"))
    settings = Settings(database_url=url, secret_key="bench", log_level="WARNING")
    app = create_app(settings)
    client = app.test_client()
    now = datetime.now(UTC)
    with sessions() as session:
        _, token = create_api_key(session, scope="ingest", name="bench", actor="bench", now=now)
        session.commit()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    print(f"database: {dialect}; {args.runs} runs of one {BATCH:,}-event batch per path")
    print(f"load average before: {os.getloadavg()}")

    floors, posts, retries = [], [], []
    for _ in range(args.runs):
        floor_items = make_items(now)
        if dialect == "postgresql":
            floors.append(postgres_floor(engine, floor_items, now))
        else:
            floors.append(sqlite_floor(url, floor_items, now))
        body = orjson.dumps({"events": make_items(now)})
        began = time.perf_counter()
        response = client.post("/api/v1/events", data=body, headers=headers)
        posts.append(time.perf_counter() - began)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json() == {"accepted": BATCH, "duplicates": 0}, response.get_json()
        began = time.perf_counter()
        again = client.post("/api/v1/events", data=body, headers=headers)
        retries.append(time.perf_counter() - began)
        assert again.get_json() == {"accepted": 0, "duplicates": BATCH}, again.get_json()

    print(f"load average after: {os.getloadavg()}")
    floor = statistics.median(floors)
    floor_name = (
        "COPY FROM STDIN into a copy of events"
        if dialect == "postgresql"
        else ("bare executemany into events")
    )
    print(f"{'path':<46} {'events/s':>10} {'ratio':>7}")
    for name, runs in [
        (f"floor: {floor_name}", floors),
        ("POST /api/v1/events (10k new)", posts),
        ("POST of the same batch again (all duplicates)", retries),
    ]:
        seconds = statistics.median(runs)
        print(f"{name:<46} {BATCH / seconds:>10,.0f} {floor / seconds:>7.2f}")
    ratio = floor / statistics.median(posts)
    target = 0.4 if dialect == "postgresql" else 0.30
    verdict = "met" if ratio >= target else "MISSED"
    print(f"POST = {ratio:.2f}× the floor (target ≥ {target}×): {verdict}")
    print(
        "per-run ratios: " + ", ".join(f"{f / p:.2f}" for f, p in zip(floors, posts, strict=True))
    )
    engine.dispose()


if __name__ == "__main__":
    main()
