"""Ingest batches of events, exposures, predictions and labels: all or nothing.

A batch is validated whole (:mod:`experiments.service.batches`: one decoding
pass over the request body, then the limits both databases hold); any invalid
item rejects it with every bad item's index, field and reason, and nothing is
written. Valid batches are inserted with one bulk statement per database that
skips ids already stored, so a retried batch is never counted twice. The
caller commits before acknowledging.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from experiments.config import Settings
from experiments.errors import FieldProblem, InvalidInputError
from experiments.service.batches import (
    EventIn,
    ExposureIn,
    LabelIn,
    PredictionIn,
    check_items,
    may_hold_big_numbers,
    validate_body,
    validate_items,
)
from experiments.storage import queries
from experiments.storage.ingest import (
    EVENTS,
    EXPOSURES,
    LABELS,
    PREDICTIONS,
    insert_ignoring_duplicates,
)
from experiments.storage.models import Experiment

__all__ = [
    "EventIn",
    "ExposureIn",
    "IngestResult",
    "LabelIn",
    "PredictionIn",
    "ingest_events",
    "ingest_exposures",
    "ingest_labels",
    "ingest_predictions",
]


@dataclass(frozen=True)
class IngestResult:
    """``accepted``: items newly stored; ``duplicates``: already stored or repeated."""

    accepted: int
    duplicates: int

    def as_dict(self) -> dict[str, int]:
        """The API response body."""
        return {"accepted": self.accepted, "duplicates": self.duplicates}


T = TypeVar("T")


def _validated(
    kind: str, batch: bytes | Any, settings: Settings, now: datetime
) -> tuple[list[Any], list[str] | None]:
    """Items of a raw JSON body or a Python list, checked whole; their properties texts."""
    if isinstance(batch, bytes | bytearray | memoryview):
        body = bytes(batch)
        items = validate_body(kind, body, settings)
        texts = check_items(
            kind,
            items,
            settings,
            now,
            may_hold_nul=b"\\u0000" in body,
            may_hold_big_numbers=may_hold_big_numbers(body),
        )
    else:
        items = validate_items(kind, batch, settings)
        texts = check_items(kind, items, settings, now)
    return items, texts


def _unique(items: Sequence[T], key: Callable[[T], Any]) -> list[int]:
    """Indexes of the first occurrence of each key, in order (later repeats are duplicates)."""
    seen: set[Any] = set()
    first = []
    for index, item in enumerate(items):
        k = key(item)
        if k not in seen:
            seen.add(k)
            first.append(index)
    return first


def ingest_events(
    session: Session, batch: bytes | Any, *, settings: Settings, now: datetime
) -> IngestResult:
    """Validate and store a batch of events (all or nothing).

    Args:
        session: The unit of work (the caller commits).
        batch: The raw request body ``{"events": [...]}``, or the list of items.
        settings: Limits.
        now: The request's clock: ``received_at``, and the time of items without one.
    """
    events, texts = _validated("events", batch, settings, now)
    assert texts is not None
    seen: set[str] = set()
    rows = []
    for e, properties in zip(events, texts, strict=True):
        event_id = e.event_id
        if event_id in seen:
            continue
        seen.add(event_id)
        rows.append((event_id, e.unit_id, e.name, e.value, e.timestamp or now, properties))
    inserted = insert_ignoring_duplicates(session, EVENTS, rows, received_at=now)
    return IngestResult(inserted, len(events) - inserted)


def _experiments_by_key(
    session: Session, field: str, items: Sequence[Any]
) -> dict[str, Experiment]:
    """Resolve every named experiment and variant, or reject the batch."""
    found: dict[str, Experiment | None] = {}
    problems: list[FieldProblem] = []
    for index, item in enumerate(items):
        if item.experiment not in found:
            found[item.experiment] = queries.find_experiment(session, item.experiment)
        experiment = found[item.experiment]
        if experiment is None or experiment.status == "draft":
            problems.append(
                FieldProblem(
                    f"{field}[{index}].experiment", f"unknown experiment {item.experiment!r}"
                )
            )
        elif item.variant not in {v.key for v in experiment.variants}:
            problems.append(
                FieldProblem(
                    f"{field}[{index}].variant",
                    f"unknown variant {item.variant!r} of experiment {item.experiment!r}",
                )
            )
    if problems:
        raise InvalidInputError.from_problems(problems)
    return {k: v for k, v in found.items() if v is not None}


def ingest_exposures(
    session: Session, batch: bytes | Any, *, settings: Settings, now: datetime
) -> IngestResult:
    """Store first exposures; a unit already exposed (this epoch) is a duplicate."""
    exposures, _ = _validated("exposures", batch, settings, now)
    experiments = _experiments_by_key(session, "exposures", exposures)
    # Within a batch, the earliest exposure of a unit is its first.
    ordered = sorted(exposures, key=lambda x: x.timestamp or now)
    rows = []
    for i in _unique(ordered, lambda x: (x.experiment, x.unit_id)):
        x = ordered[i]
        experiment = experiments[x.experiment]
        rows.append((experiment.id, experiment.epoch, x.unit_id, x.variant, x.timestamp or now))
    inserted = insert_ignoring_duplicates(session, EXPOSURES, rows, received_at=now)
    return IngestResult(inserted, len(exposures) - inserted)


def ingest_predictions(
    session: Session, batch: bytes | Any, *, settings: Settings, now: datetime
) -> IngestResult:
    """Store model predictions; ``prediction_id`` is the idempotency key."""
    predictions, _ = _validated("predictions", batch, settings, now)
    experiments = _experiments_by_key(session, "predictions", predictions)
    rows = []
    for i in _unique(predictions, lambda p: p.prediction_id):
        p = predictions[i]
        rows.append(
            (
                p.prediction_id,
                p.unit_id,
                experiments[p.experiment].id,
                p.variant,
                p.model,
                p.score,
                p.timestamp or now,
            )
        )
    inserted = insert_ignoring_duplicates(session, PREDICTIONS, rows, received_at=now)
    return IngestResult(inserted, len(predictions) - inserted)


def ingest_labels(
    session: Session, batch: bytes | Any, *, settings: Settings, now: datetime
) -> IngestResult:
    """Store labels; the first label of a prediction wins, later ones are duplicates."""
    labels, _ = _validated("labels", batch, settings, now)
    rows = []
    for i in _unique(labels, lambda x: x.prediction_id):
        x = labels[i]
        rows.append((x.prediction_id, x.label, x.timestamp or now))
    inserted = insert_ignoring_duplicates(session, LABELS, rows, received_at=now)
    return IngestResult(inserted, len(labels) - inserted)
