"""The audit log, archive, un-promote and API keys over the HTTP API."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from experiments.service.keys import authenticate
from experiments.storage.models import ApiKey
from tests.factories import spec_document


def test_every_change_is_in_the_audit_log_with_the_key_name(
    client: Any, admin_headers: dict[str, str]
) -> None:
    url = "/api/v1/experiments/ranker-v2"
    assert (
        client.post("/api/v1/experiments", json=spec_document(), headers=admin_headers).status_code
        == 201
    )
    client.patch(url, json={"name": "Renamed"}, headers=admin_headers)
    client.post(f"{url}/start", headers=admin_headers)
    client.patch(url, json={"traffic": 0.5}, headers=admin_headers)
    client.post(f"{url}/stop", headers=admin_headers)
    assert client.post(f"{url}/start", headers=admin_headers).get_json()["status"] == "running"
    client.post(
        f"{url}/conclude",
        json={"decision": "ship", "rationale": "won", "decided_by": "mallory"},
        headers=admin_headers,
    )
    client.post(f"{url}/promote", headers=admin_headers)
    unpromoted = client.post(f"{url}/unpromote", headers=admin_headers)
    assert unpromoted.status_code == 200
    assert unpromoted.get_json()["promoted_at"] is None
    archived = client.post(f"{url}/archive", headers=admin_headers)
    assert archived.status_code == 200
    assert archived.get_json()["archived_at"] is not None

    response = client.get(f"{url}/audit", headers=admin_headers)
    assert response.status_code == 200
    entries = response.get_json()["entries"]
    assert [e["action"] for e in entries] == [
        "create",
        "edit",
        "start",
        "ramp",
        "stop",
        "restart",
        "conclude",
        "promote",
        "unpromote",
        "archive",
    ]
    assert {e["actor"] for e in entries} == {"test admin"}
    assert all(set(e) == {"at", "actor", "action", "before", "after"} for e in entries)
    assert entries[1]["before"] == {"name": "Ranker v2 against v1"}
    assert entries[1]["after"] == {"name": "Renamed"}
    assert "mallory" not in str(entries)


def test_archived_experiments_leave_the_list_unless_asked(
    client: Any, admin_headers: dict[str, str]
) -> None:
    client.post("/api/v1/experiments", json=spec_document(), headers=admin_headers)
    client.post("/api/v1/experiments", json=spec_document(key="other"), headers=admin_headers)
    client.post("/api/v1/experiments/other/archive", headers=admin_headers)
    listed = client.get("/api/v1/experiments", headers=admin_headers).get_json()["experiments"]
    assert [e["key"] for e in listed] == ["ranker-v2"]
    everything = client.get("/api/v1/experiments?archived=1", headers=admin_headers).get_json()
    assert sorted(e["key"] for e in everything["experiments"]) == ["other", "ranker-v2"]
    assert client.get("/api/v1/experiments/other", headers=admin_headers).status_code == 200


def test_a_running_experiment_cannot_be_archived(
    client: Any, admin_headers: dict[str, str]
) -> None:
    client.post("/api/v1/experiments", json=spec_document(), headers=admin_headers)
    client.post("/api/v1/experiments/ranker-v2/start", headers=admin_headers)
    refused = client.post("/api/v1/experiments/ranker-v2/archive", headers=admin_headers)
    assert refused.status_code == 409
    assert "needs draft or concluded" in refused.get_json()["error"]["message"]
    again = client.post("/api/v1/experiments/ranker-v2/unpromote", headers=admin_headers)
    assert again.status_code == 409


def test_keys_over_the_api(client: Any, admin_headers: dict[str, str], session: Session) -> None:
    created = client.post(
        "/api/v1/keys", json={"scope": "ingest", "name": "checkout"}, headers=admin_headers
    )
    assert created.status_code == 201
    body = created.get_json()
    token = body["key"]
    assert token.startswith(body["prefix"])
    assert authenticate(session, token) is not None
    listed = client.get("/api/v1/keys", headers=admin_headers).get_json()["keys"]
    assert {k["name"] for k in listed} == {"test admin", "checkout"}
    assert all("key" not in k and "key_hash" not in k for k in listed)
    # Using a key records when, at most once a minute.
    sdk = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/config", headers=sdk).status_code == 200
    used = next(
        k
        for k in client.get("/api/v1/keys", headers=admin_headers).get_json()["keys"]
        if k["name"] == "checkout"
    )
    assert used["last_used_at"] is not None
    revoked = client.post(f"/api/v1/keys/{body['prefix']}/revoke", headers=admin_headers)
    assert revoked.status_code == 200
    assert revoked.get_json()["revoked_at"] is not None
    assert client.get("/api/v1/config", headers=sdk).status_code == 401
    missing = client.post("/api/v1/keys/xp_nothing/revoke", headers=admin_headers)
    assert missing.status_code == 404
    bad = client.post("/api/v1/keys", json={"scope": "root"}, headers=admin_headers)
    assert bad.status_code == 400
    assert bad.get_json()["error"]["details"][0]["path"] == "scope"
    key = session.query(ApiKey).filter_by(name="checkout").one()
    assert key.revoked_at is not None


def test_keys_need_an_admin_key(client: Any, ingest_headers: dict[str, str]) -> None:
    for method, path in (
        ("get", "/api/v1/keys"),
        ("post", "/api/v1/keys"),
        ("post", "/api/v1/keys/xp_x/revoke"),
        ("get", "/api/v1/experiments/x/audit"),
        ("post", "/api/v1/experiments/x/archive"),
        ("post", "/api/v1/experiments/x/unpromote"),
    ):
        assert getattr(client, method)(path, headers=ingest_headers).status_code == 403
