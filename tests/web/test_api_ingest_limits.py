"""Issue 11: ingestion accepts only what SQLite and PostgreSQL both store.

Every test here runs on SQLite and again on PostgreSQL in CI (``db`` marker):
a rejected item is a 400 naming its index and path with nothing written; an
accepted batch never fails in the database. The property test lets hypothesis
build batches of awkward text, times and properties and checks exactly that.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from experiments.storage.models import Event, Exposure, Label, Prediction
from tests.factories import spec_document

NOW = datetime.now(UTC)


def event(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "unit_id": "user-1",
        "name": "play",
        "value": 1.0,
        "timestamp": NOW.isoformat(),
        "properties": {"source": "home"},
    }
    item.update(changes)
    return item


def post(client: Any, headers: dict[str, str], kind: str, items: list[Any]) -> Any:
    return client.post(
        f"/api/v1/{kind}",
        data=json.dumps({kind: items}),  # the standard library writes any int
        headers={**headers, "Content-Type": "application/json"},
    )


def count(session: Any, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)))


def deep(levels: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(levels - 1):
        value = {"a": value}
    return {"a": value}


REFUSED = [
    ("nul-unit", {"unit_id": "user-\x00"}, "events[1].unit_id", "NUL"),
    ("nul-props-value", {"properties": {"k": "a\x00"}}, "events[1].properties", "NUL"),
    ("nul-props-key", {"properties": {"k\x00": 1}}, "events[1].properties", "NUL"),
    (
        "offset-plus-16h",
        {"timestamp": "2026-01-01T00:00:00+16:00"},
        "events[1].timestamp",
        "±15:59",
    ),
    (
        "offset-minus-20h",
        {"timestamp": "2026-01-01T00:00:00-20:00"},
        "events[1].timestamp",
        "±15:59",
    ),
    ("before-1970", {"timestamp": "1969-12-31T23:59:59+00:00"}, "events[1].timestamp", "1970"),
    ("year-1", {"timestamp": "0001-01-01T00:00:00+01:00"}, "events[1].timestamp", "1970"),
    ("too-deep", {"properties": deep(9)}, "events[1].properties", "deeper than 8"),
    ("props-not-object", {"properties": [1]}, "events[1].properties", "dictionary"),
    ("too-big", {"properties": {"x": "y" * 9000}}, "events[1].properties", "at most 8192"),
]


@pytest.mark.parametrize(
    ("changes", "path", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_what_a_database_cannot_store_is_refused_by_path(
    client: Any, ingest_headers: dict[str, str], session: Any, changes: Any, path: str, message: str
) -> None:
    before = count(session, Event)
    response = post(client, ingest_headers, "events", [event(), event(**changes), event()])
    assert response.status_code == 400, response.get_json()
    [detail] = response.get_json()["error"]["details"]
    assert (detail["path"], detail["index"]) == (path, 1)
    assert message in detail["message"]
    assert count(session, Event) == before


def test_numbers_beyond_a_double_are_refused(
    client: Any, ingest_headers: dict[str, str], session: Any
) -> None:
    good = orjson.dumps(event()).decode()
    for bad in [
        '{"event_id": "e1", "unit_id": "u", "name": "n", "value": 1e400}',
        '{"event_id": "e2", "unit_id": "u", "name": "n", "properties": {"big": 1e400}}',
    ]:
        body = '{"events": [' + good + ", " + bad + "]}"
        response = client.post(
            "/api/v1/events",
            data=body,
            headers={**ingest_headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.get_json()
        [detail] = response.get_json()["error"]["details"]
        assert detail["index"] == 1
    assert count(session, Event) == 0


ACCEPTED = [
    ("offset-15h59", {"timestamp": "2026-01-01T00:00:00+15:59"}),
    ("offset-minus-15h59", {"timestamp": "2026-01-01T00:00:00-15:59"}),
    ("depth-8", {"properties": deep(8)}),
    ("escaped-backslash-u0000", {"properties": {"path": "C:\\u0000"}}),
    ("unicode", {"unit_id": "ユーザー-😀", "properties": {"ключ": "значение ☃"}}),
    ("big-int-property", {"properties": {"n": 123456789012345678901234567890}}),
    ("epoch", {"timestamp": "1970-01-01T00:00:00+00:00"}),
]


@pytest.mark.parametrize("changes", [a[1] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_edge_values_within_the_limits_are_stored(
    client: Any, ingest_headers: dict[str, str], session: Any, changes: Any
) -> None:
    item = event(**changes)
    response = post(client, ingest_headers, "events", [item])
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"accepted": 1, "duplicates": 0}
    stored = session.scalars(select(Event).where(Event.event_id == item["event_id"])).one()
    assert stored.unit_id == item["unit_id"]
    if "properties" in changes:
        assert stored.properties == item["properties"]


def test_nul_in_exposures_predictions_and_labels_is_refused(
    client: Any, admin_headers: dict[str, str], ingest_headers: dict[str, str], session: Any
) -> None:
    spec = spec_document(key="nul-check")
    assert client.post("/api/v1/experiments", json=spec, headers=admin_headers).status_code == 201
    client.post("/api/v1/experiments/nul-check/start", headers=admin_headers)
    cases = [
        ("exposures", {"unit_id": "u\x00", "experiment": "nul-check", "variant": "control"}),
        ("exposures", {"unit_id": "u", "experiment": "nul\x00", "variant": "control"}),
        (
            "predictions",
            {
                "prediction_id": "p1",
                "unit_id": "u",
                "experiment": "nul-check",
                "variant": "control",
                "model": "m\x00",
                "score": 0.5,
            },
        ),
        ("labels", {"prediction_id": "p1", "label": 1, "timestamp": "2026-01-01T00:00:00+17:00"}),
    ]
    for kind, item in cases:
        response = post(client, ingest_headers, kind, [item])
        assert response.status_code == 400, (kind, response.get_json())
        assert response.get_json()["error"]["details"][0]["path"].startswith(f"{kind}[0].")
    assert (count(session, Exposure), count(session, Prediction), count(session, Label)) == (
        0,
        0,
        0,
    )


# -- the property: whatever the validator accepts, the database stores ---------------

_text = st.text(min_size=1, max_size=40)
_json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _json_scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_times = st.builds(
    lambda base, tz: base.replace(tzinfo=UTC).astimezone(tz).isoformat(),
    st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2030, 1, 1)),
    _offsets,
)
_events = st.fixed_dictionaries(
    {
        "event_id": st.just("set-by-the-test"),
        "unit_id": _text,
        "name": st.from_regex(r"\A[A-Za-z0-9_.:-]{1,20}\Z"),
        "value": st.floats(allow_nan=False, allow_infinity=False),
        "timestamp": _times,
        "properties": st.dictionaries(st.text(max_size=8), _json, max_size=4),
    }
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(_events, min_size=1, max_size=8))
def test_any_batch_the_validator_accepts_is_stored_whole(
    client: Any, ingest_headers: dict[str, str], session: Any, batch: list[dict[str, Any]]
) -> None:
    before = count(session, Event)
    for item in batch:  # hypothesis repeats values across examples; the session is shared
        item["event_id"] = uuid.uuid4().hex
    body = json.dumps({"events": batch}).encode()  # writes ints beyond 64 bits too
    response = client.post(
        "/api/v1/events", data=body, headers={**ingest_headers, "Content-Type": "application/json"}
    )
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 200:
        assert response.get_json() == {"accepted": len(batch), "duplicates": 0}
        assert count(session, Event) == before + len(batch)
    else:
        assert count(session, Event) == before
        assert all("index" in d for d in response.get_json()["error"]["details"])
