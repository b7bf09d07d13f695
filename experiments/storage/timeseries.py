"""Cumulative sufficient statistics of an experiment at each day's end, in one SQL query.

The charts of an experiment over time need, for each day boundary ``t_1 < … < t_D``
(the UTC midnights after the first exposure, the last one the analysis time
``until``), what the analysis would have seen at ``t_d``: the units exposed before
``t_d`` and, per unit, the events before ``t_d``. One query answers every day (after
a look-up of the first exposure; a percentile cap adds the two small queries of
:mod:`.aggregates`):

1. ``days``: the ``D`` boundaries as a small constant table (a UNION ALL);
2. ``per_bucket``: each exposed unit's events (the same windows as
   :mod:`.aggregates`: from exposure minus the clock skew, within
   ``window_days`` if set, before ``until``) aggregated per unit and *bucket*,
   the first day whose boundary is after the event, with the per-unit columns of
   :mod:`.aggregates` (``MAX(1)``, ``SUM(1)``, ``SUM(value)``);
3. ``per_unit``: per ``(day, unit)``, a row of zeros for every unit exposed
   before the day's boundary plus the unit's buckets up to that day, summed (or,
   for a conversion, maxed). Only the small ``days`` table is joined to the large
   relations, so the plan stays cheap even without planner statistics. Value
   caps are applied per unit, percentile caps resolved on the units at ``until``;
4. ``centered``: each column minus its mean over the day's units (a window
   function partitioned by day), for accurate sums of squares;
5. per ``(day, variant)``: ``COUNT(*)``, the shift, ``Σd_i`` and ``Σd_i·d_j``.

The day count is capped at :data:`MAX_POINTS` (90): a longer experiment is
sampled every ``step`` days (``step = ⌈K / (MAX_POINTS − 1)⌉`` for ``K``
midnights). The query's work grows with days × exposed units (the report's with
units alone), so it is computed with the analysis, not on every page view.
CUPED covariates are not computed: the charts show unadjusted comparisons.
Exposure counts per day are the differences of the cumulative unit counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from experiments.stats.summaries import Moments
from experiments.storage.aggregates import (
    MetricQuery,
    metric_columns,
    moment_columns,
    read_moments,
    resolve_caps,
    shift_time,
    time_bind,
)
from experiments.storage.models import Event, Exposure

MAX_POINTS = 90


@dataclass(frozen=True)
class DailyMoments:
    """The SQL answer: per day boundary, units and moments over the data before it.

    Attributes:
        ends: the day boundaries ``t_1..t_D`` (aware UTC datetimes, increasing).
        step_days: days between consecutive midnights in ``ends`` (1 unless capped).
        units: per boundary, units exposed before it, per variant.
        moments: per boundary, metric name → variant → :class:`Moments`.
        caps: value caps applied per metric (percentile caps resolved at ``until``).
    """

    ends: list[datetime]
    step_days: int
    units: list[dict[str, int]]
    moments: list[dict[str, dict[str, Moments]]]
    caps: dict[str, float]


def day_boundaries(
    first_exposure: datetime, until: datetime, *, max_points: int = MAX_POINTS
) -> tuple[list[datetime], int]:
    """The UTC midnights after ``first_exposure`` and before ``until``, then ``until``.

    With more than ``max_points`` boundaries, only every ``step``-th midnight is kept
    so that at most ``max_points`` remain (``until`` is always the last one).

    Returns:
        The boundaries and the step in days; no boundary when ``until`` is not
        after ``first_exposure``.

    Raises:
        ValueError: a naive datetime, or ``max_points`` below 2.
    """
    if first_exposure.tzinfo is None or until.tzinfo is None:
        raise ValueError("day boundaries need timezone-aware datetimes")
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")
    first, end = first_exposure.astimezone(UTC), until.astimezone(UTC)
    if end <= first:
        return [], 1
    midnight = datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(days=1)
    count = max(0, math.ceil((end - midnight) / timedelta(days=1)))  # midnights < end
    step = max(1, math.ceil(count / (max_points - 1)))
    kept = [midnight + timedelta(days=i) for i in range(step - 1, count, step)]
    return [*kept, end], step


def compute_daily_moments(
    session: Session,
    *,
    experiment_id: int,
    epoch: int,
    metrics: Sequence[MetricQuery],
    until: datetime,
    skew_seconds: float,
    max_points: int = MAX_POINTS,
) -> DailyMoments:
    """Units and metric moments per variant at each day boundary, in one SQL query.

    The last boundary's numbers are those of
    :func:`~experiments.storage.aggregates.compute_metric_moments` at ``until``
    for the units exposed before ``until`` (without CUPED columns).
    """
    first = session.execute(
        select(func.min(Exposure.timestamp)).where(
            Exposure.experiment_id == experiment_id, Exposure.epoch == epoch
        )
    ).scalar_one_or_none()
    ends, step = ([], 1) if first is None else day_boundaries(first, until, max_points=max_points)
    if not ends:
        return DailyMoments([], step, [], [], {})
    plain = [replace(m, lookback_days=None) for m in metrics]
    days = union_all(
        *[
            select(literal(i, Integer).label("day"), time_bind(session, end).label("boundary"))
            for i, end in enumerate(ends)
        ]
    ).cte("days")
    exposed = (
        select(
            Exposure.unit_id.label("unit_id"),
            Exposure.variant.label("variant"),
            Exposure.timestamp.label("exposed_at"),
        )
        .where(Exposure.experiment_id == experiment_id, Exposure.epoch == epoch)
        .subquery("exposed")
    )
    ts = shift_time(session, Event.timestamp, 0)
    until_bind = time_bind(session, until)
    names = sorted({event for m in plain for event in m.events})
    event_on = and_(
        Event.unit_id == exposed.c.unit_id,
        Event.name.in_(names) if names else literal(False),
        ts >= shift_time(session, exposed.c.exposed_at, -skew_seconds),
        ts < until_bind,
    )
    # An event counts for the days from the first one whose boundary is after it.
    bucket: ColumnElement[Any] = literal(0, Integer)
    if len(ends) > 1:
        bucket = case(
            *[(ts < time_bind(session, end), i) for i, end in enumerate(ends[:-1])],
            else_=len(ends) - 1,
        )
    layout: list[tuple[MetricQuery, int, int]] = []
    bucket_columns: list[ColumnElement[Any]] = []
    for metric in plain:
        cols = metric_columns(session, metric, exposed.c.exposed_at, skew_seconds, until_bind)
        layout.append((metric, len(bucket_columns), len(cols)))
        for column in cols:
            bucket_columns.append(column.label(f"c{len(bucket_columns)}"))
    per_bucket = (
        select(
            exposed.c.unit_id,
            exposed.c.variant,
            exposed.c.exposed_at,
            bucket.label("bucket"),
            *bucket_columns,
        )
        .select_from(exposed.join(Event, event_on))
        # by the output name: the CASE's bound boundaries could not match in GROUP BY
        .group_by(
            exposed.c.unit_id, exposed.c.variant, exposed.c.exposed_at, literal_column("bucket")
        )
        .subquery("per_bucket")
    )
    # Each unit gets a row of zeros on each day it is exposed by, and each of its
    # event buckets a row on each day from the bucket's on. Joining only the small
    # `days` table (never two large relations) keeps the plan cheap even when the
    # planner has no statistics.
    width = len(bucket_columns)
    boundary = days.c.boundary
    zeros = select(
        days.c.day,
        exposed.c.unit_id,
        exposed.c.variant,
        *[literal(0.0, Float).label(f"c{i}") for i in range(width)],
    ).select_from(days.join(exposed, shift_time(session, exposed.c.exposed_at, 0) < boundary))
    hits = select(
        days.c.day,
        per_bucket.c.unit_id,
        per_bucket.c.variant,
        *[per_bucket.c[f"c{i}"] for i in range(width)],
    ).select_from(
        days.join(
            per_bucket,
            and_(
                per_bucket.c.bucket <= days.c.day,
                shift_time(session, per_bucket.c.exposed_at, 0) < boundary,
            ),
        )
    )
    unit_rows = union_all(zeros, hits).subquery("unit_rows")
    unit_columns: list[ColumnElement[Any]] = []
    for metric, first_column, metric_width in layout:
        for i in range(first_column, first_column + metric_width):
            column = unit_rows.c[f"c{i}"]
            total = func.max(column) if metric.kind == "conversion" else func.sum(column)
            unit_columns.append(cast(total, Float).label(f"c{i}"))
    per_unit = (
        select(unit_rows.c.day, unit_rows.c.variant, *unit_columns)
        .group_by(unit_rows.c.day, unit_rows.c.unit_id, unit_rows.c.variant)
        .subquery("per_unit")
    )
    last_day = select(per_unit).where(per_unit.c.day == len(ends) - 1).subquery("last_day")
    caps = resolve_caps(session, last_day, layout)
    values: list[ColumnElement[Any]] = []
    for metric, first_column, width in layout:
        for i in range(width):
            col: ColumnElement[Any] = per_unit.c[f"c{first_column + i}"]
            cap = caps.get(metric.name)
            if cap is not None and metric.kind in ("mean", "count"):
                col = case((col > cap, literal(cap, Float)), else_=col)
            values.append(col)
    day_column = per_unit.c.day
    centered = select(
        per_unit.c.day,
        per_unit.c.variant,
        *[
            (v - func.avg(v).over(partition_by=day_column)).label(f"d{i}")
            for i, v in enumerate(values)
        ],
        *[func.avg(v).over(partition_by=day_column).label(f"s{i}") for i, v in enumerate(values)],
    ).subquery("centered")
    outputs: list[ColumnElement[Any]] = [
        centered.c.day,
        centered.c.variant,
        func.count().label("n"),
    ]
    for _metric, first_column, width in layout:
        outputs += moment_columns(centered, first_column, width)
    rows = session.execute(select(*outputs).group_by(centered.c.day, centered.c.variant)).all()
    units: list[dict[str, int]] = [{} for _ in ends]
    moments: list[dict[str, dict[str, Moments]]] = [{m.name: {} for m in plain} for _ in ends]
    for row in rows:
        day, variant, n = int(row[0]), str(row[1]), int(row[2])
        units[day][variant] = n
        position = 3
        for metric, _first, width in layout:
            moments[day][metric.name][variant], position = read_moments(row, position, n, width)
    return DailyMoments(ends, step, units, moments, caps)
