"""Issue 11: targeting regexes run on RE2, in the server and the SDK alike."""

from __future__ import annotations

import time
from typing import Any

import httpx

from experiments.sdk import Client
from tests.factories import spec_document

REDOS = "(.*.*)*x"  # catastrophic on a backtracking engine: ~26 s on 16 characters


def test_a_pattern_re2_refuses_is_a_400_naming_the_field(
    client: Any, admin_headers: dict[str, str]
) -> None:
    spec = spec_document(targeting={"email": {"regex": "(a)\\1"}})
    response = client.post("/api/v1/experiments", json=spec, headers=admin_headers)
    assert response.status_code == 400
    [detail] = response.get_json()["error"]["details"]
    assert detail["path"] == "targeting.email.regex"
    assert "RE2" in detail["message"]
    assert client.get("/api/v1/experiments/ranker-v2", headers=admin_headers).status_code == 404


def test_server_side_assign_with_a_redos_pattern_answers_at_once(
    client: Any, admin_headers: dict[str, str], ingest_headers: dict[str, str]
) -> None:
    spec = spec_document(targeting={"email": {"regex": REDOS}})
    assert client.post("/api/v1/experiments", json=spec, headers=admin_headers).status_code == 201
    client.post("/api/v1/experiments/ranker-v2/start", headers=admin_headers)
    body = {"unit_id": "u1", "attributes": {"email": "a" * 15 + "!"}}
    began = time.perf_counter()
    response = client.post("/api/v1/assign", json=body, headers=ingest_headers)
    elapsed = time.perf_counter() - began
    assert response.get_json()["assignments"]["ranker-v2"]["reason"] == "not_targeted"
    assert elapsed < 2.0, f"{elapsed:.2f} s"  # the whole request, on a loaded CI machine


def test_sdk_assign_with_a_redos_pattern_answers_in_microseconds() -> None:
    config = {
        "version": "v1",
        "experiments": [
            {
                "key": "ranker-v2",
                "status": "running",
                "salt": "s",
                "targeting": {"email": {"regex": REDOS}},
                "variants": [
                    {"key": "control", "weight": 0.5, "is_control": True, "params": {}},
                    {"key": "treatment", "weight": 0.5, "params": {}},
                ],
            }
        ],
    }

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=config, headers={"ETag": '"v1"'})

    client = Client(
        "http://sdk.invalid", "k", transport=httpx.MockTransport(handle), threaded=False
    )
    attributes = {"email": "a" * 15 + "!"}
    client.assign("ranker-v2", "u0", attributes)
    began = time.perf_counter()
    for i in range(1000):
        assert client.assign("ranker-v2", f"u{i}", attributes).reason == "not_targeted"
    per_call = (time.perf_counter() - began) / 1000
    client.close(timeout=0)
    assert per_call < 0.001, f"{per_call * 1e6:.0f} µs per assign"
