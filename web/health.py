"""GET /healthz: the app and its database answer (no key needed)."""

from __future__ import annotations

from flask import Blueprint, Response

from experiments.service.health import check_database
from web.api.responses import json_response
from web.db import get_session
from web.permissions import public

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz() -> Response:
    ok, detail = check_database(get_session())
    return json_response(
        {"status": "ok" if ok else "error", "database": detail}, 200 if ok else 503
    )
