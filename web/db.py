"""One session per request; views commit before they respond."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from experiments.config import Settings


def get_session() -> Session:
    """The request's session (opened on first use)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["xp_sessions"]()
    session: Session = g.db_session
    return session


def settings() -> Settings:
    """The app's settings."""
    value: Settings = current_app.config["XP_SETTINGS"]
    return value


def utcnow() -> datetime:
    """The request's clock."""
    return datetime.now(UTC)


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        # Anything not committed by the view is rolled back here.
        session.rollback()
        session.close()


def init_app(app: Flask) -> None:
    """Register the teardown that closes (and rolls back) the request's session."""
    app.teardown_appcontext(_close_session)
