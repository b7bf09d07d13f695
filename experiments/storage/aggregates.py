"""Per-variant sufficient statistics of experiment metrics, computed in SQL.

One query per experiment answers every business metric at once:

1. ``exposed``: each unit's first exposure (current epoch) and variant;
2. ``per_unit``: one LEFT JOIN of the exposed units with ``events`` (only the
   names the metrics use, only from the earliest window start to the analysis
   time), grouped by unit, with one conditional aggregate per metric column:
   ``MAX(1)`` for a conversion, ``SUM(1)`` for a count, ``SUM(value)`` for a
   mean or a ratio's numerator and denominator; pre-exposure windows give the
   CUPED covariates; value caps are applied per unit;
3. ``centered``: each column minus its mean over all units (a window
   function), so that sums of squares stay accurate when the mean is large
   against the spread (DESIGN.md; see ``stats/summaries.py``);
4. per variant: ``COUNT(*)``, the shift, ``Σd_i`` and ``Σd_i·d_j`` within each
   metric. Python receives a handful of numbers per variant and metric.

Memory in Python does not grow with the number of events. Event windows run
from the unit's exposure minus the clock-skew tolerance to the analysis time
(or ``window_days`` after exposure); a CUPED window covers ``lookback_days``
before exposure up to the exposure minus the skew.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    and_,
    case,
    cast,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from experiments.stats.summaries import Moments
from experiments.storage.base import MICROS_PER_SECOND, to_micros
from experiments.storage.models import Event, Exposure

DAY = 86_400.0


@dataclass(frozen=True)
class MetricQuery:
    """What SQL needs to know of one business metric.

    Attributes:
        name: metric name.
        kind: ``conversion``, ``count``, ``mean`` or ``ratio``.
        events: the event name (one) or numerator and denominator names (two).
        window_days: attribution window after exposure, or None (until analysis).
        cap: per-unit value cap for mean and count metrics.
        cap_percentile: cap at this percentile of all units' values instead.
        lookback_days: CUPED pre-exposure window, or None for no covariate.
    """

    name: str
    kind: str
    events: tuple[str, ...]
    window_days: float | None = None
    cap: float | None = None
    cap_percentile: float | None = None
    lookback_days: float | None = None


@dataclass(frozen=True)
class MetricMoments:
    """The SQL answer: units per variant and each metric's moments per variant."""

    units: dict[str, int]
    moments: dict[str, dict[str, Moments]]
    caps: dict[str, float]


def shift_time(session: Session, column: Any, seconds: float) -> ColumnElement[Any]:
    """``column + seconds`` for a UTCDateTime column, in the session's dialect."""
    if session.get_bind().dialect.name == "sqlite":
        return type_coerce(column, BigInteger) + literal(round(seconds * MICROS_PER_SECOND))
    shifted: ColumnElement[Any] = column + literal(timedelta(seconds=seconds))
    return shifted


def time_bind(session: Session, value: datetime) -> ColumnElement[Any]:
    """A bound timestamp comparable with shifted columns in both dialects."""
    if session.get_bind().dialect.name == "sqlite":
        return literal(to_micros(value), BigInteger)
    return literal(value)


def metric_columns(
    session: Session, metric: MetricQuery, exposed_at: Any, skew: float, until: Any
) -> list[ColumnElement[Any]]:
    """Per-unit aggregate columns of one metric: post-exposure, then pre-exposure."""
    ts = shift_time(session, Event.timestamp, 0)
    post = [ts >= shift_time(session, exposed_at, -skew), ts < until]
    if metric.window_days is not None:
        post.append(ts < shift_time(session, exposed_at, metric.window_days * DAY))
    pre = None
    if metric.lookback_days is not None:
        pre = [
            ts >= shift_time(session, exposed_at, -metric.lookback_days * DAY),
            ts < shift_time(session, exposed_at, -skew),
        ]

    def aggregate(event: str, window: list[ColumnElement[bool]]) -> ColumnElement[Any]:
        hit = and_(Event.name == event, *window)
        if metric.kind == "conversion":
            return cast(func.max(case((hit, 1), else_=0)), Float)
        if metric.kind == "count":
            return cast(func.sum(case((hit, 1), else_=0)), Float)
        return cast(func.sum(case((hit, Event.value), else_=0.0)), Float)

    columns = [aggregate(event, post) for event in metric.events]
    if pre is not None:
        columns += [aggregate(event, pre) for event in metric.events]
    return columns


def compute_metric_moments(
    session: Session,
    *,
    experiment_id: int,
    epoch: int,
    metrics: Sequence[MetricQuery],
    until: datetime,
    skew_seconds: float,
) -> MetricMoments:
    """Units per variant and the moments of every metric, in one SQL query."""
    exposed = (
        select(
            Exposure.unit_id.label("unit_id"),
            Exposure.variant.label("variant"),
            Exposure.timestamp.label("exposed_at"),
        )
        .where(
            Exposure.experiment_id == experiment_id,
            Exposure.epoch == epoch,
            # Units exposed after the analysis time (or the stop) are not in it.
            shift_time(session, Exposure.timestamp, 0) < time_bind(session, until),
        )
        .subquery("exposed")
    )
    until_bind = time_bind(session, until)
    names = sorted({event for m in metrics for event in m.events})
    lookback = max([m.lookback_days or 0.0 for m in metrics] + [0.0]) * DAY
    join_on = and_(
        Event.unit_id == exposed.c.unit_id,
        Event.name.in_(names) if names else literal(False),
        shift_time(session, Event.timestamp, 0)
        >= shift_time(session, exposed.c.exposed_at, -max(lookback, skew_seconds)),
        shift_time(session, Event.timestamp, 0) < until_bind,
    )
    layout: list[tuple[MetricQuery, int, int]] = []  # metric, first column, width
    unit_columns: list[ColumnElement[Any]] = []
    for metric in metrics:
        cols = metric_columns(session, metric, exposed.c.exposed_at, skew_seconds, until_bind)
        layout.append((metric, len(unit_columns), len(cols)))
        for column in cols:
            unit_columns.append(column.label(f"c{len(unit_columns)}"))
    per_unit = (
        select(exposed.c.variant, *unit_columns)
        .select_from(exposed.outerjoin(Event, join_on))
        .group_by(exposed.c.unit_id, exposed.c.variant)
        .subquery("per_unit")
    )
    caps = resolve_caps(session, per_unit, layout)
    values: list[ColumnElement[Any]] = []
    for metric, first, width in layout:
        for i in range(width):
            col: ColumnElement[Any] = per_unit.c[f"c{first + i}"]
            cap = caps.get(metric.name)
            if cap is not None and metric.kind in ("mean", "count"):
                col = case((col > cap, literal(cap, Float)), else_=col)
            values.append(col)
    centered = select(
        per_unit.c.variant,
        *[(v - func.avg(v).over()).label(f"d{i}") for i, v in enumerate(values)],
        *[func.avg(v).over().label(f"s{i}") for i, v in enumerate(values)],
    ).subquery("centered")
    outputs: list[ColumnElement[Any]] = [centered.c.variant, func.count().label("n")]
    for _metric, first, width in layout:
        outputs += moment_columns(centered, first, width)
    rows = session.execute(select(*outputs).group_by(centered.c.variant)).all()
    units: dict[str, int] = {}
    moments: dict[str, dict[str, Moments]] = {m.name: {} for m in metrics}
    for row in rows:
        variant, n = str(row[0]), int(row[1])
        units[variant] = n
        position = 2
        for metric, _first, width in layout:
            moments[metric.name][variant], position = read_moments(row, position, n, width)
    return MetricMoments(units, moments, caps)


def finite_float(value: Any) -> float:
    """A SQL number as a float; NULL and non-finite become 0 (sums over no rows)."""
    number = float(value) if value is not None else 0.0
    return number if math.isfinite(number) else 0.0


def moment_columns(centered: Any, first: int, width: int) -> list[ColumnElement[Any]]:
    """Aggregates of centered columns ``d{first}..``: the shift, ``Σd_i``, ``Σd_i·d_j`` (j ≥ i).

    ``centered`` is a subquery with ``d{i}`` (value minus its mean) and
    ``s{i}`` (that mean) for each column; :func:`read_moments` decodes the result.
    """
    columns: list[ColumnElement[Any]] = []
    for i in range(first, first + width):
        columns.append(func.max(centered.c[f"s{i}"]))
        columns.append(func.sum(centered.c[f"d{i}"]))
        for j in range(i, first + width):
            columns.append(func.sum(centered.c[f"d{i}"] * centered.c[f"d{j}"]))
    return columns


def read_moments(row: Sequence[Any], position: int, n: int, width: int) -> tuple[Moments, int]:
    """The :class:`Moments` that :func:`moment_columns` produced at ``row[position:]``.

    Returns:
        The moments and the position just after their columns.
    """
    shift, sums, products = [], [], [[0.0] * width for _ in range(width)]
    for i in range(width):
        shift.append(finite_float(row[position]))
        sums.append(finite_float(row[position + 1]))
        position += 2
        for j in range(i, width):
            products[i][j] = products[j][i] = finite_float(row[position])
            position += 1
    return Moments(n, tuple(shift), tuple(sums), tuple(tuple(r) for r in products)), position


def resolve_caps(
    session: Session, per_unit: Any, layout: Sequence[tuple[MetricQuery, int, int]]
) -> dict[str, float]:
    """Value caps per metric; percentile caps are read from the per-unit values.

    The p-th percentile is the value at rank ``ceil(p/100 · N)`` of the N units'
    values (the "nearest rank" definition), found with ORDER BY … OFFSET.
    """
    caps: dict[str, float] = {}
    for metric, first, _width in layout:
        if metric.cap is not None:
            caps[metric.name] = metric.cap
        elif metric.cap_percentile is not None:
            column = per_unit.c[f"c{first}"]
            total = session.execute(select(func.count()).select_from(per_unit)).scalar_one()
            if total:
                rank = max(1, math.ceil(metric.cap_percentile / 100.0 * total))
                value = session.execute(
                    select(column).order_by(column).offset(rank - 1).limit(1)
                ).scalar_one()
                caps[metric.name] = float(value)
    return caps
