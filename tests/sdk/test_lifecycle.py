"""Overflow, flush and close, the background sender thread, fork safety, import hygiene."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from experiments.sdk import DeliveryError, QueueFullError
from tests.sdk.fakes import FakeServer, MakeClient, Recorder, accounted


def wait_until(predicate: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_overflow_drops_the_newest_and_reports_once_per_episode(
    make_client: MakeClient, server: FakeServer, errors: Recorder
) -> None:
    client = make_client(capacity=5)
    ids = [client.track("play", unit_id=f"u{i}") for i in range(8)]
    stats = client.stats()
    assert (stats.queued, stats.dropped) == (5, 3)
    assert len(errors.of(QueueFullError)) == 1
    assert client.flush()
    assert [e["event_id"] for e in server.stored["events"]] == ids[:5]  # the oldest kept

    for i in range(7):  # a second episode is reported again
        client.track("play", unit_id=f"v{i}")
    assert len(errors.of(QueueFullError)) == 2
    assert client.stats().dropped == 5
    assert accounted(client) == 15


def test_capacity_is_shared_by_all_endpoints(make_client: MakeClient) -> None:
    client = make_client(capacity=3)
    client.track("play", unit_id="u1")
    client.log_exposure("ranker-v2", "u1", "control")
    client.log_label("p", 1)
    client.log_prediction("ranker-v2", "u1", "m", 0.5)
    assert (client.stats().queued, client.stats().dropped) == (3, 1)


def test_close_delivers_then_refuses_new_items(
    make_client: MakeClient, server: FakeServer, errors: Recorder
) -> None:
    client = make_client()
    client.track("play", unit_id="u1")
    client.close()
    assert len(server.stored["events"]) == 1
    client.track("play", unit_id="u2")
    assert client.stats().dropped == 1
    assert "client is closed" in errors.of(DeliveryError)[0].message
    client.close()  # idempotent
    assert client.assign("ranker-v2", "u1").reason == "assigned"  # still serves


def test_close_counts_what_it_could_not_deliver(
    make_client: MakeClient, server: FakeServer, errors: Recorder
) -> None:
    client = make_client(max_retries=2)
    server.script.extend([503] * 10)
    for i in range(4):
        client.track("play", unit_id=f"u{i}")
    client.close()
    stats = client.stats()
    assert (stats.sent, stats.dropped, stats.queued) == (0, 4, 0)
    assert errors.of(DeliveryError)[0].items[0]["unit_id"] == "u0"


def test_sender_thread_sends_full_batches_without_flush(
    make_client: MakeClient, server: FakeServer
) -> None:
    client = make_client(
        threaded=True, clock=time.monotonic, sleep=None, batch_size=3, flush_interval=60_000
    )
    for i in range(3):
        client.track("play", unit_id=f"u{i}")
    assert wait_until(lambda: len(server.stored["events"]) == 3)
    client.track("play", unit_id="u3")
    time.sleep(0.1)
    assert len(server.stored["events"]) == 3  # a partial batch waits for its interval
    assert client.flush(timeout=5)
    assert len(server.stored["events"]) == 4


def test_sender_thread_sends_partial_batches_after_the_interval(
    make_client: MakeClient, server: FakeServer
) -> None:
    client = make_client(threaded=True, clock=time.monotonic, sleep=None, flush_interval=30)
    client.track("play", unit_id="u1")
    assert wait_until(lambda: len(server.stored["events"]) == 1)
    assert client.stats().sent == 1


def test_threaded_flush_times_out_and_close_interrupts_the_backoff(
    make_client: MakeClient, server: FakeServer, errors: Recorder
) -> None:
    client = make_client(
        threaded=True, clock=time.monotonic, sleep=None, backoff_base=60.0, backoff_max=60.0
    )
    server.script.extend([503] * 100)
    client.track("play", unit_id="u1")
    started = time.monotonic()
    assert client.flush(timeout=0.2) is False
    client.close(timeout=0.1)
    assert time.monotonic() - started < 5  # not 60 s of backoff
    assert (client.stats().dropped, client.stats().queued) == (1, 0)
    assert "client closed before delivery" in errors.of(DeliveryError)[0].message
    assert not any(t.is_alive() for t in client._worker.threads)


def test_concurrent_callers_lose_nothing(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client(threaded=True, clock=time.monotonic, sleep=None, batch_size=50)

    def produce(worker: int) -> None:
        for i in range(500):
            client.track("play", unit_id=f"w{worker}-{i}")

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(timeout=10)
    assert len(server.stored["events"]) == 2000
    assert server.duplicates == 0
    assert client.stats().sent == 2000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_a_fresh_queue_and_sender(
    make_client: MakeClient, server: FakeServer
) -> None:
    client = make_client(threaded=True, clock=time.monotonic, sleep=None, flush_interval=60_000)
    client.track("play", unit_id="parent-1")  # queued in the parent at fork time
    parent_sender = client._worker.threads[0]
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about forking with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: report through the pipe, never return into pytest
        status = 1
        try:
            before = client.stats()
            config_version = before.config_version
            server.stored["events"].clear()  # this process's view of the fake server
            client.track("play", unit_id="child-1")
            flushed = client.flush(timeout=5)
            report = {
                "queued_after_fork": before.queued,
                "config_version": config_version,
                "flushed": flushed,
                "sent_units": [e["unit_id"] for e in server.stored["events"]],
                "new_sender": client._worker.threads[0] is not parent_sender
                and client._worker.threads[0].is_alive(),
                "stats": [client.stats().sent, client.stats().dropped],
            }
            os.write(write_end, json.dumps(report).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == {
        "queued_after_fork": 0,
        "config_version": "v1",
        "flushed": True,
        "sent_units": ["child-1"],
        "new_sender": True,
        "stats": [1, 0],
    }
    assert client.flush(timeout=5)  # the parent still sends its own item, once
    assert [e["unit_id"] for e in server.stored["events"]] == ["parent-1"]
    assert client._worker.threads[0] is parent_sender


def test_the_sdk_imports_no_heavy_or_server_packages() -> None:
    code = (
        "import sys, experiments.sdk; "
        "bad = {'numpy', 'pandas', 'flask', 'sqlalchemy', 'scipy'} & set(sys.modules); "
        "print(sorted(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_transport_closes_its_http_client(make_client: MakeClient) -> None:
    client = make_client()
    http = client._transport._http()
    assert isinstance(http, httpx.Client)
    client.close()
    assert http.is_closed


def test_close_after_the_timeout_drops_pending_batches_without_sending(
    make_client: MakeClient, server: FakeServer, errors: Recorder
) -> None:
    release = threading.Event()
    posts: list[str] = []

    def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/config":
            return server.handler(request)
        posts.append(request.url.path)
        release.wait(5)
        return httpx.Response(503)

    client = make_client(
        threaded=True,
        clock=time.monotonic,
        sleep=None,
        batch_size=1,
        transport=httpx.MockTransport(slow),
    )
    for i in range(5):
        client.track("play", unit_id=f"u{i}")
    assert wait_until(lambda: len(posts) == 1)
    threading.Timer(0.3, release.set).start()
    client.close(timeout=0.1)
    assert wait_until(lambda: client.stats().queued == 0)
    assert posts == ["/api/v1/events"]  # the other batches were not tried after close
    assert client.stats().dropped == 5
    assert sum(len(e.items) for e in errors.of(DeliveryError)) == 5


EXIT_SCRIPT = """
import json, sys
import httpx
from experiments.sdk import Client

def handler(request):
    if request.url.path == "/api/v1/config":
        return httpx.Response(503)
    with open(sys.argv[1], "a", encoding="utf-8") as out:
        out.write(request.content.decode() + "\\n")
    return httpx.Response(200, json={"accepted": 1, "duplicates": 0})

client = Client("http://xp.test", "k", transport=httpx.MockTransport(handler),
                flush_interval=60_000)
client.track("play", unit_id="u-exit")
# no close(): the atexit hook must deliver it
"""


def test_queued_items_are_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    script, sink = tmp_path / "app.py", tmp_path / "posts.jsonl"
    script.write_text(EXIT_SCRIPT, encoding="utf-8")
    subprocess.run([sys.executable, str(script), str(sink)], check=True, timeout=60)
    [body] = [json.loads(line) for line in sink.read_text(encoding="utf-8").splitlines()]
    assert [e["unit_id"] for e in body["events"]] == ["u-exit"]
