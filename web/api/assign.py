"""GET /api/v1/config (ETag) and POST /api/v1/assign."""

from __future__ import annotations

from flask import Response, current_app, request

from experiments.domain import ApiScope
from experiments.service.assignments import (
    assign_unit,
    assignment_document,
    build_config_document,
)
from experiments.storage.ingest import EXPOSURES
from web.api import bp
from web.api.responses import json_response
from web.api.schemas import AssignRequest, parse_body
from web.auth import require_scope
from web.db import get_session, settings, utcnow


@bp.get("/config")
@require_scope(ApiScope.INGEST)
def get_config() -> Response:
    document = build_config_document(get_session(), settings())
    etag = f'"{document["version"]}"'
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        response = Response(status=304)
    else:
        response = json_response(document)
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.post("/assign")
@require_scope(ApiScope.INGEST)
def assign() -> Response:
    session = get_session()
    body = parse_body(AssignRequest)
    now = utcnow()
    result, exposures = assign_unit(
        session,
        body.unit_id,
        attributes=body.attributes,
        keys=body.experiments,
        log_exposure=body.log_exposure,
        settings=settings(),
        now=now,
    )
    # First exposures are committed (on SQLite with those of concurrent requests) before
    # we answer.
    current_app.extensions["xp_group_commit"].commit_with(
        session, EXPOSURES, exposures, received_at=now
    )
    return json_response({"assignments": {k: assignment_document(a) for k, a in result.items()}})
