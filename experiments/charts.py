"""Report dict (DESIGN.md "Report JSON") → plotly figures. Pure: no Flask, no database.

The chart of a metric is a forest plot: one row per treatment, the point is the
lift against the control and the horizontal bar its interval, with a line at
zero (no change) and, for a guardrail, a dashed line at the tolerated harm. A
business metric is drawn on the relative lift (``rel_lift`` / ``rel_ci``); an ML
metric, or a business metric whose relative lift is undefined (control mean 0),
on the absolute difference (``abs_diff`` / ``abs_ci``). When CUPED adjusted the
metric, each treatment gets a second row with the adjusted estimate, which is
the one the decision uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from experiments.report_format import (
    format_interval,
    format_number,
    format_p_value,
    format_percent,
    interval_name,
)

COLORS = {
    "better": "#1a7f37",
    "worse": "#cf222e",
    "inconclusive": "#57606a",
    "undefined": "#8c959f",
}
MARGIN_COLOR = "#bf8700"
ROW_HEIGHT = 44
BASE_HEIGHT = 96

_ML_KINDS = frozenset({"auc", "log_loss", "brier", "accuracy", "calibration_error", "rmse", "mae"})


@dataclass(frozen=True)
class _Row:
    label: str
    value: float | None
    low: float | None
    high: float | None
    direction: str
    hover: str


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _bounds(pair: Sequence[Any] | None) -> tuple[float | None, float | None]:
    if not pair or len(pair) != 2:
        return None, None
    return _finite(pair[0]), _finite(pair[1])


def is_relative_scale(metric: Mapping[str, Any]) -> bool:
    """Whether a metric's chart shows the relative lift (else the absolute difference)."""
    if metric.get("kind") in _ML_KINDS:
        return False
    comparisons = list(metric.get("comparisons") or [])
    cuped = metric.get("cuped") or {}
    comparisons += list(cuped.get("comparisons") or [])
    return any(_finite(c.get("rel_lift")) is not None for c in comparisons) or not comparisons


def _row(comparison: Mapping[str, Any], label: str, relative: bool, interval: str) -> _Row:
    key, ci_key = ("rel_lift", "rel_ci") if relative else ("abs_diff", "abs_ci")
    value = _finite(comparison.get(key))
    low, high = _bounds(comparison.get(ci_key))
    if relative:
        shown = format_percent(value, signed=True)
        shown_ci = format_interval(comparison.get(ci_key), percent=True)
    else:
        shown = format_number(value, 4)
        shown_ci = format_interval(comparison.get(ci_key), digits=4)
    direction = str(comparison.get("direction") or "undefined")
    hover = (
        f"<b>{label}</b><br>{'lift' if relative else 'difference'} {shown}"
        f"<br>{interval} {shown_ci}<br>p = {format_p_value(comparison.get('p_value'))}"
        f" · {direction}"
    )
    reason = comparison.get("reason")
    if value is None:
        hover = f"<b>{label}</b><br>{reason or 'undefined'}"
    elif reason:
        hover += f"<br>{reason}"
    return _Row(label, value, low, high, direction, hover)


def _rows(metric: Mapping[str, Any], relative: bool, interval: str) -> list[_Row]:
    cuped = metric.get("cuped") or {}
    adjusted = {c.get("variant"): c for c in cuped.get("comparisons") or []}
    rows: list[_Row] = []
    for comparison in metric.get("comparisons") or []:
        variant = str(comparison.get("variant"))
        rows.append(_row(comparison, variant, relative, interval))
        if variant in adjusted:
            rows.append(_row(adjusted[variant], f"{variant} (CUPED)", relative, interval))
    return rows


def margin_line(metric: Mapping[str, Any], relative: bool) -> float | None:
    """Where a guardrail's tolerated harm sits on the chart's axis, or None.

    The harm is a fall of ``margin`` when higher is better, a rise otherwise; a
    relative margin is drawn on a relative axis and an absolute one on an
    absolute axis only.
    """
    margin = _finite(metric.get("margin"))
    if metric.get("role") != "guardrail" or margin is None or margin == 0:
        return None
    if (metric.get("margin_type") or "relative") != ("relative" if relative else "absolute"):
        return None
    return -margin if metric.get("higher_is_better", True) else margin


def lift_figure(
    name: str, metric: Mapping[str, Any], *, alpha: float = 0.05, method: str = "fixed"
) -> go.Figure:
    """The forest plot of one metric's comparisons against the control.

    Args:
        name: the metric's name (used in hover text and the figure's meta).
        metric: one entry of ``report["metrics"]``.
        alpha: the report's alpha (the interval is at ``1 − alpha``).
        method: the report's method, which names the interval.

    Returns:
        A figure with one trace per row (so each carries its own colour), a line
        at zero and, for guardrails, the margin line.
    """
    relative = is_relative_scale(metric)
    interval = interval_name(method, alpha)
    rows = _rows(metric, relative, interval)
    fig = go.Figure()
    for row in rows:
        color = COLORS.get(row.direction, COLORS["undefined"])
        error_x: dict[str, Any] = {"visible": False}
        if row.value is not None and row.low is not None and row.high is not None:
            error_x = {
                "type": "data",
                "symmetric": False,
                "array": [max(row.high - row.value, 0.0)],
                "arrayminus": [max(row.value - row.low, 0.0)],
                "color": color,
                "thickness": 2,
                "width": 6,
            }
        fig.add_trace(
            go.Scatter(
                x=[row.value if row.value is not None else 0.0],
                y=[row.label],
                mode="markers",
                marker={
                    "color": color if row.value is not None else "rgba(0,0,0,0)",
                    "size": 11,
                    "symbol": "diamond" if row.label.endswith("(CUPED)") else "circle",
                    "line": {"color": color, "width": 1},
                },
                error_x=error_x,
                name=row.label,
                hovertext=[row.hover],
                hoverinfo="text",
                showlegend=False,
            )
        )
    fig.add_vline(x=0, line={"color": "#24292f", "width": 1})
    margin = margin_line(metric, relative)
    if margin is not None:
        fig.add_vline(
            x=margin,
            line={"color": MARGIN_COLOR, "width": 1.5, "dash": "dash"},
            annotation={"text": "margin", "font": {"color": MARGIN_COLOR, "size": 11}},
            annotation_position="top left" if margin < 0 else "top right",
        )
    axis_title = f"{'relative lift' if relative else 'difference'} vs control ({interval})"
    fig.update_layout(
        template="none",
        height=BASE_HEIGHT + ROW_HEIGHT * max(len(rows), 1),
        margin={"l": 150, "r": 24, "t": 28, "b": 52},
        font={"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 13},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        meta={"metric": name, "scale": "relative" if relative else "absolute"},
        xaxis={
            "title": {"text": axis_title},
            "tickformat": ".1%" if relative else "",
            "zeroline": False,
            "gridcolor": "#eaeef2",
        },
        yaxis={"autorange": "reversed", "automargin": True, "gridcolor": "#f6f8fa"},
    )
    return fig


def report_figures(report: Mapping[str, Any]) -> dict[str, go.Figure]:
    """One lift figure per metric that has comparisons, keyed by metric name."""
    alpha = float(report.get("alpha", 0.05))
    method = str(report.get("method", "fixed"))
    return {
        name: lift_figure(name, metric, alpha=alpha, method=method)
        for name, metric in (report.get("metrics") or {}).items()
        if metric.get("comparisons")
    }
