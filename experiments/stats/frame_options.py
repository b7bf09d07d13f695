"""The options of ``analyze_frame`` and ``xp analyze-file``, parsed and checked (no pandas).

Every check raises ``ValueError`` with a one-line message naming the bad input,
which the CLI prints as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from experiments.domain import AnalysisMethod, Correction, MarginType, MetricKind

_KINDS = {"conversion", "count", "mean", "ratio"}
_SPEC_HELP = "expected conversion:COL, count:COL, mean:COL or ratio:NUM/DEN"
_ML_KINDS = sorted(k.value for k in MetricKind if k.is_ml)


def parse_metric_spec(name: str, spec: str) -> tuple[MetricKind, list[str]]:
    """Split ``kind:COL`` or ``ratio:NUM/DEN`` into the kind and its column names."""
    kind, sep, cols = str(spec).partition(":")
    columns = cols.split("/") if sep else []
    expected = 2 if kind == "ratio" else 1
    if kind not in _KINDS or len(columns) != expected or not all(c.strip() for c in columns):
        raise ValueError(f"metric '{name}': bad SPEC '{spec}' ({_SPEC_HELP})")
    return MetricKind(kind), [c.strip() for c in columns]


def parse_ml_metrics(ml_metrics: Mapping[str, str] | None) -> dict[str, MetricKind]:
    """``{"ranker_auc": "auc"}`` → metric name → ML kind."""
    if ml_metrics is None:
        return {}
    if not isinstance(ml_metrics, Mapping):
        raise ValueError("ml_metrics must map metric names to ML kinds such as 'auc'")
    out = {}
    for name, kind in ml_metrics.items():
        if str(kind) not in _ML_KINDS:
            raise ValueError(
                f"ML metric '{name}': unknown kind '{kind}' (expected {', '.join(_ML_KINDS)})"
            )
        out[str(name)] = MetricKind(str(kind))
    return out


def parse_guardrails(
    guardrails: Mapping[str, Any] | None, metrics: Sequence[str], primary: str
) -> dict[str, tuple[float | None, MarginType]]:
    """Guardrail name → (margin or None for harm-only, margin type).

    Accepts ``{"revenue": 0.02}`` (relative margin), ``{"revenue": None}``
    (harm-only) and ``{"revenue": {"margin": 1.5, "margin_type": "absolute"}}``.
    """
    if guardrails is None:
        return {}
    if not isinstance(guardrails, Mapping):
        raise ValueError("guardrails must map metric names to a margin, None or a dict")
    out: dict[str, tuple[float | None, MarginType]] = {}
    for name, value in guardrails.items():
        if name not in metrics:
            raise ValueError(f"guardrail '{name}' is not one of the metrics")
        if name == primary:
            raise ValueError(f"guardrail '{name}' is the primary metric")
        margin_type = MarginType.RELATIVE
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"margin", "margin_type"})
            if unknown:
                raise ValueError(f"guardrail '{name}': unknown key '{unknown[0]}'")
            kind = value.get("margin_type", "relative")
            if kind not in {t.value for t in MarginType}:
                raise ValueError(
                    f"guardrail '{name}': margin_type must be relative or absolute, got '{kind}'"
                )
            margin_type, value = MarginType(kind), value.get("margin")
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value >= 0)
        ):
            raise ValueError(f"guardrail '{name}': margin must be a number >= 0 or None")
        out[name] = (None if value is None else float(value), margin_type)
    return out


def parse_directions(
    higher_is_better: Mapping[str, bool] | None, names: Sequence[str]
) -> dict[str, bool]:
    """Metric name → whether higher is better (default True; ML losses set their own)."""
    if higher_is_better is None:
        return {}
    if not isinstance(higher_is_better, Mapping):
        raise ValueError("higher_is_better must map metric names to True or False")
    out = {}
    for name, value in higher_is_better.items():
        if name not in names:
            raise ValueError(f"higher_is_better given for unknown metric '{name}'")
        if not isinstance(value, bool):
            raise ValueError(f"higher_is_better['{name}'] must be True or False")
        out[name] = value
    return out


def check_options(
    *,
    alpha: float,
    method: str,
    planned_n: int | None,
    mde: float,
    power: float,
    prior_sd: float | None,
    correction: str,
    looks: Sequence[int] | None,
) -> tuple[AnalysisMethod, Correction, tuple[int, ...] | None]:
    """Check the scalar options; return the method, the correction and the looks."""
    methods = ", ".join(m.value for m in AnalysisMethod)
    if method not in {m.value for m in AnalysisMethod}:
        raise ValueError(f"unknown method '{method}' (expected {methods})")
    if correction not in {c.value for c in Correction}:
        raise ValueError(f"unknown correction '{correction}' (expected holm, bonferroni, bh, none)")
    for name, value in (("alpha", alpha), ("power", power)):
        if isinstance(value, bool) or not (isinstance(value, int | float) and 0.0 < value < 1.0):
            raise ValueError(f"{name} must be in (0, 1), got {value}")
    if (
        isinstance(mde, bool)
        or not isinstance(mde, int | float)
        or not math.isfinite(mde)
        or mde == 0
    ):
        raise ValueError(f"mde must be a non-zero number, got {mde}")
    if planned_n is not None and (
        isinstance(planned_n, bool) or not isinstance(planned_n, int) or planned_n <= 0
    ):
        raise ValueError(f"planned_n must be a positive integer, got {planned_n}")
    if prior_sd is not None and (
        isinstance(prior_sd, bool)
        or not isinstance(prior_sd, int | float)
        or not (math.isfinite(prior_sd) and prior_sd >= 0)
    ):
        raise ValueError(f"prior_sd must be a number >= 0 or None, got {prior_sd}")
    parsed = None
    if looks is not None:
        if isinstance(looks, str | bytes) or not isinstance(looks, Sequence):
            raise ValueError("looks must be a list of total units at each earlier look")
        bad = [n for n in looks if isinstance(n, bool) or not isinstance(n, int) or n <= 0]
        if bad:
            raise ValueError(f"looks must be positive integers (units), got {bad[0]}")
        parsed = tuple(int(n) for n in looks)
    return AnalysisMethod(method), Correction(correction), parsed
