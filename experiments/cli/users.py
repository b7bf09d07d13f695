"""``xp users``: the accounts that sign in to the web UI (audited as ``cli:USER``)."""

from __future__ import annotations

import sys

import click

from experiments.cli.base import State, fail, handle_errors, now, pass_state, unit_of_work


@click.group()
def users() -> None:
    """Web UI accounts and their roles."""


def _has_terminal() -> bool:
    return sys.stdin.isatty()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # The first line of standard input, without its newline (scripts, CI secrets).
        return sys.stdin.readline().rstrip("\r\n")
    if not _has_terminal():
        fail("no terminal to ask for the password: pipe it with --password-stdin", 2)
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return password


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["viewer", "editor", "admin"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_state
@handle_errors
def users_create(state: State, email: str, role: str, password_stdin: bool) -> None:
    """Create an account that signs in with EMAIL (the password is asked for)."""
    from experiments.service.audit import cli_actor
    from experiments.service.users import create_user

    password = _read_password(password_stdin)
    with unit_of_work(state.settings) as session:
        user = create_user(
            session, email, role=role, password=password, actor=cli_actor(), now=now()
        )
        address, chosen = user.email, user.role
    click.echo(f"created {chosen} {address}")


@users.command("list")
@pass_state
@handle_errors
def users_list(state: State) -> None:
    """List accounts: email, role, last login, disabled."""
    from experiments.service.users import list_users, user_document

    with unit_of_work(state.settings) as session:
        documents = [user_document(u) for u in list_users(session)]
    click.echo(f"{'EMAIL':<40} {'ROLE':<7} {'LAST LOGIN':<17} STATE")
    for d in documents:
        last = (d["last_login_at"] or "never")[:16].replace("T", " ")
        word = f"disabled {d['disabled_at'][:10]}" if d["disabled_at"] else "active"
        click.echo(f"{d['email']:<40} {d['role']:<7} {last:<17} {word}")


@users.command("disable")
@click.argument("email")
@pass_state
@handle_errors
def users_disable(state: State, email: str) -> None:
    """Disable the account EMAIL: it cannot sign in and its sessions end at once."""
    from experiments.service.audit import cli_actor
    from experiments.service.users import disable_user

    with unit_of_work(state.settings) as session:
        user = disable_user(session, email, actor=cli_actor(), now=now())
        address = user.email
    click.echo(f"disabled {address}")
