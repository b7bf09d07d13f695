"""Alembic environment: the same settings and engine as the app."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from experiments.config import load_settings
from experiments.storage import models  # noqa: F401  (registers the tables)
from experiments.storage.base import Base
from experiments.storage.engine import make_engine

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Use a connection handed over by xp (tests, `xp db upgrade`) or make one."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.attributes.get("database_url") or load_settings().database_url
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("xp migrations run online only: use `xp db upgrade`")
run_migrations_online()
