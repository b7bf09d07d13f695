"""One error body for the whole API: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from experiments.errors import (
    ConfigError,
    ConflictError,
    FieldProblem,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    RateLimitedError,
    XpError,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[XpError], int] = {
    InvalidInputError: 400,
    NotFoundError: 404,
    InvalidStateError: 409,
    ConflictError: 409,
    RateLimitedError: 429,
    ConfigError: 500,
}

_INDEX = re.compile(r"^[a-z_]+\[(\d+)\]")


def problem_document(problem: FieldProblem) -> dict[str, Any]:
    """A detail entry; batch items also carry their ``index``."""
    doc: dict[str, Any] = problem.as_dict()
    match = _INDEX.match(problem.path)
    if match:
        doc["index"] = int(match.group(1))
    return doc


def error_response(
    status: int, code: str, message: str, details: list[FieldProblem] | None = None
) -> Response:
    """The JSON error response."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": [problem_document(p) for p in details or []],
        }
    }
    response = jsonify(body)
    response.status_code = status
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def init_app(app: Flask) -> None:
    """Register the handlers that map domain errors and HTTP errors to JSON."""

    @app.errorhandler(XpError)
    def handle_xp_error(exc: XpError) -> Response:
        status = next((s for cls, s in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 500)
        response = error_response(status, exc.code, exc.message, exc.details)
        if isinstance(exc, RateLimitedError):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException) -> Any:
        if not _wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:
            message = f"request body too large: at most {app.config['MAX_CONTENT_LENGTH']} bytes"
        else:
            message = exc.description or exc.name
        return error_response(exc.code or 500, code, message)

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if not _wants_json():
            return "Internal server error", 500
        return error_response(500, "internal", "internal server error (logged on the server)")
