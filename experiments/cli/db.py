"""``xp db`` and ``xp serve``: the schema and the web server."""

from __future__ import annotations

import click

from experiments.cli.base import State, handle_errors, pass_state
from experiments.config import Settings
from experiments.errors import InvalidInputError


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_state
@handle_errors
def db_upgrade(state: State) -> None:
    """Apply migrations to the configured database."""
    from experiments.storage.engine import make_engine
    from experiments.storage.migrate import upgrade

    engine = make_engine(state.settings.database_url)
    upgrade(engine)
    engine.dispose()
    click.echo(
        f"database at {engine.url.render_as_string(hide_password=True)} is up to date", err=True
    )


def _require_migrated(settings: Settings) -> None:
    """Stop with a clear message when the schema is behind the code."""
    from experiments.storage.engine import make_engine
    from experiments.storage.migrate import pending_revision

    engine = make_engine(settings.database_url)
    try:
        head = pending_revision(engine)
    finally:
        engine.dispose()
    if head is not None:
        raise InvalidInputError(
            f"the database at {engine.url.render_as_string(hide_password=True)} is not at"
            f" schema {head}: run `xp db upgrade` first"
        )


def _warn_without_users(settings: Settings) -> None:
    """Say how to create the first account when nobody can sign in to the UI yet."""
    from experiments.cli.base import unit_of_work
    from experiments.service.users import has_users

    with unit_of_work(settings) as session:
        if has_users(session):
            return
    click.echo(
        "note: nobody can sign in to the web UI yet: run"
        " `xp users create EMAIL --role admin` (the API works with keys meanwhile)",
        err=True,
    )


@click.command()
@click.option("--host", default=None, help="Interface to bind (default: settings.host).")
@click.option("--port", type=int, default=None, help="Port (default: settings.port).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Gunicorn workers.")
@pass_state
@handle_errors
def serve(state: State, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the web app with gunicorn."""
    from experiments.server import run_server

    settings = state.settings
    _require_migrated(settings)
    _warn_without_users(settings)
    run_server(settings, host or settings.host, port or settings.port, workers or settings.workers)
