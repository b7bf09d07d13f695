"""Experiment endpoints: create, list, read, patch, lifecycle actions and the audit log.

The actor of every change is the API key's name; a client-sent ``decided_by``
is ignored (DESIGN.md "Users and roles").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Response, request

from experiments.domain import ApiScope
from experiments.service import decisions
from experiments.service import experiments as svc
from experiments.service.audit import experiment_audit
from experiments.service.specs import validate_spec
from web.api import bp
from web.api.responses import json_response
from web.api.schemas import ConcludeRequest, json_body, parse_body
from web.auth import api_actor, require_scope
from web.db import get_session, utcnow

if TYPE_CHECKING:
    from experiments.storage.models import Experiment

_TRUE = ("1", "true", "yes")


@bp.post("/experiments")
@require_scope(ApiScope.ADMIN)
def create_experiment() -> Response:
    session = get_session()
    spec = validate_spec(json_body())
    experiment = svc.create_experiment(session, spec, actor=api_actor(), now=utcnow())
    document = svc.experiment_document(experiment)
    session.commit()
    response = json_response(document, 201)
    response.headers["Location"] = f"/api/v1/experiments/{experiment.key}"
    return response


@bp.get("/experiments")
@require_scope(ApiScope.ADMIN)
def list_experiments() -> Response:
    found = svc.list_experiments(
        get_session(),
        request.args.get("status"),
        include_archived=request.args.get("archived", "").lower() in _TRUE,
    )
    return json_response({"experiments": [svc.experiment_document(e) for e in found]})


@bp.get("/experiments/<key>")
@require_scope(ApiScope.ADMIN)
def get_experiment(key: str) -> Response:
    return json_response(svc.experiment_document(svc.get_experiment(get_session(), key)))


@bp.patch("/experiments/<key>")
@require_scope(ApiScope.ADMIN)
def patch_experiment(key: str) -> Response:
    session = get_session()
    experiment = svc.update_experiment(session, key, json_body(), actor=api_actor(), now=utcnow())
    document = svc.experiment_document(experiment)
    session.commit()
    return json_response(document)


def _transition(action: Callable[..., Experiment], key: str) -> Response:
    session = get_session()
    document = svc.experiment_document(action(session, key, actor=api_actor(), now=utcnow()))
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


@bp.post("/experiments/<key>/archive")
@require_scope(ApiScope.ADMIN)
def archive_experiment(key: str) -> Response:
    return _transition(svc.archive_experiment, key)


@bp.post("/experiments/<key>/promote")
@require_scope(ApiScope.ADMIN)
def promote_experiment(key: str) -> Response:
    return _transition(decisions.promote_experiment, key)


@bp.post("/experiments/<key>/unpromote")
@require_scope(ApiScope.ADMIN)
def unpromote_experiment(key: str) -> Response:
    return _transition(decisions.unpromote_experiment, key)


@bp.post("/experiments/<key>/conclude")
@require_scope(ApiScope.ADMIN)
def conclude_experiment(key: str) -> Response:
    session = get_session()
    body = parse_body(ConcludeRequest)
    experiment = decisions.conclude_experiment(
        session,
        key,
        decision=body.decision,
        rationale=body.rationale,
        variant=body.variant,
        actor=api_actor(),  # body.decided_by is ignored: the key says who
        now=utcnow(),
    )
    document = svc.experiment_document(experiment)
    session.commit()
    return json_response(document)


@bp.get("/experiments/<key>/audit")
@require_scope(ApiScope.ADMIN)
def experiment_audit_log(key: str) -> Response:
    session = get_session()
    entries = experiment_audit(session, svc.get_experiment(session, key))
    return json_response({"entries": entries})
