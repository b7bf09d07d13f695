"""Liveness of the database, for /healthz."""

from __future__ import annotations

from sqlalchemy.orm import Session

from experiments.storage.queries import ping


def check_database(session: Session) -> tuple[bool, str]:
    """(ok, detail): whether a trivial query answers."""
    try:
        ping(session)
    except Exception as exc:  # boundary: any driver failure means "not healthy"
        return False, f"{type(exc).__name__}: {exc}"
    return True, "ok"
