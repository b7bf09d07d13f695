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
from web.api.responses import json_response
from web.api.schemas import AssignRequest, ConcludeRequest

_MODELS: list[type[BaseModel]] = [
    ExperimentSpec,
    EventIn,
    ExposureIn,
    PredictionIn,
    LabelIn,
    AssignRequest,
    ConcludeRequest,
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
            "get": _op("List experiments (?status=)", "admin"),
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
    for action in ("start", "stop", "promote"):
        paths[f"/api/v1/experiments/{{key}}/{action}"] = {
            "post": _op(
                f"{action.capitalize()} an experiment",
                "admin",
                ok=experiment,
                errors=(401, 403, 404, 409),
                parameters=key_param,
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
def openapi() -> Response:
    return json_response(build_openapi())
