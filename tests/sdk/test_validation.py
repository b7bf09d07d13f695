"""Local validation: bad input is reported, counted rejected and never sent; nothing raises."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from experiments import domain
from experiments.sdk import Client, InvalidItemError
from experiments.sdk import _items as items
from tests.sdk.fakes import FakeServer, MakeClient, Recorder

AWARE = datetime(2024, 1, 1, tzinfo=UTC)
NAIVE = datetime(2024, 1, 1)


def track(**kw: Any) -> Callable[[Client], object]:
    args: dict[str, Any] = {"name": "play", "unit_id": "u1"} | kw
    return lambda c: c.track(**args)


def exposure(**kw: Any) -> Callable[[Client], object]:
    args: dict[str, Any] = {"experiment": "ranker-v2", "unit_id": "u1", "variant": "control"}
    return lambda c: c.log_exposure(**(args | kw))


def prediction(**kw: Any) -> Callable[[Client], object]:
    args: dict[str, Any] = {
        "experiment": "ranker-v2",
        "unit_id": "u1",
        "model": "m",
        "score": 0.5,
        "variant": "control",
    }
    return lambda c: c.log_prediction(**(args | kw))


def label(**kw: Any) -> Callable[[Client], object]:
    args: dict[str, Any] = {"prediction_id": "p1", "label": 1}
    return lambda c: c.log_label(**(args | kw))


INVALID = [
    ("name-empty", track(name=""), "name:"),
    ("name-space", track(name="add to cart"), "name:"),
    ("name-slash", track(name="a/b"), "name:"),
    ("name-129", track(name="a" * 129), "name:"),
    ("name-not-str", track(name=3), "name:"),
    ("unit-empty", track(unit_id=""), "unit_id:"),
    ("unit-257", track(unit_id="u" * 257), "unit_id:"),
    ("unit-int", track(unit_id=42), "unit_id:"),
    ("value-nan", track(value=math.nan), "value:"),
    ("value-inf", track(value=-math.inf), "value:"),
    ("value-str", track(value="1"), "value:"),
    ("value-bool", track(value=True), "value:"),
    ("value-none", track(value=None), "value:"),
    ("timestamp-naive", track(timestamp=NAIVE), "timestamp: must be timezone-aware"),
    ("timestamp-str", track(timestamp="2024-01-01T00:00:00Z"), "timestamp:"),
    ("properties-list", track(properties=[1, 2]), "properties:"),
    ("event-id-empty", track(event_id=""), "event_id:"),
    ("exposure-key", exposure(experiment="Ranker V2"), "experiment:"),
    ("exposure-variant", exposure(variant=""), "variant:"),
    ("exposure-unit", exposure(unit_id=""), "unit_id:"),
    ("exposure-naive", exposure(timestamp=NAIVE), "timestamp:"),
    ("prediction-score-nan", prediction(score=math.nan), "score:"),
    ("prediction-score-str", prediction(score="0.5"), "score:"),
    ("prediction-model", prediction(model=""), "model:"),
    ("prediction-model-long", prediction(model="m" * 129), "model:"),
    ("prediction-key", prediction(experiment="-x"), "experiment:"),
    ("prediction-not-in", prediction(variant=None, experiment="dark"), "variant: unit is not"),
    ("prediction-unknown", prediction(variant=None, experiment="nope"), "variant: unit is not"),
    ("label-nan", label(label=math.nan), "label:"),
    ("label-str", label(label="1"), "label:"),
    ("label-pid", label(prediction_id=""), "prediction_id:"),
    ("label-naive", label(timestamp=NAIVE), "timestamp:"),
]


@pytest.mark.parametrize(("call", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_input_is_reported_not_raised_not_sent(
    make_client: MakeClient,
    server: FakeServer,
    errors: Recorder,
    call: Callable[[Client], object],
    message: str,
) -> None:
    client = make_client()
    call(client)  # must not raise
    assert client.flush()
    stats = client.stats()
    assert (stats.rejected, stats.queued, stats.sent) == (1, 0, 0)
    [error] = errors.errors
    assert isinstance(error, InvalidItemError)
    assert error.message.startswith(message)
    assert "\n" not in error.message
    assert [r for r in server.requests if r.method == "POST"] == []


VALID = [
    ("defaults", track()),
    ("name-all-chars", track(name="Ab0_.:-" + "z" * 121)),
    ("unit-256", track(unit_id="u" * 256)),
    ("value-int", track(value=3)),
    ("value-negative", track(value=-2.5)),
    ("offset-timezone", track(timestamp=datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5))))),
    ("properties-nested", track(properties={"a": [1, {"b": None}], "c": "é"})),
    ("exposure", exposure()),
    ("prediction-evaluated", prediction(variant=None)),
    ("label-bool", label(label=False)),
    ("label-float", label(label=0.25)),
]


@pytest.mark.parametrize("call", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_input_is_sent(
    make_client: MakeClient, server: FakeServer, errors: Recorder, call: Callable[[Client], object]
) -> None:
    client = make_client()
    call(client)
    assert client.flush()
    assert errors.errors == []
    assert client.stats().sent == 1


BAD_PROPERTIES = [
    ("not-json", {"when": AWARE}, "properties: must be JSON-able"),
    ("nan-inside", {"x": [math.nan]}, "properties: must be JSON-able"),
    ("too-big", {"blob": "x" * 8200}, "properties: 8211 bytes as JSON, at most 8192"),
]


@pytest.mark.parametrize(
    ("properties", "message"), [c[1:] for c in BAD_PROPERTIES], ids=[c[0] for c in BAD_PROPERTIES]
)
def test_properties_are_checked_on_the_sender_thread(
    make_client: MakeClient,
    server: FakeServer,
    errors: Recorder,
    properties: dict[str, Any],
    message: str,
) -> None:
    client = make_client()
    client.track("play", unit_id="u1")
    eid = client.track("play", unit_id="u2", properties=properties)
    client.track("play", unit_id="u3")
    assert client.stats().queued == 3  # accepted on the caller's thread: no JSON there
    assert client.flush()
    assert [e["unit_id"] for e in server.stored["events"]] == ["u1", "u3"]
    stats = client.stats()
    assert (stats.sent, stats.rejected) == (2, 1)
    [error] = errors.errors
    assert error.message.startswith(message)
    assert error.items[0]["event_id"] == eid


def test_properties_of_exactly_8_kb_pass(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client()
    blob = "x" * (8192 - len('{"b":""}'))
    client.track("play", unit_id="u1", properties={"b": blob})
    assert client.flush()
    assert client.stats().sent == 1


def test_properties_are_copied_at_call_time(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client()
    props = {"step": 1}
    client.track("play", unit_id="u1", properties=props)
    props["step"] = 2
    assert client.flush()
    assert server.stored["events"][0]["properties"] == {"step": 1}


def test_caller_ids_are_kept(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client()
    assert client.track("play", unit_id="u1", event_id="evt-1") == "evt-1"
    assert client.log_prediction("ranker-v2", "u1", "m", 0.1, prediction_id="p-9") == "p-9"
    assert client.flush()
    assert server.stored["events"][0]["event_id"] == "evt-1"
    assert server.stored["predictions"][0]["prediction_id"] == "p-9"


def test_generated_ids_are_uuid4(make_client: MakeClient) -> None:
    client = make_client()
    ids = {client.track("play", unit_id="u1") for _ in range(100)}
    assert len(ids) == 100
    pattern = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(pattern.fullmatch(i) for i in ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert all(
        u.version == 4 and u.variant == uuid.RFC_4122 and str(u) == i
        for u, i in zip(parsed, ids, strict=True)
    )


def test_new_id_uses_every_variant_nibble() -> None:
    assert {items.new_id()[19] for _ in range(400)} == set("89ab")


def test_rules_match_the_domain_words() -> None:
    assert items.EVENT_NAME_RE.pattern in domain.EVENT_NAME_RE.pattern
    assert items.EXPERIMENT_KEY_RE.pattern in domain.EXPERIMENT_KEY_RE.pattern
    assert items.UNIT_ID_MAX == domain.UNIT_ID_MAX


def test_a_failing_on_error_callback_is_contained(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(error: Exception) -> None:
        raise RuntimeError("callback bug")

    client = make_client(on_error=explode)
    client.track("bad name", unit_id="u1")
    assert client.stats().rejected == 1
    assert "on_error callback raised" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"base_url": "xp.test"}, "base_url:", id="base-url"),
        pytest.param({"api_key": ""}, "api_key:", id="api-key"),
        pytest.param({"batch_size": 0}, "batch_size:", id="batch-size"),
        pytest.param({"capacity": -1}, "capacity:", id="capacity"),
        pytest.param({"max_retries": -1}, "max_retries:", id="max-retries"),
        pytest.param({"flush_interval": 0}, "flush_interval:", id="flush-interval"),
        pytest.param({"refresh_interval": math.nan}, "refresh_interval:", id="refresh-nan"),
        pytest.param({"timeout": "5"}, "timeout:", id="timeout-str"),
        pytest.param({"flush_interval": math.inf}, "flush_interval:", id="flush-inf"),
        pytest.param({"close_timeout": -1}, "close_timeout:", id="close-negative"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "base_url": "http://xp.test",
        "api_key": "k",
        "threaded": False,
        "wait_for_config": False,
    } | kwargs
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        Client(**args)
