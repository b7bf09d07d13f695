"""The web UI: experiment list, create form, report pages."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("ui", __name__, template_folder="../templates", static_folder="../static")
