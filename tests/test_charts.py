from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest

from experiments import analyze_frame
from experiments.report.charts import (
    COLORS,
    MARGIN_COLOR,
    VARIANT_COLORS,
    is_relative_scale,
    lift_figure,
    lift_over_time_figure,
    margin_line,
    report_figures,
    traffic_figure,
)
from tests.report_samples import sample_report


def _vlines(fig: Any) -> list[tuple[float, str | None]]:
    return [
        (shape.x0, shape.line.color)
        for shape in fig.layout.shapes
        if shape.type == "line" and shape.x0 == shape.x1
    ]


def test_one_row_per_treatment_at_the_relative_lift_with_its_interval() -> None:
    report = sample_report()
    metric = report["metrics"]["revenue"]
    fig = lift_figure("revenue", metric)
    assert [t.y[0] for t in fig.data] == ["treatment", "treatment_b"]
    for trace, comparison in zip(fig.data, metric["comparisons"], strict=True):
        low, high = comparison["rel_ci"]
        assert trace.x[0] == pytest.approx(comparison["rel_lift"])
        assert trace.x[0] + trace.error_x.array[0] == pytest.approx(high)
        assert trace.x[0] - trace.error_x.arrayminus[0] == pytest.approx(low)
        assert trace.error_x.visible is not False
    assert fig.layout.meta["scale"] == "relative"
    assert fig.layout.xaxis.tickformat == ".1%"
    assert "95% CI" in fig.layout.xaxis.title.text


def test_colours_follow_the_direction() -> None:
    fig = lift_figure("revenue", sample_report()["metrics"]["revenue"])
    assert fig.data[0].marker.color == COLORS["inconclusive"]
    assert fig.data[1].marker.color == COLORS["worse"]
    assert fig.data[1].error_x.color == COLORS["worse"]


def test_zero_line_is_always_drawn() -> None:
    fig = lift_figure("take_rate", sample_report()["metrics"]["take_rate"])
    assert (0, "#24292f") in _vlines(fig)


@pytest.mark.parametrize(
    ("higher_is_better", "margin_type", "expected"),
    [
        (True, "relative", -0.05),
        (False, "relative", 0.05),
        (True, "absolute", None),  # an absolute margin cannot sit on a relative axis
    ],
    ids=["higher-better", "lower-better", "absolute-on-relative-axis"],
)
def test_guardrail_margin_line(
    higher_is_better: bool, margin_type: str, expected: float | None
) -> None:
    metric = sample_report()["metrics"]["revenue"]
    metric["higher_is_better"] = higher_is_better
    metric["margin_type"] = margin_type
    assert margin_line(metric, relative=True) == expected
    lines = _vlines(lift_figure("revenue", metric))
    margin_lines = [x for x, color in lines if color == MARGIN_COLOR]
    assert margin_lines == ([] if expected is None else [pytest.approx(expected)])


def test_non_guardrails_have_no_margin_line() -> None:
    metric = sample_report()["metrics"]["take_rate"]
    metric["margin"] = 0.05  # ignored: not a guardrail
    assert margin_line(metric, relative=True) is None


def test_cuped_adds_an_adjusted_row_under_each_treatment() -> None:
    metric = sample_report()["metrics"]["take_rate"]
    fig = lift_figure("take_rate", metric)
    assert [t.y[0] for t in fig.data] == [
        "treatment",
        "treatment (CUPED)",
        "treatment_b",
        "treatment_b (CUPED)",
    ]
    adjusted = metric["cuped"]["comparisons"][0]
    assert fig.data[1].x[0] == pytest.approx(adjusted["rel_lift"])
    assert fig.data[1].marker.symbol == "diamond"


def test_ml_metrics_are_drawn_on_the_absolute_difference() -> None:
    metric = sample_report()["metrics"]["ranker_auc"]
    fig = lift_figure("ranker_auc", metric)
    assert not is_relative_scale(metric)
    assert fig.data[0].x[0] == pytest.approx(0.0517)
    assert fig.data[0].x[0] + fig.data[0].error_x.array[0] == pytest.approx(0.070)
    assert fig.layout.meta["scale"] == "absolute"
    assert fig.layout.xaxis.title.text.startswith("difference")


def test_undefined_relative_lift_falls_back_to_the_difference() -> None:
    metric = sample_report()["metrics"]["latency_ms"]
    fig = lift_figure("latency_ms", metric)
    assert fig.layout.meta["scale"] == "absolute"
    assert fig.data[0].x[0] == pytest.approx(12.5)
    # The second comparison has no interval at all: a point without error bar,
    # whose hover text gives the reason.
    assert fig.data[1].error_x.visible is False
    assert "standard error is 0" in fig.data[1].hovertext[0]


def test_missing_estimate_is_not_drawn_as_a_zero() -> None:
    metric = sample_report()["metrics"]["take_rate"]
    metric["cuped"] = None
    metric["comparisons"][1].update(rel_lift=None, rel_ci=None, reason="control mean is 0")
    fig = lift_figure("take_rate", metric)
    hidden = fig.data[1]
    assert hidden.marker.color == "rgba(0,0,0,0)"
    assert hidden.error_x.visible is False
    assert "control mean is 0" in hidden.hovertext[0]


@pytest.mark.parametrize(
    ("method", "alpha", "label"),
    [
        ("fixed", 0.05, "95% CI"),
        ("sequential", 0.1, "90% always-valid CI"),
        ("bayesian", 0.05, "95% credible interval"),
    ],
    ids=["fixed", "sequential", "bayesian"],
)
def test_axis_names_the_interval(method: str, alpha: float, label: str) -> None:
    fig = lift_figure("revenue", sample_report()["metrics"]["revenue"], alpha=alpha, method=method)
    assert label in fig.layout.xaxis.title.text


def test_report_figures_skip_metrics_without_comparisons() -> None:
    report = sample_report()
    report["metrics"]["latency_ms"]["comparisons"] = []
    figures = report_figures(report)
    assert sorted(figures) == ["ranker_auc", "revenue", "take_rate"]
    # Height grows with the rows, so labels never overlap.
    assert figures["take_rate"].layout.height > figures["revenue"].layout.height
    json.loads(figures["take_rate"].to_json())


def test_figures_of_a_real_engine_report_match_its_numbers() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    variant = rng.choice(["control", "treatment"], n)
    converted = (rng.random(n) < np.where(variant == "treatment", 0.13, 0.10)).astype(int)
    revenue = rng.exponential(4.0, n) * converted
    frame = pd.DataFrame({"variant": variant, "converted": converted, "revenue": revenue})
    report = analyze_frame(
        frame, metrics={"converted": "conversion:converted", "revenue": "mean:revenue"}
    )
    figures = report_figures(report)
    assert set(figures) == {"converted", "revenue"}
    for name, fig in figures.items():
        (comparison,) = report["metrics"][name]["comparisons"]
        assert fig.data[0].x[0] == pytest.approx(comparison["rel_lift"])
        assert fig.data[0].x[0] + fig.data[0].error_x.array[0] == pytest.approx(
            comparison["rel_ci"][1]
        )


# ------------------------------------------------------------------ over time


def _with_timeseries(method: str = "fixed") -> dict[str, Any]:
    report = sample_report()
    report["method"] = method
    report["timeseries"] = {
        "days": ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"],
        "ends": [],
        "step_days": 1,
        "control": "control",
        "primary": "take_rate",
        "units": {"control": [100, 120, 90, 110], "treatment": [95, 125, 92, 101]},
        "cumulative_units": {"control": [100, 220, 310, 420], "treatment": [95, 220, 312, 413]},
        "metrics": {
            "take_rate": {
                "treatment": {
                    "rel_lift": [0.2, None, 0.08, 0.07],
                    "rel_ci": [[-0.1, 0.5], None, [0.01, 0.15], [0.02, 0.12]],
                    "abs_diff": [0.05, None, 0.02, 0.0175],
                    "abs_ci": [[-0.02, 0.12], None, [0.0, 0.04], [0.005, 0.03]],
                }
            },
            "latency_ms": {
                "treatment": {
                    "rel_lift": [None, None, None, None],
                    "rel_ci": [None, None, None, None],
                    "abs_diff": [1.5, 2.0, 2.5, 3.0],
                    "abs_ci": [[0.5, 2.5], [1.0, 3.0], [1.5, 3.5], [2.0, 4.0]],
                }
            },
        },
    }
    return report


def _traces(fig: Any, role: str) -> list[Any]:
    return [t for t in fig.data if t.meta and t.meta["role"] == role]


def test_lift_over_time_draws_each_day_with_its_interval_band() -> None:
    fig = lift_over_time_figure(_with_timeseries())
    assert fig is not None
    (line,) = _traces(fig, "estimate")
    assert list(line.x) == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    assert list(line.y) == [0.2, None, 0.08, 0.07]  # an undefined day is a gap, not a zero
    assert line.line.color == VARIANT_COLORS[1]
    bands = _traces(fig, "band")
    # the undefined day splits the band in two closed polygons: highs then lows reversed
    assert [list(b.x) for b in bands] == [
        ["2026-03-01", "2026-03-01"],
        ["2026-03-03", "2026-03-04", "2026-03-04", "2026-03-03"],
    ]
    assert list(bands[1].y) == [0.15, 0.12, 0.02, 0.01]
    assert all(b.fill == "toself" for b in bands)
    assert {k: fig.layout.meta[k] for k in ("metric", "scale")} == {
        "metric": "take_rate",
        "scale": "relative",
    }
    assert fig.layout.yaxis.tickformat == ".1%"
    assert "95% CI" in fig.layout.yaxis.title.text
    assert [(s.y0, s.y1) for s in fig.layout.shapes] == [(0, 0)]  # the no-change line


def test_lift_over_time_of_an_undefined_relative_lift_uses_the_difference() -> None:
    fig = lift_over_time_figure(_with_timeseries(), metric="latency_ms")
    assert fig is not None
    assert fig.layout.meta["scale"] == "absolute"
    assert list(_traces(fig, "estimate")[0].y) == [1.5, 2.0, 2.5, 3.0]
    assert list(_traces(fig, "band")[0].y) == [2.5, 3.0, 3.5, 4.0, 2.0, 1.5, 1.0, 0.5]


@pytest.mark.parametrize(
    ("method", "label"),
    [("sequential", "95% always-valid CI"), ("bayesian", "95% credible interval")],
    ids=["sequential", "bayesian"],
)
def test_lift_over_time_names_the_methods_interval(method: str, label: str) -> None:
    fig = lift_over_time_figure(_with_timeseries(method))
    assert fig is not None
    assert label in fig.layout.yaxis.title.text


def test_traffic_shows_new_units_per_variant_per_day() -> None:
    fig = traffic_figure(_with_timeseries())
    assert fig is not None
    assert [t.name for t in fig.data] == ["control", "treatment"]
    assert list(fig.data[1].y) == [95, 125, 92, 101]
    assert "312 in total" in fig.data[1].hovertext[2]
    assert fig.data[0].marker.color == VARIANT_COLORS[0]
    assert fig.layout.barmode == "group"
    assert fig.layout.yaxis.title.text == "new units per day"
    json.loads(fig.to_json())


@pytest.mark.parametrize(
    "timeseries",
    [None, {"days": [], "units": {}, "metrics": {}}],
    ids=["missing", "no-days"],
)
def test_over_time_charts_are_absent_without_a_time_series(timeseries: Any) -> None:
    report = sample_report()
    if timeseries is not None:
        report["timeseries"] = timeseries
    assert lift_over_time_figure(report) is None
    assert traffic_figure(report) is None
    assert lift_over_time_figure(_with_timeseries(), metric="unknown") is None


def test_charts_module_imports_no_web_or_database_code() -> None:
    code = (
        "import sys, experiments.report.charts, experiments.report.html;"
        "bad = [m for m in ('flask', 'sqlalchemy', 'web') if m in sys.modules];"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_over_time_axes_are_whole_days_even_with_one_day_of_data() -> None:
    report = _with_timeseries()
    series = report["timeseries"]
    series["days"] = series["days"][:1]
    series["units"] = {v: c[:1] for v, c in series["units"].items()}
    series["cumulative_units"] = {v: c[:1] for v, c in series["cumulative_units"].items()}
    for per_variant in series["metrics"].values():
        for values in per_variant.values():
            for name in list(values):
                values[name] = values[name][:1]
    for fig in (lift_over_time_figure(report), traffic_figure(report)):
        assert fig is not None
        axis = fig.layout.xaxis
        assert axis.type == "date"
        assert axis.dtick == 86_400_000  # one tick a day: never hours or milliseconds
        assert axis.tickformat == "%b %-d"
        assert list(axis.range) == ["2026-02-28T12:00:00", "2026-03-01T12:00:00"]
    bars = traffic_figure(report).data
    assert all(b.width[0] == 0.4 * 86_400_000 for b in bars)  # visible, side by side


def test_a_wide_first_day_does_not_flatten_the_rest() -> None:
    report = _with_timeseries()
    values = report["timeseries"]["metrics"]["take_rate"]["treatment"]
    values["rel_ci"][0] = [-2.0, 2.4]  # few units on day one: a huge interval
    fig = lift_over_time_figure(report)
    assert fig is not None
    low, high = fig.layout.yaxis.range
    # The axis fits the informative days (and zero), not day one's band.
    assert -0.05 < low < 0.0
    assert 0.2 < high < 0.3
    assert fig.layout.meta["clipped"] is True
    caption = fig.layout.annotations[-1].text
    assert "wider than the axis: they are cut at its edges" in caption
    assert "95% CI" in caption


def test_without_a_wide_band_the_axis_fits_itself_and_says_what_it_shows() -> None:
    report = _with_timeseries()
    report["timeseries"]["metrics"]["take_rate"]["treatment"]["rel_ci"][0] = [0.0, 0.25]
    fig = lift_over_time_figure(report)
    assert fig is not None
    assert fig.layout.yaxis.range is None
    assert fig.layout.meta["clipped"] is False
    assert fig.layout.annotations[-1].text.startswith(
        "Cumulative relative lift of take_rate at each day's end (UTC)"
    )
