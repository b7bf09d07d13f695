"""JSON responses serialised with orjson (fast, and NaN-free by construction)."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON response; non-finite floats become null rather than invalid JSON."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        mimetype="application/json",
    )
