"""Shared fixtures: a real database per test session, rolled back after each test.

The database comes from ``TEST_DATABASE_URL`` (PostgreSQL in CI: a uniquely
named database is created, migrated once and dropped at the end) or, without
it, a SQLite file in a temporary folder. Each test runs inside an outer
transaction that is rolled back; code under test may commit freely (commits
release savepoints). Tests that start a live server use a database of their own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from experiments.config import Settings
from experiments.service.keys import create_api_key
from experiments.storage.engine import make_engine, normalize_url
from experiments.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every test that touches the database is marked `db`, so CI can re-run
    # exactly those on PostgreSQL.
    for item in items:
        if {"database_url", "database_factory", "live_server"} & set(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.db)


@dataclass
class DatabaseFactory:
    """Makes fresh, migrated databases of the session's kind (SQLite or PostgreSQL)."""

    base_url: str | None
    tmp: Path
    created: list[str]

    def create(self) -> str:
        if self.base_url is None:
            path = self.tmp / f"xp-{uuid.uuid4().hex[:8]}.sqlite3"
            url = f"sqlite:///{path}"
        else:
            name = f"xp_test_{uuid.uuid4().hex[:12]}"
            admin = make_engine(self.base_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            url = (
                make_url(normalize_url(self.base_url))
                .set(database=name)
                .render_as_string(hide_password=False)
            )
            self.created.append(name)
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url

    def drop_all(self) -> None:
        if self.base_url is None:
            return
        admin = make_engine(self.base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    base = os.environ.get("TEST_DATABASE_URL") or None
    factory = DatabaseFactory(base, tmp_path_factory.mktemp("db"), [])
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def database_url(database_factory: DatabaseFactory) -> str:
    return database_factory.create()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test."""
    connection = engine.connect()
    outer = connection.begin()
    db = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield db
    db.close()
    outer.rollback()
    connection.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url, secret_key="test-secret", instance_path=str(tmp_path)
    )


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def app(settings: Settings, session: Session) -> Any:
    from web import create_app

    app = create_app(settings, TESTING=True, WTF_CSRF_ENABLED=False)
    # Views get the test's session: their commits release savepoints, and the
    # outer transaction is rolled back after the test.
    app.extensions["xp_sessions"] = lambda: _NonClosingSession(session)
    return app


class _NonClosingSession:
    """Proxy that keeps the test's session open across requests."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def close(self) -> None:
        pass

    def rollback(self) -> None:
        # A request's teardown rollback must not undo what the view committed.
        if self._session.in_nested_transaction():
            self._session.rollback()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def admin_headers(session: Session, now: datetime) -> dict[str, str]:
    _, token = create_api_key(session, scope="admin", name="test admin", actor="test", now=now)
    session.commit()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def ingest_headers(session: Session, now: datetime) -> dict[str, str]:
    _, token = create_api_key(session, scope="ingest", name="test ingest", actor="test", now=now)
    session.commit()
    return {"Authorization": f"Bearer {token}"}


PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Argon2id still, at a test cost: the production cost (64 MiB, 3 passes) takes
    # about a second per hash on a loaded two-core machine. Live servers keep it.
    from argon2 import PasswordHasher

    from experiments.service import users

    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))


@pytest.fixture
def make_user(session: Session, now: datetime) -> Any:
    """Create an account: ``make_user("editor")`` → its email (password PASSWORD)."""
    from experiments.service.users import create_user

    def make(role: str, email: str | None = None) -> str:
        address = email or f"{role}@example.com"
        create_user(session, address, role=role, password=PASSWORD, actor="test", now=now)
        session.commit()
        return address

    return make


def sign_in(client: Any, email: str, password: str = PASSWORD) -> Any:
    """Sign a test client in through the login form (CSRF off in the ``app`` fixture)."""
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
def viewer(app: Any, make_user: Any) -> Any:
    """A test client signed in as a viewer."""
    return sign_in(app.test_client(), make_user("viewer"))


@pytest.fixture
def editor(app: Any, make_user: Any) -> Any:
    """A test client signed in as an editor."""
    return sign_in(app.test_client(), make_user("editor"))


@pytest.fixture
def admin(app: Any, make_user: Any) -> Any:
    """A test client signed in as an admin."""
    return sign_in(app.test_client(), make_user("admin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_refuses(port: int, within: float = 10.0) -> bool:
    """True once connecting to ``port`` on loopback is refused (polled)."""
    deadline = time.monotonic() + within
    while True:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


@dataclass
class LiveServer:
    """`xp serve` (gunicorn) in its own process group, on its own database."""

    url: str
    database_url: str
    env: dict[str, str]
    port: int
    workers: int
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    _handle: Any = None

    def start(self) -> None:
        assert self.log is not None
        assert port_refuses(self.port, within=5), f"port {self.port} is busy before start"
        self._handle = self.log.open("ab")
        # A session of its own: stop() can signal the master and every worker at once.
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "experiments.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=self.env,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start; log:\n{self.log.read_text()[-3000:]}")

    def stop(self, kill: bool = False) -> None:
        """Terminate the server (SIGTERM), or crash it (SIGKILL to master and workers)."""
        if self.process is None:
            return
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _group_alive(group):
            if time.monotonic() > deadline:
                os.killpg(group, signal.SIGKILL)
            time.sleep(0.02)
        self.process = None
        self._handle.close()
        assert port_refuses(self.port), f"something still listens on port {self.port}"

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "experiments.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )

    def create_key(self, scope: str) -> str:
        result = self.run_cli("keys", "create", "--scope", scope)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]


def _group_alive(group: int) -> bool:
    """True while any process of the group is alive and not a zombie."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields: state, ppid, pgrp, ...
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def make_live_server(factory: DatabaseFactory, tmp: Path, workers: int = 2) -> LiveServer:
    """A started server on a fresh database of the session's kind."""
    url = factory.create()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env.pop("TEST_DATABASE_URL", None)
    env.update(
        XP_DATABASE_URL=url,
        XP_INSTANCE_PATH=str(tmp / "instance"),
        XP_SECRET_KEY="live-test",
        XP_LOG_LEVEL="WARNING",
    )
    server = LiveServer(f"http://127.0.0.1:{port}", url, env, port, workers, log=tmp / "server.log")
    server.start()
    return server


@pytest.fixture
def live_server(database_factory: DatabaseFactory, tmp_path: Path) -> Iterator[LiveServer]:
    server = make_live_server(database_factory, tmp_path)
    yield server
    server.stop()


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser_executable() -> str:
    path = chromium_path()
    if path is None:
        if IN_CI:
            pytest.fail("CI=true but Debian's chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    # Under CI=true a skipped database or browser test is a failure: CI must
    # prove them, not quietly pass over them.
    report = yield
    if (
        IN_CI
        and report.skipped
        and (item.get_closest_marker("db") or item.get_closest_marker("browser"))
    ):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true: {report.longrepr}"
    return report
