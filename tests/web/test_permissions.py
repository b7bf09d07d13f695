"""Every route of the app, walked from its URL map: anonymous visitors read nothing and
change nothing, a viewer changes nothing, and no view forgets to declare its permission.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from experiments.domain import ApiScope, UserRole
from experiments.service import decisions
from experiments.service import experiments as svc
from experiments.service.analysis import run_analysis
from experiments.service.keys import create_api_key
from experiments.service.simulation import SimulationPlan, simulate_traffic
from experiments.service.specs import validate_spec
from experiments.storage.base import Base
from tests.conftest import sign_in
from tests.factories import spec_document
from web.permissions import PUBLIC, permission_of

# Views any visitor may use: signing in, the health check, the API's own description,
# and the files the pages load.
PUBLIC_ENDPOINTS = {
    "ui.login",
    "health.healthz",
    "api.openapi",
    "static",
    "ui.plotly_js",
    "ui.report_js",
    "ui.report_css",
}
# A viewer's only POST: it ends the viewer's own session and changes no data.
VIEWER_POSTS = {"ui.logout"}


def database_fingerprint(session: Session) -> str:
    """A digest of every row of every table: equal digests, nothing changed."""
    session.expire_all()
    digest = hashlib.sha256()
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table).order_by(*table.primary_key.columns)):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


@pytest.fixture
def world(session: Session, settings: Any) -> dict[str, str]:
    """Experiments in every state the routes act on, and an API key: the URL arguments."""
    now = datetime.now().astimezone() - timedelta(days=2)
    for key in ("draft-one", "ranker-v2", "stopped-one", "shipped"):
        svc.create_experiment(session, validate_spec(spec_document(key=key)), actor="test", now=now)
    for key in ("ranker-v2", "stopped-one", "shipped"):
        svc.start_experiment(session, key, actor="test", now=now)
    svc.stop_experiment(session, "stopped-one", actor="test", now=now)
    plan = SimulationPlan(users=300, days=1, seed=3)
    simulate_traffic(session, "ranker-v2", plan, settings=settings, now=now + timedelta(hours=30))
    run_analysis(session, "ranker-v2", settings=settings, now=now + timedelta(hours=31))
    decisions.conclude_experiment(
        session, "shipped", decision="ship", rationale="it won", actor="test", now=now
    )
    key, _ = create_api_key(session, scope="ingest", name="sdk", actor="test", now=now)
    session.commit()
    return {"key": "ranker-v2", "prefix": key.prefix}


def _url(rule: str, world: dict[str, str]) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: world[m.group(1)], rule)


def _routes(app: Any) -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) for every route, HEAD and OPTIONS aside."""
    return [
        (rule.endpoint, method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]


def test_every_view_declares_its_permission(app: Any) -> None:
    for endpoint, _, rule in _routes(app):
        declared = permission_of(app, endpoint)
        assert declared is not None, f"{endpoint} ({rule}) declares no permission"
        if declared == PUBLIC:
            assert endpoint in PUBLIC_ENDPOINTS, f"{endpoint} is public: is that intended?"
        if rule.startswith("/api/"):
            assert isinstance(declared, ApiScope) or endpoint == "api.openapi", endpoint


def test_a_view_without_a_declaration_is_refused(app: Any, make_user: Any) -> None:
    @app.get("/forgotten")
    def forgotten() -> str:
        return "secret"

    admin = sign_in(app.test_client(), make_user("admin"))
    response = admin.get("/forgotten")
    assert response.status_code == 403
    assert "secret" not in response.text


def test_anonymous_reads_nothing_and_changes_nothing(
    app: Any, client: Any, session: Session, world: dict[str, str]
) -> None:
    before = database_fingerprint(session)
    checked = 0
    for endpoint, method, rule in _routes(app):
        if permission_of(app, endpoint) == PUBLIC:
            continue
        url = _url(rule, world)
        response = client.open(url, method=method, data={"confirm": "yes"})
        if rule.startswith("/api/"):
            assert response.status_code == 401, (method, rule, response.status_code)
            assert response.get_json()["error"]["code"] == "unauthorized"
        else:
            assert response.status_code == 302, (method, rule, response.status_code)
            location = response.headers["Location"]
            assert location.startswith("/login"), (method, rule, location)
            if method == "GET":
                assert unquote(location) == f"/login?next={url}", location
        checked += 1
    assert checked > 40
    assert database_fingerprint(session) == before


def test_a_viewer_reads_everything_and_changes_nothing(
    app: Any, viewer: Any, session: Session, world: dict[str, str]
) -> None:
    before = database_fingerprint(session)
    forbidden = 0
    for endpoint, method, rule in _routes(app):
        needed = permission_of(app, endpoint)
        if needed == PUBLIC or isinstance(needed, ApiScope) or endpoint in VIEWER_POSTS:
            continue
        url = _url(rule, world)
        response = viewer.open(url, method=method, data={"confirm": "yes"})
        if needed is UserRole.VIEWER:
            # What a viewer may use only reads.
            assert method == "GET", f"{endpoint} lets a viewer {method}"
            assert response.status_code == 200, (rule, response.status_code)
        else:
            assert response.status_code == 403, (method, rule, response.status_code)
            assert f"needs the {needed} role" in response.text
            forbidden += 1
    assert forbidden > 20
    assert database_fingerprint(session) == before


def test_an_editor_cannot_do_what_needs_an_admin(
    app: Any, editor: Any, session: Session, world: dict[str, str]
) -> None:
    before = database_fingerprint(session)
    admin_only = [
        (method, rule)
        for endpoint, method, rule in _routes(app)
        if permission_of(app, endpoint) is UserRole.ADMIN
    ]
    assert len(admin_only) >= 10  # promote, unpromote, keys, users
    for method, rule in admin_only:
        url = _url(rule, world)
        response = editor.open(url, method=method, data={"confirm": "yes"})
        assert response.status_code == 403, (method, rule)
    assert database_fingerprint(session) == before
