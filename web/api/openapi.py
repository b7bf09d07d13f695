"""GET /api/v1/openapi.json, generated from the same pydantic models that validate."""

from __future__ import annotations

from typing import Any

from flask import Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from experiments import __version__
from experiments.service.ingestion import EventIn, ExposureIn, LabelIn, PredictionIn
from experiments.service.specs import ExperimentSpec
from web.api import bp
from web.api.keys import KeyRequest
from web.api.responses import json_response
from web.api.schemas import AssignRequest, ConcludeRequest
from web.permissions import public

_MODELS: list[type[BaseModel]] = [
    ExperimentSpec,
    EventIn,
    ExposureIn,
    PredictionIn,
    LabelIn,
    AssignRequest,
    ConcludeRequest,
    KeyRequest,
]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},
                            "message": {"type": "string"},
                            "index": {"type": "integer"},
                        },
                    },
                },
            },
        }
    },
}
_AUDIT = {
    "type": "object",
    "required": ["entries"],
    "properties": {
        "entries": {
            "type": "array",
            "description": "oldest first",
            "items": {
                "type": "object",
                "required": ["at", "actor", "action", "before", "after"],
                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "actor": {
                        "type": "string",
                        "description": "a user's email, an API key's name or cli:USER",
                    },
                    "action": {
                        "type": "string",
                        "enum": [
                            "create",
                            "edit",
                            "start",
                            "ramp",
                            "stop",
                            "restart",
                            "archive",
                            "conclude",
                            "promote",
                            "unpromote",
                            "key_create",
                            "key_revoke",
                            "user_create",
                            "user_disable",
                        ],
                    },
                    "before": {"type": ["object", "null"]},
                    "after": {"type": ["object", "null"]},
                },
            },
        }
    },
}
_KEY = {
    "type": "object",
    "required": ["name", "prefix", "scope", "created_at", "last_used_at", "revoked_at"],
    "properties": {
        "name": {"type": "string"},
        "prefix": {"type": "string"},
        "scope": {"type": "string", "enum": ["ingest", "admin"]},
        "created_at": {"type": "string", "format": "date-time"},
        "last_used_at": {"type": ["string", "null"], "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "key": {"type": "string", "description": "the key itself: in the creation response only"},
    },
}
_INGEST_RESULT = {
    "type": "object",
    "required": ["accepted", "duplicates"],
    "properties": {"accepted": {"type": "integer"}, "duplicates": {"type": "integer"}},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "invalid input",
        401: "no or bad API key",
        403: "wrong scope",
        404: "unknown",
        409: "invalid state change",
        413: "body too large",
        429: "rate limited",
    }
    return {
        str(c): {
            "description": text[c],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for c in codes
    }


def _op(
    summary: str,
    scope: str,
    *,
    body: dict[str, Any] | None = None,
    ok: dict[str, Any] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (401, 403),
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "description": f"Needs an API key with scope `{scope}` (admin keys may call everything).",
        "security": [{"bearer": []}],
        "responses": {
            str(status): {
                "description": "success",
                "content": {"application/json": {"schema": ok or {"type": "object"}}},
            },
            **_errors(*errors),
        },
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if parameters:
        op["parameters"] = parameters
    return op


def _batch(field: str, model: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [field],
        "additionalProperties": False,
        "properties": {field: {"type": "array", "items": _ref(model), "minItems": 1}},
    }


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every endpoint."""
    _, defs = models_json_schema(
        [(m, "validation") for m in _MODELS], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR
    schemas["IngestResult"] = _INGEST_RESULT
    schemas["AuditLog"] = _AUDIT
    schemas["ApiKey"] = _KEY
    key_param = [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}]
    experiment = {"type": "object", "description": "the spec plus status, dates and decision"}
    paths: dict[str, Any] = {
        "/api/v1/config": {
            "get": _op(
                "Config snapshot for local assignment (ETag / If-None-Match → 304)",
                "ingest",
            )
        },
        "/api/v1/assign": {
            "post": _op(
                "Assign a unit and record first exposures",
                "ingest",
                body=_ref("AssignRequest"),
                errors=(400, 401, 403, 413),
            )
        },
        "/api/v1/experiments": {
            "get": _op("List experiments (?status=, ?archived=1 to include archived)", "admin"),
            "post": _op(
                "Create an experiment (draft)",
                "admin",
                body=_ref("ExperimentSpec"),
                ok=experiment,
                status=201,
                errors=(400, 401, 403, 409, 413),
            ),
        },
        "/api/v1/experiments/{key}": {
            "get": _op(
                "Read an experiment",
                "admin",
                ok=experiment,
                errors=(401, 403, 404),
                parameters=key_param,
            ),
            "patch": _op(
                "JSON merge-patch of the spec"
                ' ("reshuffle": true to change variants or targeting while running)',
                "admin",
                body={"type": "object"},
                ok=experiment,
                errors=(400, 401, 403, 404, 409),
                parameters=key_param,
            ),
        },
        "/api/v1/experiments/{key}/report": {
            "get": _op(
                "Significance report of the latest snapshot (?refresh=1 recomputes)",
                "admin",
                errors=(401, 403, 404, 409),
                parameters=key_param,
            )
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
    }
    actions = {
        "start": "Start a draft, or restart a stopped experiment (audited as restart)",
        "stop": "Stop a running experiment: every unit gets the control",
        "archive": "Archive a draft or concluded experiment (hidden from lists, kept)",
        "promote": "Promote a concluded ship: every unit gets the shipped variant's params",
        "unpromote": "Undo a promotion: every unit gets the default again",
    }
    for action, summary in actions.items():
        paths[f"/api/v1/experiments/{{key}}/{action}"] = {
            "post": _op(
                summary,
                "admin",
                ok=experiment,
                errors=(401, 403, 404, 409),
                parameters=key_param,
            )
        }
    paths["/api/v1/experiments/{key}/audit"] = {
        "get": _op(
            "The experiment's audit log: who changed what, when, before and after",
            "admin",
            ok=_ref("AuditLog"),
            errors=(401, 403, 404),
            parameters=key_param,
        )
    }
    paths["/api/v1/keys"] = {
        "get": _op(
            "List API keys (prefix, scope, created, last used, revoked)",
            "admin",
            ok={
                "type": "object",
                "properties": {"keys": {"type": "array", "items": _ref("ApiKey")}},
            },
        ),
        "post": _op(
            "Create an API key; the key is in this response only",
            "admin",
            body=_ref("KeyRequest"),
            ok=_ref("ApiKey"),
            status=201,
            errors=(400, 401, 403),
        ),
    }
    paths["/api/v1/keys/{prefix}/revoke"] = {
        "post": _op(
            "Revoke an API key by its prefix (or its name, when only one active key has it)",
            "admin",
            ok=_ref("ApiKey"),
            errors=(400, 401, 403, 404),
            parameters=[
                {"name": "prefix", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        )
    }
    paths["/api/v1/experiments/{key}/conclude"] = {
        "post": _op(
            "Record the decision (ship, rollback, iterate) and its rationale",
            "admin",
            body=_ref("ConcludeRequest"),
            ok=experiment,
            errors=(400, 401, 403, 404, 409),
            parameters=key_param,
        )
    }
    for field, model in (
        ("events", "EventIn"),
        ("exposures", "ExposureIn"),
        ("predictions", "PredictionIn"),
        ("labels", "LabelIn"),
    ):
        paths[f"/api/v1/{field}"] = {
            "post": _op(
                f"Ingest a batch of {field} (all or nothing, idempotent)",
                "ingest",
                body=_batch(field, model),
                ok=_ref("IngestResult"),
                errors=(400, 401, 403, 413),
            )
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "xp API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/openapi.json")
@public
def openapi() -> Response:
    return json_response(build_openapi())
