"""Experiment pages: the list, the create form (with its plan preview), one experiment,
and the edit form.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from experiments.domain import ConclusionDecision, ExperimentStatus, UserRole
from experiments.errors import ConflictError, FieldProblem, InvalidInputError
from experiments.service import experiments as svc
from experiments.service.overview import (
    experiment_overview,
    experiment_rows,
    list_choices,
    parse_filter,
    preview_plan,
)
from experiments.service.specs import validate_spec
from experiments.storage.catalog import SORTS
from web.db import get_session, settings, utcnow
from web.permissions import actor, requires
from web.ui import bp
from web.ui.forms import CORRECTIONS, KINDS, MARGIN_TYPES, METHODS, ROLES, SpecForm

Page = str | tuple[str, int]


@bp.get("/")
@bp.get("/experiments")
@requires(UserRole.VIEWER)
def list_experiments() -> Page:
    wanted = parse_filter(request.args)
    session = get_session()
    return render_template(
        "ui/experiments.html",
        rows=experiment_rows(session, wanted),
        wanted=wanted,
        statuses=list(ExperimentStatus),
        sorts=list(SORTS),
        choices=list_choices(session),
    )


def _render_form(
    form: SpecForm, status: int = 200, *, editing: dict[str, Any] | None = None, **extra: Any
) -> tuple[str, int]:
    page = render_template(
        "ui/new.html",
        form=form,
        kinds=KINDS,
        roles=ROLES,
        methods=METHODS,
        corrections=CORRECTIONS,
        margin_types=MARGIN_TYPES,
        editing=editing,
        **extra,
    )
    return page, status


def _read(form: SpecForm, json_mode: bool) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
    """The document typed in the form and every problem with it (validator's included)."""
    document, problems = form.json_document() if json_mode else form.document()
    if document is None:
        return None, problems
    try:
        validate_spec(document)
    except InvalidInputError as exc:
        return document, problems + [p for p in exc.details if p not in problems]
    return document, problems


def _place(form: SpecForm, problems: list[FieldProblem], json_mode: bool) -> None:
    if json_mode:
        form.place_all_under("spec_json", problems)
    else:
        form.place(problems)


@bp.get("/experiments/new")
@requires(UserRole.EDITOR)
def new_experiment() -> Page:
    return _render_form(SpecForm.initial())


@bp.post("/experiments/new")
@requires(UserRole.EDITOR)
def create_experiment() -> Page | Response:
    form = SpecForm.from_form(request.form)
    if request.form.get("add") in ("variant", "metric"):
        form.add_row(request.form["add"])
        return _render_form(form)
    json_mode = request.form.get("mode") == "json"
    document, problems = _read(form, json_mode)
    if problems:
        _place(form, problems, json_mode)
        return _render_form(form, 400)
    assert document is not None
    session = get_session()
    if request.form.get("action") == "preview":
        # A read: the plan of the spec as typed, from recent traffic; nothing is saved.
        plan = preview_plan(session, document, settings=settings(), now=utcnow())
        return _render_form(form, preview=plan)
    try:
        experiment = svc.create_experiment(
            session, validate_spec(document), actor=actor(), now=utcnow()
        )
        session.commit()
    except ConflictError as exc:
        session.rollback()
        form.errors.setdefault("form", []).append(exc.message)
        return _render_form(form, 409)
    flash(f"Experiment {experiment.key} created as a draft.")
    return redirect(url_for("ui.experiment", key=experiment.key), 303)


def render_experiment(
    key: str,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> tuple[str, int]:
    """The experiment page, with problems of a form on it (conclude, ramp) when given."""
    overview = experiment_overview(get_session(), key, settings=settings(), now=utcnow())
    suggested = overview["suggested"]
    defaults = {"decision": suggested[0], "variant": suggested[1] or ""} if suggested else {}
    page = render_template(
        "ui/experiment.html",
        experiment=overview["experiment"],
        overview=overview,
        decisions=list(ConclusionDecision),
        errors=errors or {},
        values=values or defaults,
    )
    return page, status


@bp.get("/experiments/<key>")
@requires(UserRole.VIEWER)
def experiment(key: str) -> Page:
    return render_experiment(key)


def _locked(document: dict[str, Any]) -> frozenset[str]:
    editable = svc.editable_fields(svc.get_experiment(get_session(), document["key"]))
    if editable is None:
        return frozenset({"key"})
    locked = (set(document) - set(editable)) | {"key"}
    if "variants" in locked:
        locked.add("control")
    return frozenset(locked)


@bp.get("/experiments/<key>/edit")
@requires(UserRole.EDITOR)
def edit_experiment(key: str) -> Page:
    document = svc.experiment_document(svc.get_experiment(get_session(), key))
    form = SpecForm.from_document(document, locked=_locked(document))
    return _render_form(form, editing=document)


@bp.post("/experiments/<key>/edit")
@requires(UserRole.EDITOR)
def save_experiment(key: str) -> Page | Response:
    session = get_session()
    current = svc.experiment_document(svc.get_experiment(session, key))
    form = SpecForm.from_form(request.form, locked=_locked(current))
    if request.form.get("add") in ("variant", "metric"):
        form.add_row(request.form["add"])
        return _render_form(form, editing=current)
    document, problems = form.document()
    document["key"] = key
    try:
        if problems:
            raise InvalidInputError.from_problems(problems)
        svc.edit_experiment(
            session,
            key,
            document,
            reshuffle=request.form.get("reshuffle") == "yes",
            actor=actor(),
            now=utcnow(),
        )
        session.commit()
    except InvalidInputError as exc:
        session.rollback()
        form.place(exc.details)
        return _render_form(form, 400, editing=current)
    except ConflictError as exc:
        session.rollback()
        form.errors.setdefault("form", []).append(exc.message)
        return _render_form(form, 409, editing=current)
    flash(f"Experiment {key} saved.")
    return redirect(url_for("ui.experiment", key=key), 303)
