"""Bulk inserts that skip duplicates, one set-based statement per batch.

PostgreSQL, large batches (≥ 200 rows): binary ``COPY`` into a temporary
staging table, then one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` into the
real table (COPY alone cannot skip duplicates). Small batches (server-side
assign, SDK exposures): ``INSERT … SELECT FROM unnest(array, …) ON CONFLICT
DO NOTHING``, one round trip with one parameter per column.
SQLite: one prepared ``INSERT … ON CONFLICT DO NOTHING`` run by
``executemany`` inside the caller's transaction. Every path reports how many
rows were really inserted, which is how the API tells accepted items from
duplicates. The caller commits (``benchmarks/bench_ingest.py`` measures each
path against the database's own bulk load).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from experiments.storage.base import to_micros


@dataclass(frozen=True)
class _Column:
    name: str
    pg_type: str  # element type of the unnest array
    kind: str = "plain"  # plain | time | json


@dataclass(frozen=True)
class _Target:
    table: str
    columns: tuple[_Column, ...]
    conflict: tuple[str, ...]


_TIME = "time"
_JSON = "json"

EVENTS = _Target(
    "events",
    (
        _Column("event_id", "text"),
        _Column("unit_id", "text"),
        _Column("name", "text"),
        _Column("value", "float8"),
        _Column("timestamp", "timestamptz", _TIME),
        _Column("properties", "text", _JSON),
        _Column("received_at", "timestamptz", _TIME),
    ),
    ("event_id",),
)
EXPOSURES = _Target(
    "exposures",
    (
        _Column("experiment_id", "int4"),
        _Column("epoch", "int4"),
        _Column("unit_id", "text"),
        _Column("variant", "text"),
        _Column("timestamp", "timestamptz", _TIME),
        _Column("received_at", "timestamptz", _TIME),
    ),
    ("experiment_id", "epoch", "unit_id"),
)
PREDICTIONS = _Target(
    "predictions",
    (
        _Column("prediction_id", "text"),
        _Column("unit_id", "text"),
        _Column("experiment_id", "int4"),
        _Column("variant", "text"),
        _Column("model", "text"),
        _Column("score", "float8"),
        _Column("timestamp", "timestamptz", _TIME),
        _Column("received_at", "timestamptz", _TIME),
    ),
    ("prediction_id",),
)
LABELS = _Target(
    "labels",
    (
        _Column("prediction_id", "text"),
        _Column("label", "float8"),
        _Column("timestamp", "timestamptz", _TIME),
        _Column("received_at", "timestamptz", _TIME),
    ),
    ("prediction_id",),
)


def _json_text(value: Any) -> str:
    """JSON text of a column value; a ``str`` is JSON text already (validated upstream)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


COPY_MIN_ROWS = 200
"""From this many rows PostgreSQL takes the COPY path (below, one unnest statement)."""


def insert_ignoring_duplicates(
    session: Session,
    target: _Target,
    rows: Sequence[Sequence[Any]],
    *,
    received_at: datetime | None = None,
) -> int:
    """Insert ``rows`` (tuples in ``target``'s column order); return how many were new.

    Args:
        session: The unit of work; the caller commits.
        target: Which table.
        rows: One tuple per row, in ``target.columns`` order. JSON columns take
            JSON text (``str``) or a value to encode.
        received_at: When given, the rows omit the last column
            (``received_at``) and this value fills it for all of them.

    Returns:
        The number of rows inserted (the others were already stored).
    """
    if not rows:
        return 0
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        if len(rows) >= COPY_MIN_ROWS:
            return _copy_postgresql(connection, target, rows, received_at)
        return _unnest_postgresql(connection, target, rows, received_at)
    return _executemany_sqlite(connection, target, rows, received_at)


def _names(target: _Target) -> str:
    return ", ".join(f'"{c.name}"' for c in target.columns)


def _executemany_sqlite(
    connection: Connection,
    target: _Target,
    rows: Sequence[Sequence[Any]],
    received_at: datetime | None,
) -> int:
    """One prepared statement, executed for every row in the caller's transaction."""
    kinds = [c.kind for c in target.columns]
    if received_at is not None:
        kinds = kinds[:-1]
    time_at = [i for i, kind in enumerate(kinds) if kind == _TIME]
    json_at = [i for i, kind in enumerate(kinds) if kind == _JSON]
    extra: tuple[Any, ...] = () if received_at is None else (to_micros(received_at),)
    converted: list[Sequence[Any]] = []
    append = converted.append
    for row in rows:
        values = list(row)
        for i in time_at:
            values[i] = to_micros(values[i])
        for i in json_at:
            values[i] = _json_text(values[i])
        append((*values, *extra))
    marks = ", ".join("?" for _ in target.columns)
    conflict = ", ".join(target.conflict)
    sql = (
        f"INSERT INTO {target.table} ({_names(target)}) VALUES ({marks})"
        f" ON CONFLICT ({conflict}) DO NOTHING"
    )
    result = connection.exec_driver_sql(sql, converted)
    return int(result.rowcount)


def _full_rows(
    target: _Target, rows: Sequence[Sequence[Any]], received_at: datetime | None
) -> list[tuple[Any, ...]]:
    """Rows with their JSON columns as text and ``received_at`` appended if given."""
    json_at = [i for i, c in enumerate(target.columns) if c.kind == _JSON]
    extra: tuple[Any, ...] = () if received_at is None else (received_at,)
    if not json_at:
        return [(*row, *extra) for row in rows]
    result = []
    for row in rows:
        values = list(row)
        for i in json_at:
            values[i] = _json_text(values[i])
        result.append((*values, *extra))
    return result


def _unnest_postgresql(
    connection: Connection,
    target: _Target,
    rows: Sequence[Sequence[Any]],
    received_at: datetime | None,
) -> int:
    """``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING``: one round trip."""
    full = _full_rows(target, rows, received_at)
    arrays = [[row[i] for row in full] for i in range(len(target.columns))]
    selects = ", ".join(f"%s::{c.pg_type}[]" for c in target.columns)
    casts = ", ".join(
        f"u{i}::jsonb" if c.kind == _JSON else f"u{i}" for i, c in enumerate(target.columns)
    )
    aliases = ", ".join(f"u{i}" for i in range(len(target.columns)))
    sql = (
        f"INSERT INTO {target.table} ({_names(target)}) SELECT {casts} FROM unnest({selects})"
        f" AS t({aliases}) ON CONFLICT ({', '.join(target.conflict)}) DO NOTHING"
    )
    result = connection.exec_driver_sql(sql, tuple(arrays))
    return int(result.rowcount)


def _copy_postgresql(
    connection: Connection,
    target: _Target,
    rows: Sequence[Sequence[Any]],
    received_at: datetime | None,
) -> int:
    """Binary COPY into a temporary staging table, then one INSERT … SELECT … ON CONFLICT.

    The staging table is private to the database session (``TEMP``, so it
    writes no WAL); it is emptied before each batch (``TRUNCATE``, which keeps
    it free of dead rows). The INSERT takes the same locks, checks the same
    constraints and writes the same WAL as any insert into the real table, and
    the caller's commit makes it durable.
    """
    stage = f"xp_stage_{target.table}"
    columns = target.columns if received_at is None else target.columns[:-1]
    definition = ", ".join(f'"{c.name}" {_stage_type(c)}' for c in columns)
    names = ", ".join(f'"{c.name}"' for c in columns)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({definition})")
    cursor.execute(f"TRUNCATE {stage}")
    json_at = [i for i, c in enumerate(columns) if c.kind == _JSON]
    with cursor.copy(f"COPY {stage} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([_stage_type(c) for c in columns])
        write_row = copy.write_row
        if json_at:
            for row in rows:
                values = list(row)
                for i in json_at:
                    values[i] = _json_text(values[i])
                write_row(values)
        else:
            for row in rows:
                write_row(row)
    selects = ", ".join(f'"{c.name}"::jsonb' if c.kind == _JSON else f'"{c.name}"' for c in columns)
    params: tuple[Any, ...] = ()
    if received_at is not None:
        selects += ", %s"
        params = (received_at,)
    cursor.execute(
        f"INSERT INTO {target.table} ({_names(target)}) SELECT {selects} FROM {stage}"
        f" ON CONFLICT ({', '.join(target.conflict)}) DO NOTHING",
        params,
    )
    inserted = int(cursor.rowcount)
    cursor.close()
    return inserted


def _stage_type(column: _Column) -> str:
    """Staging column type: JSON travels as text and is cast once, by the INSERT."""
    return "text" if column.kind == _JSON else column.pg_type
