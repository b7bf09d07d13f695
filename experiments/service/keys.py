"""API keys: created once, shown once, stored as SHA-256 digests.

Keys are 256-bit random tokens, so a fast digest is enough: there is nothing
to brute-force that a slow password hash would protect.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy.orm import Session

from experiments.domain import ApiScope
from experiments.errors import FieldProblem, InvalidInputError
from experiments.service import key_cache
from experiments.storage.models import ApiKey

KEY_PREFIX = "xp_"


def hash_key(token: str) -> str:
    """The stored digest of a key."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_api_key(
    session: Session, *, scope: str, name: str | None, now: datetime
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plaintext token (never stored)."""
    try:
        chosen = ApiScope(scope)
    except ValueError:
        raise InvalidInputError.from_problems(
            [FieldProblem("scope", f"must be one of {', '.join(ApiScope)}")]
        ) from None
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name or f"{chosen} key",
        prefix=token[:10],
        key_hash=hash_key(token),
        scope=chosen.value,
        created_at=now,
    )
    session.add(key)
    session.flush()
    return key, token


def authenticate(session: Session, token: str) -> ApiKey | None:
    """The active key matching ``token``, or None."""
    if not token.startswith(KEY_PREFIX) or len(token) > 200:
        return None
    return key_cache.find_key(session, hash_key(token))


def has_scope(key: ApiKey, needed: ApiScope) -> bool:
    """Admin keys may call everything; ingest keys only the ingest endpoints."""
    return key.scope == ApiScope.ADMIN or key.scope == needed
