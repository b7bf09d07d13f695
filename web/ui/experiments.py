"""Experiment pages: the list, the create form, one experiment and its lifecycle buttons."""

from __future__ import annotations

import json
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from experiments.domain import ConclusionDecision, ExperimentStatus
from experiments.errors import ConflictError, InvalidInputError
from experiments.service import experiments as svc
from experiments.service.planning import plan_experiment
from experiments.service.specs import validate_spec
from web.db import get_session, settings, utcnow
from web.ui import bp
from web.ui.forms import KINDS, METHODS, ROLES, SpecForm

Page = str | tuple[str, int]


def _primary(document: dict[str, Any]) -> str | None:
    return next((m["name"] for m in document["metrics"] if m.get("role") == "primary"), None)


@bp.get("/")
@bp.get("/experiments")
def list_experiments() -> Page:
    status = request.args.get("status") or None
    documents = [svc.experiment_document(e) for e in svc.list_experiments(get_session(), status)]
    rows = [
        {
            "key": d["key"],
            "name": d["name"],
            "status": d["status"],
            "layer": d["layer"],
            "traffic": d["traffic"],
            "primary": _primary(d),
            "started_at": d["started_at"],
        }
        for d in documents
    ]
    return render_template(
        "ui/experiments.html", rows=rows, status=status, statuses=list(ExperimentStatus)
    )


def _render_form(form: SpecForm, status: int = 200) -> tuple[str, int]:
    page = render_template("ui/new.html", form=form, kinds=KINDS, roles=ROLES, methods=METHODS)
    return page, status


@bp.get("/experiments/new")
def new_experiment() -> Page:
    return _render_form(SpecForm.initial())


@bp.post("/experiments/new")
def create_experiment() -> Page | Response:
    form = SpecForm.from_form(request.form)
    if request.form.get("add") in ("variant", "metric"):
        form.add_row(request.form["add"])
        return _render_form(form)
    json_mode = request.form.get("mode") == "json"
    document, problems = form.json_document() if json_mode else form.document()
    session = get_session()
    try:
        if problems and document is None:
            raise InvalidInputError.from_problems(problems)
        try:
            spec = validate_spec(document)
        except InvalidInputError as exc:
            raise InvalidInputError.from_problems(problems + exc.details) from exc
        if problems:
            raise InvalidInputError.from_problems(problems)
        experiment = svc.create_experiment(session, spec, now=utcnow())
        session.commit()
    except InvalidInputError as exc:
        session.rollback()
        if json_mode:
            form.place_all_under("spec_json", exc.details)
        else:
            form.place(exc.details)
        return _render_form(form, 400)
    except ConflictError as exc:
        session.rollback()
        form.errors.setdefault("form", []).append(exc.message)
        return _render_form(form, 409)
    flash(f"Experiment {experiment.key} created as a draft.")
    return redirect(url_for("ui.experiment", key=experiment.key), 303)


def _render_experiment(
    key: str,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> tuple[str, int]:
    session = get_session()
    document = svc.experiment_document(svc.get_experiment(session, key))
    plan = None
    if document["status"] == "draft":
        plan = plan_experiment(session, key, settings=settings(), now=utcnow())
    page = render_template(
        "ui/experiment.html",
        experiment=document,
        params={
            v["key"]: json.dumps(v["params"], indent=2, sort_keys=True)
            for v in document["variants"]
        },
        targeting=json.dumps(document["targeting"], indent=2) if document["targeting"] else None,
        decisions=list(ConclusionDecision),
        errors=errors or {},
        values=values or {},
        plan=plan,
    )
    return page, status


@bp.get("/experiments/<key>")
def experiment(key: str) -> Page:
    return _render_experiment(key)


def _lifecycle(key: str, action: str) -> Page | Response:
    session = get_session()
    change = {
        "start": svc.start_experiment,
        "stop": svc.stop_experiment,
        "promote": svc.promote_experiment,
    }[action]
    try:
        change(session, key, now=utcnow())
        session.commit()
    except ConflictError as exc:
        session.rollback()
        return _render_experiment(key, {"form": [exc.message]}, 409)
    flash(
        {
            "start": f"Experiment {key} started: units are being assigned.",
            "stop": f"Experiment {key} stopped: every unit now gets the control.",
            "promote": f"The shipped variant of {key} is now the default.",
        }[action]
    )
    return redirect(url_for("ui.experiment", key=key), 303)


@bp.post("/experiments/<key>/start")
def start_experiment(key: str) -> Page | Response:
    return _lifecycle(key, "start")


@bp.post("/experiments/<key>/stop")
def stop_experiment(key: str) -> Page | Response:
    return _lifecycle(key, "stop")


@bp.post("/experiments/<key>/promote")
def promote_experiment(key: str) -> Page | Response:
    return _lifecycle(key, "promote")


@bp.post("/experiments/<key>/conclude")
def conclude_experiment(key: str) -> Page | Response:
    session = get_session()
    values = {name: request.form.get(name, "") for name in ("decision", "variant", "rationale")}
    try:
        svc.conclude_experiment(
            session,
            key,
            decision=values["decision"],
            variant=values["variant"] or None,
            rationale=values["rationale"],
            now=utcnow(),
        )
        session.commit()
    except InvalidInputError as exc:
        session.rollback()
        errors: dict[str, list[str]] = {}
        for problem in exc.details:
            errors.setdefault(problem.path or "form", []).append(problem.message)
        return _render_experiment(key, errors, 400, values)
    except ConflictError as exc:
        session.rollback()
        return _render_experiment(key, {"form": [exc.message]}, 409, values)
    flash(f"Experiment {key} concluded: {values['decision']}.")
    return redirect(url_for("ui.experiment", key=key), 303)
