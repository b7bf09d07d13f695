"""``xp keys``: create, list and revoke API keys (audited as ``cli:USER``)."""

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
    from experiments.service.audit import cli_actor
    from experiments.service.keys import create_api_key

    with unit_of_work(state.settings) as session:
        key, token = create_api_key(session, scope=scope, name=name, actor=cli_actor(), now=now())
        click.echo(
            f"created {key.scope} key {key.name!r} (prefix {key.prefix}); shown once:", err=True
        )
    click.echo(token)


@keys.command("list")
@pass_state
@handle_errors
def keys_list(state: State) -> None:
    """List API keys: prefix, scope, name, created, last used, revoked."""
    from experiments.service.keys import key_document, list_api_keys

    with unit_of_work(state.settings) as session:
        documents = [key_document(k) for k in list_api_keys(session)]
    click.echo(f"{'PREFIX':<12} {'SCOPE':<7} {'CREATED':<17} {'LAST USED':<17} {'STATE':<8} NAME")
    for d in documents:
        state_word = "revoked" if d["revoked_at"] else "active"
        click.echo(
            f"{d['prefix']:<12} {d['scope']:<7} {_minutes(d['created_at']):<17}"
            f" {_minutes(d['last_used_at']):<17} {state_word:<8} {d['name']}"
        )


def _minutes(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "never"


@keys.command("revoke")
@click.argument("prefix_or_name")
@pass_state
@handle_errors
def keys_revoke(state: State, prefix_or_name: str) -> None:
    """Revoke the API key with this PREFIX or NAME; it stops working at once."""
    from experiments.service.audit import cli_actor
    from experiments.service.keys import revoke_api_key

    with unit_of_work(state.settings) as session:
        key = revoke_api_key(session, prefix_or_name, actor=cli_actor(), now=now())
        prefix, name = key.prefix, key.name
    click.echo(f"revoked key {prefix} ({name})")
