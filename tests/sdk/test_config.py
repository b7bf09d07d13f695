"""Config fetching: ETag / 304, the last good snapshot on failure, no_config fallback."""

from __future__ import annotations

import copy
import logging
import time

import httpx
import pytest

from experiments.sdk import ConfigFetchError
from tests.sdk.fakes import CONFIG, FakeServer, MakeClient, Recorder


def config_gets(server: FakeServer) -> list[httpx.Request]:
    return [r for r in server.requests if r.url.path == "/api/v1/config"]


def test_config_is_fetched_at_construction(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client()
    assert client.stats().config_version == "v1"
    [request] = config_gets(server)
    assert "If-None-Match" not in request.headers
    assert request.headers["Authorization"] == "Bearer test-key"
    assert client.assign("ranker-v2", "u1").reason == "assigned"


def test_refresh_is_conditional_on_the_etag(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client()
    before = client._config.snapshot
    assert client.refresh() is True
    assert config_gets(server)[-1].headers["If-None-Match"] == '"v1"'
    assert client._config.snapshot is before  # 304: nothing parsed or replaced

    changed = copy.deepcopy(CONFIG)
    changed["version"] = "v2"
    changed["experiments"][0]["traffic"] = 0.0
    server.config = changed
    assert client.refresh() is True
    assert client.stats().config_version == "v2"
    assert client.assign("ranker-v2", "u1").reason == "traffic"


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param("500", id="server-error"),
        pytest.param("401", id="unauthorised"),
        pytest.param("connect", id="connection-refused"),
        pytest.param("garbage", id="unparseable-json"),
        pytest.param("invalid", id="invalid-document"),
    ],
)
def test_failures_keep_the_last_good_snapshot(
    make_client: MakeClient, server: FakeServer, errors: Recorder, failure: str
) -> None:
    client = make_client()
    good = client.assign("ranker-v2", "u1")

    def failing(request: httpx.Request) -> httpx.Response:
        if failure == "connect":
            raise httpx.ConnectError("refused", request=request)
        if failure == "garbage":
            return httpx.Response(200, content=b"{not json", headers={"ETag": '"x"'})
        if failure == "invalid":
            return httpx.Response(200, json={"version": 3, "experiments": "no"})
        return httpx.Response(int(failure), json={"error": {"message": "nope"}})

    server.config_answer = failing
    assert client.refresh() is False
    [error] = errors.of(ConfigFetchError)
    assert error.message.startswith("config: ")
    assert client.stats().config_version == "v1"
    again = client.assign("ranker-v2", "u1")
    assert (again.variant, again.reason) == (good.variant, "assigned")


def test_no_config_falls_back_without_exposure_and_warns_once(
    make_client: MakeClient,
    server: FakeServer,
    errors: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.config = None  # config endpoint answers 503
    with caplog.at_level(logging.WARNING, logger="experiments.sdk"):
        client = make_client()
        first = client.assign("ranker-v2", "u1")
        second = client.assign("ranker-v2", "u2", {"country": "US"})
        everything = client.assign_all("u3")
    assert (first.variant, first.params, first.in_experiment, first.reason) == (
        None,
        {},
        False,
        "no_config",
    )
    assert second.reason == "no_config"
    assert everything == {}
    assert sum("no config yet" in r.message for r in caplog.records) == 1
    assert client.stats().queued == 0
    assert len(errors.of(ConfigFetchError)) == 1  # the failed fetch at construction

    server.config = copy.deepcopy(CONFIG)  # the server comes back
    assert client.refresh() is True
    assert client.assign("ranker-v2", "u1").reason == "assigned"


def test_non_blocking_start_fetches_in_the_background(
    make_client: MakeClient, server: FakeServer
) -> None:
    client = make_client(wait_for_config=False, threaded=True, refresh_interval=60)
    deadline = time.monotonic() + 5
    while client.stats().config_version is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.stats().config_version == "v1"
    assert len(config_gets(server)) == 1


def test_background_refresh_picks_up_changes(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client(threaded=True, refresh_interval=0.02)
    changed = copy.deepcopy(CONFIG)
    changed["version"] = "v2"
    server.config = changed
    deadline = time.monotonic() + 5
    while client.stats().config_version != "v2" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.stats().config_version == "v2"
    assert any(r.headers.get("If-None-Match") == '"v1"' for r in config_gets(server))
