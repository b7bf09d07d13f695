"""The config version: one row, bumped with every change that assignment or auth reads.

Server workers cache the config snapshot and the API keys they have seen
(``service/config_cache.py``) and check :func:`read_config_version` (a primary
key lookup) once per request: a change takes effect at the next request in
every worker, without rebuilding the config on each one (DESIGN.md "Changes
take effect at once").

The bump is automatic: a ``before_flush`` listener on every SQLAlchemy session
adds an ``UPDATE config_version`` to the flush of any new, changed or deleted
experiment, variant, metric, layer or API key, so it commits (or rolls back)
with the change itself, whichever service made it. The new version is a fresh
random 62-bit token rather than ``version + 1``: a rolled-back change can then
never hand its number to a later, different change, so a cache built inside
a transaction that was rolled back can never pass for fresh.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session

from experiments.storage.models import ApiKey, ConfigVersion, Experiment, Layer, Metric, Variant

_WATCHED = (Experiment, Variant, Metric, Layer, ApiKey)
_SESSION_KEY = "xp_config_version"
_UNCOMMITTED = "xp_config_changed"


def read_config_version(session: Session) -> int:
    """The current version (read once per session transaction, then remembered).

    On SQLite, a session that has not begun a transaction reads the row on a
    pooled connection in autocommit instead: xp's SQLite transactions take the
    write lock at BEGIN, and a request that only checks its caches must not
    queue behind a writer's disk flush for it.
    """
    cached = session.info.get(_SESSION_KEY)
    if cached is not None:
        return int(cached)
    bind = session.get_bind()
    # Only a session on an engine: one bound to a connection (tests) sees that
    # connection's uncommitted rows, which another connection would not.
    if isinstance(bind, Engine) and bind.dialect.name == "sqlite" and not session.in_transaction():
        value = _read_autocommit_sqlite(bind)
    else:
        version = session.execute(
            select(ConfigVersion.version).where(ConfigVersion.id == 1)
        ).scalar()
        value = int(version or 0)
    session.info[_SESSION_KEY] = value
    return value


def _read_autocommit_sqlite(engine: Engine) -> int:
    raw = engine.raw_connection()
    try:
        # pysqlite runs with isolation_level=None (engine.py): no BEGIN, no lock.
        row = raw.cursor().execute("SELECT version FROM config_version WHERE id = 1").fetchone()
    finally:
        raw.close()
    return int(row[0]) if row else 0


def bump_config_version(session: Session) -> None:
    """Mark a change (in the caller's transaction) with a new version token."""
    token = secrets.randbits(62)
    session.execute(update(ConfigVersion).where(ConfigVersion.id == 1).values(version=token))
    session.info[_SESSION_KEY] = token
    session.info[_UNCOMMITTED] = True


def has_uncommitted_change(session: Session) -> bool:
    """True when this session's open transaction changed the config (do not cache it)."""
    return bool(session.info.get(_UNCOMMITTED))


def _changes_config(session: Session) -> bool:
    for objects in (session.new, session.deleted):
        if any(isinstance(obj, _WATCHED) for obj in objects):
            return True
    return any(
        isinstance(obj, _WATCHED) and session.is_modified(obj, include_collections=False)
        for obj in session.dirty
    )


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    if _changes_config(session):
        bump_config_version(session)


def _forget(session: Session, *_args: Any) -> None:
    session.info.pop(_SESSION_KEY, None)
    session.info.pop(_UNCOMMITTED, None)


event.listen(Session, "before_flush", _before_flush)
# A new transaction may see a newer version: forget the remembered one.
event.listen(Session, "after_commit", _forget)
event.listen(Session, "after_rollback", _forget)
event.listen(Session, "after_soft_rollback", _forget)
