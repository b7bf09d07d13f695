"""Report pages: the latest report of an experiment (a read), its recompute button (a
POST), its HTML export, and the scripts the page runs, served from the installed packages.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from flask import flash, redirect, render_template, send_file, url_for
from werkzeug.wrappers import Response

from experiments.domain import ExperimentStatus, UserRole
from experiments.report.html import plotly_js_path, render_report_html, report_context
from experiments.service.reports import report_view
from web.db import get_session, settings, utcnow
from web.permissions import public, requires
from web.ui import bp, render_message
from web.ui.refresh import refresh_now


def _draft_page(key: str) -> tuple[str, int]:
    return render_message(
        "No report yet",
        f"Experiment {key} is a draft: start it to assign units; the report is computed"
        " from the units exposed since then.",
        409,
        **{"Back to the experiment": url_for("ui.experiment", key=key)},
    )


@bp.get("/experiments/<key>/report")
@requires(UserRole.VIEWER)
def report(key: str) -> Any:
    view = report_view(get_session(), key, now=utcnow())
    if view["status"] == ExperimentStatus.DRAFT:
        return _draft_page(key)
    context = report_context(view["report"]) if view["report"] is not None else None
    return render_template("ui/report.html", key=key, view=view, context=context)


@bp.post("/experiments/<key>/report/refresh")
@requires(UserRole.EDITOR)
def refresh_report(key: str) -> Response:
    session = get_session()
    refresh_now(session, key, settings=settings(), now=utcnow())
    session.commit()
    flash("Report recomputed from the data received so far.")
    return redirect(url_for("ui.report", key=key), 303)


@bp.get("/experiments/<key>/report.html")
@requires(UserRole.VIEWER)
def report_export(key: str) -> Any:
    view = report_view(get_session(), key, now=utcnow())
    if view["status"] == ExperimentStatus.DRAFT:
        return _draft_page(key)
    if view["report"] is None:
        return render_message(
            "No report yet",
            f"Experiment {key} has not been analysed yet: recompute its report first.",
            409,
            **{"Back to the report": url_for("ui.report", key=key)},
        )
    response = Response(render_report_html(view["report"]), mimetype="text/html")
    response.headers["Content-Disposition"] = f'attachment; filename="{key}-report.html"'
    return response


@bp.get("/static/plotly.min.js")
@public
def plotly_js() -> Response:
    """The plotly.js bundle of the installed plotly package (machines have no internet)."""
    return send_file(plotly_js_path(), mimetype="text/javascript", max_age=86400, conditional=True)


def _report_file(name: str) -> Path:
    return Path(str(resources.files("experiments.report").joinpath("templates", name)))


@bp.get("/static/report.js")
@public
def report_js() -> Response:
    """The script that draws the report's charts (a file, so no inline script is needed)."""
    path = _report_file("report.js")
    return send_file(path, mimetype="text/javascript", max_age=3600, conditional=True)


@bp.get("/static/report.css")
@public
def report_css() -> Response:
    """The report's styles, shared with the HTML export."""
    path = _report_file("report.css")
    return send_file(path, mimetype="text/css", max_age=3600, conditional=True)
