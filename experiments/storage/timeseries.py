"""Cumulative sufficient statistics of an experiment at each day's end.

The charts of an experiment over time need, for each day boundary ``t_1 < … < t_D``
(the UTC midnights after the first exposure, the last one the analysis time
``until``), what the analysis would have seen at ``t_d``: the units exposed before
``t_d`` and, per unit, the events before ``t_d``. Materialising every (day, unit)
pair would cost days × units; instead the work follows the events:

1. ``exposed``: each unit's exposure and the day it enters (``entered``); the
   units per variant and day come from a small GROUP BY of it;
2. ``per_bucket``: each exposed unit's events (the windows of
   :mod:`.aggregates`: from exposure minus the clock skew, within ``window_days``
   if set, before ``until``) aggregated per unit and day (never before the day
   it entered), with the per-unit columns of :mod:`.aggregates`;
3. ``running``: each unit's running value at each of its days with events
   (a window ``SUM``, or ``MAX`` for a conversion), capped, minus the column's
   reference shift ``c`` (the report's: its mean over units at ``until``);
4. ``steps``: beside each value ``d``, the same unit's previous one (``LAG``);
5. per (variant, day): the number of units with events for the first time and
   the changes ``Σ(d − d_prev)`` and ``Σ(d_i·d_j − d_prev,i·d_prev,j)``.

Python adds the changes up day by day: with ``n`` units exposed and ``a`` of them
with events, ``Σd_i = S_i − (n − a)c_i`` and ``Σd_i d_j = P_ij + (n − a)c_i c_j``,
since a unit without events has ``d = −c``. Only values of the same unit are ever
subtracted, so the sums stay as accurate as the report's. The work grows with the
(unit, day) pairs that have events, not with days × units.

The day count is capped at :data:`MAX_POINTS` (90): a longer experiment is
sampled every ``step`` days (``step = ⌈K / (MAX_POINTS − 1)⌉`` for ``K``
midnights). CUPED covariates are not computed: the charts show unadjusted
comparisons.
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
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.orm import Session

from experiments.stats.summaries import Moments
from experiments.storage.aggregates import (
    MetricMoments,
    MetricQuery,
    compute_metric_moments,
    finite_float,
    metric_columns,
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
    reference: MetricMoments | None = None,
) -> DailyMoments:
    """Units and metric moments per variant at each day boundary.

    The last boundary's numbers are those of
    :func:`~experiments.storage.aggregates.compute_metric_moments` at ``until``
    (without CUPED columns). ``reference`` is that function's answer when the
    caller has it (its shifts and caps are reused); otherwise it is computed.
    """
    plain = [replace(m, lookback_days=None) for m in metrics]
    first = session.execute(
        select(func.min(Exposure.timestamp)).where(
            Exposure.experiment_id == experiment_id, Exposure.epoch == epoch
        )
    ).scalar_one_or_none()
    ends, step = ([], 1) if first is None else day_boundaries(first, until, max_points=max_points)
    if not ends:
        return DailyMoments([], step, [], [], {})
    if reference is None:
        reference = compute_metric_moments(
            session,
            experiment_id=experiment_id,
            epoch=epoch,
            metrics=plain,
            until=until,
            skew_seconds=skew_seconds,
        )
    until_bind = time_bind(session, until)

    def bucket_of(column: Any) -> ColumnElement[Any]:
        """Index of the first boundary after ``column``."""
        ts = shift_time(session, column, 0)
        if len(ends) == 1:
            return literal(0, Integer)
        return case(
            *[(ts < time_bind(session, end), i) for i, end in enumerate(ends[:-1])],
            else_=len(ends) - 1,
        )

    exposed = (
        select(
            Exposure.unit_id.label("unit_id"),
            Exposure.variant.label("variant"),
            Exposure.timestamp.label("exposed_at"),
            bucket_of(Exposure.timestamp).label("entered"),
        )
        .where(
            Exposure.experiment_id == experiment_id,
            Exposure.epoch == epoch,
            shift_time(session, Exposure.timestamp, 0) < until_bind,
        )
        .subquery("exposed")
    )
    # Units entering per variant and day: n at day d is the running total.
    entering = session.execute(
        select(exposed.c.variant, exposed.c.entered, func.count()).group_by(
            exposed.c.variant, exposed.c.entered
        )
    ).all()
    ts = shift_time(session, Event.timestamp, 0)
    names = sorted({event for m in plain for event in m.events})
    event_on = and_(
        Event.unit_id == exposed.c.unit_id,
        Event.name.in_(names) if names else literal(False),
        ts >= shift_time(session, exposed.c.exposed_at, -skew_seconds),
        ts < until_bind,
    )
    # An event counts from the first day whose boundary is after it, but never
    # before its unit has entered (an event inside the skew before midnight).
    event_bucket = bucket_of(Event.timestamp)
    bucket = case((event_bucket < exposed.c.entered, exposed.c.entered), else_=event_bucket)
    layout: list[tuple[MetricQuery, int, int]] = []
    bucket_columns: list[ColumnElement[Any]] = []
    for metric in plain:
        cols = metric_columns(session, metric, exposed.c.exposed_at, skew_seconds, until_bind)
        layout.append((metric, len(bucket_columns), len(cols)))
        for column in cols:
            bucket_columns.append(column.label(f"c{len(bucket_columns)}"))
    width = len(bucket_columns)
    per_bucket = (
        select(exposed.c.unit_id, exposed.c.variant, bucket.label("bucket"), *bucket_columns)
        .select_from(exposed.join(Event, event_on))
        # by the output name: the CASE's bound boundaries could not match in GROUP BY
        .group_by(exposed.c.unit_id, exposed.c.variant, literal_column("bucket"))
        .subquery("per_bucket")
    )
    # Each unit's running value at each day it had events (MAX for a conversion).
    kinds = [metric.kind for metric, _f, w in layout for _ in range(w)]
    running = select(
        per_bucket.c.unit_id,
        per_bucket.c.variant,
        per_bucket.c.bucket,
        *[
            (func.max if kinds[i] == "conversion" else func.sum)(per_bucket.c[f"c{i}"])
            .over(partition_by=per_bucket.c.unit_id, order_by=per_bucket.c.bucket, rows=(None, 0))
            .label(f"y{i}")
            for i in range(width)
        ],
    ).subquery("running")
    shifts: list[float] = []
    caps_by_column: list[float | None] = []
    for metric, _first, metric_width in layout:
        found = next(iter(reference.moments.get(metric.name, {}).values()), None)
        for i in range(metric_width):
            shifts.append(found.shift[i] if found is not None else 0.0)
            capped = metric.kind in ("mean", "count")
            caps_by_column.append(reference.caps.get(metric.name) if capped else None)
    shifted: list[ColumnElement[Any]] = []
    for i in range(width):
        value: ColumnElement[Any] = running.c[f"y{i}"]
        cap = caps_by_column[i]
        if cap is not None:
            value = case((value > cap, literal(cap, Float)), else_=value)
        shifted.append((value - literal(shifts[i], Float)).label(f"d{i}"))
    current = select(running.c.unit_id, running.c.variant, running.c.bucket, *shifted).subquery(
        "current"
    )
    steps = select(
        current.c.variant,
        current.c.bucket,
        *[current.c[f"d{i}"] for i in range(width)],
        *[
            func.lag(current.c[f"d{i}"])
            .over(partition_by=current.c.unit_id, order_by=current.c.bucket)
            .label(f"p{i}")
            for i in range(width)
        ],
    ).subquery("steps")
    # Per day and variant: units seen with events for the first time, and the
    # change of Σd_i and Σd_i·d_j over units with events (each unit's latest value
    # replaces its previous one, so only same-unit values are ever subtracted).
    if width == 0:  # no business metric: units only
        return _accumulate(ends, step, layout, shifts, entering, [], reference.caps)
    outputs: list[ColumnElement[Any]] = [
        steps.c.variant,
        steps.c.bucket,
        func.sum(case((steps.c.p0.is_(None), 1), else_=0)),
    ]
    for _metric, first_column, metric_width in layout:
        for i in range(first_column, first_column + metric_width):
            d_i, p_i = steps.c[f"d{i}"], steps.c[f"p{i}"]
            outputs.append(func.sum(d_i - func.coalesce(p_i, 0.0)))
            for j in range(i, first_column + metric_width):
                d_j, p_j = steps.c[f"d{j}"], steps.c[f"p{j}"]
                outputs.append(func.sum(d_i * d_j - func.coalesce(p_i * p_j, 0.0)))
    changes = session.execute(select(*outputs).group_by(steps.c.variant, steps.c.bucket)).all()
    return _accumulate(ends, step, layout, shifts, entering, changes, reference.caps)


def _accumulate(
    ends: list[datetime],
    step: int,
    layout: Sequence[tuple[MetricQuery, int, int]],
    shifts: Sequence[float],
    entering: Sequence[Any],
    changes: Sequence[Any],
    caps: dict[str, float],
) -> DailyMoments:
    """Running totals over days of the per-day changes, as Moments per day.

    A unit without events yet has ``d_i = 0 − c_i``; so with ``n`` units, ``a`` of
    them with events, ``Σd_i = S_i − (n − a)c_i`` and ``Σd_i d_j = P_ij + (n − a)c_i c_j``
    where ``S`` and ``P`` run over the units with events.
    """
    days = len(ends)
    variants = sorted({str(r[0]) for r in entering} | {str(r[0]) for r in changes})
    width = len(shifts)
    pairs = [(i, j) for _m, f, w in layout for i in range(f, f + w) for j in range(i, f + w)]
    entered = {v: [0] * days for v in variants}
    for variant, bucket, count in entering:
        entered[str(variant)][int(bucket)] += int(count)
    delta = {v: [[0.0] * (1 + width + len(pairs)) for _ in range(days)] for v in variants}
    for row in changes:
        target = delta[str(row[0])][int(row[1])]
        position = 3
        target[0] += float(row[2] or 0)
        for _m, f, w in layout:
            for i in range(f, f + w):
                target[1 + i] += finite_float(row[position])
                position += 1
                for j in range(i, f + w):
                    target[1 + width + pairs.index((i, j))] += finite_float(row[position])
                    position += 1
    units: list[dict[str, int]] = [{} for _ in ends]
    moments: list[dict[str, dict[str, Moments]]] = [
        {m.name: {} for m, _f, _w in layout} for _ in ends
    ]
    for variant in variants:
        n = 0
        total = [0.0] * (1 + width + len(pairs))
        for day in range(days):
            n += entered[variant][day]
            total = [a + b for a, b in zip(total, delta[variant][day], strict=True)]
            if n == 0:
                continue
            units[day][variant] = n
            idle = n - round(total[0])
            for metric, f, w in layout:
                columns = range(f, f + w)
                shift = tuple(shifts[i] for i in columns)
                sums = tuple(total[1 + i] - idle * shifts[i] for i in columns)
                products = tuple(
                    tuple(
                        total[1 + width + pairs.index((min(i, j), max(i, j)))]
                        + idle * shifts[i] * shifts[j]
                        for j in columns
                    )
                    for i in columns
                )
                moments[day][metric.name][variant] = Moments(n, shift, sums, products)
    return DailyMoments(ends, step, units, moments, caps)
