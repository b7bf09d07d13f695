import re

import pytest

from tests.factories import spec_document


def create(client, headers, **changes):
    return client.post("/api/v1/experiments", json=spec_document(**changes), headers=headers)


def test_create_returns_201_and_the_document(client, admin_headers):
    response = create(client, admin_headers)
    assert response.status_code == 201
    body = response.get_json()
    assert body["key"] == "ranker-v2"
    assert body["status"] == "draft"
    assert body["traffic"] == 1.0
    assert body["alpha"] == 0.05
    assert body["method"] == "fixed"
    assert response.headers["Location"] == "/api/v1/experiments/ranker-v2"
    got = client.get("/api/v1/experiments/ranker-v2", headers=admin_headers).get_json()
    assert got["variants"][1]["params"]["objective_weights"] == {"engagement": 0.7, "quality": 0.3}
    listed = client.get("/api/v1/experiments", headers=admin_headers).get_json()
    assert [e["key"] for e in listed["experiments"]] == ["ranker-v2"]


def test_every_invalid_field_is_reported_at_once_by_path(client, admin_headers, session):
    doc = spec_document(key="Bad Key")
    doc["variants"][1]["weight"] = -0.5
    doc["metrics"][0].pop("numerator")
    doc["alpha"] = 2
    response = client.post("/api/v1/experiments", json=doc, headers=admin_headers)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_input"
    paths = {d["path"]: d["message"] for d in error["details"]}
    assert paths["variants[1].weight"] == "must be > 0.0"
    assert paths["metrics[0].numerator"] == "is required for ratio metrics"
    assert paths["alpha"] == "must be < 0.5"
    assert "key" in paths
    assert client.get("/api/v1/experiments", headers=admin_headers).get_json() == {
        "experiments": []
    }


def test_cross_field_rules(client, admin_headers):
    doc = spec_document()
    doc["variants"][1]["is_control"] = True
    doc["variants"][1]["weight"] = 0.6
    doc["metrics"][1]["role"] = "primary"
    response = client.post("/api/v1/experiments", json=doc, headers=admin_headers)
    messages = [d["message"] for d in response.get_json()["error"]["details"]]
    assert "exactly one variant must have is_control true, found 2" in messages
    assert any(m.startswith("weights must sum to 1") for m in messages)
    assert "exactly one metric must have role primary, found 2" in messages


def test_duplicate_key_is_a_conflict(client, admin_headers):
    assert create(client, admin_headers).status_code == 201
    response = create(client, admin_headers)
    assert response.status_code == 409
    assert "already exists" in response.get_json()["error"]["message"]


def test_lifecycle_and_patch_rules(client, admin_headers):
    create(client, admin_headers)
    url = "/api/v1/experiments/ranker-v2"
    # A draft may change anything but its key.
    patched = client.patch(url, json={"alpha": 0.1, "hypothesis": None}, headers=admin_headers)
    assert patched.status_code == 200
    assert patched.get_json()["alpha"] == 0.1
    assert patched.get_json()["hypothesis"] is None
    assert client.post(f"{url}/start", headers=admin_headers).get_json()["status"] == "running"
    # Running: traffic and name may change...
    ok = client.patch(url, json={"traffic": 0.5, "name": "Renamed"}, headers=admin_headers)
    assert ok.status_code == 200
    assert ok.get_json()["traffic"] == 0.5
    # ...variants may not, unless reshuffled (new salt, analysis restarts).
    variants = ok.get_json()["variants"]
    variants[0]["weight"], variants[1]["weight"] = 0.4, 0.6
    refused = client.patch(url, json={"variants": variants}, headers=admin_headers)
    assert refused.status_code == 409
    assert "reshuffle" in refused.get_json()["error"]["message"]
    before = client.get(url, headers=admin_headers).get_json()
    reshuffled = client.patch(
        url, json={"variants": variants, "reshuffle": True}, headers=admin_headers
    )
    assert reshuffled.status_code == 200
    after = reshuffled.get_json()
    assert after["salt"] != before["salt"]
    assert after["epoch"] == before["epoch"] + 1
    assert client.patch(url, json={"alpha": 0.01}, headers=admin_headers).status_code == 409
    assert client.patch(url, json={"key": "other"}, headers=admin_headers).status_code == 409
    # Start twice is an invalid state change.
    assert client.post(f"{url}/start", headers=admin_headers).status_code == 409
    assert client.post(f"{url}/stop", headers=admin_headers).get_json()["status"] == "stopped"


def test_merge_patch_accepts_plain_json(client, admin_headers):
    create(client, admin_headers)
    response = client.patch(
        "/api/v1/experiments/ranker-v2",
        data='{"name": "x"}',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200


def test_conclude_and_promote(client, admin_headers, ingest_headers):
    create(client, admin_headers)
    url = "/api/v1/experiments/ranker-v2"
    client.post(f"{url}/start", headers=admin_headers)
    missing = client.post(f"{url}/conclude", json={"decision": "ship"}, headers=admin_headers)
    assert missing.status_code == 400
    concluded = client.post(
        f"{url}/conclude",
        json={
            "decision": "ship",
            "variant": "treatment",
            "rationale": "take rate +3%",
            "decided_by": "somebody else",
        },
        headers=admin_headers,
    )
    assert concluded.status_code == 200
    conclusion = concluded.get_json()["conclusion"]
    assert conclusion["rationale"] == "take rate +3%"
    assert conclusion["decided_by"] == "test admin"  # the key's name; the client's is ignored
    config = client.get("/api/v1/config", headers=ingest_headers).get_json()
    assert config["experiments"] == []  # concluded, not promoted: the default again
    assert client.post(f"{url}/promote", headers=admin_headers).status_code == 200
    config = client.get("/api/v1/config", headers=ingest_headers).get_json()
    assert config["experiments"][0]["status"] == "promoted"
    assert config["experiments"][0]["promoted_variant"] == "treatment"


def test_layers_refuse_more_than_the_free_share(client, admin_headers):
    assert create(client, admin_headers, key="a", layer="feed", traffic=0.7).status_code == 201
    client.post("/api/v1/experiments/a/start", headers=admin_headers)
    response = create(client, admin_headers, key="b", layer="feed", traffic=0.5)
    assert response.status_code == 409
    assert (
        "layer feed has 0.3 of its traffic free; b asks for 0.5"
        in response.get_json()["error"]["message"]
    )
    assert create(client, admin_headers, key="b", layer="feed", traffic=0.3).status_code == 201
    assert client.post("/api/v1/experiments/b/start", headers=admin_headers).status_code == 200
    ramp = client.patch("/api/v1/experiments/a", json={"traffic": 0.8}, headers=admin_headers)
    assert ramp.status_code == 409
    client.post(
        "/api/v1/experiments/a/conclude",
        json={"decision": "rollback", "rationale": "no"},
        headers=admin_headers,
    )
    assert (
        client.patch(
            "/api/v1/experiments/b", json={"traffic": 1.0}, headers=admin_headers
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/experiments"),
        ("get", "/api/v1/experiments"),
        ("get", "/api/v1/experiments/x/report"),
        ("post", "/api/v1/experiments/x/start"),
    ],
    ids=["create", "list", "report", "start"],
)
def test_admin_endpoints_need_an_admin_key(client, ingest_headers, method, path):
    assert getattr(client, method)(path).status_code == 401
    bad = getattr(client, method)(path, headers={"Authorization": "Bearer xp_nope"})
    assert bad.status_code == 401
    forbidden = getattr(client, method)(path, headers=ingest_headers)
    assert forbidden.status_code == 403
    assert set(forbidden.get_json()["error"]) == {"code", "message", "details"}


def test_unknown_experiment_is_404(client, admin_headers):
    response = client.get("/api/v1/experiments/nope", headers=admin_headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_healthz_needs_no_key(client):
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}


def test_openapi_covers_every_api_route(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)
    assert "ExperimentSpec" in document["components"]["schemas"]
