"""The xp web app: a JSON API blueprint under /api/v1 and a UI blueprint."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from experiments.config import Settings, load_settings
from experiments.storage.engine import make_engine, make_session_factory
from experiments.storage.group_commit import GroupCommitter


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the app from settings (loaded from config files and XP_* by default)."""
    settings = settings or load_settings()
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    app.config.update(
        SECRET_KEY=settings.resolved_secret_key(),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        XP_SETTINGS=settings,
        JSON_SORT_KEYS=False,
        **overrides,
    )
    logging.basicConfig(level=settings.log_level)
    engine = make_engine(settings.database_url)
    app.extensions["xp_engine"] = engine
    app.extensions["xp_sessions"] = make_session_factory(engine)
    # Resolved at call time: tests swap the session factory after create_app.
    app.extensions["xp_group_commit"] = GroupCommitter(lambda: app.extensions["xp_sessions"]())

    from web import db, errors, permissions
    from web.api import bp as api_bp
    from web.health import bp as health_bp
    from web.ui import bp as ui_bp

    db.init_app(app)
    errors.init_app(app)
    permissions.init_app(app)  # before CSRF: anonymous requests go to the login page first
    app.register_blueprint(api_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(ui_bp)
    # The UI's forms need CSRF tokens; the API authenticates with bearer keys instead.
    csrf = CSRFProtect(app)
    csrf.exempt(api_bp)
    return app
