import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from experiments.storage.models import Event, Exposure, Label, Prediction
from tests.factories import spec_document


def event(**changes):
    item = {
        "event_id": uuid.uuid4().hex,
        "unit_id": "user-1",
        "name": "play",
        "value": 1.0,
        "timestamp": datetime.now(UTC).isoformat(),
        "properties": {"source": "home"},
    }
    item.update(changes)
    return item


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_events_are_stored_once_and_duplicates_counted(client, ingest_headers, session):
    batch = [event() for _ in range(5)]
    first = client.post(
        "/api/v1/events", json={"events": [*batch, batch[0]]}, headers=ingest_headers
    )
    assert first.status_code == 200
    assert first.get_json() == {"accepted": 5, "duplicates": 1}
    again = client.post("/api/v1/events", json={"events": batch}, headers=ingest_headers)
    assert again.get_json() == {"accepted": 0, "duplicates": 5}
    assert count(session, Event) == 5
    stored = session.scalars(select(Event).where(Event.event_id == batch[0]["event_id"])).one()
    assert stored.timestamp.tzinfo is not None
    assert stored.properties == {"source": "home"}


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"name": "bad name!"}, "events[1].name", "must match"),
        ({"unit_id": ""}, "events[1].unit_id", "must not be empty"),
        ({"unit_id": "u" * 257}, "events[1].unit_id", "at most 256"),
        ({"value": "NaN"}, "events[1].value", "finite"),
        ({"timestamp": "2026-01-01T00:00:00"}, "events[1].timestamp", "timezone"),
        (
            {"timestamp": (datetime.now(UTC) + timedelta(days=2)).isoformat()},
            "events[1].timestamp",
            "in the future",
        ),
        ({"properties": {"x": "y" * 9000}}, "events[1].properties", "at most 8192"),
        ({"properties": [1]}, "events[1].properties", "dictionary"),
        ({"colour": "red"}, "events[1].colour", "not a known field"),
    ],
    ids=[
        "name",
        "empty-unit",
        "long-unit",
        "nan",
        "naive-time",
        "future",
        "big-props",
        "props-list",
        "extra",
    ],
)
def test_a_bad_item_rejects_the_whole_batch(
    client, ingest_headers, session, changes, path, message
):
    batch = [event(), event(**changes), event()]
    response = client.post("/api/v1/events", json={"events": batch}, headers=ingest_headers)
    assert response.status_code == 400
    details = response.get_json()["error"]["details"]
    assert [d["path"] for d in details] == [path]
    assert details[0]["index"] == 1
    assert message in details[0]["message"]
    assert count(session, Event) == 0


def test_every_bad_item_is_listed(client, ingest_headers):
    batch = [event(name="!"), event(), event(value=None)]
    details = client.post(
        "/api/v1/events", json={"events": batch}, headers=ingest_headers
    ).get_json()["error"]["details"]
    assert {d["index"] for d in details} == {0, 2}


def test_batch_limits(app, client, ingest_headers):
    too_many = [event() for _ in range(app.config["XP_SETTINGS"].max_batch_items + 1)]
    response = client.post("/api/v1/events", json={"events": too_many}, headers=ingest_headers)
    assert response.status_code in (400, 413)
    assert (
        client.post("/api/v1/events", json={"events": []}, headers=ingest_headers).status_code
        == 400
    )
    body = b'{"events": [' + b" " * (app.config["MAX_CONTENT_LENGTH"] + 1) + b"]}"
    big = client.post(
        "/api/v1/events", data=body, headers={**ingest_headers, "Content-Type": "application/json"}
    )
    assert big.status_code == 413
    assert big.get_json()["error"]["code"] == "request_entity_too_large"
    bad_json = client.post(
        "/api/v1/events",
        data=b"{nope",
        headers={**ingest_headers, "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 400


def test_ingest_needs_a_key(client):
    assert client.post("/api/v1/events", json={"events": [event()]}).status_code == 401


def _running(client, admin_headers):
    client.post("/api/v1/experiments", json=spec_document(), headers=admin_headers)
    client.post("/api/v1/experiments/ranker-v2/start", headers=admin_headers)


def test_exposures_first_wins_and_unknowns_are_rejected(
    client, admin_headers, ingest_headers, session
):
    _running(client, admin_headers)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    items = [
        {
            "unit_id": "u1",
            "experiment": "ranker-v2",
            "variant": "control",
            "timestamp": (t0 + timedelta(hours=1)).isoformat(),
        },
        {
            "unit_id": "u1",
            "experiment": "ranker-v2",
            "variant": "control",
            "timestamp": t0.isoformat(),
        },
        {"unit_id": "u2", "experiment": "ranker-v2", "variant": "treatment"},
    ]
    response = client.post("/api/v1/exposures", json={"exposures": items}, headers=ingest_headers)
    assert response.get_json() == {"accepted": 2, "duplicates": 1}
    first = session.scalars(select(Exposure).where(Exposure.unit_id == "u1")).one()
    assert first.timestamp == t0
    bad = client.post(
        "/api/v1/exposures",
        json={
            "exposures": [
                {"unit_id": "u3", "experiment": "nope", "variant": "a"},
                {"unit_id": "u3", "experiment": "ranker-v2", "variant": "zzz"},
            ]
        },
        headers=ingest_headers,
    )
    assert bad.status_code == 400
    assert [d["path"] for d in bad.get_json()["error"]["details"]] == [
        "exposures[0].experiment",
        "exposures[1].variant",
    ]
    assert count(session, Exposure) == 2


def test_predictions_and_labels_in_any_order(client, admin_headers, ingest_headers, session):
    _running(client, admin_headers)
    label = client.post(
        "/api/v1/labels",
        json={"labels": [{"prediction_id": "p1", "label": 1}]},
        headers=ingest_headers,
    )
    assert label.get_json() == {"accepted": 1, "duplicates": 0}
    prediction = {
        "prediction_id": "p1",
        "unit_id": "u1",
        "experiment": "ranker-v2",
        "variant": "treatment",
        "model": "ranker_b",
        "score": 0.83,
    }
    response = client.post(
        "/api/v1/predictions",
        json={"predictions": [prediction, prediction]},
        headers=ingest_headers,
    )
    assert response.get_json() == {"accepted": 1, "duplicates": 1}
    assert count(session, Prediction) == 1
    assert count(session, Label) == 1
