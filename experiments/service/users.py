"""People who sign in to the web UI: accounts, roles, passwords, the login rate limit.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's
recommended second profile: 64 MiB, 3 passes), a memory-hard KDF, so a leaked
table is expensive to brute-force. Emails are stored lower-cased.

Failed logins are limited to :data:`MAX_FAILURES` per :data:`WINDOW` per
account and per client address, counted in the database (``login_attempts``)
so that every worker on every host shares the counters. :func:`sign_in` runs
its own short transactions: the attempt is committed *before* the count, so
concurrent attempts on other workers see each other and the limit holds
exactly, not "10 plus however many raced".
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from experiments.domain import AuditAction, UserRole
from experiments.errors import (
    ConflictError,
    FieldProblem,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    RateLimitedError,
)
from experiments.service.audit import record_change
from experiments.storage import accounts
from experiments.storage.models import User

MAX_FAILURES = 10
WINDOW = timedelta(minutes=1)
PASSWORD_MIN = 8
PASSWORD_MAX = 1024
EMAIL_MAX = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    # Verified when the account does not exist, so a wrong email costs as long
    # as a wrong password (no way to tell which accounts exist by timing).
    return _hasher.hash(secrets.token_hex(16))


def normalize_email(raw: str) -> str:
    """The stored form of an email: trimmed and lower-cased.

    Raises:
        InvalidInputError: not an address (``name@host``) or longer than 254 characters.
    """
    email = raw.strip().lower() if isinstance(raw, str) else ""
    if not _EMAIL.match(email) or len(email) > EMAIL_MAX:
        raise InvalidInputError.from_problems(
            [FieldProblem("email", "must be an email address such as ana@example.com")]
        )
    return email


def parse_role(raw: str) -> UserRole:
    """A role from its name.

    Raises:
        InvalidInputError: an unknown role.
    """
    try:
        return UserRole(raw)
    except ValueError:
        raise InvalidInputError.from_problems(
            [FieldProblem("role", f"must be one of {', '.join(UserRole)}")]
        ) from None


def _password_problems(password: str) -> list[FieldProblem]:
    if not isinstance(password, str) or len(password) < PASSWORD_MIN:
        return [FieldProblem("password", f"must be at least {PASSWORD_MIN} characters")]
    if len(password) > PASSWORD_MAX:
        return [FieldProblem("password", f"must be at most {PASSWORD_MAX} characters")]
    if "\x00" in password:
        return [FieldProblem("password", "must not contain NUL characters")]
    return []


def user_document(user: User) -> dict[str, str | None]:
    """A user as shown by ``xp users list`` and the users page (never the hash)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "email": user.email,
        "role": user.role,
        "created_at": iso(user.created_at),
        "last_login_at": iso(user.last_login_at),
        "disabled_at": iso(user.disabled_at),
    }


def create_user(
    session: Session, email: str, *, role: str, password: str, actor: str, now: datetime
) -> User:
    """Create an account (audited as ``user_create``).

    Raises:
        InvalidInputError: a bad email, role or password (every problem at once).
        ConflictError: an account with this email exists.
    """
    problems: list[FieldProblem] = []
    try:
        address = normalize_email(email)
    except InvalidInputError as exc:
        problems.extend(exc.details)
        address = ""
    try:
        chosen = parse_role(role)
    except InvalidInputError as exc:
        problems.extend(exc.details)
    problems.extend(_password_problems(password))
    if problems:
        raise InvalidInputError.from_problems(problems)
    if accounts.find_user_by_email(session, address) is not None:
        raise ConflictError(f"a user {address} already exists")
    user = User(
        email=address, password_hash=_hasher.hash(password), role=chosen.value, created_at=now
    )
    session.add(user)
    session.flush()
    record_change(
        session,
        actor=actor,
        action=AuditAction.USER_CREATE,
        target=address,
        after={"email": address, "role": chosen.value},
        now=now,
    )
    return user


def list_users(session: Session) -> list[User]:
    """Every account, by email."""
    return accounts.list_users(session)


def has_users(session: Session) -> bool:
    """Whether anyone can sign in to the UI yet."""
    return accounts.count_users(session, active=True) > 0


def disable_user(session: Session, email: str, *, actor: str, now: datetime) -> User:
    """Disable an account: it can no longer sign in, and its open sessions end.

    Raises:
        NotFoundError: no such account.
        InvalidStateError: already disabled, or the last admin who can sign in.
    """
    address = normalize_email(email)
    user = accounts.find_user_by_email(session, address)
    if user is None:
        raise NotFoundError(f"no user {address}")
    if user.disabled_at is not None:
        raise InvalidStateError(f"user {address} is already disabled")
    if (
        user.role == UserRole.ADMIN
        and accounts.count_users(session, role=UserRole.ADMIN.value, active=True) <= 1
    ):
        raise InvalidStateError(
            f"{address} is the last admin who can sign in: create another admin first"
        )
    user.disabled_at = now
    session.flush()
    record_change(
        session,
        actor=actor,
        action=AuditAction.USER_DISABLE,
        target=address,
        before={"disabled_at": None},
        after={"disabled_at": now},
        now=now,
    )
    return user


def set_password(session: Session, email: str, password: str) -> User:
    """Replace an account's password (the demo's admin gets a new one each run).

    Raises:
        NotFoundError: no such account.
        InvalidInputError: a password that is too short or too long.
    """
    problems = _password_problems(password)
    if problems:
        raise InvalidInputError.from_problems(problems)
    user = accounts.find_user_by_email(session, normalize_email(email))
    if user is None:
        raise NotFoundError(f"no user {email}")
    user.password_hash = _hasher.hash(password)
    session.flush()
    return user


def active_user(session: Session, user_id: int) -> User | None:
    """The account of a session cookie, or None once it is disabled or gone."""
    user = accounts.find_user(session, user_id)
    if user is None or user.disabled_at is not None:
        return None
    return user


def _verify(user: User | None, password: str) -> bool:
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return user is not None and user.disabled_at is None


def sign_in(
    sessions: Callable[[], Session], email: str, password: str, *, address: str, now: datetime
) -> User | None:
    """Check a login, under the rate limit; the user, or None for a wrong email or password.

    Runs its own transactions (``sessions`` makes one), unlike other services:
    the attempt must be committed before it is counted (see the module docstring).
    A success records ``last_login_at`` and forgets the attempt; a failure stays
    counted for :data:`WINDOW`.

    Raises:
        RateLimitedError: :data:`MAX_FAILURES` failures within :data:`WINDOW` for this
            account or this address; nothing was checked.
    """
    key = email.strip().lower()[:EMAIL_MAX] if isinstance(email, str) else ""
    address = (address or "unknown")[:64]
    since = now - WINDOW
    session = sessions()
    try:
        accounts.prune_login_attempts(session, email=key, address=address, before=since)
        attempt = accounts.add_login_attempt(session, email=key, address=address, at=now)
        session.commit()
        by_email, by_address, oldest = accounts.count_login_attempts(
            session, email=key, address=address, since=since
        )
        if max(by_email, by_address) > MAX_FAILURES:
            accounts.delete_login_attempt(session, attempt)
            session.commit()
            wait = (oldest + WINDOW - now).total_seconds() if oldest else WINDOW.total_seconds()
            raise RateLimitedError(
                "too many failed logins: wait a minute, then try again", max(1, round(wait))
            )
        user = accounts.find_user_by_email(session, key)
        session.commit()  # no transaction (and, on SQLite, no lock) while Argon2 runs
        if not _verify(user, password if isinstance(password, str) else ""):
            return None
        assert user is not None
        accounts.delete_login_attempt(session, attempt)
        user = session.merge(user)
        user.last_login_at = now
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        session.commit()
        return user
    finally:
        session.rollback()
        session.close()
