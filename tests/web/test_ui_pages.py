"""The pages a team works in: list, layers, keys, users, edit, lifecycle safeguards, report."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from experiments.config import Settings
from experiments.service import decisions
from experiments.service import experiments as svc
from experiments.service.analysis import run_analysis
from experiments.service.ingestion import ingest_exposures
from experiments.service.simulation import SimulationPlan, simulate_traffic
from experiments.service.specs import validate_spec
from experiments.storage.models import AnalysisSnapshot
from tests.factories import spec_document
from tests.html_pages import parse_page
from tests.web.test_ui import form_data
from web.ui.forms import SpecForm


def real_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _create(session: Session, actor: str = "ana@example.com", **changes: Any) -> None:
    svc.create_experiment(
        session, validate_spec(spec_document(**changes)), actor=actor, now=real_now()
    )


def _snapshot(session: Session, key: str, report: dict[str, Any], at: datetime) -> None:
    experiment = svc.get_experiment(session, key)
    session.add(
        AnalysisSnapshot(
            experiment_id=experiment.id,
            computed_at=at,
            engine_version="test",
            settings={},
            inputs={},
            report=report,
        )
    )
    session.flush()


def _verdict_report(
    status: str, *, units: int = 500, lift: float = 0.07, **decision: Any
) -> dict[str, Any]:
    comparison = {
        "variant": "treatment",
        "rel_lift": lift,
        "rel_ci": [lift - 0.03, lift + 0.03],
        "abs_diff": 0.01,
        "abs_ci": [0.005, 0.015],
        "p_value": 0.001,
        "p_value_adjusted": 0.001,
        "significant": True,
        "direction": "better",
    }
    return {
        "alpha": 0.05,
        "method": "fixed",
        "control": "control",
        "srm": {"observed": {"control": units // 2, "treatment": units - units // 2}},
        "metrics": {
            "take_rate": {
                "kind": "ratio",
                "role": "primary",
                "variants": {"control": {"n": units // 2, "mean": 0.1}},
                "comparisons": [comparison],
            }
        },
        "decision": {"status": status, "reasons": ["because"], **decision},
    }


# ----------------------------------------------------------------------------- list


def test_the_list_searches_sorts_filters_and_shows_verdicts(viewer: Any, session: Session) -> None:
    _create(session, key="alpha-search", name="Alpha search ranking", layer="search")
    _create(session, actor="bo@example.com", key="beta-feed", name="Beta feed", layer="feed")
    _create(session, actor="bo@example.com", key="old-one", name="Old one")
    svc.start_experiment(session, "beta-feed", actor="t", now=real_now())
    _snapshot(session, "beta-feed", _verdict_report("ship", variant="treatment"), real_now())
    svc.archive_experiment(session, "old-one", actor="t", now=real_now())
    session.commit()

    def keys(query: str) -> list[str]:
        response = viewer.get(f"/experiments{query}")
        assert response.status_code == 200
        page = parse_page(response.text)
        if "experiments" not in page.by_id:
            return []
        return [
            r.attrs["id"].removeprefix("row-") for r in page.get("experiments").find_all("tr")[1:]
        ]

    assert keys("") == ["beta-feed", "alpha-search"]  # archived hidden, newest first
    assert keys("?archived=1") == ["old-one", "beta-feed", "alpha-search"]
    assert keys("?q=RANKING") == ["alpha-search"]  # name, case-insensitive
    assert keys("?q=beta-") == ["beta-feed"]  # key
    assert keys("?status=running") == ["beta-feed"]
    assert keys("?layer=search") == ["alpha-search"]
    assert keys("?owner=bo@example.com") == ["beta-feed"]
    assert keys("?owner=bo@example.com&archived=1") == ["old-one", "beta-feed"]
    assert keys("?sort=name") == ["alpha-search", "beta-feed"]
    assert keys("?sort=oldest") == ["alpha-search", "beta-feed"]
    assert keys("?q=nothing-like-it") == []
    row = parse_page(viewer.get("/experiments").text).get("row-beta-feed").text
    assert "Ship treatment" in row
    assert "+7.00%" in row
    assert "[+4.00%, +10.00%]" in row
    assert "bo@example.com" in row
    bad = viewer.get("/experiments?sort=random")
    assert bad.status_code == 400
    assert "sort: must be one of" in bad.text
    owners = parse_page(viewer.get("/experiments").text).get("owner-filter").text
    assert "ana@example.com" in owners
    assert "bo@example.com" in owners


# --------------------------------------------------------------------------- layers


def test_layers_show_bucket_occupancy_and_the_free_share(viewer: Any, session: Session) -> None:
    _create(session, key="a", layer="home", traffic=0.25)
    _create(session, key="b", layer="home", traffic=0.35)
    _create(session, key="c", layer="home", traffic=0.2)
    svc.start_experiment(session, "a", actor="t", now=real_now())
    svc.start_experiment(session, "b", actor="t", now=real_now())
    session.commit()
    page = parse_page(viewer.get("/layers").text)
    layer = page.get("layer-home")
    assert "60.0% occupied" in layer.text
    assert "40.0% free" in layer.text
    table = page.get("layer-home-experiments").text
    assert "a running 2,500 25.0% 0–2499" in table
    assert "b running 3,500 35.0% 2500–5999" in table
    assert "free 4,000 40.0%" in table
    assert "Drafts waiting to start here: c asks for 20.0%" in layer.text
    rects = layer.find_all("rect")
    assert [(r.attrs["x"], r.attrs["width"]) for r in rects[1:]] == [
        ("0", "2500"),
        ("2500", "3500"),
    ]


# ----------------------------------------------------------------------------- keys


def test_keys_page_shows_a_new_key_once_and_revokes(admin: Any, session: Session) -> None:
    created = admin.post("/keys", data={"name": "checkout", "scope": "ingest"})
    assert created.status_code == 201
    page = parse_page(created.text)
    token = page.get("new-key").attrs["value"]
    assert token.startswith("xp_")
    assert "shown only this once" in page.get("created-key").text
    listed = admin.get("/keys").text
    assert token not in listed  # never again
    prefix = token[:10]
    row = parse_page(listed).get(f"key-{prefix}").text
    assert "checkout" in row
    assert "ingest" in row
    assert "never" in row
    assert "active" in row
    asked = admin.get(f"/keys/{prefix}/revoke")
    assert "Every request made with this key is refused from now on" in asked.text
    done = admin.post(f"/keys/{prefix}/revoke", data={"confirm": "yes"})
    assert done.status_code == 303
    assert "revoked" in parse_page(admin.get("/keys").text).get(f"key-{prefix}").text
    changes = parse_page(admin.get("/keys").text).get("changes").text
    assert "key_create" in changes
    assert "key_revoke" in changes
    assert "admin@example.com" in changes
    bad = admin.post("/keys", data={"name": "x", "scope": "root"})
    assert bad.status_code == 400
    assert "must be one of" in parse_page(bad.text).get("scope-error").text


# ---------------------------------------------------------------------------- users


def test_users_page_adds_and_disables_users(admin: Any, session: Session) -> None:
    added = admin.post(
        "/users", data={"email": "new@example.com", "role": "viewer", "password": "long enough"}
    )
    assert added.status_code == 303
    page = admin.get("/users").text
    assert "new@example.com" in parse_page(page).get("users").text
    short = admin.post("/users", data={"email": "x@example.com", "role": "viewer", "password": "s"})
    assert short.status_code == 400
    assert "at least 8 characters" in parse_page(short.text).get("password-error").text
    taken = admin.post(
        "/users", data={"email": "new@example.com", "role": "viewer", "password": "long enough"}
    )
    assert taken.status_code == 409
    asked = admin.get("/users/disable?email=new@example.com")
    assert "will no longer be able to sign in" in asked.text
    assert (
        admin.post(
            "/users/disable", data={"email": "new@example.com", "confirm": "yes"}
        ).status_code
        == 303
    )
    assert "disabled" in parse_page(admin.get("/users").text).get("users").text


# ----------------------------------------------------------------------- edit forms


def test_editing_a_draft_reaches_every_spec_field(editor: Any, session: Session) -> None:
    _create(session)
    session.commit()
    page = parse_page(editor.get("/experiments/ranker-v2/edit").text)
    assert page.get("variants-0-weight").attrs["value"] == "50"
    assert page.get("metrics-0-numerator").attrs["value"] == "play"
    assert "spec reference" in page.get("spec-link").text
    data = form_data(
        key="ranker-v2",
        metric_rows="3",
        traffic="40",
        correction="bonferroni",
        targeting='{"country": {"in": ["US", "CA"]}}',
        forced="qa-1 = treatment\nqa-2 = control",
        **{
            "variants-0-weight": "33.3",
            "variants-1-weight": "66.6",
            "metrics-0-cuped": "14",
            "metrics-0-window_days": "7",
            "metrics-0-direction": "higher",
            "metrics-1-cap": "p99",
            "metrics-1-margin": "0.5",
            "metrics-1-margin_type": "absolute",
            "metrics-1-direction": "higher",
            "metrics-2-name": "ranker_auc",
            "metrics-2-kind": "auc",
            "metrics-2-role": "ml",
            "metrics-2-model": "ranker_b",
        },
    )
    saved = editor.post("/experiments/ranker-v2/edit", data=data)
    assert saved.status_code == 303, saved.text
    spec = svc.spec_of(svc.get_experiment(session, "ranker-v2"))
    assert spec["traffic"] == 0.4
    assert spec["correction"] == "bonferroni"
    assert spec["targeting"] == {"country": {"in": ["US", "CA"]}}
    assert spec["forced"] == {"qa-1": "treatment", "qa-2": "control"}
    assert [round(v["weight"], 12) for v in spec["variants"]] == [
        round(1 / 3, 12),
        round(2 / 3, 12),
    ]  # 33.3% and 66.6% normalised
    primary, guardrail, ml = spec["metrics"]
    assert primary["cuped"] == {"lookback_days": 14}
    assert primary["window_days"] == 7
    assert primary["higher_is_better"] is True
    assert guardrail["cap"] == {"percentile": 99.0}
    assert (guardrail["margin"], guardrail["margin_type"]) == (0.5, "absolute")
    assert ml == {"name": "ranker_auc", "kind": "auc", "role": "ml", "model": "ranker_b"}
    again = parse_page(editor.get("/experiments/ranker-v2/edit").text)
    assert again.get("metrics-1-cap").attrs["value"] == "p99"
    assert again.get("forced").text == "qa-1 = treatment qa-2 = control"
    audit = parse_page(editor.get("/experiments/ranker-v2").text).get("audit-log").text
    assert "editor@example.com edit" in audit


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"variants-1-weight": "60"}, "variants", "weights add up to 110%"),
        ({"targeting": "{country"}, "targeting", "is not valid JSON"),
        ({"targeting": '{"country": {"near": 1}}'}, "targeting", "targeting.country"),
        ({"forced": "qa-1"}, "forced", "line 1: write unit_id = variant"),
        ({"forced": "qa-1 = nobody"}, "forced", "unknown variant 'nobody'"),
        ({"metrics-0-cuped": "two weeks"}, "metrics-0-cuped", "whole number of days"),
        ({"metrics-1-cap": "lots"}, "metrics-1-cap", "valid number"),
        ({"metrics-1-margin_type": "sideways"}, "metrics-1-margin_type", "relative"),
    ],
    ids=[
        "weights-110",
        "targeting-json",
        "targeting-rule",
        "forced-line",
        "forced-variant",
        "cuped-days",
        "cap",
        "margin-type",
    ],
)
def test_form_problems_sit_beside_their_fields(
    editor: Any, changes: dict[str, str], field: str, message: str
) -> None:
    response = editor.post("/experiments/new", data=form_data(**changes))
    assert response.status_code == 400
    page = parse_page(response.text)
    assert message in page.get(f"{field}-error").text


def test_three_variants_at_a_third_each_are_fine(editor: Any, session: Session) -> None:
    data = form_data(variant_rows="3")
    data.update({f"variants-{i}-weight": "33.3" for i in range(3)})
    data.update({"variants-2-key": "third"})
    assert editor.post("/experiments/new", data=data).status_code == 303
    weights = [v.weight for v in svc.get_experiment(session, "search-v3").variants]
    assert weights == pytest.approx([1 / 3] * 3)


def test_a_running_experiment_edits_only_what_is_allowed(editor: Any, session: Session) -> None:
    _create(session, layer="feed")
    svc.start_experiment(session, "ranker-v2", actor="t", now=real_now())
    session.commit()
    page = parse_page(editor.get("/experiments/ranker-v2/edit").text)
    for locked in ("alpha", "method", "layer", "planned_n"):
        assert "disabled" in page.get(locked).attrs, locked
    for editable in ("name", "hypothesis", "traffic", "metrics-0-name", "forced", "variants-0-key"):
        assert "disabled" not in page.get(editable).attrs, editable
    document = svc.experiment_document(svc.get_experiment(session, "ranker-v2"))
    # What a browser sends: the values shown, less the disabled inputs.
    form = SpecForm.from_document(document)
    data = {
        name: value
        for name, value in form.values.items()
        if "disabled" not in page.by_id.get(name, page.root).attrs
    }
    data.update(variant_rows=str(form.variant_rows), metric_rows=str(form.metric_rows))
    data["name"] = "Renamed while running"
    data["alpha"] = "0.2"  # locked: ignored, never sent by a browser
    saved = editor.post("/experiments/ranker-v2/edit", data=data)
    assert saved.status_code == 303, saved.text
    experiment = svc.get_experiment(session, "ranker-v2")
    assert experiment.name == "Renamed while running"
    assert experiment.alpha == document["alpha"]
    # Variants change only with a reshuffle.
    data["variants-1-key"] = "challenger"
    refused = editor.post("/experiments/ranker-v2/edit", data=data)
    assert refused.status_code == 409
    assert "reshuffle" in parse_page(refused.text).get("error-summary").text
    epoch = experiment.epoch
    reshuffled = editor.post("/experiments/ranker-v2/edit", data={**data, "reshuffle": "yes"})
    assert reshuffled.status_code == 303
    experiment = svc.get_experiment(session, "ranker-v2")
    assert [v.key for v in experiment.variants] == ["control", "challenger"]
    assert experiment.epoch == epoch + 1


# ------------------------------------------------------------------------ lifecycle


def test_ramp_restart_and_archive(editor: Any, session: Session) -> None:
    _create(session, layer="feed", traffic=0.2)
    svc.start_experiment(session, "ranker-v2", actor="t", now=real_now())
    session.commit()
    assert (
        editor.post("/experiments/ranker-v2/ramp", data={"traffic_percent": "45"}).status_code
        == 303
    )
    assert svc.get_experiment(session, "ranker-v2").traffic == 0.45
    bad = editor.post("/experiments/ranker-v2/ramp", data={"traffic_percent": "450"})
    assert bad.status_code == 400
    assert "traffic must be <= 1" in parse_page(bad.text).get("traffic_percent-error").text
    editor.post("/experiments/ranker-v2/stop", data={"confirm": "yes"})
    page = parse_page(editor.get("/experiments/ranker-v2").text)
    assert page.get("restart").text == "Restart…"
    asked = editor.get("/experiments/ranker-v2/start").text
    assert "Restart ranker-v2?" in asked
    assert "same variant as before" in asked
    assert editor.post("/experiments/ranker-v2/start", data={"confirm": "yes"}).status_code == 303
    assert svc.get_experiment(session, "ranker-v2").status == "running"
    actions = [e["action"] for e in parse_audit(editor)]
    assert actions[-3:] == ["ramp", "stop", "restart"]
    refused = editor.post("/experiments/ranker-v2/archive", data={"confirm": "yes"})
    assert refused.status_code == 409  # running: stop and conclude first
    decisions.conclude_experiment(
        session, "ranker-v2", decision="iterate", rationale="try again", actor="t", now=real_now()
    )
    session.commit()
    assert "nothing is deleted" in editor.get("/experiments/ranker-v2/archive").text
    assert editor.post("/experiments/ranker-v2/archive", data={"confirm": "yes"}).status_code == 303
    assert "experiments" not in parse_page(editor.get("/experiments").text).by_id  # none left
    assert "archived" in parse_page(editor.get("/experiments/ranker-v2").text).root.text


def parse_audit(client: Any, key: str = "ranker-v2") -> list[dict[str, str]]:
    table = parse_page(client.get(f"/experiments/{key}").text).get("audit-log")
    rows = []
    for row in table.find_all("tr")[1:]:
        cells = [c.text for c in row.find_all("td")]
        rows.append({"actor": cells[1], "action": cells[2]})
    return rows


def test_conclude_defaults_to_the_verdict_and_asks_why_when_overridden(
    editor: Any, session: Session
) -> None:
    _create(session)
    svc.start_experiment(session, "ranker-v2", actor="t", now=real_now())
    _snapshot(session, "ranker-v2", _verdict_report("ship", variant="treatment"), real_now())
    session.commit()
    page = parse_page(editor.get("/experiments/ranker-v2").text)
    assert page.get("decision").find_all("option", selected="")[0].text == "ship"
    assert page.get("variant").find_all("option", selected="")[0].text == "treatment"
    assert "The engine's verdict suggests ship treatment" in page.get("conclude").text
    override = {"decision": "rollback", "rationale": "costs"}
    refused = editor.post("/experiments/ranker-v2/conclude", data=override)
    assert refused.status_code == 400
    error = parse_page(refused.text).get("override_reason-error").text
    assert "the engine's verdict suggests ship treatment" in error
    with_reason = {**override, "override_reason": "support load doubled"}
    asked = editor.post("/experiments/ranker-v2/conclude", data=with_reason)
    assert (
        "This departs from the engine's verdict (ship)"
        in parse_page(asked.text).get("confirm").text
    )
    done = editor.post("/experiments/ranker-v2/conclude", data={**with_reason, "confirm": "yes"})
    assert done.status_code == 303
    conclusion = parse_page(editor.get("/experiments/ranker-v2").text).get("conclusion").text
    assert "Overrides the engine's verdict: support load doubled" in conclusion
    assert "by editor@example.com" in conclusion


def test_promote_needs_an_admin_and_says_every_unit_gets_it(
    admin: Any, editor: Any, session: Session
) -> None:
    _create(session, traffic=0.3)
    svc.start_experiment(session, "ranker-v2", actor="t", now=real_now())
    decisions.conclude_experiment(
        session, "ranker-v2", decision="ship", rationale="won", actor="t", now=real_now()
    )
    session.commit()
    assert 'id="promote"' not in editor.get("/experiments/ranker-v2").text
    assert editor.post("/experiments/ranker-v2/promote", data={"confirm": "yes"}).status_code == 403
    asked = parse_page(admin.get("/experiments/ranker-v2/promote").text).get("confirm").text
    assert "Every unit, not only the experiment's 30%, gets variant treatment" in asked
    assert '"model": "ranker_b"' in asked
    assert svc.get_experiment(session, "ranker-v2").promoted_at is None
    assert admin.post("/experiments/ranker-v2/promote", data={"confirm": "yes"}).status_code == 303
    assert svc.get_experiment(session, "ranker-v2").promoted_at is not None
    assert (
        "Every unit stops getting treatment" in admin.get("/experiments/ranker-v2/unpromote").text
    )
    assert (
        admin.post("/experiments/ranker-v2/unpromote", data={"confirm": "yes"}).status_code == 303
    )
    assert svc.get_experiment(session, "ranker-v2").promoted_at is None
    actions = [(e["action"], e["actor"]) for e in parse_audit(admin)]
    assert actions[-2:] == [("promote", "admin@example.com"), ("unpromote", "admin@example.com")]


# --------------------------------------------------------------------------- report


def test_the_report_shows_the_recorded_decision_and_its_freshness(
    viewer: Any, session: Session, settings: Settings
) -> None:
    now = real_now()
    _create(session)
    svc.start_experiment(session, "ranker-v2", actor="t", now=now - timedelta(days=2))
    plan = SimulationPlan(users=400, days=1, seed=2)
    simulate_traffic(session, "ranker-v2", plan, settings=settings, now=now - timedelta(hours=2))
    run_analysis(session, "ranker-v2", settings=settings, now=now - timedelta(hours=1))
    session.commit()
    fresh = parse_page(viewer.get("/experiments/ranker-v2/report").text)
    assert "No data has arrived since" in fresh.get("freshness").text
    assert (
        "1 h 0 min ago" in fresh.get("freshness").text
        or "59 min ago" in fresh.get("freshness").text
    )
    assert "recorded-decision" not in fresh.by_id
    ingest_exposures(
        session,
        [{"experiment": "ranker-v2", "unit_id": "late-unit", "variant": "control"}],
        settings=settings,
        now=now,
    )
    decisions.conclude_experiment(
        session,
        "ranker-v2",
        decision="rollback",
        rationale="no lift",
        actor="ana@example.com",
        now=now,
    )
    session.commit()
    page = parse_page(viewer.get("/experiments/ranker-v2/report").text)
    freshness = page.get("freshness").text
    assert "New data since: exposures arrived after this snapshot" in freshness
    recorded = page.get("recorded-decision").text
    assert "Decided: rollback" in recorded
    assert "no lift" in recorded
    assert "by ana@example.com" in recorded
    assert "not promoted" in recorded
    # The recorded decision comes first, above the engine's verdict.
    html = viewer.get("/experiments/ranker-v2/report").text
    assert html.index('id="recorded-decision"') < html.index('id="decision"')


def test_waiting_for_data_and_provisional_verdicts(viewer: Any, session: Session) -> None:
    _create(session, key="empty")
    svc.start_experiment(session, "empty", actor="t", now=real_now())
    _snapshot(session, "empty", {**_verdict_report("waiting", units=0)}, real_now())
    _create(session, key="early", planned_n=10_000)
    svc.start_experiment(session, "early", actor="t", now=real_now())
    _snapshot(
        session,
        "early",
        _verdict_report("keep_running", units=800, planned_n=10_000, rule="fixed horizon"),
        real_now(),
    )
    session.commit()
    empty = parse_page(viewer.get("/experiments/empty/report").text)
    assert "Waiting for data" in empty.get("waiting").text
    assert (
        "Waiting for data" in parse_page(viewer.get("/experiments/empty").text).get("verdict").text
    )
    early = parse_page(viewer.get("/experiments/early/report").text)
    provisional = early.get("provisional").text
    assert "Provisional: 800 of the planned 10,000 units" in provisional
    assert "fixed horizon" in provisional


def test_the_experiment_page_shows_units_and_the_current_verdict(
    viewer: Any, session: Session
) -> None:
    _create(session)
    svc.start_experiment(session, "ranker-v2", actor="t", now=real_now())
    _snapshot(
        session, "ranker-v2", _verdict_report("ship", variant="treatment", units=1001), real_now()
    )
    session.commit()
    page = parse_page(viewer.get("/experiments/ranker-v2").text)
    verdict = page.get("verdict").text
    assert "Ship treatment" in verdict
    assert "take_rate +7.00%" in verdict
    units = page.get("units").text
    assert "control control 500" in units
    assert "treatment 501" in units
    assert "total 1,001" in units


def test_without_a_snapshot_the_report_page_reads_and_offers_a_recompute(
    editor: Any, viewer: Any, session: Session
) -> None:
    _create(session)
    svc.start_experiment(session, "ranker-v2", actor="t", now=real_now())
    session.commit()
    page = parse_page(viewer.get("/experiments/ranker-v2/report").text)
    assert "No analysis yet" in page.get("no-analysis").text
    assert "refresh" not in page.by_id  # a viewer cannot recompute
    assert viewer.get("/experiments/ranker-v2/report.html").status_code == 409
    assert "refresh" in parse_page(editor.get("/experiments/ranker-v2/report").text).by_id


def test_the_create_form_previews_sample_size_from_recent_traffic(
    editor: Any, session: Session, settings: Settings
) -> None:
    now = real_now()
    _create(session, key="source")
    svc.start_experiment(session, "source", actor="t", now=now - timedelta(days=6))
    simulate_traffic(
        session,
        "source",
        SimulationPlan(users=800, days=5, seed=4),
        settings=settings,
        now=now - timedelta(minutes=5),
    )
    session.commit()
    data = form_data(
        action="preview",
        **{
            "metrics-0-name": "converted",
            "metrics-0-event": "purchase",
        },
    )
    response = editor.post("/experiments/new", data=data)
    assert response.status_code == 200
    preview = parse_page(response.text).get("preview").text
    assert re.search(r"needs [\d,]+ units", preview), preview
    assert "day(s)" in preview or "more than recent traffic" in preview
    with pytest.raises(Exception, match="does not exist"):
        svc.get_experiment(session, "search-v3")  # a preview saves nothing


def test_the_spec_reference_is_served(viewer: Any) -> None:
    page = viewer.get("/docs/spec")
    assert page.status_code == 200
    assert "window_days" in page.text


def test_no_template_has_an_inline_script_or_event_handler() -> None:
    """Scripts are files under web/static (a CSP without 'unsafe-inline' then allows them)."""
    from pathlib import Path

    templates = Path(__file__).resolve().parents[2] / "web" / "templates"
    for path in templates.rglob("*.html"):
        html = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, f"{path.name}: {tag}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"{path.name}: inline event handler"
