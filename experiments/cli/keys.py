"""``xp keys``: API keys."""

from __future__ import annotations

import click

from experiments.cli.base import State, handle_errors, now, pass_state, unit_of_work


@click.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--scope", type=click.Choice(["ingest", "admin"]), required=True)
@click.option("--name", default=None, help="A name people recognise.")
@pass_state
@handle_errors
def keys_create(state: State, scope: str, name: str | None) -> None:
    """Create an API key and print it (the key alone on the last line)."""
    from experiments.service.keys import create_api_key

    with unit_of_work(state.settings) as session:
        key, token = create_api_key(session, scope=scope, name=name, now=now())
        click.echo(
            f"created {key.scope} key {key.name!r} (prefix {key.prefix}); shown once:", err=True
        )
    click.echo(token)
