"""The JSON API under /api/v1 (DESIGN.md "HTTP API")."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from web.api import assign, experiments, ingest, keys, openapi, reports  # noqa: E402, F401
