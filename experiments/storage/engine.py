"""Engines and session factories for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# Importing the module installs the listener that bumps the config version
# with every change to an experiment, layer or API key.
from experiments.storage import config_version  # noqa: F401

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` (and ``postgres://``) URLs; use psycopg 3.

    Raises:
        ValueError: for a URL that is neither SQLite nor PostgreSQL.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return url
    raise ValueError(f"unsupported database URL {parsed!r}: use sqlite:/// or postgresql://")


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside one writer; the busy timeout makes a second
    # writer (another server worker) wait instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN, so two writers queue on busy_timeout instead
    # of one failing with "database is locked" when it upgrades a read lock.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL mode, a busy timeout and FKs on."""
    full = normalize_url(url)
    parsed = make_url(full)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(full, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        # pysqlite's own transaction handling is off; xp issues BEGIN itself.
        event.listen(engine, "connect", _disable_pysqlite_begin)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(full, **kwargs)


def _disable_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
