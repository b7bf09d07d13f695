"""Synthetic traffic for an experiment, through the same code paths as the API.

Units arrive over ``days`` days, are assigned with the SDK's evaluation of the
config snapshot, and their exposures, events, predictions and labels go
through the ingestion service in batches, validated like any client's.

The generative model (per unit, vectorised numpy, seeded):

- days active ``a ~ 1 + Binomial(days_left − 1, 0.3)``;
- each *base* event (a ratio's denominator, e.g. impressions):
  ``Poisson(rate · a)``;
- each *response* event (a ratio's numerator, e.g. plays): ``Binomial(base,
  p · effect)``; other events (conversions, purchases): ``Poisson(rate · a ·
  effect)``; values of events used by mean metrics ``LogNormal(3, 0.8)``;
- predictions of each variant's model: ``label ~ Bernoulli(0.3)``, ``score =
  σ(quality · (2·label − 1) + N(0, 1))``: higher quality, higher AUC.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from experiments.assignment.evaluate import evaluate
from experiments.config import Settings
from experiments.domain import MetricKind
from experiments.errors import FieldProblem, InvalidInputError, InvalidStateError
from experiments.service.assignments import load_served_config
from experiments.service.experiments import get_experiment
from experiments.service.ingestion import (
    ingest_events,
    ingest_exposures,
    ingest_labels,
    ingest_predictions,
)

BATCH = 5_000


@dataclass(frozen=True)
class SimulationPlan:
    """What to simulate; ``effects[variant][event]`` multiplies that event's rate."""

    users: int
    days: int
    seed: int = 0
    rates: Mapping[str, float] = field(default_factory=dict)
    effects: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    model_quality: Mapping[str, float] = field(default_factory=dict)
    predictions_per_unit: int = 2
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class SimulationResult:
    """What was written."""

    units: int = 0
    exposed: int = 0
    events: int = 0
    predictions: int = 0
    labels: int = 0


def _event_roles(definitions: list[dict[str, Any]]) -> tuple[set[str], dict[str, str], set[str]]:
    """(base events, response event → its base, events whose values matter)."""
    bases: set[str] = set()
    responses: dict[str, str] = {}
    valued: set[str] = set()
    for d in definitions:
        kind = MetricKind(d["kind"])
        if kind is MetricKind.RATIO:
            bases.add(d["denominator"])
            responses[d["numerator"]] = d["denominator"]
        elif kind is MetricKind.MEAN:
            valued.add(d["event"])
    return bases, responses, valued


def _flush(
    session: Session,
    kind: str,
    items: list[dict[str, Any]],
    settings: Settings,
    now: datetime,
    result: SimulationResult,
) -> None:
    if not items:
        return
    ingest = {
        "exposures": ingest_exposures,
        "events": ingest_events,
        "predictions": ingest_predictions,
        "labels": ingest_labels,
    }[kind]
    outcome = ingest(session, list(items), settings=settings, now=now)
    if kind != "exposures":  # exposed units are counted as they are assigned
        setattr(result, kind, getattr(result, kind) + outcome.accepted)
    items.clear()


def simulate_traffic(
    session: Session,
    key: str,
    plan: SimulationPlan,
    *,
    settings: Settings,
    now: datetime,
    on_progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Simulate ``plan.users`` units over the last ``plan.days`` days of experiment ``key``.

    Raises:
        InvalidInputError: users or days out of range.
        InvalidStateError: the experiment is not running.
    """
    problems = []
    if not 1 <= plan.users <= 10_000_000:
        problems.append(FieldProblem("users", "must be between 1 and 10,000,000"))
    if not 1 <= plan.days <= 365:
        problems.append(FieldProblem("days", "must be between 1 and 365"))
    if problems:
        raise InvalidInputError.from_problems(problems)
    experiment = get_experiment(session, key)
    if experiment.status != "running":
        raise InvalidStateError(f"experiment {key!r} is {experiment.status}: start it to simulate")
    snapshot = load_served_config(session, settings).snapshot
    definitions = [m.definition for m in experiment.metrics]
    bases, responses, valued = _event_roles(definitions)
    others = sorted(
        {str(d["event"]) for d in definitions if d.get("event")} - bases - set(responses)
    )
    has_ml = any(MetricKind(d["kind"]).is_ml for d in definitions)
    rng = np.random.default_rng(plan.seed)
    start = now - timedelta(days=plan.days)
    result = SimulationResult()
    buffers: dict[str, list[dict[str, Any]]] = {
        "exposures": [],
        "events": [],
        "predictions": [],
        "labels": [],
    }
    arrival = np.sort(rng.uniform(0, plan.days * 86_400.0 - 60, plan.users))
    prefix = uuid.UUID(int=int(rng.integers(0, 2**63))).hex[:8]
    for i in range(plan.users):
        unit = f"{key}-{prefix}-{i:07d}"
        assignment = evaluate(snapshot, key, unit, dict(plan.attributes))
        result.units += 1
        if on_progress is not None and (i + 1) % 1000 == 0:
            on_progress(1000)
        if not assignment.in_experiment or assignment.variant is None:
            continue
        variant = assignment.variant
        effect = plan.effects.get(variant, {})
        exposed_at = start + timedelta(seconds=float(arrival[i]))
        buffers["exposures"].append(
            {"unit_id": unit, "experiment": key, "variant": variant, "timestamp": exposed_at}
        )
        result.exposed += 1
        left = max(1, int((now - exposed_at).total_seconds() // 86_400))
        active = 1 + (rng.binomial(left - 1, 0.3) if left > 1 else 0)
        horizon = min(active * 86_400.0, (now - exposed_at).total_seconds() - 1)
        counts: dict[str, int] = {}
        for name in sorted(bases):
            counts[name] = int(rng.poisson(plan.rates.get(name, 5.0) * active))
        for name, base in sorted(responses.items()):
            p = min(1.0, plan.rates.get(name, 0.25) * effect.get(name, 1.0))
            counts[name] = int(rng.binomial(counts[base], p))
        for name in others:
            rate = plan.rates.get(name, 0.05) * effect.get(name, 1.0)
            counts[name] = int(rng.poisson(rate * active))
        for name, count in counts.items():
            offsets = rng.uniform(0, horizon, count)
            values = rng.lognormal(3.0, 0.8, count) if name in valued else np.ones(count)
            for offset, value in zip(offsets, values, strict=True):
                buffers["events"].append(
                    {
                        "event_id": uuid.uuid4().hex,
                        "unit_id": unit,
                        "name": name,
                        "value": float(round(value, 2)),
                        "timestamp": exposed_at + timedelta(seconds=float(offset)),
                    }
                )
        if has_ml:
            quality = plan.model_quality.get(variant, 1.0)
            model = str(assignment.params.get("model", variant))
            for _ in range(plan.predictions_per_unit):
                label = int(rng.random() < 0.3)
                score = 1 / (1 + np.exp(-(quality * (2 * label - 1) + rng.normal())))
                pid = uuid.uuid4().hex
                buffers["predictions"].append(
                    {
                        "prediction_id": pid,
                        "unit_id": unit,
                        "experiment": key,
                        "variant": variant,
                        "model": model,
                        "score": float(score),
                        "timestamp": exposed_at,
                    }
                )
                buffers["labels"].append(
                    {"prediction_id": pid, "label": float(label), "timestamp": exposed_at}
                )
        for kind, items in buffers.items():
            if len(items) >= BATCH:
                _flush(session, kind, items, settings, now, result)
    for kind, items in buffers.items():
        _flush(session, kind, items, settings, now, result)
    if on_progress is not None and plan.users % 1000:
        on_progress(plan.users % 1000)
    return result
