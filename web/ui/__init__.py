"""The web UI: experiments, reports, layers, API keys, users, and signing in.

Server-rendered Jinja with plain CSS and no inline script (JavaScript lives in
``web/static/``). Every view declares its role with ``web.permissions.requires``
(or ``public``). The report page renders xp's one report template
(``experiments/report/templates/report.html``, shared with the HTML export), so
this blueprint's loader looks in ``web/templates`` first, then in the
``experiments`` package's templates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from flask import Blueprint, render_template
from flask_wtf.csrf import generate_csrf
from werkzeug.utils import cached_property

from experiments import __version__
from experiments.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    XpError,
)
from experiments.report.format import (
    format_count,
    format_interval,
    format_number,
    format_percent,
)
from experiments.report.html import DECISION_LABELS, template_loader

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
VERDICT_LABELS = {**DECISION_LABELS, "waiting": "Waiting for data"}


class _UiBlueprint(Blueprint):
    @cached_property
    def jinja_loader(self) -> jinja2.BaseLoader | None:
        return jinja2.ChoiceLoader([jinja2.FileSystemLoader(TEMPLATES), template_loader()])


bp = _UiBlueprint("ui", __name__)


@bp.context_processor
def _globals() -> dict[str, Any]:
    # generate_csrf works with or without CSRFProtect on the app; the app
    # factory turns on the check (WTF_CSRF_ENABLED=False switches it off in tests).
    return {"csrf_token": generate_csrf, "xp_version": __version__}


def _when(value: str | None) -> str:
    return value[:16].replace("T", " ") + " UTC" if value else "—"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = int(seconds // 60)
    if minutes < 1:
        return "less than a minute ago"
    if minutes < 60:
        return f"{minutes} min ago"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min ago"
    return f"{hours // 24} days ago"


def _verdict(status: str | None) -> str:
    return VERDICT_LABELS.get(str(status), str(status or "no analysis yet").replace("_", " "))


_FILTERS: dict[str, Callable[..., Any]] = {
    "pct": lambda v, digits=1: format_percent(v, digits=digits),
    "lift": lambda v: format_percent(v, signed=True),
    "ci_pct": lambda pair: format_interval(pair, percent=True),
    "ci": lambda pair: format_interval(pair, digits=4),
    "count": format_count,
    "num": format_number,
    "when": _when,
    "ago": _ago,
    "verdict": _verdict,
    "zip_pairs": lambda items: [(item, item) for item in items],
}
for _name, _filter in _FILTERS.items():
    bp.add_app_template_filter(_filter, _name)


def render_message(title: str, message: str, status: int, **links: str) -> tuple[str, int]:
    """A page that explains what went wrong, with links to go on from there."""
    return render_template("ui/message.html", title=title, message=message, links=links), status


@bp.errorhandler(NotFoundError)
def _not_found(exc: NotFoundError) -> tuple[str, int]:
    return render_message("Not found", exc.message, 404)


@bp.errorhandler(ConflictError)
def _conflict(exc: ConflictError) -> tuple[str, int]:
    return render_message("That cannot be done now", exc.message, 409)


@bp.errorhandler(InvalidInputError)
def _invalid(exc: InvalidInputError) -> tuple[str, int]:
    return render_message("Invalid input", exc.message, 400)


@bp.errorhandler(RateLimitedError)
def _limited(exc: RateLimitedError) -> Any:
    page, status = render_message("Too many attempts", exc.message, 429)
    return page, status, {"Retry-After": str(exc.retry_after)}


@bp.errorhandler(XpError)
def _other(exc: XpError) -> tuple[str, int]:
    return render_message("Error", exc.message, 500)


from web.ui import accounts, docs, experiments, layers, lifecycle, reports  # noqa: E402, F401
