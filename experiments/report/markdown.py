"""Render a report dict (the report JSON schema) as Markdown for people.

Pure: a dict in, a string out. Numbers are formatted for reading: lifts and
rates as percentages, four significant digits elsewhere, ``p < 0.001`` for tiny
p-values, an em dash for undefined values. Used by ``xp analyze-file --format
markdown`` and ``xp report --format markdown``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

DASH = "—"


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return (
        f"{float(value):,.{digits}g}" if abs(float(value)) >= 1e-4 or value == 0 else f"{value:.2e}"
    )


def _pct(value: Any, signed: bool = False) -> str:
    if value is None or not math.isfinite(float(value)):
        return DASH
    return f"{float(value):+.2%}" if signed else f"{float(value):.2%}"


def _p(value: Any) -> str:
    if value is None:
        return DASH
    return "< 0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def _interval(pair: Sequence[float] | None, as_pct: bool) -> str:
    if not pair:
        return DASH
    if as_pct:
        return f"[{_pct(pair[0], signed=True)}, {_pct(pair[1], signed=True)}]"
    return f"[{_num(pair[0])}, {_num(pair[1])}]"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _comparison_rows(
    comparisons: Sequence[Mapping[str, Any]], *, rate: bool, bayesian: bool
) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "abs diff", "CI", "rel lift", "rel CI", "p", "p adj", "result"]
    extra = any("guardrail_status" in c for c in comparisons)
    if bayesian:
        header += ["P(beat control)", "expected loss"]
    if extra:
        header.append("guardrail")
    rows = []
    for c in comparisons:
        diff = _pct(c.get("abs_diff"), signed=True) if rate else _num(c.get("abs_diff"))
        row = [
            f"`{c['variant']}`",
            diff,
            _interval(c.get("abs_ci"), rate),
            _pct(c.get("rel_lift"), signed=True),
            _interval(c.get("rel_ci"), True),
            _p(c.get("p_value")),
            _p(c.get("p_value_adjusted")),
            f"**{c['direction']}**" if c.get("significant") else str(c.get("direction")),
        ]
        if bayesian:
            row += [_pct(c.get("chance_to_beat_control")), _pct(c.get("expected_loss"))]
        if extra:
            row.append(str(c.get("guardrail_status") or DASH))
        rows.append(row)
    return header, rows


def _metric(name: str, m: Mapping[str, Any], method: str) -> list[str]:
    kind = str(m.get("kind"))
    rate = kind == "conversion"
    ml = kind not in {"conversion", "count", "mean", "ratio"}
    title = f"### {name} ({kind}, {m.get('role')}"
    title += (
        f", correction {m['correction']})" if m.get("correction") not in (None, "none") else ")"
    )
    lines = [title, ""]
    variant_rows = [
        [f"`{v}`", _num(s.get("n")), _pct(s.get("mean")) if rate else _num(s.get("mean"))]
        + ([_interval(s.get("ci"), False)] if ml else [])
        for v, s in m.get("variants", {}).items()
    ]
    lines += _table(["variant", "n", "estimate"] + (["CI"] if ml else []), variant_rows)
    comparisons = m.get("comparisons") or []
    if comparisons:
        bayesian = method == "bayesian" and not ml
        header, rows = _comparison_rows(comparisons, rate=rate, bayesian=bayesian)
        lines += ["", *_table(header, rows)]
        reasons = [f"- `{c['variant']}`: {c['reason']}" for c in comparisons if c.get("reason")]
        lines += ["", *reasons] if reasons else []
    cuped = m.get("cuped")
    if cuped:
        theta = cuped.get("theta")
        theta_text = ", ".join(_num(t) for t in theta) if isinstance(theta, list) else _num(theta)
        lines += [
            "",
            f"CUPED (θ = {theta_text}, variance reduction "
            f"{_pct(cuped.get('variance_reduction'))}), on adjusted values:",
            "",
        ]
        header, rows = _comparison_rows(
            cuped.get("comparisons") or [], rate=rate, bayesian=method == "bayesian"
        )
        lines += _table(header, rows)
    return [*lines, ""]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as a Markdown document (decision, sample ratio, one section per metric)."""
    decision = report.get("decision", {})
    status = str(decision.get("status", "unknown")).replace("_", " ").upper()
    variant = decision.get("variant")
    alpha = float(report.get("alpha", 0.05))
    lines = [
        "# Experiment report",
        "",
        f"**Decision: {status}**" + (f" — variant `{variant}`" if variant else ""),
        "",
        *(f"- {r}" for r in decision.get("reasons", [])),
    ]
    if decision.get("ml_divergence"):
        lines.append("- ML metrics disagree with the primary business metric (ml_divergence)")
    lines += [
        "",
        f"Method: {report.get('method')} · alpha {_num(alpha)} "
        f"(intervals at {1 - alpha:.0%}) · control `{report.get('control')}`",
        "",
    ]
    srm = report.get("srm", {})
    verdict = "**mismatch detected**" if srm.get("detected") else "no mismatch"
    lines += [f"## Sample ratio (p = {_p(srm.get('p_value'))}: {verdict})", ""]
    observed, expected = srm.get("observed", {}), srm.get("expected", {})
    lines += _table(
        ["variant", "units", "expected"],
        [[f"`{v}`", _num(observed[v]), _num(expected.get(v))] for v in observed],
    )
    lines += ["", "## Metrics", ""]
    for name, m in report.get("metrics", {}).items():
        lines += _metric(name, m, str(report.get("method")))
    return "\n".join(lines).rstrip() + "\n"
