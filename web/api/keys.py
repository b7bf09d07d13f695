"""API keys over the API: list, create (the token is in the 201 response only), revoke."""

from __future__ import annotations

from typing import Annotated

from flask import Response
from pydantic import BaseModel, ConfigDict, Field

from experiments.domain import ApiScope
from experiments.service.keys import create_api_key, key_document, list_api_keys, revoke_api_key
from web.api import bp
from web.api.responses import json_response
from web.api.schemas import parse_body
from web.auth import api_actor, require_scope
from web.db import get_session, utcnow


class KeyRequest(BaseModel):
    """POST /api/v1/keys."""

    model_config = ConfigDict(extra="forbid")

    scope: ApiScope
    name: Annotated[str | None, Field(max_length=200)] = None


@bp.get("/keys")
@require_scope(ApiScope.ADMIN)
def get_keys() -> Response:
    return json_response({"keys": [key_document(k) for k in list_api_keys(get_session())]})


@bp.post("/keys")
@require_scope(ApiScope.ADMIN)
def post_key() -> Response:
    session = get_session()
    body = parse_body(KeyRequest)
    key, token = create_api_key(
        session, scope=body.scope.value, name=body.name, actor=api_actor(), now=utcnow()
    )
    document = {**key_document(key), "key": token}
    session.commit()
    return json_response(document, 201)


@bp.post("/keys/<prefix>/revoke")
@require_scope(ApiScope.ADMIN)
def revoke_key(prefix: str) -> Response:
    session = get_session()
    key = revoke_api_key(session, prefix, actor=api_actor(), now=utcnow())
    document = key_document(key)
    session.commit()
    return json_response(document)
