"""An experiment over time: cumulative comparisons and traffic per day, for the report charts.

:func:`build_timeseries` asks SQL for the cumulative moments at each day's end
(:func:`experiments.storage.timeseries.compute_daily_moments`, one query) and
runs the report's own engine (:func:`experiments.stats.analysis.analyze`) on
each day's numbers, so every point is what the report would have said at that
day's end: the fixed-horizon confidence interval, the always-valid interval of
the sequential method (valid at every look, so the chart may be watched daily),
or the Bayesian credible interval. The comparisons are the unadjusted ones (no
CUPED). The planned sample that tunes the sequential mixing is the one of the
last day, as in the report, so the last point equals the report's comparison.

The document is JSON-ready (``None`` where a value is undefined, never NaN)::

    {"days": ["2026-03-01", ...],          # the date each point closes
     "ends": ["2026-03-02T00:00:00+00:00", ...],   # the exact boundaries
     "step_days": 1, "control": "control", "primary": "converted",
     "units": {variant: [new units per day]},
     "cumulative_units": {variant: [units exposed so far]},
     "metrics": {name: {treatment: {"rel_lift": [...], "rel_ci": [[lo, hi] | None, ...],
                                    "abs_diff": [...], "abs_ci": [...]}}}}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from experiments.config import Settings
from experiments.domain import MetricRole
from experiments.stats.analysis import AnalysisData, AnalysisSpec, analyze
from experiments.stats.results import Comparison, Report
from experiments.stats.summaries import Moments
from experiments.storage.aggregates import MetricMoments, MetricQuery
from experiments.storage.models import Experiment
from experiments.storage.timeseries import DailyMoments, compute_daily_moments

_SERIES = ("rel_lift", "rel_ci", "abs_diff", "abs_ci")


def build_timeseries(
    session: Session,
    experiment: Experiment,
    *,
    spec: AnalysisSpec,
    metrics: Sequence[MetricQuery],
    settings: Settings,
    until: datetime,
    reference: MetricMoments | None = None,
) -> dict[str, Any]:
    """The cumulative comparisons and the traffic of an experiment at each day's end.

    Args:
        session: the database session (read only).
        experiment: the experiment (its id and current epoch are used).
        spec: the stats engine's view of the experiment (``analysis_spec_for``).
        metrics: its business metrics for SQL (``metric_queries``).
        settings: for the clock-skew tolerance.
        until: the analysis time (aware datetime), the last point.
        reference: the report's moments at ``until`` (their shifts and caps are
            reused), when the caller has them.

    Returns:
        The JSON-ready document described in the module docstring.
    """
    daily = compute_daily_moments(
        session,
        experiment_id=experiment.id,
        epoch=experiment.epoch,
        metrics=metrics,
        until=until,
        skew_seconds=settings.clock_skew_seconds,
        reference=reference,
    )
    return timeseries_document(spec, metrics, daily)


def timeseries_document(
    spec: AnalysisSpec, metrics: Sequence[MetricQuery], daily: DailyMoments
) -> dict[str, Any]:
    """The time-series document from the daily moments (pure: no database).

    Each day is analysed by :func:`~experiments.stats.analysis.analyze` with the
    experiment's business metrics (ML metrics have no daily data).
    """
    variants = list(spec.weights)
    widths = {q.name: len(q.events) for q in metrics}
    # The metrics asked for (the primary at least); ML metrics have no daily data.
    business = replace(
        spec, metrics=[m for m in spec.metrics if not m.kind.is_ml and m.name in widths]
    )
    primary = next(m.name for m in business.metrics if m.role is MetricRole.PRIMARY)
    treatments = [v for v in variants if v != spec.control]
    count = len(daily.ends)

    def data(day: int) -> AnalysisData:
        found = daily.moments[day]
        return AnalysisData(
            units={v: daily.units[day].get(v, 0) for v in variants},
            moments={
                m.name: {
                    v: found.get(m.name, {}).get(v) or Moments.empty(widths.get(m.name, 1))
                    for v in variants
                }
                for m in business.metrics
            },
        )

    reports: list[Report] = []
    if count:
        last = analyze(business, data(count - 1))
        if business.planned_n is None and last.planned_n is not None:
            # The report tunes the sequential mixing at this planned sample: keep it fixed.
            business = replace(business, planned_n=last.planned_n)
        reports = [analyze(business, data(day)) for day in range(count - 1)] + [last]
    cumulative = {v: [daily.units[day].get(v, 0) for day in range(count)] for v in variants}
    document_metrics: dict[str, dict[str, dict[str, list[Any]]]] = {}
    for m in business.metrics:
        per_variant: dict[str, dict[str, list[Any]]] = {
            t: {key: [] for key in _SERIES} for t in treatments
        }
        for report in reports:
            by_variant = {c.variant: c for c in report.metrics[m.name].comparisons}
            for t in treatments:
                _append(per_variant[t], by_variant.get(t))
        document_metrics[m.name] = per_variant
    return {
        "days": [(end - timedelta(microseconds=1)).date().isoformat() for end in daily.ends],
        "ends": [end.isoformat() for end in daily.ends],
        "step_days": daily.step_days,
        "control": spec.control,
        "primary": primary,
        "units": {
            v: [n - (counts[i - 1] if i else 0) for i, n in enumerate(counts)]
            for v, counts in cumulative.items()
        },
        "cumulative_units": cumulative,
        "metrics": document_metrics,
    }


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _pair(pair: tuple[float, float] | None) -> list[float] | None:
    if pair is None:
        return None
    low, high = _number(pair[0]), _number(pair[1])
    return None if low is None or high is None else [low, high]


def _append(series: dict[str, list[Any]], comparison: Comparison | None) -> None:
    if comparison is None:
        for values in series.values():
            values.append(None)
        return
    series["rel_lift"].append(_number(comparison.rel_lift))
    series["rel_ci"].append(_pair(comparison.rel_ci))
    series["abs_diff"].append(_number(comparison.abs_diff))
    series["abs_ci"].append(_pair(comparison.abs_ci))
