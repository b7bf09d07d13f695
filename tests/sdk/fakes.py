"""Test doubles for the SDK: a scriptable fake xp server, a fake clock, an error recorder."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from experiments.sdk import Client, SdkError

CONFIG: dict[str, Any] = {
    "version": "v1",
    "experiments": [
        {
            "key": "ranker-v2",
            "status": "running",
            "salt": "salt-ranker",
            "traffic": 1.0,
            "variants": [
                {
                    "key": "control",
                    "weight": 0.5,
                    "is_control": True,
                    "params": {"model": "ranker_a"},
                },
                {
                    "key": "treatment",
                    "weight": 0.5,
                    "is_control": False,
                    "params": {
                        "model": "ranker_b",
                        "objective_weights": {"engagement": 0.7, "quality": 0.3},
                    },
                },
            ],
        },
        {
            "key": "dark",
            "status": "running",
            "salt": "salt-dark",
            "traffic": 0.0,
            "variants": [
                {"key": "control", "weight": 0.5, "is_control": True, "params": {"x": 0}},
                {"key": "treatment", "weight": 0.5, "is_control": False, "params": {"x": 1}},
            ],
        },
    ],
}

ID_FIELDS = {
    "events": "event_id",
    "exposures": "exposure_id",
    "predictions": "prediction_id",
    "labels": "prediction_id",
}

# One scripted answer to a POST: a status code, (status, headers), or an exception to raise.
Step = int | tuple[int, dict[str, str]] | Exception


class FakeServer:
    """Answers like the xp API: config with ETag/304, ingest with 200/400 by item.

    ``script`` holds answers for the next POSTs (consumed first); then a batch
    is accepted unless it holds an item whose ``unit_id`` is in ``bad_units``
    (-> 400 with details, nothing stored) or has more than ``max_batch``
    items (-> 413).
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config: dict[str, Any] | None = config
        # When set, answers GET /api/v1/config instead of the normal behaviour.
        self.config_answer: Callable[[httpx.Request], httpx.Response] | None = None
        self.script: deque[Step] = deque()
        self.bad_units: set[str] = set()
        self.max_batch: int | None = None
        self.requests: list[httpx.Request] = []
        self.stored: dict[str, list[dict[str, Any]]] = {k: [] for k in ID_FIELDS}
        self.duplicates = 0

    @property
    def etag(self) -> str:
        return f'"{self.config["version"]}"' if self.config else '""'

    def posts(self, kind: str) -> list[list[dict[str, Any]]]:
        """Bodies of every POST to /api/v1/<kind>, answered or not."""
        return [
            json.loads(r.content)[kind] for r in self.requests if r.url.path == f"/api/v1/{kind}"
        ]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "GET" and request.url.path == "/api/v1/config":
            return self._config(request)
        kind = request.url.path.rsplit("/", 1)[-1]
        if request.method != "POST" or kind not in ID_FIELDS:
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})
        if self.script:
            step = self.script.popleft()
            if isinstance(step, Exception):
                raise step
            status, headers = step if isinstance(step, tuple) else (step, {})
            if status != 200:
                return httpx.Response(
                    status,
                    headers=headers,
                    json={
                        "error": {
                            "code": "scripted",
                            "message": f"scripted {status}",
                            "details": [],
                        }
                    },
                )
        return self._ingest(kind, json.loads(request.content)[kind])

    def _config(self, request: httpx.Request) -> httpx.Response:
        if self.config_answer is not None:
            return self.config_answer(request)
        if self.config is None:
            return httpx.Response(503)
        if request.headers.get("If-None-Match") == self.etag:
            return httpx.Response(304, headers={"ETag": self.etag})
        return httpx.Response(200, json=self.config, headers={"ETag": self.etag})

    def _ingest(self, kind: str, items: list[dict[str, Any]]) -> httpx.Response:
        if self.max_batch is not None and len(items) > self.max_batch:
            return httpx.Response(413, json={"error": {"code": "too_large", "message": "big"}})
        details = [
            {"index": i, "path": f"{kind}[{i}].unit_id", "message": "is banned"}
            for i, item in enumerate(items)
            if item.get("unit_id") in self.bad_units
        ]
        if details:
            return httpx.Response(
                400,
                json={
                    "error": {"code": "invalid_input", "message": "bad batch", "details": details}
                },
            )
        field = ID_FIELDS[kind]
        known = {item[field] for item in self.stored[kind]}
        accepted = 0
        for item in items:
            if kind != "labels" and item[field] in known:
                self.duplicates += 1
                continue
            known.add(item[field])
            self.stored[kind].append(item)
            accepted += 1
        return httpx.Response(200, json={"accepted": accepted, "duplicates": len(items) - accepted})


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """An on_error callback that keeps what it was given."""

    def __init__(self) -> None:
        self.errors: list[SdkError] = []

    def __call__(self, error: SdkError) -> None:
        self.errors.append(error)

    def of(self, cls: type[SdkError]) -> list[SdkError]:
        return [e for e in self.errors if type(e) is cls]


MakeClient = Callable[..., Client]


def pump(client: Client, *, force: bool = False) -> None:
    """Do what the sender thread does once: send the batches that are due."""
    client._worker.deliver(client._queue.take_due(force=force))


def accounted(client: Client) -> int:
    """Every item ends sent, dropped, rejected, or is still queued."""
    s = client.stats()
    return s.sent + s.dropped + s.rejected + s.queued
