"""Lookups the services need; every SELECT of the experiment tables lives here."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from sqlalchemy.orm import Session, make_transient_to_detached, selectinload

from experiments.storage.models import (
    AnalysisSnapshot,
    ApiKey,
    Experiment,
    Layer,
)

_ACTIVE = ("running", "stopped")


def find_experiment(session: Session, key: str) -> Experiment | None:
    """The experiment with ``key``, its variants and metrics loaded, or None."""
    stmt = (
        select(Experiment)
        .where(Experiment.key == key)
        .options(selectinload(Experiment.variants), selectinload(Experiment.metrics))
    )
    return session.scalars(stmt).one_or_none()


def list_experiments(session: Session, statuses: Sequence[str] | None = None) -> list[Experiment]:
    """Experiments (newest first), optionally only those in ``statuses``."""
    stmt = (
        select(Experiment)
        .options(
            selectinload(Experiment.variants),
            selectinload(Experiment.metrics),
            selectinload(Experiment.layer),
        )
        .order_by(Experiment.created_at.desc(), Experiment.id.desc())
    )
    if statuses:
        stmt = stmt.where(Experiment.status.in_(list(statuses)))
    return list(session.scalars(stmt))


def find_layer(session: Session, key: str) -> Layer | None:
    """The layer named ``key``, or None."""
    return session.scalars(select(Layer).where(Layer.key == key)).one_or_none()


def taken_buckets(session: Session, layer_id: int, exclude: int | None) -> list[tuple[int, int]]:
    """Bucket ranges owned by the layer's running and stopped experiments."""
    stmt = select(Experiment.buckets).where(
        Experiment.layer_id == layer_id, Experiment.status.in_(_ACTIVE)
    )
    if exclude is not None:
        stmt = stmt.where(Experiment.id != exclude)
    ranges: list[tuple[int, int]] = []
    for owned in session.scalars(stmt):
        ranges.extend((int(start), int(end)) for start, end in owned or [])
    return ranges


def find_api_key(session: Session, key_hash: str) -> ApiKey | None:
    """The unrevoked API key with this digest, or None."""
    stmt = select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    return session.scalars(stmt).one_or_none()


def latest_snapshot(session: Session, experiment_id: int) -> AnalysisSnapshot | None:
    """The most recent analysis snapshot of an experiment, or None."""
    stmt = (
        select(AnalysisSnapshot)
        .where(AnalysisSnapshot.experiment_id == experiment_id)
        .order_by(AnalysisSnapshot.computed_at.desc(), AnalysisSnapshot.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).one_or_none()


def ping(session: Session) -> None:
    """Run a trivial query (raises when the database does not answer)."""
    session.execute(select(1)).scalar_one()


_API_KEY_COLUMNS = tuple(column.key for column in sa_inspect(ApiKey).column_attrs)


def detached_api_key(key: ApiKey) -> ApiKey:
    """A copy of ``key`` that belongs to no session, every column loaded.

    A session's rollback expires the objects it loaded; a copy kept across
    requests (``service/key_cache.py``) must stay readable after it.
    """
    copy = ApiKey(**{name: getattr(key, name) for name in _API_KEY_COLUMNS})
    make_transient_to_detached(copy)
    return copy
