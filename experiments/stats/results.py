"""Frozen result objects of an analysis and their JSON form (DESIGN.md "Report JSON").

:func:`report_to_dict` produces exactly the contract schema, plus extra keys
that never replace a contract one: ``std_err``, ``reason``, ``newcombe_ci``
(conversions), ``guardrail_status`` (guardrails), ``chance_to_beat_control`` and
``expected_loss`` (Bayesian), ``std_dev`` / ``ci`` per variant, ``units_needed``, ``planned_n``.
Undefined numbers are ``None`` (JSON null), never NaN.

The state later looks need (:class:`~experiments.stats.spec.AnalysisHistory`) is
``Report.history``; it is not part of the report JSON: the service stores it with
:func:`~experiments.stats.spec.history_to_dict`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from experiments.domain import (
    AnalysisMethod,
    Correction,
    DecisionStatus,
    MarginType,
    MetricKind,
    MetricRole,
)
from experiments.stats.spec import AnalysisHistory, Look, history_from_dict, history_to_dict

__all__ = [
    "Comparison",
    "CupedResult",
    "Decision",
    "MetricResult",
    "Report",
    "SrmResult",
    "VariantSummary",
    "history_from_dict",
    "history_to_dict",
    "report_to_dict",
]

Interval = tuple[float, float]


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio-mismatch check: observed vs expected units per variant.

    ``chi2`` / ``p_value`` are the chi-square test of this look;
    ``p_value_sequential`` the always-valid p-value of the sequential multinomial
    test (None when the analysis is not sequential); ``detected`` uses the latter
    when it is defined.
    """

    observed: Mapping[str, int]
    expected: Mapping[str, float]
    chi2: float | None
    p_value: float | None
    detected: bool
    p_value_sequential: float | None = None


@dataclass(frozen=True)
class VariantSummary:
    """One variant's estimate of one metric.

    Attributes:
        n: units (business metrics) or predictions with a label (ML metrics).
        mean: conversion rate, mean per unit, ratio Σnum/Σden, or the ML estimate.
        std_dev: per-unit standard deviation (business metrics; ratios: of the
            linearised value).
        std_err: standard error of ``mean``.
        ci: ``1 − alpha`` interval of ``mean`` (ML metrics).
        reason: why ``mean`` is undefined.
    """

    n: int
    mean: float | None
    std_dev: float | None = None
    std_err: float | None = None
    ci: Interval | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Comparison:
    """Treatment − control on one metric, after correction (DESIGN.md comparison object)."""

    variant: str
    abs_diff: float | None
    abs_ci: Interval | None
    rel_lift: float | None
    rel_ci: Interval | None
    p_value: float | None
    p_value_adjusted: float | None
    significant: bool
    direction: str
    std_err: float | None = None
    newcombe_ci: Interval | None = None
    reason: str | None = None
    guardrail_status: str | None = None
    chance_to_beat_control: float | None = None
    expected_loss: float | None = None


@dataclass(frozen=True)
class CupedResult:
    """CUPED fit of a metric and its comparisons on adjusted values."""

    theta: tuple[float, ...]
    variance_reduction: float | None
    comparisons: tuple[Comparison, ...]
    reason: str | None = None


@dataclass(frozen=True)
class MetricResult:
    """Everything the report says about one metric."""

    name: str
    kind: MetricKind
    role: MetricRole
    correction: Correction
    higher_is_better: bool
    variants: Mapping[str, VariantSummary]
    comparisons: tuple[Comparison, ...]
    cuped: CupedResult | None = None
    margin: float | None = None
    margin_type: MarginType | None = None

    @property
    def decision_comparisons(self) -> tuple[Comparison, ...]:
        """The comparisons a decision uses: CUPED-adjusted when available."""
        return self.cuped.comparisons if self.cuped is not None else self.comparisons


@dataclass(frozen=True)
class Decision:
    """The verdict of an analysis and the rule that produced it (DESIGN.md "Decision").

    Attributes:
        status: the verdict.
        variant: the variant shipped or rolled back.
        reasons: why, in words.
        ml_divergence: an ML metric significantly favours a variant the primary
            finds significantly worse (DESIGN.md "ML divergence").
        units_needed: units still needed to reach ``planned_n`` (keep_running).
        rule: which rule decided, in words.
        planned_n: the planned total sample size the rule used.
        ml_note: "ML better, business not shown" notes, or None.
        decided_at_n: total units when a kept verdict was taken, or None.
    """

    status: DecisionStatus
    variant: str | None
    reasons: tuple[str, ...]
    ml_divergence: bool
    units_needed: int | None = None
    rule: str = ""
    planned_n: int | None = None
    ml_note: str | None = None
    decided_at_n: int | None = None


@dataclass(frozen=True)
class Report:
    """A complete analysis of one experiment."""

    alpha: float
    method: AnalysisMethod
    control: str
    srm: SrmResult
    metrics: Mapping[str, MetricResult]
    decision: Decision
    planned_n: int | None = None
    history: AnalysisHistory = field(default_factory=AnalysisHistory)


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _pair(value: Interval | None) -> list[float] | None:
    if value is None:
        return None
    low, high = _num(value[0]), _num(value[1])
    return None if low is None or high is None else [low, high]


def comparison_to_dict(
    c: Comparison, *, kind: MetricKind, role: MetricRole, method: AnalysisMethod
) -> dict[str, Any]:
    """JSON form of one comparison (contract keys first, then the extras that apply)."""
    out: dict[str, Any] = {
        "variant": c.variant,
        "abs_diff": _num(c.abs_diff),
        "abs_ci": _pair(c.abs_ci),
        "rel_lift": _num(c.rel_lift),
        "rel_ci": _pair(c.rel_ci),
        "p_value": _num(c.p_value),
        "p_value_adjusted": _num(c.p_value_adjusted),
        "significant": bool(c.significant),
        "direction": c.direction,
        "std_err": _num(c.std_err),
        "reason": c.reason,
    }
    if kind is MetricKind.CONVERSION:
        out["newcombe_ci"] = _pair(c.newcombe_ci)
    if role is MetricRole.GUARDRAIL:
        out["guardrail_status"] = c.guardrail_status
    if method is AnalysisMethod.BAYESIAN and not kind.is_ml:
        out["chance_to_beat_control"] = _num(c.chance_to_beat_control)
        out["expected_loss"] = _num(c.expected_loss)
    return out


def _variant_to_dict(v: VariantSummary, kind: MetricKind) -> dict[str, Any]:
    out: dict[str, Any] = {"n": int(v.n), "mean": _num(v.mean)}
    if kind.is_ml:
        out["estimate"] = _num(v.mean)
        out["ci"] = _pair(v.ci)
    else:
        out["std_dev"] = _num(v.std_dev)
    out["std_err"] = _num(v.std_err)
    if v.reason is not None:
        out["reason"] = v.reason
    return out


def metric_to_dict(m: MetricResult, method: AnalysisMethod) -> dict[str, Any]:
    """JSON form of one metric's results."""

    def comparisons(items: tuple[Comparison, ...]) -> list[dict[str, Any]]:
        return [comparison_to_dict(c, kind=m.kind, role=m.role, method=method) for c in items]

    cuped: dict[str, Any] | None = None
    if m.cuped is not None:
        theta: Any = [_num(t) for t in m.cuped.theta]
        cuped = {
            "theta": theta[0] if len(theta) == 1 else theta,
            "variance_reduction": _num(m.cuped.variance_reduction),
            "comparisons": comparisons(m.cuped.comparisons),
            "reason": m.cuped.reason,
        }
    out: dict[str, Any] = {
        "kind": str(m.kind),
        "role": str(m.role),
        "correction": str(m.correction),
        "higher_is_better": m.higher_is_better,
        "variants": {name: _variant_to_dict(v, m.kind) for name, v in m.variants.items()},
        "comparisons": comparisons(m.comparisons),
        "cuped": cuped,
    }
    if m.role is MetricRole.GUARDRAIL:
        out["margin"] = _num(m.margin)
        out["margin_type"] = str(m.margin_type) if m.margin_type is not None else None
    return out


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready data (DESIGN.md "Report JSON", contract)."""
    srm = report.srm
    d = report.decision
    out: dict[str, Any] = {
        "alpha": float(report.alpha),
        "method": str(report.method),
        "control": report.control,
        "srm": {
            "observed": {k: int(v) for k, v in srm.observed.items()},
            "expected": {k: float(v) for k, v in srm.expected.items()},
            "chi2": _num(srm.chi2),
            "p_value": _num(srm.p_value),
            "p_value_sequential": _num(srm.p_value_sequential),
            "detected": bool(srm.detected),
        },
        "metrics": {name: metric_to_dict(m, report.method) for name, m in report.metrics.items()},
        "decision": {
            "status": str(d.status),
            "variant": d.variant,
            "reasons": list(d.reasons),
            "ml_divergence": bool(d.ml_divergence),
            "rule": d.rule,
            "planned_n": d.planned_n,
            "ml_note": d.ml_note,
            "decided_at_n": d.decided_at_n,
            "units_needed": d.units_needed,
        },
        "planned_n": report.planned_n,
    }
    if report.method is AnalysisMethod.GROUP_SEQUENTIAL:
        out["looks"] = [look_to_dict(look) for look in report.history.looks]
    return out


def look_to_dict(look: Look) -> dict[str, Any]:
    """JSON form of one look (``boundary_z`` null when no alpha was left to spend)."""
    return {
        "n": int(look.n),
        "information": float(look.information),
        "boundary_z": _num(look.boundary_z),
    }
