"""Experiment use cases: create, read, patch, start, stop, conclude, promote.

Every function takes the caller's session and a ``now``; none commits. The
lifecycle is ``draft → running → stopped → concluded`` (DESIGN.md).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from experiments.assignment.allocation import allocate_buckets
from experiments.domain import ConclusionDecision, ExperimentStatus
from experiments.errors import (
    ConflictError,
    FieldProblem,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
)
from experiments.service.specs import ExperimentSpec, spec_document, validate_spec
from experiments.storage import queries
from experiments.storage.models import Experiment, Layer, Metric, Variant

# Fields a running experiment may change (DESIGN.md); variants and targeting
# only with "reshuffle": true.
_RUNNING_MUTABLE = frozenset({"name", "hypothesis", "traffic", "metrics", "forced"})
_RESHUFFLE_MUTABLE = frozenset({"variants", "targeting"})
_STOPPED_MUTABLE = frozenset({"name", "hypothesis", "metrics"})
_CONCLUDED_MUTABLE = frozenset({"name", "hypothesis"})


def _new_salt() -> str:
    return secrets.token_hex(8)


def get_experiment(session: Session, key: str) -> Experiment:
    """The experiment named ``key``.

    Raises:
        NotFoundError: when there is none.
    """
    experiment = queries.find_experiment(session, key)
    if experiment is None:
        raise NotFoundError(f"experiment {key!r} does not exist")
    return experiment


def list_experiments(session: Session, status: str | None = None) -> list[Experiment]:
    """All experiments, newest first, optionally of one status."""
    if status is not None and status not in ExperimentStatus.__members__.values():
        raise InvalidInputError.from_problems(
            [FieldProblem("status", f"must be one of {', '.join(ExperimentStatus)}")]
        )
    return queries.list_experiments(session, [status] if status else None)


def spec_of(experiment: Experiment) -> dict[str, Any]:
    """The experiment's spec document, as accepted by create/apply."""
    doc: dict[str, Any] = {
        "key": experiment.key,
        "name": experiment.name,
        "hypothesis": experiment.hypothesis,
        "layer": experiment.layer.key if experiment.layer else None,
        "traffic": experiment.traffic,
        "targeting": copy.deepcopy(experiment.targeting),
        "forced": dict(experiment.forced or {}),
        "variants": [
            {
                "key": v.key,
                "weight": v.weight,
                "is_control": v.is_control,
                "params": copy.deepcopy(v.params),
            }
            for v in experiment.variants
        ],
        "metrics": [copy.deepcopy(m.definition) for m in experiment.metrics],
        "alpha": experiment.alpha,
        "power": experiment.power,
        "mde": experiment.mde,
        "method": experiment.method,
        "correction": experiment.correction,
        "planned_n": experiment.planned_n,
    }
    return doc


def experiment_document(experiment: Experiment) -> dict[str, Any]:
    """The spec plus status, dates and the recorded decision (GET responses)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    doc = spec_of(experiment)
    doc.update(
        {
            "status": experiment.status,
            "salt": experiment.salt,
            "epoch": experiment.epoch,
            "created_at": iso(experiment.created_at),
            "updated_at": iso(experiment.updated_at),
            "started_at": iso(experiment.started_at),
            "analysis_started_at": iso(experiment.analysis_started_at),
            "stopped_at": iso(experiment.stopped_at),
            "concluded_at": iso(experiment.concluded_at),
            "promoted_at": iso(experiment.promoted_at),
            "buckets": experiment.buckets,
            "conclusion": (
                {
                    "decision": experiment.decision,
                    "variant": experiment.decision_variant,
                    "rationale": experiment.decision_rationale,
                    "decided_by": experiment.decided_by,
                }
                if experiment.decision
                else None
            ),
        }
    )
    return doc


def _get_or_create_layer(session: Session, key: str, now: datetime) -> Layer:
    layer = queries.find_layer(session, key)
    if layer is None:
        layer = Layer(key=key, salt=f"layer:{key}", created_at=now)
        session.add(layer)
        session.flush()
    return layer


def _write_spec(session: Session, experiment: Experiment, spec: ExperimentSpec) -> None:
    """Copy a validated spec onto the rows (variants and metrics replaced)."""
    experiment.name = spec.name
    experiment.hypothesis = spec.hypothesis
    experiment.traffic = spec.traffic
    experiment.targeting = copy.deepcopy(spec.targeting)
    experiment.forced = dict(spec.forced)
    experiment.alpha = spec.alpha
    experiment.power = spec.power
    experiment.mde = spec.mde
    experiment.method = spec.method.value
    experiment.correction = spec.correction.value if spec.correction else None
    experiment.planned_n = spec.planned_n
    doc = spec_document(spec)
    old_variants = {v.key: v for v in experiment.variants}
    variants = []
    for position, (vs, vdoc) in enumerate(zip(spec.variants, doc["variants"], strict=True)):
        variant = old_variants.get(vs.key) or Variant(key=vs.key)
        variant.position = position
        variant.weight = vs.weight
        variant.is_control = vs.is_control
        variant.params = vdoc["params"]
        variants.append(variant)
    experiment.variants = variants
    old_metrics = {m.name: m for m in experiment.metrics}
    metrics = []
    for position, (ms, mdoc) in enumerate(zip(spec.metrics, doc["metrics"], strict=True)):
        metric = old_metrics.get(ms.name) or Metric(name=ms.name)
        metric.position = position
        metric.kind = ms.kind.value
        metric.role = ms.role.value
        metric.definition = mdoc
        metrics.append(metric)
    experiment.metrics = metrics


def create_experiment(session: Session, spec: ExperimentSpec, *, now: datetime) -> Experiment:
    """Create a draft experiment from a validated spec.

    Raises:
        ConflictError: the key exists, or its layer has less free traffic than asked.
    """
    if queries.find_experiment(session, spec.key) is not None:
        raise ConflictError(f"experiment {spec.key!r} already exists")
    layer = _get_or_create_layer(session, spec.layer, now) if spec.layer else None
    if layer is not None:
        taken = queries.taken_buckets(session, layer.id, exclude=None)
        allocate_buckets(taken, [], spec.traffic, layer=layer.key, experiment=spec.key)
    experiment = Experiment(
        key=spec.key,
        status=ExperimentStatus.DRAFT.value,
        salt=_new_salt(),
        epoch=0,
        created_at=now,
        updated_at=now,
        extra={},
        layer=layer,
    )
    _write_spec(session, experiment, spec)
    session.add(experiment)
    session.flush()
    return experiment


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge-patch: objects merge recursively, null deletes."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def update_experiment(
    session: Session, key: str, patch: Mapping[str, Any], *, now: datetime
) -> Experiment:
    """Apply a JSON merge-patch to an experiment, with the lifecycle's rules.

    A running experiment may change name, hypothesis, traffic, metrics and forced
    units; variants and targeting only with ``"reshuffle": true`` (new salt, the
    analysis window restarts). A stopped one may change name, hypothesis and
    metrics; a concluded one name and hypothesis; a draft anything but its key.

    Raises:
        InvalidInputError: the patched spec is invalid (every problem by path).
        InvalidStateError: the change is not allowed in the current status.
    """
    experiment = get_experiment(session, key)
    if not isinstance(patch, Mapping):
        raise InvalidInputError.from_problems([FieldProblem("", "the patch must be a JSON object")])
    body = dict(patch)
    reshuffle = body.pop("reshuffle", None)
    if reshuffle not in (None, True, False):
        raise InvalidInputError.from_problems([FieldProblem("reshuffle", "must be true or false")])
    current = spec_of(experiment)
    merged = _merge_patch(current, body)
    if merged.get("key") != experiment.key:
        raise InvalidStateError("key: cannot be changed; create a new experiment instead")
    spec = validate_spec(_drop_nulls(merged))
    new = spec_document(spec)
    old = spec_document(validate_spec(_drop_nulls(current)))
    changed = {field for field in new if new[field] != old.get(field)}
    status = ExperimentStatus(experiment.status)
    allowed = {
        ExperimentStatus.DRAFT: None,
        ExperimentStatus.RUNNING: _RUNNING_MUTABLE | (_RESHUFFLE_MUTABLE if reshuffle else set()),
        ExperimentStatus.STOPPED: _STOPPED_MUTABLE,
        ExperimentStatus.CONCLUDED: _CONCLUDED_MUTABLE,
    }[status]
    if allowed is not None:
        refused = sorted(changed - allowed)
        if refused:
            hint = (
                ' (send "reshuffle": true to draw a new salt and restart the analysis)'
                if status is ExperimentStatus.RUNNING and set(refused) <= _RESHUFFLE_MUTABLE
                else ""
            )
            raise InvalidStateError(
                f"cannot change {', '.join(refused)} of a {status} experiment{hint}"
            )
    if "layer" in changed:
        experiment.layer = _get_or_create_layer(session, spec.layer, now) if spec.layer else None
    if experiment.layer is not None and ("traffic" in changed or "layer" in changed):
        taken = queries.taken_buckets(session, experiment.layer.id, exclude=experiment.id)
        owned = [tuple(r) for r in experiment.buckets or []]
        ranges = allocate_buckets(
            taken,
            owned,  # type: ignore[arg-type]
            spec.traffic,
            layer=experiment.layer.key,
            experiment=experiment.key,
        )
        if status is ExperimentStatus.RUNNING:
            experiment.buckets = [list(r) for r in ranges]
    _write_spec(session, experiment, spec)
    if reshuffle and status is ExperimentStatus.RUNNING and changed & _RESHUFFLE_MUTABLE:
        experiment.salt = _new_salt()
        experiment.epoch += 1
        experiment.analysis_started_at = now
    experiment.updated_at = now
    session.flush()
    return experiment


def _drop_nulls(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def _require_status(experiment: Experiment, action: str, *allowed: ExperimentStatus) -> None:
    if experiment.status not in allowed:
        raise InvalidStateError(
            f"cannot {action} experiment {experiment.key!r}: it is {experiment.status}"
            f" (needs {' or '.join(allowed)})"
        )


def start_experiment(session: Session, key: str, *, now: datetime) -> Experiment:
    """Start a draft: it takes its layer buckets and begins assigning units."""
    experiment = get_experiment(session, key)
    _require_status(experiment, "start", ExperimentStatus.DRAFT)
    if experiment.layer is not None:
        taken = queries.taken_buckets(session, experiment.layer.id, exclude=experiment.id)
        ranges = allocate_buckets(
            taken, [], experiment.traffic, layer=experiment.layer.key, experiment=experiment.key
        )
        experiment.buckets = [list(r) for r in ranges]
    experiment.status = ExperimentStatus.RUNNING.value
    experiment.started_at = now
    experiment.analysis_started_at = now
    experiment.updated_at = now
    session.flush()
    return experiment


def stop_experiment(session: Session, key: str, *, now: datetime) -> Experiment:
    """Stop a running experiment: every unit is served the control, no exposures."""
    experiment = get_experiment(session, key)
    _require_status(experiment, "stop", ExperimentStatus.RUNNING)
    experiment.status = ExperimentStatus.STOPPED.value
    experiment.stopped_at = now
    experiment.updated_at = now
    session.flush()
    return experiment


def conclude_experiment(
    session: Session,
    key: str,
    *,
    decision: str,
    rationale: str,
    variant: str | None = None,
    decided_by: str | None = None,
    now: datetime,
) -> Experiment:
    """Record who decided what and why; the layer buckets return to the layer.

    ``ship`` needs the variant to ship (the only treatment by default).

    Raises:
        InvalidInputError: an unknown decision or variant, or an empty rationale.
        InvalidStateError: the experiment is not running or stopped.
    """
    experiment = get_experiment(session, key)
    _require_status(experiment, "conclude", ExperimentStatus.RUNNING, ExperimentStatus.STOPPED)
    problems: list[FieldProblem] = []
    try:
        chosen = ConclusionDecision(decision)
    except ValueError:
        problems.append(FieldProblem("decision", f"must be one of {', '.join(ConclusionDecision)}"))
        chosen = None
    if not rationale or not rationale.strip():
        problems.append(FieldProblem("rationale", "is required: say why"))
    keys = [v.key for v in experiment.variants]
    treatments = [v.key for v in experiment.variants if not v.is_control]
    if variant is not None and variant not in keys:
        problems.append(
            FieldProblem("variant", f"unknown variant {variant!r} (one of {', '.join(keys)})")
        )
    if chosen is ConclusionDecision.SHIP and variant is None:
        if len(treatments) == 1:
            variant = treatments[0]
        else:
            problems.append(FieldProblem("variant", "is required to ship: name the variant"))
    if problems:
        raise InvalidInputError.from_problems(problems)
    assert chosen is not None
    experiment.status = ExperimentStatus.CONCLUDED.value
    experiment.decision = chosen.value
    experiment.decision_variant = variant
    experiment.decision_rationale = rationale.strip()
    experiment.decided_by = decided_by
    experiment.concluded_at = now
    if experiment.stopped_at is None:
        experiment.stopped_at = now
    experiment.buckets = None
    experiment.updated_at = now
    session.flush()
    return experiment


def promote_experiment(session: Session, key: str, *, now: datetime) -> Experiment:
    """Make a concluded ``ship`` decision's variant params the default everyone gets."""
    experiment = get_experiment(session, key)
    _require_status(experiment, "promote", ExperimentStatus.CONCLUDED)
    if experiment.decision != ConclusionDecision.SHIP.value or not experiment.decision_variant:
        raise InvalidStateError(
            f"cannot promote experiment {key!r}: only a concluded 'ship' decision can be"
            f" promoted (it was {experiment.decision!r})"
        )
    experiment.promoted_at = now
    experiment.updated_at = now
    session.flush()
    return experiment


def apply_spec(session: Session, document: Any, *, now: datetime) -> tuple[Experiment, str]:
    """Create or update one experiment from a spec document ("experiments as code").

    Returns:
        The experiment and what happened: ``created``, ``updated`` or ``unchanged``.
    """
    spec = validate_spec(document)
    existing = queries.find_experiment(session, spec.key)
    if existing is None:
        return create_experiment(session, spec, now=now), "created"
    before = spec_document(validate_spec(_drop_nulls(spec_of(existing))))
    target = spec_document(spec)
    if before == target:
        return existing, "unchanged"
    # A full replacement expressed as a merge-patch: absent optional fields reset.
    patch: dict[str, Any] = {k: target.get(k) for k in set(before) | set(target)}
    if isinstance(document, Mapping) and document.get("reshuffle") is True:
        patch["reshuffle"] = True
    return update_experiment(session, spec.key, patch, now=now), "updated"
