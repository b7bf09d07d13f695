"""Signing in and out, the users page and the API keys page (admins)."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from experiments.domain import ApiScope, UserRole
from experiments.errors import ConflictError, InvalidInputError, NotFoundError
from experiments.service import keys as key_service
from experiments.service import users as user_service
from experiments.service.audit import account_audit
from web.db import get_session, utcnow
from web.permissions import SignedInUser, actor, public, requires, safe_next
from web.ui import bp

Page = str | tuple[str, int]


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Page | Response:
    target = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect(target, 303)
    values = {"email": request.form.get("email", "")}
    error = None
    if request.method == "POST":
        user = user_service.sign_in(
            current_app.extensions["xp_sessions"],
            request.form.get("email", ""),
            request.form.get("password", ""),
            address=request.remote_addr or "unknown",
            now=utcnow(),
        )
        if user is not None:
            session.clear()  # a fresh session: nothing survives from before signing in
            login_user(SignedInUser(user))
            session.permanent = True
            return redirect(target, 303)
        error = "Wrong email or password."
    no_users = not user_service.has_users(get_session())
    page = render_template(
        "ui/login.html", values=values, error=error, next=target, no_users=no_users
    )
    return page, 200


@bp.post("/logout")
@requires(UserRole.VIEWER)
def logout() -> Response:
    logout_user()
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("ui.login"), 303)


# ------------------------------------------------------------------------ users


def _users_page(status: int = 200, **context: Any) -> tuple[str, int]:
    db = get_session()
    page = render_template(
        "ui/users.html",
        users=[user_service.user_document(u) for u in user_service.list_users(db)],
        roles=list(UserRole),
        changes=[e for e in account_audit(db) if e["action"].startswith("user_")],
        errors=context.pop("errors", {}),
        values=context.pop("values", {}),
        **context,
    )
    return page, status


@bp.get("/users")
@requires(UserRole.ADMIN)
def users() -> Page:
    return _users_page()


@bp.post("/users")
@requires(UserRole.ADMIN)
def create_user() -> Page | Response:
    db = get_session()
    values = {name: request.form.get(name, "") for name in ("email", "role")}
    try:
        user = user_service.create_user(
            db,
            values["email"],
            role=values["role"],
            password=request.form.get("password", ""),
            actor=actor(),
            now=utcnow(),
        )
        db.commit()
    except InvalidInputError as exc:
        db.rollback()
        errors: dict[str, list[str]] = {}
        for problem in exc.details:
            errors.setdefault(problem.path or "form", []).append(problem.message)
        return _users_page(400, errors=errors, values=values)
    except ConflictError as exc:
        db.rollback()
        return _users_page(409, errors={"email": [exc.message]}, values=values)
    flash(f"Created {user.role} {user.email}: give them the password you chose.")
    return redirect(url_for("ui.users"), 303)


@bp.route("/users/disable", methods=["GET", "POST"])
@requires(UserRole.ADMIN)
def disable_user() -> Page | Response:
    email = request.values.get("email", "")
    if request.form.get("confirm") != "yes":
        return render_template(
            "ui/confirm.html",
            title=f"Disable {email}?",
            lines=[
                f"{email} will no longer be able to sign in; pages open in their browser stop"
                " working at their next click.",
                "Their changes stay in the audit log under their email.",
            ],
            action=url_for("ui.disable_user"),
            fields={"email": email},
            button="Disable the account",
            danger=True,
            cancel=url_for("ui.users"),
        )
    db = get_session()
    try:
        user_service.disable_user(db, email, actor=actor(), now=utcnow())
        db.commit()
    except (InvalidInputError, NotFoundError, ConflictError) as exc:
        db.rollback()
        return _users_page(409, errors={"form": [exc.message]})
    flash(f"{email} is disabled.")
    return redirect(url_for("ui.users"), 303)


# ------------------------------------------------------------------------- keys


def _keys_page(status: int = 200, **context: Any) -> tuple[str, int]:
    db = get_session()
    page = render_template(
        "ui/keys.html",
        keys=[key_service.key_document(k) for k in key_service.list_api_keys(db)],
        scopes=list(ApiScope),
        changes=[e for e in account_audit(db) if e["action"].startswith("key_")],
        errors=context.pop("errors", {}),
        values=context.pop("values", {}),
        **context,
    )
    return page, status


@bp.get("/keys")
@requires(UserRole.ADMIN)
def api_keys() -> Page:
    return _keys_page()


@bp.post("/keys")
@requires(UserRole.ADMIN)
def create_key() -> Page:
    db = get_session()
    values = {name: request.form.get(name, "") for name in ("name", "scope")}
    try:
        key, token = key_service.create_api_key(
            db, scope=values["scope"], name=values["name"], actor=actor(), now=utcnow()
        )
        db.commit()
    except InvalidInputError as exc:
        db.rollback()
        errors: dict[str, list[str]] = {}
        for problem in exc.details:
            errors.setdefault(problem.path or "form", []).append(problem.message)
        return _keys_page(400, errors=errors, values=values)
    # Rendered, not redirected: the key must not travel in a URL or a cookie.
    return _keys_page(201, created={"token": token, **key_service.key_document(key)})


@bp.route("/keys/<prefix>/revoke", methods=["GET", "POST"])
@requires(UserRole.ADMIN)
def revoke_key(prefix: str) -> Page | Response:
    if request.form.get("confirm") != "yes":
        return render_template(
            "ui/confirm.html",
            title=f"Revoke the API key {prefix}…?",
            lines=[
                "Every request made with this key is refused from now on (401): SDKs and jobs"
                " that use it stop sending data until they get a new key.",
                "This cannot be undone.",
            ],
            action=url_for("ui.revoke_key", prefix=prefix),
            fields={},
            button="Revoke the key",
            danger=True,
            cancel=url_for("ui.api_keys"),
        )
    db = get_session()
    try:
        key = key_service.revoke_api_key(db, prefix, actor=actor(), now=utcnow())
        db.commit()
    except (InvalidInputError, NotFoundError) as exc:
        db.rollback()
        return _keys_page(404, errors={"form": [exc.message]})
    flash(f"Key {key.prefix}… ({key.name}) is revoked.")
    return redirect(url_for("ui.api_keys"), 303)
