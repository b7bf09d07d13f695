from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from experiments import analyze_frame
from experiments.domain import AnalysisMethod, MetricKind, MetricRole
from experiments.report.html import plotly_js, render_report_html, report_context
from experiments.service.timeseries import timeseries_document
from experiments.stats.analysis import AnalysisSpec, MetricSpec
from experiments.stats.summaries import Moments
from experiments.storage.aggregates import MetricQuery
from experiments.storage.timeseries import DailyMoments
from tests.html_pages import Page, parse_page
from tests.report_samples import sample_report


@pytest.fixture(scope="module")
def export() -> str:
    return render_report_html(sample_report())


@pytest.fixture(scope="module")
def page(export: str) -> Page:
    return parse_page(export)


def _figure(page: Page, metric: str) -> dict:
    chart = page.get(f"chart-metric-{metric}")
    source = page.get(chart.attrs["data-figure"])
    return json.loads(source.text)


def test_export_is_one_self_contained_document(export: str) -> None:
    assert export.startswith("<!doctype html>")
    bundle = plotly_js()
    assert bundle in export  # plotly.js inlined whole
    ours = export.replace(bundle, "")
    # Nothing is fetched: no script src, no stylesheet link, no URL at all.
    assert "<script src" not in ours
    assert "<link" not in ours
    assert "http://" not in ours
    assert "https://" not in ours
    assert ours.count("</html>") == 1


def test_header_decision_and_units(page: Page) -> None:
    text = page.root.text
    assert "Ranker v2 against v1" in text
    assert "The new ranker raises take rate without hurting revenue" in text
    assert "2026-05-01 09:30 UTC" in text
    decision = page.get("decision")
    assert "Decision: Ship treatment" in decision.text
    assert "every guardrail is non-inferior" in decision.text
    assert "ship" in decision.attrs["class"]
    units = page.get("units").text
    assert "No sample ratio mismatch" in units
    assert "50,210" in units
    assert "49,790" in units
    assert "33.3%" in units  # configured weight


def test_sections_in_order_and_ml_apart(page: Page) -> None:
    sections = [
        s.attrs["id"]
        for s in page.root.find_all("section")
        if s.attrs.get("id", "").startswith("section-")
    ]
    assert sections == ["section-primary", "section-guardrail", "section-secondary", "section-ml"]
    ml = page.get("section-ml")
    assert "never decide" in ml.text
    assert [a.attrs["id"] for a in ml.find_all("article")] == ["metric-ranker_auc"]
    assert "metric-take_rate" in [
        a.attrs["id"] for a in page.get("section-primary").find_all("article")
    ]


def test_numbers_are_formatted_for_people(page: Page) -> None:
    primary = page.get("metric-take_rate").text
    assert "+6.87%" in primary  # relative lift
    assert "[+2.88%, +10.86%]" in primary  # its interval
    assert "< 0.001" in primary  # tiny p-value
    assert "0.910" in primary
    assert "θ = 0.8000" in primary
    assert "variance reduction 31.0%" in primary
    assert "CUPED-adjusted" in primary
    guardrail = page.get("metric-revenue").text
    assert "non-inferior" in guardrail
    assert "inferior" in guardrail
    assert "margin 5.00% relative" in guardrail
    assert "capped at p99.5" in guardrail
    latency = page.get("metric-latency_ms").text
    assert "lower is better" in latency
    assert "control mean is 0: relative lift undefined" in latency
    assert "nan" not in page.root.text.lower().split()


def test_every_metric_with_comparisons_has_its_chart(page: Page) -> None:
    charts = page.root.find_all("div", class_="xp-chart")
    assert len(charts) == 4
    figure = _figure(page, "take_rate")
    assert [trace["y"][0] for trace in figure["data"]] == [
        "treatment",
        "treatment (CUPED)",
        "treatment_b",
        "treatment_b (CUPED)",
    ]
    assert figure["data"][0]["x"][0] == pytest.approx(0.0687)


def test_ml_divergence_is_flagged_only_when_set() -> None:
    report = sample_report()
    assert 'id="ml-divergence"' not in render_report_html(report)
    report["decision"]["ml_divergence"] = True
    page = parse_page(render_report_html(report))
    assert "ML metrics disagree with the primary KPI" in page.get("ml-divergence").text
    assert "Divergence" in page.get("section-ml").text


def test_srm_mismatch_is_explained() -> None:
    report = sample_report()
    report["srm"].update(detected=True, p_value=0.00001, chi2=31.2)
    report["decision"].update(status="invalid", variant=None, reasons=["sample ratio mismatch"])
    page = parse_page(render_report_html(report))
    assert "Sample ratio mismatch detected (χ² = 31.2, p = < 0.001)" in page.get("units").text
    assert "Invalid" in page.get("decision").text


def test_bayesian_reports_show_chance_to_beat_control() -> None:
    report = sample_report()
    report["method"] = "bayesian"
    first = report["metrics"]["take_rate"]["comparisons"][0]
    first.update(chance_to_beat_control=0.9987, expected_loss=0.00012)
    page = parse_page(render_report_html(report))
    text = page.get("metric-take_rate").text
    assert "P(beats control)" in text
    assert "99.9%" in text
    assert "95% credible interval" in text
    assert "P(beats control)" not in page.get("metric-ranker_auc").text


def test_text_from_the_report_is_escaped_and_cannot_end_a_script() -> None:
    report = sample_report()
    evil = "</script><script>alert(1)</script>"
    report["experiment"]["hypothesis"] = evil
    report["metrics"]["take_rate"]["comparisons"][0]["reason"] = evil
    html = render_report_html(report)
    assert "<script>alert(1)" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html
    page = parse_page(html)
    # The chart JSON survived intact inside its script element.
    figure = _figure(page, "take_rate")
    assert evil in figure["data"][0]["hovertext"][0]


def test_a_report_without_experiment_header_renders() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    variant = rng.choice(["control", "treatment"], n)
    frame = pd.DataFrame(
        {"variant": variant, "converted": (rng.random(n) < 0.1).astype(int), "value": rng.random(n)}
    )
    report = analyze_frame(frame, metrics={"converted": "conversion:converted", "v": "mean:value"})
    page = parse_page(render_report_html(report))
    assert page.root.find_all("h1")[0].text == "Experiment report"
    assert "50.0%" in page.get("units").text  # weight from the expected split
    assert len(page.root.find_all("div", class_="xp-chart")) == 2
    assert re.search(
        r"Decision: (Keep running|No effect|Ship|Roll back)", page.get("decision").text
    )


def test_context_is_plain_data_for_any_template() -> None:
    context = report_context(sample_report())
    assert [s["id"] for s in context["sections"]] == ["primary", "guardrail", "secondary", "ml"]
    primary = context["sections"][0]["metrics"][0]
    assert primary["comparisons"][0]["rel_lift"] == "+6.87%"
    assert primary["estimates"][0] == {
        "variant": "control",
        "n": "50,210",
        "mean": "0.2485",
        "ci": "—",
        "reason": None,
    }
    assert context["variants"][1]["params"].startswith("{\n")


# ------------------------------------------------------------------ over time


def _timeseries(method: AnalysisMethod) -> dict:
    """The service's document for three hand-built days of a conversion metric."""
    spec = AnalysisSpec(
        control="control",
        weights={"control": 0.5, "treatment": 0.5},
        metrics=[MetricSpec("take_rate", MetricKind.CONVERSION, MetricRole.PRIMARY)],
        method=method,
        planned_n=5000,
    )

    def rate(n: int, k: int) -> Moments:
        return Moments.from_values(np.r_[np.ones(k), np.zeros(n - k)])

    days = [(300, 30, 310, 35), (700, 70, 690, 90), (1000, 100, 1010, 131)]
    daily = DailyMoments(
        ends=[datetime(2026, 3, d, tzinfo=UTC) for d in (2, 3, 4)],
        step_days=1,
        units=[{"control": a, "treatment": c} for a, _, c, _ in days],
        moments=[
            {"take_rate": {"control": rate(a, b), "treatment": rate(c, d)}} for a, b, c, d in days
        ],
        caps={},
    )
    return timeseries_document(spec, [MetricQuery("take_rate", "conversion", ("play",))], daily)


def test_over_time_charts_are_shown_with_a_time_series() -> None:
    report = sample_report()
    report["method"] = "sequential"
    report["timeseries"] = _timeseries(AnalysisMethod.SEQUENTIAL)
    page = parse_page(render_report_html(report))
    section = page.get("over-time")
    assert "Lift of take_rate against the control" in section.text
    assert "always-valid interval holds at every look" in section.text
    lift = json.loads(page.get("chart-lift-over-time-data").text)
    estimate = next(t for t in lift["data"] if t["meta"]["role"] == "estimate")
    assert estimate["x"] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert estimate["y"][-1] == pytest.approx(131 / 1010 / 0.1 - 1)
    assert "always-valid" in lift["layout"]["yaxis"]["title"]["text"]
    traffic = json.loads(page.get("chart-traffic-data").text)
    assert [t["y"] for t in traffic["data"]] == [[300, 400, 300], [310, 380, 320]]
    # the over-time charts come before the metrics and are drawn like the others
    charts = [d for d in page.root.find_all("div") if "data-figure" in d.attrs]
    assert [c.attrs["id"] for c in charts[:2]] == ["chart-lift-over-time", "chart-traffic"]
    assert all("xp-chart" in c.attrs["class"].split() for c in charts)  # report.js draws them
    assert len(charts) == 6


def test_over_time_section_is_absent_without_a_time_series(export: str) -> None:
    assert 'id="over-time"' not in export
    assert report_context(sample_report())["over_time"] is None
    empty = sample_report()
    empty["timeseries"] = _timeseries(AnalysisMethod.FIXED) | {"days": []}
    assert report_context(empty)["over_time"] is None


def test_over_time_context_names_the_period_and_the_methods_caveat() -> None:
    report = sample_report()
    report["timeseries"] = _timeseries(AnalysisMethod.FIXED) | {"step_days": 7}
    over_time = report_context(report)["over_time"]
    assert over_time["metric"] == "take_rate"
    assert over_time["period"] == "7 days"
    assert "valid only at the planned end" in over_time["note"]
