"""Report dict (DESIGN.md "Report JSON") → plotly figures. Pure: no Flask, no database.

The chart of a metric is a forest plot: one row per treatment, the point is the
lift against the control and the horizontal bar its interval, with a line at
zero (no change) and, for a guardrail, a dashed line at the tolerated harm. A
business metric is drawn on the relative lift (``rel_lift`` / ``rel_ci``); an ML
metric, or a business metric whose relative lift is undefined (control mean 0),
on the absolute difference (``abs_diff`` / ``abs_ci``). When CUPED adjusted the
metric, each treatment gets a second row with the adjusted estimate, which is
the one the decision uses.

When the report carries ``timeseries`` (see ``experiments/service/timeseries.py``),
:func:`lift_over_time_figure` draws the cumulative lift of the primary metric at
each day's end with its interval as a band, and :func:`traffic_figure` the new
units per variant per day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from experiments.report.format import (
    format_count,
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


# ------------------------------------------------------------------ over time

VARIANT_COLORS = ("#57606a", "#0969da", "#8250df", "#bf3989", "#1a7f37", "#bc4c00", "#0a3069")
_LAYOUT_FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 13}


def _timeseries(report: Mapping[str, Any]) -> Mapping[str, Any] | None:
    series = report.get("timeseries")
    if not isinstance(series, Mapping) or not series.get("days"):
        return None
    return series


def _variant_colors(report: Mapping[str, Any], series: Mapping[str, Any]) -> dict[str, str]:
    """The control in grey, then one colour per treatment, in the document's order."""
    control = series.get("control") or report.get("control")
    others = [v for v in series.get("cumulative_units") or {} if v != control]
    for per_variant in (series.get("metrics") or {}).values():
        others += [v for v in per_variant if v not in others and v != control]
    colors = {str(control): VARIANT_COLORS[0]}
    for i, variant in enumerate(others):
        colors[variant] = VARIANT_COLORS[1 + i % (len(VARIANT_COLORS) - 1)]
    return colors


def _rgba(color: str, opacity: float) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{opacity})"


def _band_segments(
    days: Sequence[str], intervals: Sequence[Any]
) -> list[tuple[list[str], list[float], list[float]]]:
    """Runs of consecutive days whose interval is defined: (days, lows, highs)."""
    segments: list[tuple[list[str], list[float], list[float]]] = []
    current: tuple[list[str], list[float], list[float]] | None = None
    for day, pair in zip(days, intervals, strict=False):
        low, high = _bounds(pair)
        if low is None or high is None:
            current = None
            continue
        if current is None:
            current = ([], [], [])
            segments.append(current)
        current[0].append(day)
        current[1].append(low)
        current[2].append(high)
    return segments


def _primary_name(report: Mapping[str, Any], series: Mapping[str, Any]) -> str | None:
    name = series.get("primary")
    if name:
        return str(name)
    for metric_name, metric in (report.get("metrics") or {}).items():
        if metric.get("role") == "primary":
            return str(metric_name)
    return None


DAY_MS = 86_400_000
# A day's interval wider than this many times the last day's is "not yet informative":
# the axis is fitted to the other days, and the wider bands are cut at its edges.
WIDE_BAND = 3.0
CAPTION_FONT = {"size": 11, "color": "#57606a"}


def day_axis(days: Sequence[str]) -> dict[str, Any]:
    """A date axis in whole days, readable from the first one.

    Ticks fall on days (never hours or milliseconds, even with one day of
    data), at most about ten of them, and the range runs half a day past
    the first and last days so that bars and points are not cut.
    """
    from datetime import date, timedelta

    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    step = max(1, math.ceil(len(days) / 10))
    return {
        "type": "date",
        "tickformat": "%b %-d",
        "hoverformat": "%Y-%m-%d",
        "tick0": days[0],
        "dtick": step * DAY_MS,
        "range": [f"{(first - timedelta(days=1)).isoformat()}T12:00:00", f"{last}T12:00:00"],
        "gridcolor": "#eaeef2",
    }


def informative_range(
    estimates: Sequence[float | None], bands: Sequence[tuple[float | None, float | None]]
) -> tuple[tuple[float, float] | None, bool]:
    """The y range that shows every estimate and every informative band.

    Also whether some band (an early, wide one) is cut by that range. A band is
    informative when it is at most :data:`WIDE_BAND` times as wide as the last
    defined band (the narrowest, with the most units). Returns ``(None, False)``
    when nothing is defined or no band is too wide (the axis then fits itself).
    """
    defined = [(lo, hi) for lo, hi in bands if lo is not None and hi is not None]
    points = [v for v in estimates if v is not None]
    if not defined or not points:
        return None, False
    reference = defined[-1][1] - defined[-1][0]
    if reference <= 0:
        return None, False
    kept = [(lo, hi) for lo, hi in defined if hi - lo <= WIDE_BAND * reference]
    if len(kept) == len(defined):
        return None, False
    low = min([*points, 0.0, *(lo for lo, _ in kept)])
    high = max([*points, 0.0, *(hi for _, hi in kept)])
    pad = 0.08 * (high - low or abs(high) or 1.0)
    return (low - pad, high + pad), True


def lift_over_time_figure(report: Mapping[str, Any], metric: str | None = None) -> go.Figure | None:
    """The cumulative lift of a metric (default: the primary) at each day's end.

    One line per treatment with its interval as a shaded band (the always-valid
    interval under the sequential method, the credible interval under the
    Bayesian one), read from ``report["timeseries"]``; relative lift when it is
    defined on some day, else the absolute difference.

    Returns:
        The figure, or None when the report has no time series for the metric.
    """
    series = _timeseries(report)
    if series is None:
        return None
    name = metric or _primary_name(report, series)
    per_variant: Mapping[str, Any] = (series.get("metrics") or {}).get(name) or {}
    if not name or not per_variant:
        return None
    days = [str(d) for d in series["days"]]
    relative = any(
        _finite(v) is not None for s in per_variant.values() for v in s.get("rel_lift") or []
    )
    key, ci_key = ("rel_lift", "rel_ci") if relative else ("abs_diff", "abs_ci")
    interval = interval_name(str(report.get("method", "fixed")), float(report.get("alpha", 0.05)))
    colors = _variant_colors(report, series)
    fig = go.Figure()
    all_estimates: list[float | None] = []
    all_bands: list[tuple[float | None, float | None]] = []
    for variant, values in per_variant.items():
        color = colors.get(variant, VARIANT_COLORS[1])
        all_estimates += [_finite(v) for v in values.get(key) or []]
        all_bands += [_bounds(pair) for pair in values.get(ci_key) or []]
        segments = _band_segments(days, values.get(ci_key) or [])
        for i, (seg_days, lows, highs) in enumerate(segments):
            # A band of one day has no width: draw it as a vertical bar instead.
            lone = len(seg_days) == 1
            fig.add_trace(
                go.Scatter(
                    x=seg_days + seg_days[::-1],
                    y=highs + lows[::-1],
                    fill="toself",
                    fillcolor=_rgba(color, 0.16),
                    line={"width": 6 if lone else 0, "color": _rgba(color, 0.3)},
                    mode="lines",
                    hoverinfo="skip",
                    showlegend=i == 0,
                    legendgroup=variant,
                    name=f"{variant}: {interval}",
                    meta={"role": "band", "variant": variant},
                )
            )
        estimates = [_finite(v) for v in values.get(key) or []]
        cis = list(values.get(ci_key) or [])
        hover = []
        for day, value, pair in zip(days, estimates, cis + [None] * len(days), strict=False):
            shown = format_percent(value, signed=True) if relative else format_number(value, 4)
            shown_ci = (
                format_interval(pair, percent=True) if relative else format_interval(pair, digits=4)
            )
            hover.append(f"<b>{variant}</b> · {day}<br>{shown}<br>{interval} {shown_ci}")
        fig.add_trace(
            go.Scatter(
                x=days,
                y=estimates,
                mode="lines+markers",
                line={"color": color, "width": 2},
                marker={"color": color, "size": 6},
                name=variant,
                legendgroup=variant,
                hovertext=hover,
                hoverinfo="text",
                meta={"role": "estimate", "variant": variant},
            )
        )
    fig.add_hline(y=0, line={"color": "#24292f", "width": 1})
    what = "relative lift" if relative else "difference"
    y_range, clipped = informative_range(all_estimates, all_bands)
    caption = f"Cumulative {what} of {name} at each day's end (UTC), with its {interval} as a band."
    if clipped:
        caption += (
            " The first days' intervals, from few units, are wider than the axis: they are cut"
            " at its edges (hover a point for its whole interval)."
        )
    yaxis: dict[str, Any] = {
        "title": {"text": f"{what} ({interval})", "font": {"size": 12}},
        "tickformat": ".1%" if relative else "",
        "zeroline": False,
        "gridcolor": "#eaeef2",
    }
    if y_range is not None:
        yaxis["range"] = list(y_range)
    fig.add_annotation(
        text=caption,
        xref="paper",
        yref="paper",
        x=0,
        y=-0.3,
        xanchor="left",
        yanchor="top",
        showarrow=False,
        align="left",
        font=CAPTION_FONT,
    )
    fig.update_layout(
        template="none",
        height=360,
        margin={"l": 64, "r": 24, "t": 28, "b": 96},
        font=_LAYOUT_FONT,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        meta={
            "metric": name,
            "scale": "relative" if relative else "absolute",
            "caption": caption,
            "clipped": clipped,
        },
        legend={"orientation": "h", "y": 1.12, "x": 0},
        xaxis={**day_axis(days), "title": {"text": "day (cumulative to its end, UTC)"}},
        yaxis=yaxis,
    )
    return fig


def traffic_figure(report: Mapping[str, Any]) -> go.Figure | None:
    """New units exposed per variant per day (bars), from ``report["timeseries"]``.

    The hover text also gives the cumulative count. Returns None without a time series.
    """
    series = _timeseries(report)
    if series is None:
        return None
    days = [str(d) for d in series["days"]]
    step = int(series.get("step_days") or 1)
    cumulative: Mapping[str, Any] = series.get("cumulative_units") or {}
    colors = _variant_colors(report, series)
    fig = go.Figure()
    per_variant_units: Mapping[str, Any] = series.get("units") or {}
    # Bars on a date axis need an explicit width: with one day of data plotly
    # would otherwise draw them one millisecond wide.
    width = 0.8 * DAY_MS * step / max(len(per_variant_units), 1)
    for index, (variant, counts) in enumerate(per_variant_units.items()):
        totals = list(cumulative.get(variant) or [])
        hover = [
            f"<b>{variant}</b> · {day}<br>{format_count(n)} new"
            + (f" · {format_count(totals[i])} in total" if i < len(totals) else "")
            for i, (day, n) in enumerate(zip(days, counts, strict=False))
        ]
        fig.add_trace(
            go.Bar(
                x=days,
                y=list(counts),
                name=variant,
                marker={"color": colors.get(variant, VARIANT_COLORS[1])},
                width=[width] * len(days),
                # Side by side around the day (explicit widths need explicit offsets).
                offset=-0.4 * DAY_MS * step + index * width,
                hovertext=hover,
                hoverinfo="text",
            )
        )
    period = "day" if step == 1 else f"{step} days"
    fig.update_layout(
        template="none",
        barmode="group",
        height=280,
        margin={"l": 64, "r": 24, "t": 28, "b": 48},
        font=_LAYOUT_FONT,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        meta={"chart": "traffic", "step_days": step},
        legend={"orientation": "h", "y": 1.14, "x": 0},
        xaxis={**day_axis(days), "title": {"text": "day (UTC)"}},
        yaxis={"title": {"text": f"new units per {period}"}, "gridcolor": "#eaeef2"},
    )
    return fig
