"""A report dict as HTML: the view model shared by the web page and the export.

:func:`report_context` turns a report (DESIGN.md "Report JSON", plus the
optional ``experiment`` header that stored snapshots carry) into plain, already
formatted values for the one report template, ``experiments/report/templates/report.html``.
The web UI renders that template inside its layout; :func:`render_report_html`
renders it inside a self-contained document (CSS, plotly.js and the chart data
inlined) for ``xp report --format html``, which opens without a network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from experiments.report.charts import lift_over_time_figure, report_figures, traffic_figure
from experiments.report.format import (
    format_count,
    format_interval,
    format_number,
    format_p_value,
    format_percent,
    format_points,
    interval_name,
)

DECISION_LABELS = {
    "ship": "Ship",
    "rollback": "Roll back",
    "keep_running": "Keep running",
    "no_effect": "No effect",
    "invalid": "Invalid: fix the data first",
}
GUARDRAIL_LABELS = {
    "non_inferior": "non-inferior",
    "inferior": "inferior",
    "inconclusive": "inconclusive",
}
SECTIONS = (
    ("primary", "Primary metric", "The business KPI that decides the experiment."),
    (
        "guardrail",
        "Guardrails",
        "Must not get worse beyond their margin: one-sided non-inferiority tests.",
    ),
    (
        "secondary",
        "Secondary metrics",
        "Exploratory: p-values adjusted with Benjamini–Hochberg; they do not decide.",
    ),
    (
        "ml",
        "ML metrics",
        "Model quality per variant, computed from each variant's own predictions."
        " Shown beside the business metrics; they never decide the winner.",
    ),
)
_ML_KINDS = frozenset({"auc", "log_loss", "brier", "accuracy", "calibration_error", "rmse", "mae"})
_ANCHOR = re.compile(r"[^a-z0-9_-]+")


def _anchor(name: str) -> str:
    return "metric-" + _ANCHOR.sub("-", name.lower()).strip("-")


def chart_json(figure: Any) -> Markup:
    r"""A figure as JSON that is safe inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` only occur inside JSON strings, where their ``\\uXXXX``
    escapes mean the same, so no ``</script>`` can end the element early.
    """
    text = figure.to_json()
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return Markup(text)  # escaped above: JSON, not HTML


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _estimate(value: Any, kind: str) -> str:
    return format_percent(value) if kind == "conversion" else format_number(value, 4)


def _difference(value: Any, kind: str) -> str:
    if kind == "conversion":
        return format_points(value)
    text = format_number(value, 4)
    return f"+{text}" if isinstance(value, int | float) and value > 0 else text


def _difference_ci(pair: Any, kind: str) -> str:
    if kind == "conversion" and pair and None not in pair:
        return f"[{format_points(pair[0])}, {format_points(pair[1])}]"
    return format_interval(pair, digits=4)


def _comparison(c: Mapping[str, Any], kind: str) -> dict[str, Any]:
    direction = str(c.get("direction") or "undefined")
    status = c.get("guardrail_status")
    return {
        "variant": c.get("variant"),
        "abs_diff": _difference(c.get("abs_diff"), kind),
        "abs_ci": _difference_ci(c.get("abs_ci"), kind),
        "rel_lift": format_percent(c.get("rel_lift"), signed=True),
        "rel_ci": format_interval(c.get("rel_ci"), percent=True),
        "p_value": format_p_value(c.get("p_value")),
        "p_value_adjusted": format_p_value(c.get("p_value_adjusted")),
        "direction": direction,
        "significant": bool(c.get("significant")),
        "guardrail_status": status,
        "guardrail_label": GUARDRAIL_LABELS.get(str(status), status),
        "chance_to_beat_control": format_percent(c.get("chance_to_beat_control"), digits=1),
        "expected_loss": format_percent(c.get("expected_loss"), digits=3),
        "reason": c.get("reason"),
    }


def _definition_text(definition: Mapping[str, Any]) -> str:
    kind = definition.get("kind")
    if kind == "ratio":
        text = f"Σ {definition.get('numerator')} / Σ {definition.get('denominator')}"
    elif definition.get("event"):
        text = f"event {definition['event']}"
    elif definition.get("model"):
        text = f"model {definition['model']}"
    else:
        text = ""
    extras = []
    if definition.get("window_days"):
        extras.append(f"window {format_number(definition['window_days'])} days")
    if definition.get("cap") is not None:
        cap = definition["cap"]
        extras.append(
            f"capped at p{format_number(cap['percentile'])}"
            if isinstance(cap, Mapping)
            else f"capped at {format_number(cap)}"
        )
    return " · ".join([t for t in [text, *extras] if t])


def _margin_text(metric: Mapping[str, Any]) -> str | None:
    if metric.get("role") != "guardrail" or metric.get("margin") is None:
        return None
    if (metric.get("margin_type") or "relative") == "relative":
        return f"{format_percent(metric['margin'])} relative"
    return f"{format_number(metric['margin'], 4)} absolute"


def _metric(
    name: str,
    metric: Mapping[str, Any],
    definition: Mapping[str, Any],
    method: str,
    charts: Mapping[str, Any],
) -> dict[str, Any]:
    kind = str(metric.get("kind"))
    is_ml = kind in _ML_KINDS
    cuped = metric.get("cuped")
    figure = charts.get(name)
    return {
        "name": name,
        "anchor": _anchor(name),
        "kind": kind,
        "role": metric.get("role"),
        "is_ml": is_ml,
        "definition": _definition_text(definition),
        "higher_is_better": metric.get("higher_is_better", True),
        "correction": metric.get("correction"),
        "margin": _margin_text(metric),
        "bayesian": method == "bayesian" and not is_ml,
        "guardrail": metric.get("role") == "guardrail",
        "estimates": [
            {
                "variant": variant,
                "n": format_count(summary.get("n")),
                "mean": _estimate(summary.get("mean"), kind),
                "ci": format_interval(summary.get("ci"), digits=4),
                "reason": summary.get("reason"),
            }
            for variant, summary in (metric.get("variants") or {}).items()
        ],
        "comparisons": [_comparison(c, kind) for c in metric.get("comparisons") or []],
        "cuped": (
            {
                "theta": ", ".join(format_number(t, 4) for t in _as_list(cuped.get("theta"))),
                "variance_reduction": format_percent(cuped.get("variance_reduction"), digits=1),
                "comparisons": [_comparison(c, kind) for c in cuped.get("comparisons") or []],
                "reason": cuped.get("reason"),
            }
            if cuped
            else None
        ),
        "chart": ({"id": f"chart-{_anchor(name)}", "json": chart_json(figure)} if figure else None),
    }


def _header(report: Mapping[str, Any]) -> dict[str, Any]:
    header = report.get("experiment") or {}
    dates = [
        ("Started", header.get("started_at")),
        ("Analysis window from", header.get("analysis_started_at")),
        ("Stopped", header.get("stopped_at")),
        ("Computed", header.get("computed_at")),
    ]
    return {
        "key": header.get("key"),
        "name": header.get("name") or header.get("key") or "Experiment report",
        "hypothesis": header.get("hypothesis"),
        "status": header.get("status"),
        "engine_version": header.get("engine_version"),
        "dates": [(label, _timestamp(value)) for label, value in dates if value],
    }


def _timestamp(value: str) -> str:
    # ISO 8601 from the snapshot; minutes are enough for people, and it stays UTC.
    return value.replace("T", " ")[:16] + " UTC" if len(value) >= 16 else value


def _srm(report: Mapping[str, Any], variants: Mapping[str, Any]) -> dict[str, Any]:
    srm = report.get("srm") or {}
    observed = srm.get("observed") or {}
    expected = srm.get("expected") or {}
    total = sum(observed.values()) or 0
    expected_total = sum(expected.values()) or 0

    def weight(variant: str) -> Any:
        configured = (variants.get(variant) or {}).get("weight")
        if configured is None and expected_total:
            # Reports from files carry no header: the expected split is the weights.
            return expected.get(variant, 0) / expected_total
        return configured

    return {
        "detected": bool(srm.get("detected")),
        "p_value": format_p_value(srm.get("p_value")),
        "chi2": format_number(srm.get("chi2"), 3),
        "total": format_count(total),
        "rows": [
            {
                "variant": variant,
                "units": format_count(units),
                "expected": format_count(expected.get(variant)),
                "share": format_percent(units / total if total else None, digits=1),
                "weight": format_percent(weight(variant), digits=1),
            }
            for variant, units in observed.items()
        ],
    }


OVER_TIME_NOTES = {
    "fixed": "A fixed-horizon interval is valid only at the planned end: a band that"
    " leaves zero on some day earlier is no reason to stop.",
    "sequential": "The always-valid interval holds at every look, so it may be watched"
    " daily: stopping when it leaves zero keeps the error rate at alpha.",
    "bayesian": "The band is the credible interval of the relative lift at each day's end.",
}


def _over_time(report: Mapping[str, Any], method: str) -> dict[str, Any] | None:
    """The over-time charts (cumulative lift, traffic), or None without a time series."""
    lift, traffic = lift_over_time_figure(report), traffic_figure(report)
    if lift is None and traffic is None:
        return None
    series = report.get("timeseries") or {}
    step = int(series.get("step_days") or 1)
    metric = lift.layout.meta["metric"] if lift is not None else None
    return {
        "metric": metric,
        "period": "day" if step == 1 else f"{step} days",
        "note": OVER_TIME_NOTES.get(method, ""),
        "lift": {"id": "chart-lift-over-time", "json": chart_json(lift)} if lift else None,
        "traffic": {"id": "chart-traffic", "json": chart_json(traffic)} if traffic else None,
    }


def report_context(report: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the report template shows, formatted for people.

    Args:
        report: a report dict in the report JSON schema; the ``experiment``
            header (name, hypothesis, status, dates, variants, metric
            definitions) is used when present.

    Returns:
        A dict for ``report.html``: ``header``, ``decision``, ``srm``, ``over_time``
        (the charts over time, or None when the report has no ``timeseries``),
        ``sections`` (primary, guardrails, secondary, ML; each with its metrics),
        ``variants``.
    """
    method = str(report.get("method", "fixed"))
    alpha = float(report.get("alpha", 0.05))
    header = report.get("experiment") or {}
    variants: Mapping[str, Any] = header.get("variants") or {}
    definitions: Mapping[str, Any] = header.get("metrics") or {}
    charts = report_figures(report)
    decision = report.get("decision") or {}
    status = str(decision.get("status", "unknown"))
    metrics = report.get("metrics") or {}
    sections = []
    for role, title, note in SECTIONS:
        items = [
            _metric(name, m, definitions.get(name) or {}, method, charts)
            for name, m in metrics.items()
            if m.get("role") == role
        ]
        if items:
            sections.append({"id": role, "title": title, "note": note, "metrics": items})
    return {
        "header": _header(report),
        "method": method,
        "alpha": f"{alpha:g}",
        "interval": interval_name(method, alpha),
        "control": report.get("control"),
        "planned_n": format_count(report.get("planned_n")) if report.get("planned_n") else None,
        "decision": {
            "status": status,
            "label": DECISION_LABELS.get(status, status),
            "variant": decision.get("variant"),
            "reasons": list(decision.get("reasons") or []),
            "units_needed": (
                format_count(decision["units_needed"]) if decision.get("units_needed") else None
            ),
            "ml_divergence": bool(decision.get("ml_divergence")),
        },
        "srm": _srm(report, variants),
        "over_time": _over_time(report, method),
        "sections": sections,
        "variants": [
            {
                "key": key,
                "weight": format_percent(v.get("weight"), digits=1),
                "is_control": bool(v.get("is_control")),
                "params": json.dumps(v.get("params") or {}, indent=2, sort_keys=True),
            }
            for key, v in variants.items()
        ],
    }


def template_loader() -> jinja2.BaseLoader:
    """The loader of xp's report templates (the web UI adds it to Flask's)."""
    return jinja2.PackageLoader("experiments.report", "templates")


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=template_loader(),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )


def plotly_js_path() -> Path:
    """Where the installed plotly package keeps its plotly.js bundle (served, never a CDN)."""
    return Path(str(resources.files("plotly").joinpath("package_data", "plotly.min.js")))


@cache
def plotly_js() -> str:
    """The plotly.js bundle shipped inside the installed plotly package."""
    return plotly_js_path().read_text("utf-8")


def render_report_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML document of a report: opens offline, charts included.

    CSS, the chart data and plotly.js are inlined, so the file needs no server
    and no network (plotly.js makes it about 4.5 MB).
    """
    context = report_context(report)
    # "</script" cannot occur in the minified bundle's code paths we inline, but
    # make sure: an early end tag would cut the script and show its text.
    script = plotly_js().replace("</script", "<\\/script")
    template = _environment().get_template("report_export.html")
    return template.render(plotly_js=Markup(script), **context)
