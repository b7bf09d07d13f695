"""Ingest batches of events, exposures, predictions and labels: all or nothing.

A batch is validated whole; any invalid item rejects it with every bad item's
index, field and reason, and nothing is written. Valid batches are inserted
with one set-based statement that skips ids already stored, so a retried batch
is never counted twice. The caller commits before acknowledging.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from experiments.config import Settings
from experiments.domain import EVENT_NAME_RE, UNIT_ID_MAX
from experiments.errors import FieldProblem, InvalidInputError
from experiments.service.specs import pydantic_problems
from experiments.storage import queries
from experiments.storage.ingest import (
    EVENTS,
    EXPOSURES,
    LABELS,
    PREDICTIONS,
    insert_ignoring_duplicates,
)
from experiments.storage.models import Experiment

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
UnitId = Annotated[str, Field(min_length=1, max_length=UNIT_ID_MAX)]
Name = Annotated[str, Field(pattern=EVENT_NAME_RE.pattern)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventIn(_Item):
    """An event; ``event_id`` is the client's idempotency key."""

    event_id: Id
    unit_id: UnitId
    name: Name
    value: FiniteFloat = 1.0
    timestamp: AwareDatetime | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class ExposureIn(_Item):
    """A unit served a variant; only the first per experiment and unit is kept."""

    unit_id: UnitId
    experiment: Annotated[str, Field(min_length=1, max_length=64)]
    variant: Annotated[str, Field(min_length=1, max_length=64)]
    timestamp: AwareDatetime | None = None
    exposure_id: Id | None = None


class PredictionIn(_Item):
    """A model score for a unit under a variant."""

    prediction_id: Id
    unit_id: UnitId
    experiment: Annotated[str, Field(min_length=1, max_length=64)]
    variant: Annotated[str, Field(min_length=1, max_length=64)]
    model: Annotated[str, Field(min_length=1, max_length=128)]
    score: FiniteFloat
    timestamp: AwareDatetime | None = None


class LabelIn(_Item):
    """The observed outcome of a prediction (may arrive before the prediction)."""

    prediction_id: Id
    label: FiniteFloat
    timestamp: AwareDatetime | None = None


@dataclass(frozen=True)
class IngestResult:
    """``accepted``: items newly stored; ``duplicates``: already stored or repeated."""

    accepted: int
    duplicates: int

    def as_dict(self) -> dict[str, int]:
        """The API response body."""
        return {"accepted": self.accepted, "duplicates": self.duplicates}


T = TypeVar("T", bound=_Item)


def _validate_items(
    model: type[T], field: str, items: Any, settings: Settings, now: datetime
) -> list[T]:
    if not isinstance(items, list):
        raise InvalidInputError.from_problems([FieldProblem(field, "must be a list")])
    if not items:
        raise InvalidInputError.from_problems([FieldProblem(field, "must not be empty")])
    if len(items) > settings.max_batch_items:
        raise InvalidInputError.from_problems(
            [
                FieldProblem(
                    field, f"at most {settings.max_batch_items} items per batch, got {len(items)}"
                )
            ]
        )
    adapter = _adapter(model)
    problems: list[FieldProblem] = []
    try:
        parsed: list[T] = adapter.validate_python(items)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, prefix=(field,)))
        parsed = []
    latest = now + timedelta(seconds=settings.max_future_seconds)
    for index, item in enumerate(parsed):
        timestamp = getattr(item, "timestamp", None)
        if timestamp is not None and timestamp > latest:
            problems.append(
                FieldProblem(
                    f"{field}[{index}].timestamp",
                    f"is more than {settings.max_future_seconds} s in the future",
                )
            )
        properties = getattr(item, "properties", None)
        if properties:
            size = len(orjson.dumps(properties))
            if size > settings.max_properties_bytes:
                problems.append(
                    FieldProblem(
                        f"{field}[{index}].properties",
                        f"is {size} bytes of JSON, at most {settings.max_properties_bytes}",
                    )
                )
    if problems:
        raise InvalidInputError.from_problems(problems)
    return parsed


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(model: type[T]) -> TypeAdapter[list[T]]:
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(list[model])  # type: ignore[valid-type]
    return adapter


def _unique(items: Sequence[T], key: Callable[[T], Any]) -> list[T]:
    """First occurrence of each key, in order (later repeats are duplicates)."""
    seen: set[Any] = set()
    result = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            result.append(item)
    return result


def ingest_events(
    session: Session, items: Any, *, settings: Settings, now: datetime
) -> IngestResult:
    """Validate and store a batch of events (all or nothing)."""
    events = _validate_items(EventIn, "events", items, settings, now)
    unique = _unique(events, lambda e: e.event_id)
    rows = [
        (e.event_id, e.unit_id, e.name, e.value, e.timestamp or now, e.properties, now)
        for e in unique
    ]
    inserted = insert_ignoring_duplicates(session, EVENTS, rows)
    return IngestResult(inserted, len(events) - inserted)


def _experiments_by_key(
    session: Session, field: str, items: Sequence[ExposureIn | PredictionIn]
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
    session: Session, items: Any, *, settings: Settings, now: datetime
) -> IngestResult:
    """Store first exposures; a unit already exposed (this epoch) is a duplicate."""
    exposures = _validate_items(ExposureIn, "exposures", items, settings, now)
    experiments = _experiments_by_key(session, "exposures", exposures)
    # Within a batch, the earliest exposure of a unit is its first.
    ordered = sorted(exposures, key=lambda x: x.timestamp or now)
    unique = _unique(ordered, lambda x: (x.experiment, x.unit_id))
    rows = []
    for x in unique:
        experiment = experiments[x.experiment]
        rows.append(
            (experiment.id, experiment.epoch, x.unit_id, x.variant, x.timestamp or now, now)
        )
    inserted = insert_ignoring_duplicates(session, EXPOSURES, rows)
    return IngestResult(inserted, len(exposures) - inserted)


def ingest_predictions(
    session: Session, items: Any, *, settings: Settings, now: datetime
) -> IngestResult:
    """Store model predictions; ``prediction_id`` is the idempotency key."""
    predictions = _validate_items(PredictionIn, "predictions", items, settings, now)
    experiments = _experiments_by_key(session, "predictions", predictions)
    unique = _unique(predictions, lambda p: p.prediction_id)
    rows = [
        (
            p.prediction_id,
            p.unit_id,
            experiments[p.experiment].id,
            p.variant,
            p.model,
            p.score,
            p.timestamp or now,
            now,
        )
        for p in unique
    ]
    inserted = insert_ignoring_duplicates(session, PREDICTIONS, rows)
    return IngestResult(inserted, len(predictions) - inserted)


def ingest_labels(
    session: Session, items: Any, *, settings: Settings, now: datetime
) -> IngestResult:
    """Store labels; the first label of a prediction wins, later ones are duplicates."""
    labels = _validate_items(LabelIn, "labels", items, settings, now)
    unique = _unique(labels, lambda x: x.prediction_id)
    rows = [(x.prediction_id, x.label, x.timestamp or now, now) for x in unique]
    inserted = insert_ignoring_duplicates(session, LABELS, rows)
    return IngestResult(inserted, len(labels) - inserted)
