"""``xp users``, ``xp keys list|revoke``, the demo's admin login, and ``xp serve``'s note."""

from __future__ import annotations

import getpass
import re
from typing import Any

import pytest
from click.testing import CliRunner

from experiments.cli import main
from experiments.service.users import sign_in
from experiments.storage.engine import make_engine, make_session_factory


@pytest.fixture
def xp(database_factory: Any, tmp_path: Any) -> Any:
    """Run ``xp ARGS`` in-process against a fresh database; returns the click result."""
    env = {
        "XP_DATABASE_URL": database_factory.create(),
        "XP_INSTANCE_PATH": str(tmp_path),
        "XP_SECRET_KEY": "cli-test",
    }

    def run(*args: str, stdin: str | None = None) -> Any:
        return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)

    run.database_url = env["XP_DATABASE_URL"]  # type: ignore[attr-defined]
    return run


def test_users_create_list_disable(xp: Any) -> None:
    created = xp(
        "users",
        "create",
        "Ana@Example.com",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long secret\n",
    )
    assert created.exit_code == 0, created.output
    assert created.stdout.strip() == "created admin ana@example.com"
    xp(
        "users",
        "create",
        "bo@example.com",
        "--role",
        "viewer",
        "--password-stdin",
        stdin="another secret\n",
    )
    listed = xp("users", "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["EMAIL", "ROLE", "LAST", "LOGIN", "STATE"]
    assert re.match(r"ana@example.com\s+admin\s+never\s+active", lines[1])
    disabled = xp("users", "disable", "bo@example.com")
    assert disabled.exit_code == 0
    assert "disabled" in xp("users", "list").stdout.splitlines()[2]
    engine = make_engine(xp.database_url)
    sessions = make_session_factory(engine)
    from datetime import UTC, datetime

    assert sign_in(sessions, "ana@example.com", "a long secret", address="x", now=datetime.now(UTC))
    engine.dispose()


def test_users_create_refuses_bad_input_with_one_line(xp: Any) -> None:
    short = xp(
        "users", "create", "ana@example.com", "--role", "admin", "--password-stdin", stdin="short\n"
    )
    assert short.exit_code == 2
    assert short.stderr.strip() == "error: password: must be at least 8 characters"
    bad_role = xp("users", "create", "ana@example.com", "--role", "owner", "--password-stdin")
    assert bad_role.exit_code == 2
    last_admin = xp(
        "users",
        "create",
        "ana@example.com",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long secret\n",
    )
    assert last_admin.exit_code == 0
    refused = xp("users", "disable", "ana@example.com")
    assert refused.exit_code == 1
    assert "last admin" in refused.stderr
    unknown = xp("users", "disable", "ghost@example.com")
    assert unknown.exit_code == 2


def test_users_create_prompts_twice_without_stdin_flag(xp: Any, monkeypatch: Any) -> None:
    import sys

    monkeypatch.setattr(sys.modules["experiments.cli.users"], "_has_terminal", lambda: True)
    result = xp(
        "users",
        "create",
        "ana@example.com",
        "--role",
        "editor",
        stdin="a long secret\na long secret\n",
    )
    assert result.exit_code == 0, result.output
    assert "created editor ana@example.com" in result.stdout
    assert "a long secret" not in result.output  # typed without echo
    monkeypatch.setattr(sys.modules["experiments.cli.users"], "_has_terminal", lambda: False)
    piped = xp("users", "create", "bo@example.com", "--role", "editor", stdin="a long secret\n")
    assert piped.exit_code == 2
    assert "pipe it with --password-stdin" in piped.stderr


def test_keys_list_and_revoke(xp: Any) -> None:
    token = xp("keys", "create", "--scope", "ingest", "--name", "sdk").stdout.strip()
    prefix = token[:10]
    listed = xp("keys", "list").stdout.splitlines()
    assert listed[0].split()[:3] == ["PREFIX", "SCOPE", "CREATED"]
    assert re.match(rf"{prefix}\s+ingest\s+\S+ \S+\s+never\s+active\s+sdk", listed[1])
    revoked = xp("keys", "revoke", "sdk")
    assert revoked.exit_code == 0
    assert revoked.stdout.strip() == f"revoked key {prefix} (sdk)"
    assert "revoked" in xp("keys", "list").stdout.splitlines()[1]
    again = xp("keys", "revoke", prefix)
    assert again.exit_code == 2
    assert "no active API key" in again.stderr


def test_cli_changes_are_audited_as_cli_user(xp: Any, tmp_path: Any) -> None:
    import json

    from tests.factories import spec_document

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_document()))
    assert xp("experiments", "apply", str(spec)).exit_code == 0
    assert xp("experiments", "start", "ranker-v2").exit_code == 0
    concluded = xp(
        "experiments", "conclude", "ranker-v2", "--decision", "rollback", "--rationale", "no lift"
    )
    assert concluded.exit_code == 0, concluded.output
    assert xp("experiments", "archive", "ranker-v2").exit_code == 0
    assert "ranker-v2" not in xp("experiments", "list").stdout
    assert "ranker-v2" in xp("experiments", "list", "--archived").stdout
    engine = make_engine(xp.database_url)
    with make_session_factory(engine)() as session:
        from experiments.service.audit import experiment_audit
        from experiments.service.experiments import get_experiment

        experiment = get_experiment(session, "ranker-v2")
        entries = experiment_audit(session, experiment)
        assert experiment.decided_by == f"cli:{getpass.getuser()}"
    engine.dispose()
    assert [e["action"] for e in entries] == ["create", "start", "conclude", "archive"]
    assert {e["actor"] for e in entries} == {f"cli:{getpass.getuser()}"}


def test_demo_prints_an_admin_login_that_works(xp: Any) -> None:
    result = xp("demo", "--users", "200", "--no-serve")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    login = next(line for line in lines if line.startswith("login: "))
    password = next(line for line in lines if line.startswith("password: "))
    assert lines.index(password) == lines.index(login) + 1  # two lines, side by side
    email, secret = login.removeprefix("login: "), password.removeprefix("password: ")
    engine = make_engine(xp.database_url)
    from datetime import UTC, datetime

    user = sign_in(make_session_factory(engine), email, secret, address="x", now=datetime.now(UTC))
    assert user is not None
    assert user.role == "admin"
    engine.dispose()
    # A second run keeps the data and gives the demo admin a new password.
    again = xp("demo", "--users", "200", "--no-serve")
    assert "password: " in again.stdout
    assert "already in the database" in again.stderr


def test_serve_says_how_to_create_the_first_user(live_server: Any) -> None:
    log = live_server.log.read_text()
    assert "nobody can sign in to the web UI yet: run `xp users create EMAIL --role admin`" in log
