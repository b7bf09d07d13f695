"""Lifecycle actions with their safeguards: start, restart, stop, ramp, conclude,
promote, un-promote, archive.

Each action that changes what units get asks first: a GET, or a POST without
``confirm=yes``, renders a page that says what will happen; only the POST of
that page acts. Ramping changes one number the page shows beside its input,
so it acts at once (and is audited as ``ramp`` like every change).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from experiments.domain import UserRole
from experiments.errors import ConflictError, FieldProblem, InvalidInputError
from experiments.service import decisions
from experiments.service import experiments as svc
from web.db import get_session, utcnow
from web.permissions import actor, requires
from web.ui import bp
from web.ui.experiments import render_experiment

Page = str | tuple[str, int]


def _percent(share: float) -> str:
    return f"{share * 100:.4g}%"


def _variants_text(document: dict[str, Any]) -> str:
    return ", ".join(
        f"{v['key']} {_percent(v['weight'])}{' (control)' if v['is_control'] else ''}"
        for v in document["variants"]
    )


def _control(document: dict[str, Any]) -> str:
    return str(next(v["key"] for v in document["variants"] if v["is_control"]))


def _where(document: dict[str, Any]) -> str:
    layer = document.get("layer")
    return f"of layer {layer}'s buckets" if layer else "of all units"


def _start_lines(d: dict[str, Any]) -> tuple[str, list[str], str]:
    if d["status"] == "stopped":
        return (
            f"Restart {d['key']}?",
            [
                f"Units are assigned again: {_percent(d['traffic'])} {_where(d)}, each to the"
                f" same variant as before ({_variants_text(d)}).",
                "Exposures count again from now; the analysis window still starts at"
                f" {(d['analysis_started_at'] or '')[:16].replace('T', ' ')} UTC.",
            ],
            "Restart the experiment",
        )
    return (
        f"Start {d['key']}?",
        [
            f"From now on {_percent(d['traffic'])} {_where(d)} enter the experiment and are"
            f" split {_variants_text(d)}.",
            "Their exposures and events count from now. Variants and targeting cannot change"
            " afterwards without a reshuffle (a new salt, and the analysis starts over).",
        ],
        "Start the experiment",
    )


def _stop_lines(d: dict[str, Any]) -> tuple[str, list[str], str]:
    return (
        f"Stop {d['key']}?",
        [
            f"Every unit gets the control ({_control(d)}) from now on, and no new exposure is"
            " recorded.",
            "The layer's buckets stay reserved: restart the experiment later, or conclude it.",
        ],
        "Stop the experiment",
    )


def _archive_lines(d: dict[str, Any]) -> tuple[str, list[str], str]:
    return (
        f"Archive {d['key']}?",
        [
            "It leaves the experiment list (the list's 'archived' filter still shows it);"
            " nothing is deleted, its report and audit log stay.",
        ],
        "Archive",
    )


def _promote_lines(d: dict[str, Any]) -> tuple[str, list[str], str]:
    variant = (d.get("conclusion") or {}).get("variant") or "?"
    params: dict[str, Any] = next((v["params"] for v in d["variants"] if v["key"] == variant), {})
    return (
        f"Promote {variant} of {d['key']}?",
        [
            f"Every unit, not only the experiment's {_percent(d['traffic'])}, gets variant"
            f" {variant}: its params become what the config serves to every SDK.",
            f"Params: {json.dumps(params, sort_keys=True)}",
            "You can un-promote later; units then get the product's default again.",
        ],
        f"Promote {variant} to every unit",
    )


def _unpromote_lines(d: dict[str, Any]) -> tuple[str, list[str], str]:
    variant = (d.get("conclusion") or {}).get("variant") or "?"
    return (
        f"Un-promote {variant} of {d['key']}?",
        [
            f"Every unit stops getting {variant}'s params and gets the product's default"
            " again, at the SDKs' next config refresh.",
        ],
        "Un-promote",
    )


_ACTIONS: dict[str, tuple[Callable[..., Any], Callable[[dict[str, Any]], Any], str, bool]] = {
    # action: (service, confirmation text, flash message, danger)
    "start": (svc.start_experiment, _start_lines, "Experiment {key} is running.", False),
    "stop": (
        svc.stop_experiment,
        _stop_lines,
        "Experiment {key} stopped: every unit now gets the control.",
        True,
    ),
    "archive": (svc.archive_experiment, _archive_lines, "Experiment {key} is archived.", False),
    "promote": (
        decisions.promote_experiment,
        _promote_lines,
        "The shipped variant of {key} now goes to every unit.",
        False,
    ),
    "unpromote": (
        decisions.unpromote_experiment,
        _unpromote_lines,
        "{key} is no longer promoted: every unit gets the default again.",
        True,
    ),
}


def _confirm(key: str, action: str) -> Page | Response:
    change, lines, done, danger = _ACTIONS[action]
    session = get_session()
    if request.form.get("confirm") != "yes":
        title, text, button = lines(svc.experiment_document(svc.get_experiment(session, key)))
        return render_template(
            "ui/confirm.html",
            title=title,
            lines=text,
            action=url_for(f"ui.{action}_experiment", key=key),
            fields={},
            button=button,
            danger=danger,
            cancel=url_for("ui.experiment", key=key),
        )
    try:
        change(session, key, actor=actor(), now=utcnow())
        session.commit()
    except ConflictError as exc:
        session.rollback()
        return render_experiment(key, {"form": [exc.message]}, 409)
    flash(done.format(key=key))
    return redirect(url_for("ui.experiment", key=key), 303)


@bp.route("/experiments/<key>/start", methods=["GET", "POST"])
@requires(UserRole.EDITOR)
def start_experiment(key: str) -> Page | Response:
    return _confirm(key, "start")


@bp.route("/experiments/<key>/stop", methods=["GET", "POST"])
@requires(UserRole.EDITOR)
def stop_experiment(key: str) -> Page | Response:
    return _confirm(key, "stop")


@bp.route("/experiments/<key>/archive", methods=["GET", "POST"])
@requires(UserRole.EDITOR)
def archive_experiment(key: str) -> Page | Response:
    return _confirm(key, "archive")


@bp.route("/experiments/<key>/promote", methods=["GET", "POST"])
@requires(UserRole.ADMIN)
def promote_experiment(key: str) -> Page | Response:
    return _confirm(key, "promote")


@bp.route("/experiments/<key>/unpromote", methods=["GET", "POST"])
@requires(UserRole.ADMIN)
def unpromote_experiment(key: str) -> Page | Response:
    return _confirm(key, "unpromote")


@bp.post("/experiments/<key>/ramp")
@requires(UserRole.EDITOR)
def ramp_experiment(key: str) -> Page | Response:
    session = get_session()
    raw = request.form.get("traffic_percent", "").strip()
    try:
        percent = float(raw)
    except ValueError:
        return render_experiment(key, {"traffic_percent": ["must be a number of percent"]}, 400)
    try:
        svc.update_experiment(session, key, {"traffic": percent / 100}, actor=actor(), now=utcnow())
        session.commit()
    except InvalidInputError as exc:
        session.rollback()
        messages = [p.message.replace("must be", "traffic must be") for p in exc.details]
        return render_experiment(key, {"traffic_percent": messages or [exc.message]}, 400)
    except ConflictError as exc:
        session.rollback()
        return render_experiment(key, {"traffic_percent": [exc.message]}, 409)
    flash(f"Traffic of {key} is now {percent:g}%.")
    return redirect(url_for("ui.experiment", key=key), 303)


_CONCLUDE_FIELDS = ("decision", "variant", "rationale", "override_reason")


def _form_errors(problems: list[FieldProblem]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for problem in problems:
        errors.setdefault(problem.path or "form", []).append(problem.message)
    return errors


@bp.post("/experiments/<key>/conclude")
@requires(UserRole.EDITOR)
def conclude_experiment(key: str) -> Page | Response:
    session = get_session()
    values = {name: request.form.get(name, "") for name in _CONCLUDE_FIELDS}
    arguments: dict[str, Any] = {
        "decision": values["decision"],
        "variant": values["variant"] or None,
        "rationale": values["rationale"],
        "override_reason": values["override_reason"] or None,
    }
    try:
        if request.form.get("confirm") != "yes":
            check = decisions.check_conclusion(session, key, **arguments)
            return render_template(
                "ui/confirm.html",
                title=f"Conclude {key}: {check['label']}?",
                lines=check["consequences"],
                action=url_for("ui.conclude_experiment", key=key),
                fields=values,
                button=f"Record: {check['label']}",
                danger=False,
                cancel=url_for("ui.experiment", key=key),
            )
        decisions.conclude_experiment(
            session, key, **arguments, actor=actor(), now=utcnow(), require_override_reason=True
        )
        session.commit()
    except InvalidInputError as exc:
        session.rollback()
        return render_experiment(key, _form_errors(exc.details), 400, values)
    except ConflictError as exc:
        session.rollback()
        return render_experiment(key, {"form": [exc.message]}, 409, values)
    flash(f"Experiment {key} concluded: {values['decision']}.")
    return redirect(url_for("ui.experiment", key=key), 303)
