"""Report pages: the report of an experiment, its HTML export, and plotly.js served locally."""

from __future__ import annotations

from typing import Any

from flask import render_template, request, send_file, url_for
from werkzeug.wrappers import Response

from experiments.domain import ExperimentStatus
from experiments.report.html import plotly_js_path, render_report_html, report_context
from experiments.service import experiments as svc
from experiments.service.analysis import load_report
from web.db import get_session, settings, utcnow
from web.ui import bp, render_message

_TRUE = ("1", "true", "yes")


def _load(key: str) -> dict[str, Any] | tuple[str, int]:
    """The report (committing a newly computed snapshot), or a page saying why there is none."""
    session = get_session()
    experiment = svc.get_experiment(session, key)
    if experiment.status == ExperimentStatus.DRAFT:
        return render_message(
            "No report yet",
            f"Experiment {key} is a draft: start it to assign units; the report is computed"
            " from the units exposed since then.",
            409,
            **{"Back to the experiment": url_for("ui.experiment", key=key)},
        )
    refresh = request.args.get("refresh", "").lower() in _TRUE
    report = load_report(session, key, settings=settings(), now=utcnow(), refresh=refresh)
    session.commit()  # a computed snapshot is kept, so the next visit is instant
    return report


@bp.get("/experiments/<key>/report")
def report(key: str) -> Any:
    loaded = _load(key)
    if isinstance(loaded, tuple):
        return loaded
    return render_template("ui/report.html", key=key, **report_context(loaded))


@bp.get("/experiments/<key>/report.html")
def report_export(key: str) -> Any:
    loaded = _load(key)
    if isinstance(loaded, tuple):
        return loaded
    response = Response(render_report_html(loaded), mimetype="text/html")
    response.headers["Content-Disposition"] = f'attachment; filename="{key}-report.html"'
    return response


@bp.get("/static/plotly.min.js")
def plotly_js() -> Response:
    """The plotly.js bundle of the installed plotly package (machines have no internet)."""
    return send_file(plotly_js_path(), mimetype="text/javascript", max_age=86400, conditional=True)
