from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from experiments.config import Settings
from experiments.errors import NotFoundError
from experiments.report.html import plotly_js_path
from experiments.service import experiments as svc
from experiments.service.analysis import run_analysis
from experiments.service.simulation import SimulationPlan, simulate_traffic
from experiments.service.specs import validate_spec
from experiments.storage.models import AnalysisSnapshot
from tests.factories import spec_document
from tests.html_pages import parse_page


def form_data(**changes: str) -> dict[str, str]:
    data = {
        "variant_rows": "2",
        "metric_rows": "3",
        "key": "search-v3",
        "name": "Search v3",
        "hypothesis": "Better search raises conversion",
        "layer": "",
        "traffic": "100",
        "control": "0",
        "variants-0-key": "control",
        "variants-0-weight": "50",
        "variants-0-params": '{"model": "search_a"}',
        "variants-1-key": "treatment",
        "variants-1-weight": "50",
        "variants-1-params": '{"model": "search_b", "objective_weights": {"ctr": 0.6}}',
        "metrics-0-name": "converted",
        "metrics-0-kind": "conversion",
        "metrics-0-role": "primary",
        "metrics-0-event": "purchase",
        "metrics-1-name": "revenue",
        "metrics-1-kind": "mean",
        "metrics-1-role": "guardrail",
        "metrics-1-event": "purchase",
        "metrics-1-margin": "0.02",
        "metrics-2-kind": "conversion",
        "metrics-2-role": "secondary",
        "method": "fixed",
    }
    data.update(changes)
    return data


def error_beside(html: str, field: str) -> str:
    """The error text rendered in the same table cell / field block as the input."""
    page = parse_page(html)
    field_input = page.get(field)
    assert field_input.attrs.get("aria-invalid") == "true"
    assert field_input.attrs.get("aria-describedby") == f"{field}-error"
    error = page.get(f"{field}-error")
    assert error.parent is field_input.parent, "the error is not beside its input"
    return error.text


def real_now() -> datetime:
    # The views read the wall clock, so data must be placed relative to it.
    return datetime.now(UTC).replace(microsecond=0)


def running_with_data(session: Session, settings: Settings, key: str = "ranker-v2") -> None:
    now = real_now()
    started = now - timedelta(days=3)
    svc.create_experiment(session, validate_spec(spec_document(key=key)), actor="test", now=started)
    svc.start_experiment(session, key, actor="test", now=started)
    plan = SimulationPlan(
        users=600,
        days=2,
        seed=5,
        effects={"treatment": {"play": 1.1}},
        model_quality={"control": 0.8, "treatment": 1.2},
    )
    simulate_traffic(session, key, plan, settings=settings, now=now - timedelta(minutes=5))
    run_analysis(session, key, settings=settings, now=now - timedelta(minutes=1))
    session.commit()


# ---------------------------------------------------------------------------- list


def test_list_is_empty_then_shows_experiments(editor: Any, session: Session, now: datetime) -> None:
    empty = editor.get("/")
    assert empty.status_code == 200
    assert "No experiments" in empty.text
    assert 'href="/experiments/new"' in empty.text

    svc.create_experiment(
        session, validate_spec(spec_document(layer="home-feed")), actor="test", now=now
    )
    svc.start_experiment(session, "ranker-v2", actor="test", now=now)
    svc.create_experiment(
        session, validate_spec(spec_document(key="draft-one")), actor="test", now=now
    )
    session.commit()
    response = editor.get("/experiments")
    assert response.status_code == 200
    table = parse_page(response.text).get("experiments")
    rows = [row.text for row in table.find_all("tr")[1:]]
    assert len(rows) == 2
    ranker = next(r for r in rows if r.startswith("ranker-v2"))
    assert "Ranker v2 against v1" in ranker
    assert "running" in ranker
    assert "home-feed" in ranker
    assert "100%" in ranker
    assert "take_rate" in ranker
    assert "2026-06-01 12:00" in ranker
    assert 'href="/experiments/ranker-v2"' in response.text


def test_list_filters_by_status(editor: Any, session: Session, now: datetime) -> None:
    svc.create_experiment(session, validate_spec(spec_document()), actor="test", now=now)
    svc.create_experiment(session, validate_spec(spec_document(key="other")), actor="test", now=now)
    svc.start_experiment(session, "other", actor="test", now=now)
    session.commit()
    running = editor.get("/experiments?status=running").text
    assert 'href="/experiments/other"' in running
    assert 'href="/experiments/ranker-v2"' not in running
    bad = editor.get("/experiments?status=paused")
    assert bad.status_code == 400
    assert "status: must be one of" in bad.text


# ----------------------------------------------------------------------- create form


def test_new_form_offers_rows_and_a_json_alternative(editor: Any) -> None:
    response = editor.get("/experiments/new")
    assert response.status_code == 200
    page = parse_page(response.text)
    for field in ("key", "name", "hypothesis", "layer", "traffic", "variants-1-weight"):
        page.get(field)
    page.get("variants-1-params")
    page.get("metrics-0-margin")
    assert page.get("metrics-0-role").find_all("option", selected="")[0].text == "primary"
    page.get("spec_json")


def test_create_through_the_form(editor: Any, session: Session) -> None:
    response = editor.post("/experiments/new", data=form_data())
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/experiments/search-v3")
    experiment = svc.get_experiment(session, "search-v3")
    assert experiment.status == "draft"
    assert [(v.key, v.weight, v.is_control) for v in experiment.variants] == [
        ("control", 0.5, True),
        ("treatment", 0.5, False),
    ]
    assert experiment.variants[1].params == {"model": "search_b", "objective_weights": {"ctr": 0.6}}
    definitions = [m.definition for m in experiment.metrics]
    assert [(d["name"], d["role"]) for d in definitions] == [
        ("converted", "primary"),
        ("revenue", "guardrail"),
    ]  # the blank third row is dropped
    assert definitions[1]["margin"] == 0.02
    followed = editor.get(response.headers["Location"])
    assert "Experiment search-v3 created as a draft." in followed.text


def test_wrong_weight_is_shown_next_to_its_field(editor: Any, session: Session) -> None:
    response = editor.post("/experiments/new", data=form_data(**{"variants-1-weight": "-50"}))
    assert response.status_code == 400
    assert error_beside(response.text, "variants-1-weight") == "must be > 0.0"
    page = parse_page(response.text)
    assert "weights must sum to 1" in page.get("variants-error").text
    assert "2 problems" in page.get("error-summary").text
    # What was typed is kept.
    assert page.get("variants-1-weight").attrs["value"] == "-50"
    assert page.get("key").attrs["value"] == "search-v3"
    assert (
        page.get("variants-1-params").text
        == '{"model": "search_b", "objective_weights": {"ctr": 0.6}}'
    )
    with pytest.raises(NotFoundError):
        svc.get_experiment(session, "search-v3")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"key": "Bad Key!"}, "key", "must match"),
        ({"name": ""}, "name", "must not be empty"),
        ({"traffic": "lots"}, "traffic", "must be a number of percent"),
        ({"traffic": "150"}, "traffic", "between 0 and 100"),
        ({"variants-0-params": "{model: 1}"}, "variants-0-params", "is not valid JSON"),
        ({"variants-0-params": "[1, 2]"}, "variants-0-params", "valid dictionary"),
        ({"metrics-0-event": ""}, "metrics-0-event", "is required for conversion metrics"),
        ({"metrics-0-margin": "0.1"}, "metrics-0-margin", "applies to guardrail metrics only"),
        ({"metrics-1-name": "converted"}, "metrics-1-name", "duplicate metric name"),
    ],
    ids=[
        "key-pattern",
        "empty-name",
        "traffic-not-number",
        "traffic-over-100",
        "params-bad-json",
        "params-not-object",
        "event-required",
        "margin-not-guardrail",
        "duplicate-metric",
    ],
)
def test_each_problem_sits_beside_its_field(
    editor: Any, changes: dict[str, str], field: str, message: str
) -> None:
    response = editor.post("/experiments/new", data=form_data(**changes))
    assert response.status_code == 400
    assert message in error_beside(response.text, field)


def test_row_errors_follow_rows_when_blank_rows_are_skipped(editor: Any) -> None:
    data = form_data(variant_rows="3")
    # Row 1 left blank, the treatment typed in row 2: its error must land on row 2.
    data.update({"variants-1-key": "", "variants-1-weight": "", "variants-1-params": ""})
    data.update({"variants-2-key": "treatment", "variants-2-weight": "-5"})
    response = editor.post("/experiments/new", data=data)
    assert response.status_code == 400
    assert error_beside(response.text, "variants-2-weight") == "must be > 0.0"
    assert 'id="variants-1-weight-error"' not in response.text


def test_no_control_is_a_section_problem(editor: Any) -> None:
    data = form_data()
    del data["control"]
    response = editor.post("/experiments/new", data=data)
    assert response.status_code == 400
    assert "exactly one variant must have is_control true, found 0" in (
        parse_page(response.text).get("variants-error").text
    )


def test_add_row_buttons_keep_the_values(editor: Any) -> None:
    response = editor.post("/experiments/new", data=form_data(add="variant"))
    assert response.status_code == 200
    page = parse_page(response.text)
    assert page.get("variants-2-key").attrs["value"] == ""
    assert page.get("variants-1-key").attrs["value"] == "treatment"
    response = editor.post("/experiments/new", data=form_data(add="metric"))
    parse_page(response.text).get("metrics-3-name")


def test_create_from_json(editor: Any, session: Session) -> None:
    import json

    document = json.dumps(spec_document(key="from-json"))
    response = editor.post("/experiments/new", data={"mode": "json", "spec_json": document})
    assert response.status_code == 303
    assert svc.get_experiment(session, "from-json").name == "Ranker v2 against v1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "spec_json: is not valid JSON"),
        (
            '{"key": "x", "name": "X", "variants": [{"key": "a", "weight": 1, "is_control": true},'
            ' {"key": "b", "weight": -1}], "metrics": []}',
            "variants[1].weight: must be &gt; 0",
        ),
    ],
    ids=["bad-json", "invalid-spec"],
)
def test_json_problems_are_listed_by_path_beside_the_textarea(
    editor: Any, text: str, message: str
) -> None:
    response = editor.post("/experiments/new", data={"mode": "json", "spec_json": text})
    assert response.status_code == 400
    page = parse_page(response.text)
    error = page.get("spec_json-error")
    assert error.parent is page.get("spec_json").parent
    assert message.replace("&gt;", ">") in error.text
    assert page.get("spec_json").text == text


def test_duplicate_key_is_a_conflict(editor: Any, session: Session, now: datetime) -> None:
    svc.create_experiment(
        session, validate_spec(spec_document(key="search-v3")), actor="test", now=now
    )
    session.commit()
    response = editor.post("/experiments/new", data=form_data())
    assert response.status_code == 409
    assert "experiment &#39;search-v3&#39; already exists" in response.text


# ---------------------------------------------------------------- experiment page


def test_experiment_page_and_lifecycle(editor: Any, session: Session, now: datetime) -> None:
    svc.create_experiment(session, validate_spec(spec_document()), actor="test", now=now)
    session.commit()
    page = editor.get("/experiments/ranker-v2")
    assert page.status_code == 200
    assert '"objective_weights": {' in page.text  # params shown as JSON
    metrics = parse_page(page.text).get("metrics").text
    assert "take_rate primary ratio" in metrics
    assert "revenue guardrail" in metrics
    assert 'id="start"' in page.text
    assert 'id="report-link"' not in page.text

    # The button leads to a confirmation that says what happens; only its POST acts.
    asked = editor.get("/experiments/ranker-v2/start")
    assert asked.status_code == 200
    assert "split control 50%" in parse_page(asked.text).get("confirm").text
    assert editor.post("/experiments/ranker-v2/start").status_code == 200  # no confirm: asks
    assert svc.get_experiment(session, "ranker-v2").status == "draft"
    started = editor.post("/experiments/ranker-v2/start", data={"confirm": "yes"})
    assert started.status_code == 303
    assert svc.get_experiment(session, "ranker-v2").status == "running"
    running = editor.get("/experiments/ranker-v2").text
    assert 'id="stop"' in running
    assert 'id="report-link"' in running

    again = editor.post("/experiments/ranker-v2/start", data={"confirm": "yes"})
    assert again.status_code == 409
    assert "cannot start experiment" in again.text

    stop = editor.get("/experiments/ranker-v2/stop").text
    assert "Every unit gets the control (control) from now on" in stop
    assert editor.post("/experiments/ranker-v2/stop", data={"confirm": "yes"}).status_code == 303
    assert svc.get_experiment(session, "ranker-v2").status == "stopped"


def test_conclude_needs_a_rationale(editor: Any, session: Session, now: datetime) -> None:
    svc.create_experiment(session, validate_spec(spec_document()), actor="test", now=now)
    svc.start_experiment(session, "ranker-v2", actor="test", now=now)
    session.commit()
    response = editor.post(
        "/experiments/ranker-v2/conclude", data={"decision": "ship", "rationale": " "}
    )
    assert response.status_code == 400
    page = parse_page(response.text)
    error = page.get("rationale-error")
    assert error.parent is page.get("rationale").parent
    assert "is required" in error.text
    values = {"decision": "ship", "variant": "treatment", "rationale": "take rate +7%"}
    asked = editor.post("/experiments/ranker-v2/conclude", data=values)
    assert asked.status_code == 200
    assert "Conclude ranker-v2: ship treatment?" in asked.text
    assert svc.get_experiment(session, "ranker-v2").status == "running"
    done = editor.post("/experiments/ranker-v2/conclude", data={**values, "confirm": "yes"})
    assert done.status_code == 303
    experiment = svc.get_experiment(session, "ranker-v2")
    assert (experiment.status, experiment.decision_variant) == ("concluded", "treatment")
    assert experiment.decided_by == "editor@example.com"
    page = editor.get("/experiments/ranker-v2").text
    assert 'id="promote"' not in page  # promoting needs an admin


def test_unknown_experiment_is_a_404_page(editor: Any) -> None:
    for path in ("/experiments/nope", "/experiments/nope/report", "/experiments/nope/report.html"):
        response = editor.get(path)
        assert response.status_code == 404
        assert response.mimetype == "text/html"
        assert "experiment &#39;nope&#39; does not exist" in response.text
        assert "Traceback" not in response.text


# -------------------------------------------------------------------------- report


def test_draft_has_no_report_yet(editor: Any, session: Session, now: datetime) -> None:
    svc.create_experiment(session, validate_spec(spec_document()), actor="test", now=now)
    session.commit()
    response = editor.get("/experiments/ranker-v2/report")
    assert response.status_code == 409
    assert "is a draft" in response.text
    assert 'href="/experiments/ranker-v2"' in response.text


def _snapshots(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AnalysisSnapshot)) or 0


def test_report_page(editor: Any, session: Session, settings: Settings) -> None:
    running_with_data(session, settings)
    response = editor.get("/experiments/ranker-v2/report")
    assert response.status_code == 200
    page = parse_page(response.text)
    assert "Ranker v2 against v1" in page.root.find_all("h1")[0].text
    assert "Decision:" in page.get("decision").text
    assert (
        len(page.root.find_all("div", class_="xp-chart")) == 4
    )  # take_rate, revenue, converted, auc
    figure_source = page.get("chart-metric-take_rate-data")
    assert '"x":[' in figure_source.text
    assert '<script src="/static/plotly.min.js"></script>' in response.text
    assert '<script src="/static/report.js"></script>' in response.text
    assert "https://" not in response.text
    assert "ranker_b" in page.get("variants").text
    ml = page.get("section-ml").text
    assert "ranker_auc" in ml
    # Visits only read; the POST button adds a snapshot, and a GET with ?refresh=1 does not.
    assert _snapshots(session) == 1
    editor.get("/experiments/ranker-v2/report?refresh=1")
    assert _snapshots(session) == 1
    refreshed = editor.post("/experiments/ranker-v2/report/refresh")
    assert refreshed.status_code == 303
    assert _snapshots(session) == 2


def test_report_export_downloads_a_self_contained_file(
    editor: Any, session: Session, settings: Settings
) -> None:
    running_with_data(session, settings)
    response = editor.get("/experiments/ranker-v2/report.html")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Disposition"] == 'attachment; filename="ranker-v2-report.html"'
    assert "<script src" not in response.text
    assert plotly_js_path().read_text()[:500] in response.text


def test_plotly_js_is_served_from_the_installed_package(editor: Any) -> None:
    with editor.get("/static/plotly.min.js") as response:
        assert response.status_code == 200
        assert response.mimetype == "text/javascript"
        assert response.data == Path(plotly_js_path()).read_bytes()
        assert re.search(rb"plotly\.js v\d+\.\d+", response.data[:300])
        etag = response.headers["ETag"]
    with editor.get("/static/plotly.min.js", headers={"If-None-Match": etag}) as cached:
        assert cached.status_code == 304
    with editor.get("/static/xp.css") as css:
        assert css.status_code == 200
        assert css.mimetype == "text/css"


# ---------------------------------------------------------------------------- CSRF


@pytest.fixture
def csrf_client(settings: Settings, session: Session, make_user: Any) -> Any:
    from tests.conftest import PASSWORD, _NonClosingSession
    from web import create_app

    app = create_app(settings, TESTING=True)  # CSRF protection left on
    app.extensions["xp_sessions"] = lambda: _NonClosingSession(session)
    client = app.test_client()
    email = make_user("editor")
    without_token = client.post("/login", data={"email": email, "password": PASSWORD})
    assert without_token.status_code == 400  # the login form is protected too
    token = parse_page(client.get("/login").text).root.find_all("input", name="csrf_token")
    signed = client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": token[0].attrs["value"]}
    )
    assert signed.status_code == 303
    return client


def test_forms_are_protected_against_csrf(csrf_client: Any, session: Session) -> None:
    refused = csrf_client.post("/experiments/new", data=form_data())
    assert refused.status_code == 400
    assert "CSRF" in refused.text
    with pytest.raises(NotFoundError):
        svc.get_experiment(session, "search-v3")

    page = parse_page(csrf_client.get("/experiments/new").text)
    token = page.root.find_all("input", name="csrf_token")[0].attrs["value"]
    accepted = csrf_client.post("/experiments/new", data=form_data(csrf_token=token))
    assert accepted.status_code == 303

    refused = csrf_client.post("/experiments/search-v3/start", data={"confirm": "yes"})
    assert refused.status_code == 400
    assert svc.get_experiment(session, "search-v3").status == "draft"
    assert csrf_client.post("/logout").status_code == 400  # signing out is a protected POST


def test_the_api_is_exempt_from_csrf(
    csrf_client: Any, admin_headers: dict[str, str], session: Session
) -> None:
    response = csrf_client.post(
        "/api/v1/experiments", json=spec_document(key="api-made"), headers=admin_headers
    )
    assert response.status_code == 201
