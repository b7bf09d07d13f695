"""Accounts (create, disable, sign in) and API keys (list, revoke, last used)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from experiments.errors import ConflictError, InvalidInputError, InvalidStateError, NotFoundError
from experiments.service.keys import (
    authenticate,
    create_api_key,
    key_document,
    list_api_keys,
    record_key_use,
    revoke_api_key,
)
from experiments.service.users import create_user, disable_user, has_users, sign_in


def _sessions(session: Session) -> Any:
    from tests.conftest import _NonClosingSession

    return lambda: _NonClosingSession(session)


def test_create_user_checks_everything_at_once(session: Session, now: datetime) -> None:
    with pytest.raises(InvalidInputError) as caught:
        create_user(session, "not-an-email", role="owner", password="short", actor="t", now=now)
    assert {p.path for p in caught.value.details} == {"email", "role", "password"}
    assert not has_users(session)


def test_passwords_are_hashed_with_argon2id(session: Session, now: datetime) -> None:
    user = create_user(
        session, "Ana@Example.com", role="viewer", password="a long secret", actor="t", now=now
    )
    assert user.email == "ana@example.com"
    assert user.password_hash.startswith("$argon2id$")
    assert "a long secret" not in user.password_hash
    with pytest.raises(ConflictError):
        create_user(session, "ana@example.com", role="admin", password="x" * 10, actor="t", now=now)


def test_sign_in(session: Session, now: datetime) -> None:
    create_user(
        session, "ana@example.com", role="editor", password="a long secret", actor="t", now=now
    )
    session.commit()
    sessions = _sessions(session)
    assert sign_in(sessions, "ana@example.com", "wrong", address="1.2.3.4", now=now) is None
    user = sign_in(sessions, "ANA@example.com ", "a long secret", address="1.2.3.4", now=now)
    assert user is not None
    assert user.last_login_at == now


def test_the_last_admin_cannot_be_disabled(session: Session, now: datetime) -> None:
    create_user(session, "boss@example.com", role="admin", password="x" * 10, actor="t", now=now)
    with pytest.raises(InvalidStateError, match="last admin"):
        disable_user(session, "boss@example.com", actor="t", now=now)
    create_user(session, "two@example.com", role="admin", password="x" * 10, actor="t", now=now)
    disable_user(session, "boss@example.com", actor="two@example.com", now=now)
    with pytest.raises(InvalidStateError, match="already disabled"):
        disable_user(session, "boss@example.com", actor="t", now=now)
    with pytest.raises(NotFoundError):
        disable_user(session, "ghost@example.com", actor="t", now=now)


def test_keys_are_listed_and_revoked_by_prefix_or_name(session: Session, now: datetime) -> None:
    first, token = create_api_key(session, scope="ingest", name="sdk", actor="t", now=now)
    second, _ = create_api_key(session, scope="admin", name="sdk", actor="t", now=now)
    assert [k.prefix for k in list_api_keys(session)] == [second.prefix, first.prefix]
    assert authenticate(session, token) is not None
    with pytest.raises(InvalidInputError, match="2 active keys are named 'sdk'"):
        revoke_api_key(session, "sdk", actor="t", now=now)
    revoke_api_key(session, first.prefix, actor="t", now=now)
    assert authenticate(session, token) is None  # refused at once
    assert revoke_api_key(session, "sdk", actor="t", now=now).id == second.id  # one left
    with pytest.raises(NotFoundError):
        revoke_api_key(session, first.prefix, actor="t", now=now)
    assert key_document(first)["revoked_at"] == now.isoformat()


def test_last_used_is_written_at_most_once_a_minute(session: Session, now: datetime) -> None:
    key, _ = create_api_key(session, scope="ingest", name="sdk", actor="t", now=now)
    assert record_key_use(session, key, now=now) is True
    session.refresh(key)
    assert key.last_used_at == now
    assert record_key_use(session, key, now=now + timedelta(seconds=59)) is False
    assert record_key_use(session, key, now=now + timedelta(seconds=61)) is True
    session.refresh(key)
    assert key.last_used_at == now + timedelta(seconds=61)
