"""The config snapshot SDKs evaluate locally, and server-side assignment.

``GET /api/v1/config`` serves :func:`build_config_document`; ``POST
/api/v1/assign`` evaluates the same document with the same code as the SDK
(:mod:`experiments.assignment`) and returns the first exposures to record.

Each worker process keeps the document and its parsed snapshot, keyed by the
config version (``storage/config_version.py``): a request costs one indexed
read of the version, and the config is rebuilt only after a change, which the
next request of every worker sees.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from experiments.assignment.config import ConfigSnapshot, parse_config
from experiments.assignment.evaluate import Assignment, evaluate, evaluate_all
from experiments.assignment.hashing import HASH_VERSION
from experiments.config import Settings
from experiments.domain import UNIT_ID_MAX, ExperimentStatus
from experiments.errors import FieldProblem, InvalidInputError
from experiments.storage import queries
from experiments.storage.config_version import has_uncommitted_change, read_config_version
from experiments.storage.models import Experiment

_SERVED = (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED, ExperimentStatus.CONCLUDED)


def _experiment_entry(experiment: Experiment) -> dict[str, Any] | None:
    if experiment.status == ExperimentStatus.CONCLUDED:
        if experiment.promoted_at is None:
            return None  # concluded and not promoted: the product's default again
        state = "promoted"
    elif experiment.status in (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED):
        state = experiment.status
    else:
        return None
    layer = None
    if experiment.layer is not None and state != "promoted":
        layer = {
            "key": experiment.layer.key,
            "salt": experiment.layer.salt,
            "buckets": experiment.buckets or [],
        }
    return {
        "key": experiment.key,
        "status": state,
        "salt": experiment.salt,
        "traffic": experiment.traffic,
        "layer": layer,
        "targeting": experiment.targeting,
        "forced": experiment.forced or {},
        "variants": [
            {"key": v.key, "weight": v.weight, "is_control": v.is_control, "params": v.params}
            for v in experiment.variants
        ],
        "promoted_variant": experiment.decision_variant if state == "promoted" else None,
    }


@dataclass(frozen=True)
class ServedConfig:
    """The config document, its parsed snapshot, and where exposures go.

    ``targets`` maps each running experiment's key to its (id, epoch), so
    server-side assignment records exposures without another query.
    """

    document: dict[str, Any]
    snapshot: ConfigSnapshot
    targets: dict[str, tuple[int, int]]


def _served(
    session: Session, settings: Settings
) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    entries = []
    targets: dict[str, tuple[int, int]] = {}
    for experiment in queries.list_experiments(session, [s.value for s in _SERVED]):
        entry = _experiment_entry(experiment)
        if entry is not None:
            entries.append(entry)
            targets[experiment.key] = (experiment.id, experiment.epoch)
    entries.sort(key=lambda e: e["key"])
    body: dict[str, Any] = {
        "hash_version": HASH_VERSION,
        "holdout": {"fraction": settings.holdout_fraction, "salt": settings.holdout_salt},
        "experiments": entries,
    }
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return {"version": digest[:32], **body}, targets


@dataclass
class _WorkerConfig:
    """The last served config of this process, and what it was built for."""

    key: tuple[int, float, str] | None = None
    served: ServedConfig | None = None


_WORKER = _WorkerConfig()
_WORKER_LOCK = threading.Lock()


def load_served_config(session: Session, settings: Settings) -> ServedConfig:
    """The current config document with its parsed snapshot (cached per config version)."""
    key = (read_config_version(session), settings.holdout_fraction, settings.holdout_salt)
    cached = _WORKER.served
    if cached is not None and _WORKER.key == key:
        return cached
    document, targets = _served(session, settings)
    served = ServedConfig(document, parse_config(document), targets)
    if not has_uncommitted_change(session):  # never cache what a rollback may undo
        with _WORKER_LOCK:
            _WORKER.key, _WORKER.served = key, served
    return served


def build_config_document(session: Session, settings: Settings) -> dict[str, Any]:
    """Every served experiment in the form SDKs evaluate; ``version`` is its digest."""
    return load_served_config(session, settings).document


def assignment_document(assignment: Assignment) -> dict[str, Any]:
    """The JSON form of one assignment in ``POST /api/v1/assign`` responses."""
    return {
        "variant": assignment.variant,
        "params": assignment.params,
        "in_experiment": assignment.in_experiment,
        "reason": assignment.reason,
    }


def assign_unit(
    session: Session,
    unit_id: str,
    *,
    attributes: Mapping[str, Any] | None,
    keys: Sequence[str] | None,
    log_exposure: bool,
    settings: Settings,
    now: datetime,
) -> tuple[dict[str, Assignment], list[tuple[Any, ...]]]:
    """Assign a unit to the named (default: all served) experiments.

    Returns:
        The assignments, and the exposure rows to record (``EXPOSURES`` order,
        without ``received_at``): one per experiment the unit is in, unless
        ``log_exposure`` is false. The caller writes them (one statement, or
        one shared commit with concurrent requests: ``storage/group_commit.py``)
        before it answers. Unknown keys are reported, not guessed.
    """
    if not isinstance(unit_id, str) or not 1 <= len(unit_id) <= UNIT_ID_MAX:
        raise InvalidInputError.from_problems(
            [FieldProblem("unit_id", f"must be a string of 1 to {UNIT_ID_MAX} characters")]
        )
    served = load_served_config(session, settings)
    snapshot = served.snapshot
    if keys is None:
        result = evaluate_all(snapshot, unit_id, attributes)
    else:
        missing = [k for k in keys if k not in snapshot.experiments]
        if missing:
            raise InvalidInputError.from_problems(
                [
                    FieldProblem(f"experiments[{keys.index(k)}]", f"no running experiment {k!r}")
                    for k in missing
                ]
            )
        result = {k: evaluate(snapshot, k, unit_id, attributes) for k in keys}
    rows: list[tuple[Any, ...]] = []
    if log_exposure:
        rows = [
            (*served.targets[key], unit_id, assignment.variant, now)
            for key, assignment in result.items()
            if assignment.in_experiment and assignment.variant is not None
        ]
    return result, rows
