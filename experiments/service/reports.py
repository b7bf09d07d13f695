"""The report as the UI shows it: the latest snapshot, read without writing.

With the recorded decision and whether the snapshot is stale.

A snapshot is stale when data it could include arrived after it: exposures
or metric events received since it was computed (both cheap indexed queries,
``storage/catalog.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from experiments.domain import ExperimentStatus
from experiments.service.decisions import with_recorded_decision
from experiments.service.experiments import get_experiment
from experiments.storage import catalog, queries
from experiments.storage.models import AnalysisSnapshot, Experiment


def _event_names(experiment: Experiment) -> list[str]:
    names: set[str] = set()
    for metric in experiment.metrics:
        for field in ("event", "numerator", "denominator"):
            value = metric.definition.get(field)
            if value:
                names.add(str(value))
    return sorted(names)


def _staleness(
    session: Session, experiment: Experiment, snapshot: AnalysisSnapshot
) -> dict[str, bool]:
    computed = snapshot.computed_at
    stopped = experiment.stopped_at
    if (
        experiment.status != ExperimentStatus.RUNNING
        and stopped is not None
        and computed >= stopped
    ):
        # The analysis ends at the stop: nothing that arrives later can change it.
        return {"exposures": False, "events": False}
    return {
        "exposures": catalog.has_exposures_since(session, experiment.id, computed),
        "events": catalog.has_events_since(session, _event_names(experiment), computed, stopped),
    }


def report_view(session: Session, key: str, *, now: datetime) -> dict[str, Any]:
    """The latest report of an experiment and how fresh it is; computes nothing.

    Returns:
        ``{"experiment": key, "status", "report": dict | None, "computed_at",
        "age_seconds", "new_data": {"exposures": bool, "events": bool}, "stale": bool}``;
        ``report`` is None before the first analysis.

    Raises:
        NotFoundError: unknown key.
    """
    experiment = get_experiment(session, key)
    snapshot = queries.latest_snapshot(session, experiment.id)
    if snapshot is None:
        return {
            "experiment": key,
            "status": experiment.status,
            "report": None,
            "computed_at": None,
            "age_seconds": None,
            "new_data": {"exposures": False, "events": False},
            "stale": False,
        }
    new_data = _staleness(session, experiment, snapshot)
    return {
        "experiment": key,
        "status": experiment.status,
        "report": with_recorded_decision(snapshot.report, experiment),
        "computed_at": snapshot.computed_at.isoformat(),
        "age_seconds": max(0.0, (now - snapshot.computed_at).total_seconds()),
        "new_data": new_data,
        "stale": any(new_data.values()),
    }
