"""The SDK's ingestion path end to end against a real ``xp serve`` (gunicorn, 2 workers).

Issue 4, item 5: every event tracked through the SDK reaches the events table
exactly once, through a server crash, retried and concurrent duplicate
batches, and a batch holding a bad item; a full queue drops and counts
instead of blocking. Runs on SQLite, and on PostgreSQL when
``TEST_DATABASE_URL`` is set (the server fixture picks the database).

One server serves the whole module (``live_server`` is overridden here with
module scope): booting gunicorn costs about 10 s on a loaded machine, and five
boots would blow the time budget. Tests therefore tell their rows apart by
event name or by id, never by table totals, and any test that finds the
server down (after the kill or stop tests) starts it again.

Killing the server: ``LiveServer.stop(kill=True)`` sends SIGKILL to the
server's whole process group (gunicorn's master and its workers, as a host
crash would) and waits until nothing listens on the port any more, so the
restart binds the same port and no orphaned worker answers for it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import bindparam, text

from experiments.sdk import Client
from experiments.sdk.errors import DeliveryError, QueueFullError, RejectedItemError, SdkError
from experiments.storage.engine import make_engine
from tests.conftest import DatabaseFactory, LiveServer, make_live_server, port_refuses

pytestmark = pytest.mark.server


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_server(
    database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """``tests/conftest.py``'s server, shared by this module (see the module docstring)."""
    server = make_live_server(database_factory, tmp_path_factory.mktemp("live-sdk"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ingest_key(live_server: LiveServer) -> str:
    return live_server.create_key("ingest")


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    """The module's server, started again if an earlier test left it down."""
    if live_server.process is None:
        live_server.start()
    return live_server


class Errors:
    """An ``on_error`` callback that keeps what it is given (called from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[SdkError] = []

    def __call__(self, error: SdkError) -> None:
        with self._lock:
            self.items.append(error)

    def of(self, cls: type[SdkError]) -> list[SdkError]:
        with self._lock:
            return [e for e in self.items if isinstance(e, cls)]


# -- process and database helpers ---------------------------------------------------


def _event_ids(
    live: LiveServer, *, name: str | None = None, ids: list[str] | None = None
) -> list[str]:
    """``event_id`` of every stored row with that name, or among ``ids`` (repeats kept)."""
    engine = make_engine(live.database_url)
    try:
        with engine.connect() as conn:
            if name is not None:
                rows = conn.execute(
                    text("SELECT event_id FROM events WHERE name = :n"), {"n": name}
                )
            else:
                query = text("SELECT event_id FROM events WHERE event_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                )
                rows = conn.execute(query, {"ids": ids})
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def _events(name: str, count: int) -> list[dict[str, Any]]:
    return [
        {"event_id": str(uuid.uuid4()), "unit_id": f"user-{i}", "name": name, "value": float(i)}
        for i in range(count)
    ]


# -- tests ----------------------------------------------------------------------------


def test_a_crash_and_restart_mid_send_loses_and_doubles_nothing(
    server: LiveServer, ingest_key: str
) -> None:
    total = 20_000
    errors = Errors()
    client = Client(
        server.url,
        ingest_key,
        on_error=errors,
        batch_size=500,
        flush_interval=200.0,
        max_retries=300,  # the outage (kill, 1.5 s, ~10 s boot) must not exhaust retries
        backoff_base=0.1,
        backoff_max=0.5,
        timeout=10.0,
    )
    tracked: list[str] = []

    def produce() -> None:
        # Paced over ~2 s so that the crash lands while events are still arriving.
        for chunk in range(40):
            for i in range(500):
                tracked.append(client.track("live_crash", f"user-{chunk}-{i % 50}", float(i)))
            time.sleep(0.05)

    producer = threading.Thread(target=produce, name="producer")
    try:
        producer.start()
        deadline = time.monotonic() + 60
        while client.stats().sent < 2_000:
            assert time.monotonic() < deadline, f"nothing delivered: {client.stats()}"
            time.sleep(0.01)

        server.stop(kill=True)  # SIGKILL to master and workers
        killed_at = time.monotonic()
        sent_at_crash = client.stats().sent
        time.sleep(max(0.0, 1.5 - (time.monotonic() - killed_at)))
        assert client.stats().sent == sent_at_crash, "an ack arrived from a dead server"
        server.start()

        producer.join(timeout=30)
        assert not producer.is_alive()
        assert client.flush(timeout=60), f"flush timed out: {client.stats()}"
        stats = client.stats()
    finally:
        client.close(timeout=5)

    assert sent_at_crash < total, "the crash came after everything was sent"
    assert len(tracked) == len(set(tracked)) == total
    assert (stats.queued, stats.sent, stats.dropped, stats.rejected) == (0, total, 0, 0)
    assert stats.retried > 0, "the outage never made the SDK retry"
    assert errors.of(DeliveryError) == []
    assert errors.of(RejectedItemError) == []
    stored = _event_ids(server, name="live_crash")
    repeated = {event_id: n for event_id, n in Counter(stored).items() if n > 1}
    assert repeated == {}
    assert set(stored) == set(tracked)
    assert len(stored) == total


def test_a_batch_posted_twice_is_stored_once(server: LiveServer, ingest_key: str) -> None:
    batch = _events("live_twice", 500)
    headers = {"Authorization": f"Bearer {ingest_key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        first = http.post("/api/v1/events", json={"events": batch})
        second = http.post("/api/v1/events", json={"events": batch})
    assert (first.status_code, first.json()) == (200, {"accepted": 500, "duplicates": 0})
    assert (second.status_code, second.json()) == (200, {"accepted": 0, "duplicates": 500})
    stored = _event_ids(server, name="live_twice")
    assert sorted(stored) == sorted(e["event_id"] for e in batch)


BAD_ITEMS = {
    # Accepted by the SDK's cheap local checks, refused by the server.
    "timestamp-3-days-ahead": {"timestamp": datetime.now(UTC) + timedelta(days=3)},
    "event-id-with-a-space": {"event_id": "not a server id"},
    # Issue 11: what PostgreSQL cannot store is refused by the server on both databases.
    "offset-beyond-15h59": {
        "timestamp": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=20)))
    },
    "before-1970": {"timestamp": datetime(1969, 12, 31, tzinfo=UTC)},
    "nul-in-properties": {"properties": {"note": "a\x00b"}},
    "nul-in-a-properties-key": {"properties": {"a\x00": 1}},
    "properties-too-deep": {"properties": {"a": [[[[[[[[[1]]]]]]]]]}},
}


@pytest.mark.parametrize("bad", list(BAD_ITEMS.values()), ids=list(BAD_ITEMS))
def test_one_bad_item_is_rejected_and_the_rest_delivered(
    server: LiveServer, ingest_key: str, bad: dict[str, Any]
) -> None:
    name = f"live_bad_{uuid.uuid4().hex[:8]}"
    errors = Errors()
    client = Client(
        server.url, ingest_key, on_error=errors, batch_size=100, flush_interval=60_000.0
    )
    try:
        good = [client.track(name, f"user-{i}", float(i)) for i in range(20)]
        bad_id = client.track(name, "user-bad", 1.0, **bad)
        good += [client.track(name, f"user-{i}", float(i)) for i in range(20, 40)]
        assert client.stats().rejected == 0, "the SDK refused the item locally"
        assert client.flush(timeout=30)
        stats = client.stats()
    finally:
        client.close(timeout=5)

    assert (stats.queued, stats.sent, stats.dropped, stats.rejected) == (0, 40, 0, 1)
    rejected = errors.of(RejectedItemError)
    assert len(rejected) == 1
    assert errors.of(DeliveryError) == []
    assert [item["event_id"] for item in rejected[0].items] == [bad_id]
    assert rejected[0].status_code == 400
    assert sorted(_event_ids(server, name=name)) == sorted(good)


def _race(url: str, headers: dict[str, str], events: list[dict[str, Any]]) -> list[Any]:
    """POST ``events`` from two threads at once; return each (start, end, response)."""
    barrier = threading.Barrier(2)
    answers: list[Any] = [None, None]

    def post(slot: int) -> None:
        # Each thread has its own connection, so each request can reach its own worker.
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            http.get("/healthz")  # connect before the barrier
            barrier.wait(timeout=10)
            started = time.monotonic()
            try:
                response: Any = http.post("/api/v1/events", json={"events": events})
            except Exception as exc:
                response = exc
            answers[slot] = (started, time.monotonic(), response)

    threads = [threading.Thread(target=post, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_identical_batches_racing_on_two_workers_are_stored_once(
    server: LiveServer, ingest_key: str
) -> None:
    headers = {"Authorization": f"Bearer {ingest_key}"}
    overlapped = 0
    for round_ in range(3):  # a few rounds: the race need not overlap every time
        batch = _events(f"live_race_{round_}", 2_000)
        answers = _race(server.url, headers, batch)
        bodies = []
        for answer in answers:
            assert answer is not None, "a poster thread did not finish"
            response = answer[2]
            assert isinstance(response, httpx.Response), repr(response)
            assert response.status_code == 200, response.text
            bodies.append(response.json())
        overlapped += max(a[0] for a in answers) < min(a[1] for a in answers)
        assert sum(b["accepted"] for b in bodies) == 2_000, bodies
        assert sum(b["duplicates"] for b in bodies) == 2_000, bodies
        stored = _event_ids(server, name=f"live_race_{round_}")
        assert sorted(stored) == sorted(e["event_id"] for e in batch)
    assert overlapped > 0, "the two requests never ran at the same time"


def test_a_full_queue_drops_the_newest_without_blocking_while_the_server_is_down(
    server: LiveServer, ingest_key: str
) -> None:
    server.stop()
    assert port_refuses(server.port)
    errors = Errors()
    client = Client(
        server.url,
        ingest_key,
        on_error=errors,
        capacity=100,
        batch_size=500,
        flush_interval=60_000.0,  # nothing leaves the queue before close()
        max_retries=2,
        backoff_base=0.05,
        backoff_max=0.1,
        timeout=1.0,
    )
    try:
        started = time.perf_counter()
        ids = [client.track("live_full", f"user-{i}") for i in range(150)]
        elapsed = time.perf_counter() - started
        stats = client.stats()
    finally:
        closed_at = time.perf_counter()
        client.close(timeout=2)
        close_took = time.perf_counter() - closed_at
    after_close = client.stats()

    assert elapsed < 2.0, f"150 track() calls took {elapsed:.2f} s"
    assert len(set(ids)) == 150
    assert (stats.queued, stats.sent, stats.dropped, stats.rejected) == (100, 0, 50, 0)
    assert len(errors.of(QueueFullError)) == 1, errors.items
    # Closing against the dead server drops (and counts) what was queued.
    assert close_took < 10.0
    assert (after_close.queued, after_close.sent, after_close.dropped) == (0, 0, 150)
    assert after_close.rejected == 0


def test_one_bad_unit_id_among_2000_events_costs_only_that_event(
    server: LiveServer, ingest_key: str
) -> None:
    """Issue 11: a NUL byte in one unit_id used to lose the whole batch on PostgreSQL."""
    name = f"live_nul_{uuid.uuid4().hex[:8]}"
    errors = Errors()
    client = Client(server.url, ingest_key, on_error=errors, flush_interval=60_000.0)
    try:
        good = [client.track(name, f"user-{i}") for i in range(1000)]
        bad_id = client.track(name, "user-\x00-bad")
        good += [client.track(name, f"user-{i}") for i in range(1000, 1999)]
        assert client.flush(timeout=60)
        stats = client.stats()
    finally:
        client.close(timeout=5)
    assert (stats.sent, stats.dropped, stats.rejected) == (1999, 0, 1)
    [rejected] = errors.of(RejectedItemError)
    assert [item["event_id"] for item in rejected.items] == [bad_id]
    assert "NUL" in rejected.message
    assert sorted(_event_ids(server, name=name)) == sorted(good)
