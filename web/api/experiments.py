"""Experiment endpoints: create, list, read, patch and lifecycle actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Response, g, request

from experiments.domain import ApiScope
from experiments.service import experiments as svc
from experiments.service.specs import validate_spec
from web.api import bp
from web.api.responses import json_response
from web.api.schemas import ConcludeRequest, json_body, parse_body
from web.auth import require_scope
from web.db import get_session, utcnow

if TYPE_CHECKING:
    from experiments.storage.models import Experiment


@bp.post("/experiments")
@require_scope(ApiScope.ADMIN)
def create_experiment() -> Response:
    session = get_session()
    spec = validate_spec(json_body())
    experiment = svc.create_experiment(session, spec, now=utcnow())
    document = svc.experiment_document(experiment)
    session.commit()
    response = json_response(document, 201)
    response.headers["Location"] = f"/api/v1/experiments/{experiment.key}"
    return response


@bp.get("/experiments")
@require_scope(ApiScope.ADMIN)
def list_experiments() -> Response:
    found = svc.list_experiments(get_session(), request.args.get("status"))
    return json_response({"experiments": [svc.experiment_document(e) for e in found]})


@bp.get("/experiments/<key>")
@require_scope(ApiScope.ADMIN)
def get_experiment(key: str) -> Response:
    return json_response(svc.experiment_document(svc.get_experiment(get_session(), key)))


@bp.patch("/experiments/<key>")
@require_scope(ApiScope.ADMIN)
def patch_experiment(key: str) -> Response:
    session = get_session()
    experiment = svc.update_experiment(session, key, json_body(), now=utcnow())
    document = svc.experiment_document(experiment)
    session.commit()
    return json_response(document)


def _transition(action: Callable[..., Experiment], key: str) -> Response:
    session = get_session()
    document = svc.experiment_document(action(session, key, now=utcnow()))
    session.commit()
    return json_response(document)


@bp.post("/experiments/<key>/start")
@require_scope(ApiScope.ADMIN)
def start_experiment(key: str) -> Response:
    return _transition(svc.start_experiment, key)


@bp.post("/experiments/<key>/stop")
@require_scope(ApiScope.ADMIN)
def stop_experiment(key: str) -> Response:
    return _transition(svc.stop_experiment, key)


@bp.post("/experiments/<key>/promote")
@require_scope(ApiScope.ADMIN)
def promote_experiment(key: str) -> Response:
    return _transition(svc.promote_experiment, key)


@bp.post("/experiments/<key>/conclude")
@require_scope(ApiScope.ADMIN)
def conclude_experiment(key: str) -> Response:
    session = get_session()
    body = parse_body(ConcludeRequest)
    experiment = svc.conclude_experiment(
        session,
        key,
        decision=body.decision,
        rationale=body.rationale,
        variant=body.variant,
        decided_by=body.decided_by or f"API key {g.api_key.name} ({g.api_key.prefix}…)",
        now=utcnow(),
    )
    document = svc.experiment_document(experiment)
    session.commit()
    return json_response(document)
