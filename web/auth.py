"""API key authentication for /api/v1 (Authorization: Bearer <key>)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from experiments.domain import ApiScope
from experiments.service.keys import authenticate, has_scope, record_key_use
from web.db import get_session, utcnow
from web.errors import error_response
from web.permissions import PERMISSION

F = TypeVar("F", bound=Callable[..., Any])


def require_scope(scope: ApiScope) -> Callable[[F], F]:
    """Reject the request with 401 (no or bad key) or 403 (scope) before the view runs.

    This is the API's permission declaration (see ``web/permissions.py``).
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                response = error_response(
                    401, "unauthorized", "missing API key: send Authorization: Bearer <key>"
                )
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
            session = get_session()
            key = authenticate(session, token.strip())
            if key is None:
                response = error_response(401, "unauthorized", "invalid or revoked API key")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
            if not has_scope(key, scope):
                return error_response(
                    403, "forbidden", f"this API key has scope {key.scope}; {scope} is needed"
                )
            if record_key_use(session, key, now=utcnow()):
                session.commit()  # bookkeeping, once a minute per key, before the view's work
            g.api_key = key
            return view(*args, **kwargs)

        setattr(wrapped, PERMISSION, ApiScope(scope))
        return wrapped  # type: ignore[return-value]

    return decorator


def api_actor() -> str:
    """Who is acting in this API request: the API key's name (DESIGN.md)."""
    return str(g.api_key.name)
