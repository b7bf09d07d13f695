"""Ingest endpoints: events, exposures, predictions, labels (all or nothing)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import Response, request
from sqlalchemy.orm import Session

from experiments.config import Settings
from experiments.domain import ApiScope
from experiments.errors import FieldProblem, InvalidInputError
from experiments.service import ingestion
from web.api import bp
from web.api.responses import json_response
from web.auth import require_scope
from web.db import get_session, settings, utcnow

Ingest = Callable[..., ingestion.IngestResult]


def _ingest(field: str, ingest: Ingest) -> Response:
    # The raw body goes to the service, which decodes and validates it in one pass.
    body = request.get_data(cache=False)
    if not body:
        raise InvalidInputError.from_problems([FieldProblem("", "the request body must be JSON")])
    session: Session = get_session()
    now: datetime = utcnow()
    config: Settings = settings()
    result = ingest(session, body, settings=config, now=now)
    session.commit()  # acknowledged only once durable
    return json_response(result.as_dict())


@bp.post("/events")
@require_scope(ApiScope.INGEST)
def post_events() -> Response:
    return _ingest("events", ingestion.ingest_events)


@bp.post("/exposures")
@require_scope(ApiScope.INGEST)
def post_exposures() -> Response:
    return _ingest("exposures", ingestion.ingest_exposures)


@bp.post("/predictions")
@require_scope(ApiScope.INGEST)
def post_predictions() -> Response:
    return _ingest("predictions", ingestion.ingest_predictions)


@bp.post("/labels")
@require_scope(ApiScope.INGEST)
def post_labels() -> Response:
    return _ingest("labels", ingestion.ingest_labels)
