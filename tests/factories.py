"""Spec documents for tests (plain dicts: the API and the CLI take JSON)."""

from __future__ import annotations

import copy
from typing import Any

_BASE: dict[str, Any] = {
    "key": "ranker-v2",
    "name": "Ranker v2 against v1",
    "hypothesis": "The new ranker raises take rate without hurting revenue",
    "variants": [
        {"key": "control", "weight": 0.5, "is_control": True, "params": {"model": "ranker_a"}},
        {
            "key": "treatment",
            "weight": 0.5,
            "params": {
                "model": "ranker_b",
                "objective_weights": {"engagement": 0.7, "quality": 0.3},
            },
        },
    ],
    "metrics": [
        {
            "name": "take_rate",
            "kind": "ratio",
            "numerator": "play",
            "denominator": "impression",
            "role": "primary",
        },
        {
            "name": "revenue",
            "kind": "mean",
            "event": "purchase",
            "role": "guardrail",
            "margin": 0.01,
        },
        {"name": "converted", "kind": "conversion", "event": "purchase", "role": "secondary"},
        {"name": "ranker_auc", "kind": "auc", "role": "ml"},
    ],
}


def spec_document(**changes: Any) -> dict[str, Any]:
    """A valid experiment spec, with top-level fields replaced."""
    doc = copy.deepcopy(_BASE)
    doc.update(changes)
    return doc


def add_experiment_row(session: Any, key: str, *, at: Any, epoch: int = 0) -> Any:
    """A bare running experiment row (no variants or metrics), for storage tests."""
    from experiments.storage.models import Experiment

    experiment = Experiment(
        key=key,
        name=key,
        status="running",
        salt="s",
        epoch=epoch,
        forced={},
        extra={},
        created_at=at,
        updated_at=at,
    )
    session.add(experiment)
    session.flush()
    return experiment


def event_row(unit: str, name: str, value: float, at: Any) -> tuple[Any, ...]:
    """A row for ``insert_ignoring_duplicates(session, EVENTS, ...)``."""
    import uuid

    return (uuid.uuid4().hex, unit, name, value, at, {}, at)
