"""GET /api/v1/experiments/KEY/report: the latest snapshot (``?refresh=1`` recomputes)."""

from __future__ import annotations

from flask import Response, request

from experiments.domain import ApiScope
from experiments.service.analysis import load_report
from web.api import bp
from web.api.responses import json_response
from web.auth import require_scope
from web.db import get_session, settings, utcnow


@bp.get("/experiments/<key>/report")
@require_scope(ApiScope.ADMIN)
def get_report(key: str) -> Response:
    session = get_session()
    refresh = request.args.get("refresh", "").lower() in ("1", "true", "yes")
    report = load_report(session, key, settings=settings(), now=utcnow(), refresh=refresh)
    session.commit()  # a computed snapshot is kept
    return json_response(report)
