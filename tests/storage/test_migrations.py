from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from experiments.storage.base import Base
from experiments.storage.engine import make_engine
from experiments.storage.migrate import downgrade, upgrade

CONTRACT_TABLES = {"events", "exposures", "predictions", "labels"}


def test_upgrade_downgrade_upgrade_and_models_match(database_factory):
    url = database_factory.create()  # already at head
    engine = make_engine(url)
    try:
        downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        tables = set(inspect(engine).get_table_names())
        assert tables >= CONTRACT_TABLES
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/wal.sqlite3")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_postgres_urls_use_psycopg():
    from experiments.storage.engine import normalize_url

    assert normalize_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    assert normalize_url("postgres://u@h/db").startswith("postgresql+psycopg://")


def test_users_keep_their_rights_through_the_roles_migration(database_factory):
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from experiments.storage.base import UTCDateTime

    engine = make_engine(database_factory.create())
    try:
        downgrade(engine, "0003")
        users = sa.table(
            "users",
            sa.column("email", sa.String),
            sa.column("password_hash", sa.String),
            sa.column("is_admin", sa.Boolean),
            sa.column("created_at", UTCDateTime()),
        )
        at = datetime(2026, 1, 1, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(
                users.insert(),
                [
                    {
                        "email": "boss@example.com",
                        "password_hash": "h",
                        "is_admin": True,
                        "created_at": at,
                    },
                    {
                        "email": "dev@example.com",
                        "password_hash": "h",
                        "is_admin": False,
                        "created_at": at,
                    },
                ],
            )
        upgrade(engine)
        with engine.connect() as conn:
            roles = dict(conn.execute(sa.text("SELECT email, role FROM users")).all())
        assert roles == {"boss@example.com": "admin", "dev@example.com": "editor"}
        downgrade(engine, "0003")
        with engine.connect() as conn:
            admins = dict(conn.execute(sa.text("SELECT email, is_admin FROM users")).all())
        assert {k: bool(v) for k, v in admins.items()} == {
            "boss@example.com": True,
            "dev@example.com": False,
        }
    finally:
        engine.dispose()
