from sqlalchemy import select

from experiments.assignment import evaluate, parse_config
from experiments.storage.models import Exposure
from tests.factories import spec_document


def _start(client, admin_headers, **changes):
    key = changes.get("key", "ranker-v2")
    client.post("/api/v1/experiments", json=spec_document(**changes), headers=admin_headers)
    client.post(f"/api/v1/experiments/{key}/start", headers=admin_headers)


def test_config_has_etag_and_answers_304(client, admin_headers, ingest_headers):
    _start(client, admin_headers)
    first = client.get("/api/v1/config", headers=ingest_headers)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    document = first.get_json()
    assert etag == f'"{document["version"]}"'
    assert document["experiments"][0]["key"] == "ranker-v2"
    parse_config(document)  # the SDK can read it
    cached = client.get("/api/v1/config", headers={**ingest_headers, "If-None-Match": etag})
    assert cached.status_code == 304
    client.patch("/api/v1/experiments/ranker-v2", json={"traffic": 0.5}, headers=admin_headers)
    changed = client.get("/api/v1/config", headers={**ingest_headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


def test_assign_matches_local_evaluation_and_records_first_exposure(
    client, admin_headers, ingest_headers, session
):
    _start(client, admin_headers)
    response = client.post("/api/v1/assign", json={"unit_id": "user-42"}, headers=ingest_headers)
    assert response.status_code == 200
    got = response.get_json()["assignments"]["ranker-v2"]
    snapshot = parse_config(client.get("/api/v1/config", headers=ingest_headers).get_json())
    local = evaluate(snapshot, "ranker-v2", "user-42")
    assert got == {
        "variant": local.variant,
        "params": local.params,
        "in_experiment": True,
        "reason": "assigned",
    }
    client.post("/api/v1/assign", json={"unit_id": "user-42"}, headers=ingest_headers)
    exposures = session.scalars(select(Exposure).where(Exposure.unit_id == "user-42")).all()
    assert len(exposures) == 1
    assert exposures[0].variant == local.variant


def test_assign_without_logging_and_unknown_keys(client, admin_headers, ingest_headers, session):
    _start(client, admin_headers)
    client.post(
        "/api/v1/assign", json={"unit_id": "u9", "log_exposure": False}, headers=ingest_headers
    )
    assert session.scalars(select(Exposure)).all() == []
    bad = client.post(
        "/api/v1/assign", json={"unit_id": "u9", "experiments": ["nope"]}, headers=ingest_headers
    )
    assert bad.status_code == 400
    missing = client.post("/api/v1/assign", json={"attributes": {}}, headers=ingest_headers)
    assert missing.get_json()["error"]["details"][0]["path"] == "unit_id"


def test_stopped_experiment_serves_control_without_exposure(
    client, admin_headers, ingest_headers, session
):
    _start(client, admin_headers)
    client.post("/api/v1/experiments/ranker-v2/stop", headers=admin_headers)
    got = client.post("/api/v1/assign", json={"unit_id": "u1"}, headers=ingest_headers).get_json()
    assert got["assignments"]["ranker-v2"] == {
        "variant": None,
        "params": {"model": "ranker_a"},
        "in_experiment": False,
        "reason": "not_running",
    }
    assert session.scalars(select(Exposure)).all() == []
