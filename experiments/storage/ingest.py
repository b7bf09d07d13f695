"""Bulk inserts that skip duplicates, one set-based statement per batch.

PostgreSQL: ``INSERT … SELECT FROM unnest(array, …) ON CONFLICT DO NOTHING`` —
one round trip and one parameter per column, whatever the batch size (a
multi-row VALUES list would hit the 65,535-parameter limit at 10,000 events).
SQLite: ``executemany`` of ``INSERT … ON CONFLICT DO NOTHING`` inside the
caller's transaction. Both report how many rows were really inserted, which is
how the API tells accepted items from duplicates. The caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
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
    return orjson.dumps(value).decode()


def insert_ignoring_duplicates(
    session: Session, target: _Target, rows: Sequence[Sequence[Any]]
) -> int:
    """Insert ``rows`` (tuples in ``target``'s column order); return how many were new."""
    if not rows:
        return 0
    connection = session.connection()
    names = ", ".join(f'"{c.name}"' for c in target.columns)
    conflict = ", ".join(target.conflict)
    if connection.dialect.name == "postgresql":
        arrays = []
        for i, column in enumerate(target.columns):
            values = [row[i] for row in rows]
            if column.kind == _JSON:
                values = [_json_text(v) for v in values]
            arrays.append(values)
        selects = ", ".join(f"%s::{c.pg_type}[]" for c in target.columns)
        casts = ", ".join(
            f"u{i}::jsonb" if c.kind == _JSON else f"u{i}" for i, c in enumerate(target.columns)
        )
        aliases = ", ".join(f"u{i}" for i in range(len(target.columns)))
        sql = (
            f"INSERT INTO {target.table} ({names}) SELECT {casts} FROM unnest({selects})"
            f" AS t({aliases}) ON CONFLICT ({conflict}) DO NOTHING"
        )
        result = connection.exec_driver_sql(sql, tuple(arrays))
        return int(result.rowcount)
    converted = [
        tuple(
            to_micros(value)
            if column.kind == _TIME
            else _json_text(value)
            if column.kind == _JSON
            else value
            for column, value in zip(target.columns, row, strict=True)
        )
        for row in rows
    ]
    marks = ", ".join("?" for _ in target.columns)
    sql = (
        f"INSERT INTO {target.table} ({names}) VALUES ({marks}) ON CONFLICT ({conflict}) DO NOTHING"
    )
    result = connection.exec_driver_sql(sql, converted)
    return int(result.rowcount)
