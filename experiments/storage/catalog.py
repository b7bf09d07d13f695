"""The SQL behind the UI's overview pages.

The filtered experiment list, the latest verdict of each experiment, layer
occupancy and "new data since the snapshot".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from experiments.storage.models import AnalysisSnapshot, Event, Experiment, Exposure, Layer

SORTS: dict[str, tuple[Any, ...]] = {
    "newest": (Experiment.created_at.desc(), Experiment.id.desc()),
    "oldest": (Experiment.created_at, Experiment.id),
    "name": (func.lower(Experiment.name), Experiment.id),
    "key": (Experiment.key,),
    "status": (Experiment.status, Experiment.created_at.desc()),
    "started": (Experiment.started_at.desc(), Experiment.id.desc()),
    "updated": (Experiment.updated_at.desc(), Experiment.id.desc()),
}


@dataclass(frozen=True)
class ExperimentFilter:
    """What the experiment list shows.

    Attributes:
        text: words to find in the key, name or hypothesis (case-insensitive).
        status: one lifecycle status, or None for all.
        layer: a layer key, or None for all.
        owner: the creator (email, API key name or ``cli:USER``), or None for all.
        archived: include archived experiments.
        sort: one of :data:`SORTS`.
    """

    text: str = ""
    status: str | None = None
    layer: str | None = None
    owner: str | None = None
    archived: bool = False
    sort: str = "newest"


def search_experiments(session: Session, wanted: ExperimentFilter) -> list[Experiment]:
    """Experiments matching the filter, in the chosen order (layers and metrics loaded)."""
    stmt: Select[Any] = select(Experiment).options(
        selectinload(Experiment.layer), selectinload(Experiment.metrics)
    )
    if wanted.text:
        text = wanted.text.lower()
        stmt = stmt.where(
            or_(
                func.lower(Experiment.key).contains(text, autoescape=True),
                func.lower(Experiment.name).contains(text, autoescape=True),
                func.lower(func.coalesce(Experiment.hypothesis, "")).contains(
                    text, autoescape=True
                ),
            )
        )
    if wanted.status:
        stmt = stmt.where(Experiment.status == wanted.status)
    if wanted.layer:
        stmt = stmt.join(Experiment.layer).where(Layer.key == wanted.layer)
    if wanted.owner:
        stmt = stmt.where(Experiment.owner == wanted.owner)
    if not wanted.archived:
        stmt = stmt.where(Experiment.archived_at.is_(None))
    stmt = stmt.order_by(*SORTS.get(wanted.sort, SORTS["newest"]))
    return list(session.scalars(stmt))


def list_owners(session: Session) -> list[str]:
    """Everyone who created an experiment, for the owner filter."""
    stmt = select(Experiment.owner).where(Experiment.owner.is_not(None)).distinct()
    return sorted(str(o) for o in session.scalars(stmt))


def list_layer_keys(session: Session) -> list[str]:
    """Every layer's key, for the layer filter."""
    return list(session.scalars(select(Layer.key).order_by(Layer.key)))


@dataclass(frozen=True)
class LatestVerdict:
    """The parts of an experiment's latest report that the list shows."""

    computed_at: datetime
    decision: dict[str, Any]
    metrics: dict[str, Any]
    srm: dict[str, Any]


def latest_verdicts(session: Session, experiment_ids: Sequence[int]) -> dict[int, LatestVerdict]:
    """The latest snapshot's decision, metrics and SRM per experiment (not the time series)."""
    if not experiment_ids:
        return {}
    ranked = (
        select(
            AnalysisSnapshot.id,
            AnalysisSnapshot.experiment_id,
            func.row_number()
            .over(
                partition_by=AnalysisSnapshot.experiment_id,
                order_by=(AnalysisSnapshot.computed_at.desc(), AnalysisSnapshot.id.desc()),
            )
            .label("rank"),
        )
        .where(AnalysisSnapshot.experiment_id.in_(list(experiment_ids)))
        .subquery()
    )
    stmt = (
        select(
            AnalysisSnapshot.experiment_id,
            AnalysisSnapshot.computed_at,
            AnalysisSnapshot.report["decision"],
            AnalysisSnapshot.report["metrics"],
            AnalysisSnapshot.report["srm"],
        )
        .join(ranked, ranked.c.id == AnalysisSnapshot.id)
        .where(ranked.c.rank == 1)
    )
    return {
        int(row[0]): LatestVerdict(row[1], row[2] or {}, row[3] or {}, row[4] or {})
        for row in session.execute(stmt)
    }


def layers_with_experiments(session: Session) -> list[Layer]:
    """Every layer with its experiments, by key."""
    stmt = select(Layer).options(selectinload(Layer.experiments)).order_by(Layer.key)
    return list(session.scalars(stmt))


def has_exposures_since(session: Session, experiment_id: int, since: datetime) -> bool:
    """Whether an exposure of the experiment was received after ``since`` (indexed)."""
    stmt = select(
        exists().where(Exposure.experiment_id == experiment_id, Exposure.received_at > since)
    )
    return bool(session.scalar(stmt))


def has_events_since(
    session: Session, names: Sequence[str], since: datetime, until: datetime | None = None
) -> bool:
    """Whether an event with one of ``names`` was received after ``since``.

    With ``until``, only events timestamped up to it count (a stopped
    experiment's analysis ends at its stop). Uses the ``events.received_at``
    index and stops at the first match: it reads only what arrived since.
    """
    if not names:
        return False
    condition = [Event.received_at > since, Event.name.in_(list(names))]
    if until is not None:
        condition.append(Event.timestamp <= until)
    return bool(session.scalar(select(exists().where(*condition))))
