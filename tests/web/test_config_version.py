"""Per-worker caches of the config and the API keys, checked against one version row.

DESIGN.md: changes (keys, experiments, traffic) take effect at once. Every
change bumps ``config_version`` in its own transaction (a flush listener), so
the next request of any worker rebuilds what it cached; unchanged, a request
reads only that row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from experiments.service import assignments
from experiments.service.keys import create_api_key
from experiments.storage.config_version import read_config_version
from experiments.storage.models import ApiKey, ConfigVersion
from tests.factories import spec_document


def _version(session: Any) -> int:
    return int(session.scalar(select(ConfigVersion.version)))


def test_every_change_bumps_the_version_in_its_transaction(
    client: Any, admin_headers: dict[str, str], session: Any
) -> None:
    seen = [_version(session)]
    client.post("/api/v1/experiments", json=spec_document(), headers=admin_headers)
    seen.append(_version(session))
    client.post("/api/v1/experiments/ranker-v2/start", headers=admin_headers)
    seen.append(_version(session))
    client.patch("/api/v1/experiments/ranker-v2", json={"traffic": 0.5}, headers=admin_headers)
    seen.append(_version(session))
    create_api_key(session, scope="ingest", name="another", actor="test", now=datetime.now(UTC))
    session.commit()
    seen.append(_version(session))
    assert len(set(seen)) == len(seen), seen  # each change moved it
    before = _version(session)
    session.begin_nested()
    create_api_key(session, scope="ingest", name="rolled back", actor="test", now=datetime.now(UTC))
    session.flush()
    session.rollback()
    assert _version(session) == before  # a rolled-back change leaves no trace


def test_the_config_is_rebuilt_only_when_the_version_moves(
    client: Any, admin_headers: dict[str, str], ingest_headers: dict[str, str], session: Any
) -> None:
    client.post("/api/v1/experiments", json=spec_document(), headers=admin_headers)
    client.post("/api/v1/experiments/ranker-v2/start", headers=admin_headers)
    client.post("/api/v1/assign", json={"unit_id": "u1"}, headers=ingest_headers)
    cached = assignments._WORKER.served
    assert cached is not None
    client.post("/api/v1/assign", json={"unit_id": "u2"}, headers=ingest_headers)
    assert assignments._WORKER.served is cached  # same version: nothing rebuilt
    client.post("/api/v1/experiments/ranker-v2/stop", headers=admin_headers)
    stopped = client.post("/api/v1/assign", json={"unit_id": "u3"}, headers=ingest_headers)
    assert stopped.get_json()["assignments"]["ranker-v2"]["reason"] == "not_running"
    assert assignments._WORKER.served is not cached


def test_a_revoked_key_is_refused_at_the_next_request(
    client: Any, session: Any, now: datetime
) -> None:
    key, token = create_api_key(session, scope="ingest", name="soon revoked", actor="test", now=now)
    session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/config", headers=headers).status_code == 200
    assert client.get("/api/v1/config", headers=headers).status_code == 200  # from the cache
    stored = session.scalars(select(ApiKey).where(ApiKey.id == key.id)).one()
    stored.revoked_at = now
    session.commit()
    assert client.get("/api/v1/config", headers=headers).status_code == 401


def test_the_version_is_read_once_per_transaction(session: Any) -> None:
    first = read_config_version(session)
    session.execute(ConfigVersion.__table__.update().values(version=first + 7))
    assert read_config_version(session) == first  # remembered within the transaction
    session.commit()
    assert read_config_version(session) == first + 7
