"""Signing in and out: sessions, safe redirects, cookie flags, the login rate limit."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from experiments.config import Settings
from experiments.service.users import MAX_FAILURES, create_user, disable_user, set_password
from experiments.storage.engine import make_engine, make_session_factory
from experiments.storage.models import LoginAttempt, User
from tests.conftest import PASSWORD, sign_in
from tests.html_pages import parse_page


def test_sign_in_then_out(client: Any, make_user: Any, session: Session) -> None:
    email = make_user("editor")
    assert client.get("/experiments").status_code == 302
    page = client.get("/login?next=/layers")
    assert page.status_code == 200
    form = parse_page(page.text).get("login-form")
    assert {i.attrs["name"] for i in form.find_all("input")} == {
        "csrf_token",
        "next",
        "email",
        "password",
    }
    signed = client.post("/login", data={"email": email, "password": PASSWORD, "next": "/layers"})
    assert signed.status_code == 303
    assert signed.headers["Location"] == "/layers"
    home = client.get("/experiments")
    assert home.status_code == 200
    assert "editor@example.com" in parse_page(home.text).get("who").text
    user = session.scalars(select(User).where(User.email == email)).one()
    session.refresh(user)
    assert user.last_login_at is not None
    assert client.get("/logout").status_code == 405  # signing out is a POST
    out = client.post("/logout")
    assert out.status_code == 303
    assert out.headers["Location"] == "/login"
    assert client.get("/experiments").status_code == 302


def test_email_is_case_insensitive_and_a_wrong_password_fails(client: Any, make_user: Any) -> None:
    make_user("viewer", "Ana@Example.com")
    wrong = client.post("/login", data={"email": "ana@example.com", "password": "nope-nope"})
    assert wrong.status_code == 200
    assert "Wrong email or password." in parse_page(wrong.text).get("login-error").text
    assert client.get("/experiments").status_code == 302
    unknown = client.post("/login", data={"email": "bob@example.com", "password": PASSWORD})
    assert "Wrong email or password." in unknown.text  # the same answer: no account probing
    sign_in(client, " ANA@example.COM ")
    assert client.get("/experiments").status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/%0d%0aSet-Cookie:x",
        "http:/evil.example",
    ],
    ids=["scheme-relative", "absolute", "backslash", "javascript", "crlf", "http-single-slash"],
)
def test_next_never_leaves_the_site(client: Any, make_user: Any, target: str) -> None:
    email = make_user("viewer")
    response = client.post("/login", data={"email": email, "password": PASSWORD, "next": target})
    assert response.status_code == 303
    assert response.headers["Location"] in ("/experiments", "/%0d%0aSet-Cookie:x")


def test_next_keeps_a_path_with_its_query(client: Any, make_user: Any) -> None:
    email = make_user("viewer")
    asked = client.get("/experiments?status=running&q=ranker")
    assert asked.headers["Location"] == "/login?next=/experiments?status%3Drunning%26q%3Dranker"
    response = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "next": "/experiments?status=running&q=ranker"},
    )
    assert response.headers["Location"] == "/experiments?status=running&q=ranker"


def test_session_cookie_flags(app: Any, make_user: Any) -> None:
    email = make_user("viewer")
    plain = app.test_client().post("/login", data={"email": email, "password": PASSWORD})
    cookie = plain.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    secure = app.test_client().post(
        "/login",
        data={"email": email, "password": PASSWORD},
        base_url="https://xp.example",
    )
    assert "; Secure" in secure.headers["Set-Cookie"]


def test_a_disabled_account_loses_its_session_at_once(
    app: Any, make_user: Any, session: Session, now: datetime
) -> None:
    make_user("admin", "boss@example.com")
    email = make_user("editor")
    client = sign_in(app.test_client(), email)
    assert client.get("/experiments").status_code == 200
    disable_user(session, email, actor="boss@example.com", now=now)
    session.commit()
    assert client.get("/experiments").status_code == 302
    refused = client.post("/login", data={"email": email, "password": PASSWORD})
    assert "Wrong email or password." in refused.text


def test_a_new_password_ends_older_sessions(app: Any, make_user: Any, session: Session) -> None:
    email = make_user("editor")
    client = sign_in(app.test_client(), email)
    set_password(session, email, "another long password")
    session.commit()
    assert client.get("/experiments").status_code == 302


def test_the_login_page_says_how_to_create_the_first_user(client: Any) -> None:
    page = client.get("/login")
    assert "xp users create EMAIL --role admin" in parse_page(page.text).get("no-users").text


def _attempts(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(LoginAttempt)) or 0


def test_failed_logins_are_limited_per_account(
    client: Any, make_user: Any, session: Session
) -> None:
    email = make_user("editor")
    for _ in range(MAX_FAILURES):
        response = client.post("/login", data={"email": email, "password": "wrong-wrong"})
        assert response.status_code == 200
    assert _attempts(session) == MAX_FAILURES  # counted in the database
    limited = client.post("/login", data={"email": email, "password": PASSWORD})
    assert limited.status_code == 429  # even the right password waits
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "too many failed logins" in limited.text
    assert client.get("/experiments").status_code == 302


def test_failed_logins_are_limited_per_address(client: Any, make_user: Any) -> None:
    make_user("editor")
    for i in range(MAX_FAILURES):
        client.post("/login", data={"email": f"guess{i}@example.com", "password": "wrong-wrong"})
    other = client.post("/login", data={"email": "editor@example.com", "password": PASSWORD})
    assert other.status_code == 429
    elsewhere = client.post(
        "/login",
        data={"email": "editor@example.com", "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
    )
    assert elsewhere.status_code == 303  # another address, an account under its limit


def test_a_success_does_not_count(client: Any, make_user: Any, session: Session) -> None:
    email = make_user("editor")
    for _ in range(MAX_FAILURES + 5):
        sign_in(client, email)
        client.post("/logout")
    assert _attempts(session) == 0


def test_workers_share_the_counters_and_the_limit_holds_under_races(
    database_factory: Any, tmp_path: Any, now: datetime
) -> None:
    """Two apps (two workers, or two hosts) on one database, attempts racing in threads."""
    from web import create_app

    url = database_factory.create()
    engine = make_engine(url)
    with make_session_factory(engine)() as db:
        create_user(db, "target@example.com", role="admin", password=PASSWORD, actor="t", now=now)
        db.commit()
    settings = Settings(database_url=url, secret_key="s", instance_path=str(tmp_path))
    apps = [create_app(settings, TESTING=True, WTF_CSRF_ENABLED=False) for _ in range(2)]
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(index: int) -> None:
        client = apps[index % 2].test_client()
        response = client.post(
            "/login",
            data={"email": "target@example.com", "password": f"wrong-{index}"},
            environ_base={"REMOTE_ADDR": f"10.0.0.{index}"},  # only the account limit applies
        )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == 24
    # Never more than ten passwords checked; racing attempts may count each other
    # before a refused one is forgotten, so a race errs on the side of refusing.
    assert 1 <= statuses.count(200) <= MAX_FAILURES
    assert statuses.count(200) + statuses.count(429) == 24
    for app in apps:
        app.extensions["xp_engine"].dispose()
    engine.dispose()
