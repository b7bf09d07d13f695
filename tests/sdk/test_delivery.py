"""Batching, retries with backoff, splitting refused batches, accounting of every item."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from experiments.sdk import Client, DeliveryError, RejectedItemError
from experiments.sdk._delivery import RETRY_AFTER_MAX, parse_retry_after
from tests.sdk.fakes import FakeClock, FakeServer, MakeClient, Recorder, accounted, pump


class UpperBound(random.Random):
    """Jitter that always draws the cap, to check the exponential schedule exactly."""

    def uniform(self, a: float, b: float) -> float:
        return b


def track_n(client: Client, n: int) -> list[str]:
    return [client.track("play", unit_id=f"u{i}") for i in range(n)]


def test_full_batches_are_due_at_once_partial_after_the_interval(
    make_client: MakeClient, server: FakeServer, clock: FakeClock
) -> None:
    client = make_client(batch_size=3, flush_interval=1000)
    ids = track_n(client, 7)
    pump(client)
    assert [len(b) for b in server.posts("events")] == [3, 3]
    assert client.stats().queued == 1

    clock.advance(0.999)
    pump(client)
    assert len(server.posts("events")) == 2

    clock.advance(0.001)
    pump(client)
    assert [len(b) for b in server.posts("events")] == [3, 3, 1]
    assert [e["event_id"] for e in server.stored["events"]] == ids
    assert client.stats().sent == 7
    assert client.stats().queued == 0


def test_batches_are_per_endpoint(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client(batch_size=2)
    client.track("play", unit_id="u1")
    client.log_exposure("ranker-v2", unit_id="u1", variant="control")
    client.log_label("p-1", label=1)
    pump(client)
    assert server.posts("events") == []  # nothing full, nothing old
    client.track("play", unit_id="u2")
    pump(client)
    assert len(server.posts("events")) == 1
    assert client.flush()
    assert len(server.posts("exposures")) == 1
    assert len(server.posts("labels")) == 1


def test_payload_shapes(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client()
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    eid = client.track("purchase", unit_id="u1", value=9.5, timestamp=when, properties={"sku": "a"})
    xid = client.log_exposure("ranker-v2", unit_id="u1", variant="treatment", timestamp=when)
    pid = client.log_prediction(
        "ranker-v2",
        unit_id="u1",
        model="ranker_b",
        score=0.83,
        variant="treatment",
        timestamp=when,
    )
    client.log_label(pid, label=True, timestamp=when)
    assert client.flush()
    stamp = "2024-05-01T12:00:00+00:00"
    assert server.stored["events"] == [
        {
            "event_id": eid,
            "unit_id": "u1",
            "name": "purchase",
            "value": 9.5,
            "timestamp": stamp,
            "properties": {"sku": "a"},
        }
    ]
    assert server.stored["exposures"] == [
        {
            "exposure_id": xid,
            "unit_id": "u1",
            "experiment": "ranker-v2",
            "variant": "treatment",
            "timestamp": stamp,
        }
    ]
    assert server.stored["predictions"] == [
        {
            "prediction_id": pid,
            "unit_id": "u1",
            "experiment": "ranker-v2",
            "variant": "treatment",
            "model": "ranker_b",
            "score": 0.83,
            "timestamp": stamp,
        }
    ]
    assert server.stored["labels"] == [{"prediction_id": pid, "label": 1.0, "timestamp": stamp}]
    request = server.requests[-1]
    assert request.headers["Authorization"] == "Bearer test-key"
    assert request.headers["Content-Type"] == "application/json"


def test_default_timestamp_is_now_in_utc(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client()
    before = datetime.now(UTC)
    client.track("play", unit_id="u1")
    assert client.flush()
    sent = datetime.fromisoformat(server.stored["events"][0]["timestamp"])
    assert sent.utcoffset() == timedelta(0)
    assert before <= sent <= datetime.now(UTC)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(503, id="503"),
        pytest.param(500, id="500"),
        pytest.param(429, id="429-without-retry-after"),
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
        pytest.param(httpx.ReadTimeout("slow"), id="read-timeout"),
    ],
)
def test_transient_failures_are_retried_with_exponential_full_jitter(
    make_client: MakeClient, server: FakeServer, clock: FakeClock, failure: int | Exception
) -> None:
    client = make_client(rng=UpperBound(), backoff_base=0.5, backoff_max=3.0, max_retries=10)
    server.script.extend([failure] * 5)
    ids = track_n(client, 4)
    assert client.flush()
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]  # base * 2**attempt, capped
    assert [e["event_id"] for e in server.stored["events"]] == ids
    stats = client.stats()
    assert (stats.sent, stats.retried, stats.dropped) == (4, 4 * 5, 0)


def test_jitter_draws_uniformly_below_the_cap(
    make_client: MakeClient, server: FakeServer, clock: FakeClock
) -> None:
    client = make_client(rng=random.Random(3), backoff_base=1.0, backoff_max=100.0)
    server.script.extend([503] * 6)
    client.track("play", unit_id="u1")
    assert client.flush()
    caps = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert all(0.0 <= s <= cap for s, cap in zip(clock.sleeps, caps, strict=True))
    assert len(set(clock.sleeps)) == 6  # drawn, not fixed


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        pytest.param(429, "7", 7.0, id="429-seconds"),
        pytest.param(503, "0.25", 0.25, id="503-fraction"),
        pytest.param(429, "99999", RETRY_AFTER_MAX, id="capped"),
        pytest.param(503, "soon", 0.5, id="unreadable-falls-back-to-backoff"),
    ],
)
def test_retry_after_is_honoured(
    make_client: MakeClient,
    server: FakeServer,
    clock: FakeClock,
    status: int,
    retry_after: str,
    expected: float,
) -> None:
    client = make_client(rng=UpperBound(), backoff_base=0.5)
    server.script.append((status, {"Retry-After": retry_after}))
    client.track("play", unit_id="u1")
    assert client.flush()
    assert clock.sleeps == [expected]
    assert client.stats().sent == 1


def test_parse_retry_after_http_date() -> None:
    now = datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sun, 31 Dec 2023 23:59:00 GMT", now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("-3") == 0.0


def test_retries_exhausted_drop_the_batch_and_report(
    make_client: MakeClient, server: FakeServer, clock: FakeClock, errors: Recorder
) -> None:
    client = make_client(max_retries=3, batch_size=10)
    server.script.extend([503] * 4)
    track_n(client, 5)
    assert client.flush()
    assert len(clock.sleeps) == 3
    stats = client.stats()
    assert (stats.sent, stats.dropped, stats.retried) == (0, 5, 15)
    [error] = errors.of(DeliveryError)
    assert error.kind == "events"
    assert len(error.items) == 5
    assert "gave up after 3 retries" in error.message
    assert "503" in error.message


@pytest.mark.parametrize(
    "status",
    [pytest.param(401, id="401"), pytest.param(403, id="403"), pytest.param(404, id="404")],
)
def test_auth_and_unexpected_statuses_drop_without_retry(
    make_client: MakeClient, server: FakeServer, clock: FakeClock, errors: Recorder, status: int
) -> None:
    client = make_client()
    server.script.append(status)
    track_n(client, 3)
    assert client.flush()
    assert clock.sleeps == []
    assert client.stats().dropped == 3
    [error] = errors.of(DeliveryError)
    assert error.status_code == status
    if status in (401, 403):
        assert "API key" in error.message


@pytest.mark.parametrize(
    ("size", "bad"),
    [
        pytest.param(8, [5], id="one-bad-of-8"),
        pytest.param(8, [0, 7], id="first-and-last"),
        pytest.param(7, [1, 2, 3], id="adjacent-in-odd"),
        pytest.param(1, [0], id="alone"),
        pytest.param(16, list(range(16)), id="all-bad"),
    ],
)
def test_400_splits_the_batch_to_isolate_bad_items(
    make_client: MakeClient, server: FakeServer, errors: Recorder, size: int, bad: list[int]
) -> None:
    client = make_client(batch_size=size)
    ids = track_n(client, size)
    server.bad_units = {f"u{i}" for i in bad}
    assert client.flush()
    good = [eid for i, eid in enumerate(ids) if i not in bad]
    assert sorted(e["event_id"] for e in server.stored["events"]) == sorted(good)
    assert server.duplicates == 0
    stats = client.stats()
    assert (stats.sent, stats.rejected, stats.dropped) == (len(good), len(bad), 0)
    rejected = errors.of(RejectedItemError)
    assert sorted(e.items[0]["unit_id"] for e in rejected) == sorted(f"u{i}" for i in bad)
    assert all("is banned" in e.message and e.status_code == 400 for e in rejected)
    # Bisection: each bad item costs at most 2 requests per level.
    assert len(server.posts("events")) <= 1 + 2 * len(bad) * max(1, size.bit_length())


def test_413_splits_until_batches_fit(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client(batch_size=20)
    server.max_batch = 6
    ids = track_n(client, 20)
    assert client.flush()
    assert [e["event_id"] for e in server.stored["events"]] == ids  # order kept
    assert client.stats().rejected == 0
    assert [len(b) for b in server.posts("events")] == [20, 10, 5, 5, 10, 5, 5]


def test_transient_failure_inside_a_split_is_retried(
    make_client: MakeClient, server: FakeServer, clock: FakeClock
) -> None:
    client = make_client(batch_size=4)
    ids = track_n(client, 4)
    server.bad_units = {"u3"}
    server.script.extend([200, 503])  # first POST answered normally, first half fails once
    assert client.flush()
    assert len(clock.sleeps) == 1
    assert sorted(e["event_id"] for e in server.stored["events"]) == sorted(ids[:3])
    assert client.stats().rejected == 1


def test_unexpected_transport_exception_drops_and_is_reported(
    make_client: MakeClient, server: FakeServer, errors: Recorder
) -> None:
    client = make_client()
    server.script.append(RuntimeError("handler bug"))
    track_n(client, 2)
    assert client.flush()
    assert client.stats().dropped == 2
    assert "RuntimeError" in errors.of(DeliveryError)[0].message


def test_every_item_is_accounted_for(
    make_client: MakeClient, server: FakeServer, clock: FakeClock
) -> None:
    client = make_client(batch_size=5, capacity=40, max_retries=1)
    server.bad_units = {"u3", "u17"}
    server.script.extend([503, 503, 401])
    calls = 0
    for i in range(60):
        client.track("play", unit_id=f"u{i}")
        calls += 1
        if i % 13 == 0:
            client.track("bad name!", unit_id="x")  # rejected locally
            calls += 1
        if i % 11 == 0:
            pump(client)
            clock.advance(0.3)
    assert accounted(client) == calls
    assert client.flush()
    stats = client.stats()
    assert stats.queued == 0
    assert accounted(client) == calls
    assert stats.sent == len(server.stored["events"])
