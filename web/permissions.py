"""Who may see and do what: the session (Flask-Login), the role decorator, one check.

Every view declares its permission with one decorator, checked in one place
(:func:`_check_permission`, run before every request):

- ``@requires(UserRole.VIEWER | EDITOR | ADMIN)``: UI views; anonymous visitors
  are sent to ``/login?next=…``, a signed-in user without the role gets 403 and
  the view never runs, so nothing changes;
- ``@public``: ``/login``, ``/healthz``, the OpenAPI document (static files too);
- ``@require_scope(...)`` (``web/auth.py``): API views, authenticated by key.

A view that declares nothing is refused (403) and logged: a forgotten
declaration fails closed, and ``tests/web/test_permissions.py`` walks the URL
map so that it fails the suite first. Views never check roles by hand;
templates may ask :func:`can` to hide buttons a user could not use.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Request, current_app, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, current_user
from werkzeug.wrappers import Response

from experiments.domain import ApiScope, UserRole
from experiments.service.users import active_user
from experiments.storage.models import User
from web.db import get_session

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
PERMISSION = "xp_permission"
PUBLIC = "public"
SESSION_LIFETIME = timedelta(hours=12)
Permission = UserRole | ApiScope | str


def requires(role: UserRole) -> Callable[[F], F]:
    """Declare that a view needs a signed-in user with at least ``role``."""

    def mark(view: F) -> F:
        setattr(view, PERMISSION, UserRole(role))
        return view

    return mark


def public(view: F) -> F:
    """Declare that a view needs no session (login page, health check, API document)."""
    setattr(view, PERMISSION, PUBLIC)
    return view


def permission_of(app: Flask, endpoint: str) -> Permission | None:
    """The permission a view declared, or None when it declared none."""
    if endpoint == "static":
        return PUBLIC
    view = app.view_functions.get(endpoint)
    return getattr(view, PERMISSION, None) if view is not None else None


class SignedInUser(UserMixin):  # type: ignore[misc]
    """The session's view of a user: its id carries a fingerprint of the password hash,
    so a new password (or a disabled account) ends every older session.
    """

    def __init__(self, user: User) -> None:
        self.user_id = user.id
        self.email = user.email
        self.role = UserRole(user.role)
        self.fingerprint = _fingerprint(user)

    def get_id(self) -> str:
        return f"{self.user_id}.{self.fingerprint}"

    def can(self, role: UserRole) -> bool:
        return self.role.allows(role)


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest()[:16]


def _load_user(session_id: str) -> SignedInUser | None:
    raw_id, _, fingerprint = session_id.partition(".")
    if not raw_id.isdigit():
        return None
    user = active_user(get_session(), int(raw_id))
    if user is None or _fingerprint(user) != fingerprint:
        return None
    return SignedInUser(user)


def actor() -> str:
    """Who is acting in this UI request (the signed-in user's email)."""
    return str(current_user.email)


def can(role: str) -> bool:
    """For templates: whether the signed-in user has at least ``role``."""
    return bool(current_user.is_authenticated and current_user.can(UserRole(role)))


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    fallback = url_for("ui.list_experiments")
    if not target or not target.startswith("/") or target.startswith("//"):
        return fallback
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return fallback
    return target


def _login_url() -> str:
    if request.method != "GET":
        return url_for("ui.login")
    path = request.full_path if request.query_string else request.path
    return url_for("ui.login", next=path)


def forbidden(role: UserRole) -> tuple[str, int]:
    """The 403 page: what role is needed and what the user has."""
    message = (
        f"This needs the {role} role; you are signed in as {current_user.email}"
        f" ({current_user.role}). Ask an admin to change your role."
    )
    return render_template("ui/message.html", title="Not allowed", message=message, links={}), 403


def _check_permission() -> Response | tuple[str, int] | None:
    endpoint = request.endpoint
    if endpoint is None:
        return None  # no route: the 404 handler answers
    needed = permission_of(current_app, endpoint)
    if needed is None:
        log.error("view %s declares no permission: refused", endpoint)
        return render_template(
            "ui/message.html",
            title="Not allowed",
            message="This page declares no permission, so nobody may use it.",
            links={},
        ), 403
    if needed == PUBLIC or isinstance(needed, ApiScope):
        return None  # API views check their key themselves (web/auth.py)
    if not current_user.is_authenticated:
        return redirect(_login_url(), 302)
    if not current_user.can(needed):
        return forbidden(UserRole(needed))
    return None


class _SessionInterface(SecureCookieSessionInterface):
    """The session cookie: HttpOnly, SameSite=Lax, and Secure when served over HTTPS.

    gunicorn sets the scheme from ``X-Forwarded-Proto`` for proxies it trusts
    (``forwarded_allow_ips``), so behind a TLS-terminating proxy the cookie is Secure.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        req: Request = request
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or req.is_secure


def init_app(app: Flask) -> None:
    """Sessions, the user loader and the permission check (before CSRF, so an
    anonymous POST is sent to the login page rather than told about tokens).
    """
    # Flask's defaults are HttpOnly, no SameSite and 31-day sessions: tighten the last two.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    if app.config.get("PERMANENT_SESSION_LIFETIME") == timedelta(days=31):
        app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME
    app.session_interface = _SessionInterface()
    manager = LoginManager()
    manager.init_app(app)
    manager.user_loader(_load_user)
    manager.session_protection = "basic"
    app.before_request(_check_permission)
    app.jinja_env.globals["can"] = can
