"""Baseline statistics from recent traffic, for planning an experiment.

Before an experiment runs there are no exposures, so the population is the
units active (with any event) in the lookback window. One query computes each
such unit's metric value over the window, the centered moments over all of
them (as in ``aggregates.py``), and the cumulative count of units by the day
they were first seen, which is how fast new units would enter an experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, case, cast, func, select
from sqlalchemy.orm import Session

from experiments.stats.summaries import Moments
from experiments.storage.aggregates import (
    MetricQuery,
    moment_columns,
    read_moments,
    shift_time,
    time_bind,
)
from experiments.storage.models import Event

MAX_LOOKBACK_DAYS = 90


@dataclass(frozen=True)
class TrafficBaseline:
    """Moments of a metric over recently active units, and how fast units arrive.

    Attributes:
        moments: per-unit columns of the metric (``[y]`` or ``[num, den]``).
        cumulative_units: distinct units first seen before the end of day 1..D.
        days: the lookback in days.
    """

    moments: Moments
    cumulative_units: list[int]
    days: int


def load_traffic_baseline(
    session: Session, metric: MetricQuery, *, until: datetime, days: int
) -> TrafficBaseline:
    """The metric's per-unit moments and unit arrivals over the last ``days`` days."""
    days = max(1, min(days, MAX_LOOKBACK_DAYS))
    since = until - timedelta(days=days)
    ts = shift_time(session, Event.timestamp, 0)
    in_window = and_(ts >= time_bind(session, since), ts < time_bind(session, until))

    def column(event: str) -> ColumnElement[Any]:
        hit = Event.name == event
        if metric.kind == "conversion":
            return cast(func.max(case((hit, 1), else_=0)), Float)
        if metric.kind == "count":
            return cast(func.sum(case((hit, 1), else_=0)), Float)
        return cast(func.sum(case((hit, Event.value), else_=0.0)), Float)

    per_unit = (
        select(
            func.min(ts).label("first_seen"),
            *[column(event).label(f"c{i}") for i, event in enumerate(metric.events)],
        )
        .where(in_window)
        .group_by(Event.unit_id)
        .subquery("per_unit")
    )
    width = len(metric.events)
    values: list[ColumnElement[Any]] = []
    for i in range(width):
        value: ColumnElement[Any] = per_unit.c[f"c{i}"]
        if metric.cap is not None and metric.kind in ("mean", "count"):
            value = case((value > metric.cap, metric.cap), else_=value)
        values.append(value)
    centered = select(
        per_unit.c.first_seen,
        *[(v - func.avg(v).over()).label(f"d{i}") for i, v in enumerate(values)],
        *[func.avg(v).over().label(f"s{i}") for i, v in enumerate(values)],
    ).subquery("centered")
    boundaries = [time_bind(session, since + timedelta(days=d + 1)) for d in range(days)]
    outputs: list[ColumnElement[Any]] = [func.count(), *moment_columns(centered, 0, width)]
    outputs += [func.sum(case((centered.c.first_seen < b, 1), else_=0)) for b in boundaries]
    row = session.execute(select(*outputs)).one()
    n = int(row[0])
    moments, position = read_moments(row, 1, n, width)
    cumulative = [int(v or 0) for v in row[position:]]
    return TrafficBaseline(moments, cumulative, days)
