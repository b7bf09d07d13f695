"""The web UI: experiment list, create form, experiment page, report pages.

Server-rendered Jinja with plain CSS. The report page renders xp's one report
template (``experiments/report/templates/report.html``, shared with the HTML export),
so this blueprint's loader looks in ``web/templates`` first, then in the
``experiments`` package's templates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from flask import Blueprint, render_template
from flask_wtf.csrf import generate_csrf
from werkzeug.utils import cached_property

from experiments import __version__
from experiments.errors import ConflictError, InvalidInputError, NotFoundError, XpError
from experiments.report.html import template_loader

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


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


@bp.errorhandler(XpError)
def _other(exc: XpError) -> tuple[str, int]:
    return render_message("Error", exc.message, 500)


from web.ui import experiments, reports  # noqa: E402, F401
