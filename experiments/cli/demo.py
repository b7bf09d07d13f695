"""``xp demo``: seed a realistic demo database, then serve it."""

from __future__ import annotations

import sys

import click

from experiments.cli.base import State, handle_errors, now, pass_state, unit_of_work


@click.command()
@click.option("--users", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True)
@click.option("--serve/--no-serve", default=True, show_default=True, help="Serve it afterwards.")
@click.option("--port", type=int, default=None)
@pass_state
@handle_errors
def demo(state: State, users: int, serve: bool, port: int | None) -> None:
    """Create a demo database with realistic experiments, then serve it."""
    from experiments.service.audit import cli_actor
    from experiments.service.demo import ensure_demo_admin, seed_demo
    from experiments.storage.engine import make_engine
    from experiments.storage.migrate import upgrade

    settings = state.settings
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    with (
        unit_of_work(settings) as session,
        click.progressbar(
            length=users * 2, label="simulating demo traffic", file=sys.stderr
        ) as bar,
    ):
        summary = seed_demo(
            session,
            settings=settings,
            now=now(),
            users=users,
            on_progress=bar.update,
            actor=cli_actor(),
        )
        email, password = ensure_demo_admin(session, actor=cli_actor(), now=now())
    for line in summary:
        click.echo(line, err=True)
    url = f"http://{settings.host}:{port or settings.port}/"
    click.echo(f"xp demo is serving at {url}  (Ctrl-C to stop)" if serve else f"xp demo: {url}")
    click.echo(f"login: {email}")
    click.echo(f"password: {password}")
    if serve:
        from experiments.server import run_server

        run_server(settings, settings.host, port or settings.port, settings.workers)
