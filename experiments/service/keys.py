"""API keys: created once, shown once, stored as SHA-256 digests; listed and revoked.

Keys are 256-bit random tokens, so a fast digest is enough: there is nothing
to brute-force that a slow password hash would protect. Creating and revoking
a key is audited (``key_create``, ``key_revoke``); ``last_used_at`` is written
at most once a minute per key, so authenticating a request stays a read.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from experiments.domain import ApiScope, AuditAction
from experiments.errors import FieldProblem, InvalidInputError, NotFoundError
from experiments.service import key_cache
from experiments.service.audit import record_change
from experiments.storage import accounts
from experiments.storage.models import ApiKey

KEY_PREFIX = "xp_"
NAME_MAX = 200
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(token: str) -> str:
    """The stored digest of a key."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_api_key(
    session: Session, *, scope: str, name: str | None, actor: str, now: datetime
) -> tuple[ApiKey, str]:
    """Create a key (audited); returns the row and the plaintext token (never stored)."""
    problems: list[FieldProblem] = []
    try:
        chosen = ApiScope(scope)
    except ValueError:
        problems.append(FieldProblem("scope", f"must be one of {', '.join(ApiScope)}"))
    label = (name or "").strip()
    if len(label) > NAME_MAX or "\x00" in label:
        problems.append(FieldProblem("name", f"must be at most {NAME_MAX} characters"))
    if problems:
        raise InvalidInputError.from_problems(problems)
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=label or f"{chosen} key",
        prefix=token[:10],
        key_hash=hash_key(token),
        scope=chosen.value,
        created_at=now,
    )
    session.add(key)
    session.flush()
    record_change(
        session,
        actor=actor,
        action=AuditAction.KEY_CREATE,
        target=key.prefix,
        after={"name": key.name, "prefix": key.prefix, "scope": key.scope},
        now=now,
    )
    return key, token


def key_document(key: ApiKey) -> dict[str, Any]:
    """A key as listed (the token itself is never stored, so never shown again)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "name": key.name,
        "prefix": key.prefix,
        "scope": key.scope,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
    }


def list_api_keys(session: Session) -> list[ApiKey]:
    """Every key, newest first, revoked ones included."""
    return accounts.list_api_keys(session)


def revoke_api_key(session: Session, prefix_or_name: str, *, actor: str, now: datetime) -> ApiKey:
    """Revoke the one active key with this prefix or name (audited); it stops working at once.

    Raises:
        NotFoundError: no active key matches.
        InvalidInputError: several active keys match (name the prefix instead).
    """
    wanted = (prefix_or_name or "").strip()
    found = accounts.find_active_keys(session, wanted) if wanted else []
    if not found:
        raise NotFoundError(f"no active API key with prefix or name {wanted!r}")
    if len(found) > 1:
        prefixes = ", ".join(sorted(k.prefix for k in found))
        raise InvalidInputError(
            f"{len(found)} active keys are named {wanted!r} ({prefixes}): revoke one by its prefix"
        )
    key = found[0]
    key.revoked_at = now
    session.flush()
    record_change(
        session,
        actor=actor,
        action=AuditAction.KEY_REVOKE,
        target=key.prefix,
        before={"revoked_at": None},
        after={"name": key.name, "prefix": key.prefix, "revoked_at": now},
        now=now,
    )
    return key


def authenticate(session: Session, token: str) -> ApiKey | None:
    """The active key matching ``token``, or None."""
    if not token.startswith(KEY_PREFIX) or len(token) > 200:
        return None
    return key_cache.find_key(session, hash_key(token))


_touched_lock = threading.Lock()
_touched: dict[str, datetime] = {}  # key digest → when this process last wrote last_used_at


def record_key_use(session: Session, key: ApiKey, *, now: datetime) -> bool:
    """Note that a key was used, at most once a minute; True when a write is pending.

    Each worker remembers when it last wrote a key's ``last_used_at`` (the key
    itself comes from the worker's cache, so its own ``last_used_at`` is not
    fresh): between two writes a request issues no SQL at all. The UPDATE is
    conditional, so workers racing for the same minute write once, and it is a
    plain UPDATE, not an ORM change, so it does not bump the config version.
    The caller commits when this returns True.
    """
    with _touched_lock:
        last = _touched.get(key.key_hash)
        if last is not None and now - last < LAST_USED_RESOLUTION:
            return False
        if len(_touched) >= 10_000:
            _touched.clear()
        _touched[key.key_hash] = now
    return accounts.touch_api_key(session, key.id, now=now, stale_before=now - LAST_USED_RESOLUTION)


def has_scope(key: ApiKey, needed: ApiScope) -> bool:
    """Admin keys may call everything; ingest keys only the ingest endpoints."""
    return key.scope == ApiScope.ADMIN or key.scope == needed
