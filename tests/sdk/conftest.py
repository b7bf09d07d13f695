"""Fixtures for the SDK tests: a fake server, a fake clock and a client factory."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from experiments.sdk import Client
from tests.sdk.fakes import CONFIG, FakeClock, FakeServer, MakeClient, Recorder


@pytest.fixture
def server() -> FakeServer:
    return FakeServer(json.loads(json.dumps(CONFIG)))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def errors() -> Recorder:
    return Recorder()


@pytest.fixture
def make_client(server: FakeServer, clock: FakeClock, errors: Recorder) -> Iterator[MakeClient]:
    """Build clients on the fake server: unthreaded, fake clock, seeded jitter."""
    made: list[Client] = []

    def make(**kwargs: Any) -> Client:
        options: dict[str, Any] = {
            "transport": httpx.MockTransport(server.handler),
            "threaded": False,
            "clock": clock,
            "sleep": clock.sleep,
            "rng": random.Random(7),
            "on_error": errors,
        }
        options.update(kwargs)
        client = Client("http://xp.test", "test-key", **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=0)
