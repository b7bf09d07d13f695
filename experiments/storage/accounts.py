"""Users, login attempts and API keys: the SQL behind accounts and the login rate limit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from experiments.storage.models import ApiKey, LoginAttempt, User


def find_user_by_email(session: Session, email: str) -> User | None:
    """The user with this (lower-cased) email, or None."""
    return session.scalars(select(User).where(User.email == email)).one_or_none()


def find_user(session: Session, user_id: int) -> User | None:
    """The user with this id, or None."""
    return session.get(User, user_id)


def list_users(session: Session) -> list[User]:
    """Every user, by email."""
    return list(session.scalars(select(User).order_by(User.email)))


def count_users(session: Session, *, role: str | None = None, active: bool = False) -> int:
    """How many users (of a role; only those not disabled when ``active``)."""
    stmt = select(func.count()).select_from(User)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if active:
        stmt = stmt.where(User.disabled_at.is_(None))
    return int(session.scalar(stmt) or 0)


def add_login_attempt(session: Session, *, email: str, address: str, at: datetime) -> int:
    """Record an attempt (it counts until deleted or older than the window); its id."""
    attempt = LoginAttempt(email=email, address=address, at=at)
    session.add(attempt)
    session.flush()
    return attempt.id


def prune_login_attempts(session: Session, *, email: str, address: str, before: datetime) -> None:
    """Delete this account's and this address's attempts older than ``before`` (indexed)."""
    session.execute(
        delete(LoginAttempt).where(
            LoginAttempt.at < before,
            or_(LoginAttempt.email == email, LoginAttempt.address == address),
        )
    )


def count_login_attempts(
    session: Session, *, email: str, address: str, since: datetime
) -> tuple[int, int, datetime | None]:
    """Attempts since ``since`` for the account and for the address, and the oldest of them."""
    by_email = select(func.count(), func.min(LoginAttempt.at)).where(
        LoginAttempt.email == email, LoginAttempt.at >= since
    )
    by_address = select(func.count(), func.min(LoginAttempt.at)).where(
        LoginAttempt.address == address, LoginAttempt.at >= since
    )
    email_count, email_oldest = session.execute(by_email).one()
    address_count, address_oldest = session.execute(by_address).one()
    oldest = [t for t in (email_oldest, address_oldest) if t is not None]
    return int(email_count), int(address_count), min(oldest) if oldest else None


def delete_login_attempt(session: Session, attempt_id: int) -> None:
    """Forget one attempt (a success, or one refused before checking the password)."""
    session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt_id))


def list_api_keys(session: Session) -> list[ApiKey]:
    """Every API key, newest first (revoked ones too)."""
    return list(
        session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc()))
    )


def find_active_keys(session: Session, prefix_or_name: str) -> list[ApiKey]:
    """Unrevoked keys whose prefix or name is ``prefix_or_name``."""
    stmt = select(ApiKey).where(
        ApiKey.revoked_at.is_(None),
        or_(ApiKey.prefix == prefix_or_name, ApiKey.name == prefix_or_name),
    )
    return list(session.scalars(stmt))


def touch_api_key(session: Session, key_id: int, *, now: datetime, stale_before: datetime) -> bool:
    """Set ``last_used_at`` unless it is newer than ``stale_before``; True when it was set.

    The condition is in the UPDATE, so concurrent requests write it at most once.
    """
    result = session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale_before),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
