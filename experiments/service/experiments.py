"""Experiment use cases: create, read, patch, start, stop, conclude, promote, archive.

Every function takes the caller's session and a ``now``; none commits. The
lifecycle is ``draft → running → stopped → concluded``; a stopped experiment
may be started again (DESIGN.md). Every change takes an ``actor`` and writes
its audit entry (``service/audit.py``) in the same transaction.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from experiments.assignment.allocation import allocate_buckets
from experiments.domain import AuditAction, ExperimentStatus
from experiments.errors import (
    ConflictError,
    FieldProblem,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
)
from experiments.service.audit import record_change
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


def list_experiments(
    session: Session, status: str | None = None, *, include_archived: bool = False
) -> list[Experiment]:
    """Experiments, newest first, optionally of one status; archived ones on request."""
    if status is not None and status not in ExperimentStatus.__members__.values():
        raise InvalidInputError.from_problems(
            [FieldProblem("status", f"must be one of {', '.join(ExperimentStatus)}")]
        )
    found = queries.list_experiments(session, [status] if status else None)
    return [e for e in found if include_archived or e.archived_at is None]


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
            "archived_at": iso(experiment.archived_at),
            "owner": experiment.owner,
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


def unsaved_experiment(session: Session, spec: ExperimentSpec) -> Experiment:
    """An experiment object for a spec, not added to the session (the create form's preview)."""
    experiment = Experiment(key=spec.key, status=ExperimentStatus.DRAFT.value, extra={})
    _write_spec(session, experiment, spec)
    return experiment


def editable_fields(experiment: Experiment) -> frozenset[str] | None:
    """The spec fields the experiment's status lets an edit change (None: all but the key).

    A running experiment's variants and targeting are included: they change
    only with a reshuffle, which :func:`update_experiment` insists on.
    """
    return {
        ExperimentStatus.DRAFT: None,
        ExperimentStatus.RUNNING: _RUNNING_MUTABLE | _RESHUFFLE_MUTABLE,
        ExperimentStatus.STOPPED: _STOPPED_MUTABLE,
        ExperimentStatus.CONCLUDED: _CONCLUDED_MUTABLE,
    }[ExperimentStatus(experiment.status)]


def edit_experiment(
    session: Session,
    key: str,
    document: Mapping[str, Any],
    *,
    reshuffle: bool = False,
    actor: str,
    now: datetime,
) -> Experiment:
    """Replace the editable fields of an experiment's spec with ``document``'s (the edit form).

    Fields the status does not let change are kept as they are, whatever the
    document says; an absent optional field is reset to its default.

    Raises:
        InvalidInputError: the result is not a valid spec.
        InvalidStateError: variants or targeting of a running experiment change
            without ``reshuffle``.
    """
    experiment = get_experiment(session, key)
    current = _drop_nulls(spec_of(experiment))
    allowed = editable_fields(experiment)
    fields = set(current) | set(document) if allowed is None else set(allowed)
    fields.discard("key")
    patch: dict[str, Any] = {f: document.get(f) for f in fields}
    if reshuffle:
        patch["reshuffle"] = True
    return update_experiment(session, key, patch, actor=actor, now=now)


def create_experiment(
    session: Session, spec: ExperimentSpec, *, actor: str, now: datetime
) -> Experiment:
    """Create a draft experiment from a validated spec; ``actor`` becomes its owner.

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
        owner=actor,
    )
    _write_spec(session, experiment, spec)
    session.add(experiment)
    session.flush()
    audit_change(session, experiment, AuditAction.CREATE, actor, None, spec_document(spec), now)
    return experiment


def audit_change(
    session: Session,
    experiment: Experiment,
    action: AuditAction,
    actor: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    now: datetime,
) -> None:
    """Write an experiment's audit entry in the caller's transaction."""
    record_change(
        session,
        actor=actor,
        action=action,
        target=experiment.key,
        experiment=experiment,
        before=before,
        after=after,
        now=now,
    )


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
    session: Session, key: str, patch: Mapping[str, Any], *, actor: str, now: datetime
) -> Experiment:
    """Apply a JSON merge-patch to an experiment, with the lifecycle's rules.

    A running experiment may change name, hypothesis, traffic, metrics and forced
    units; variants and targeting only with ``"reshuffle": true`` (new salt, the
    analysis window restarts). A stopped one may change name, hypothesis and
    metrics; a concluded one name and hypothesis; a draft anything but its key.
    A change of a running experiment's traffic is audited as ``ramp``, the rest
    as ``edit`` (only the changed fields, before and after).

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
    edited = sorted(changed)
    if reshuffle and status is ExperimentStatus.RUNNING and changed & _RESHUFFLE_MUTABLE:
        experiment.salt = _new_salt()
        experiment.epoch += 1
        experiment.analysis_started_at = now
    experiment.updated_at = now
    session.flush()
    if status is ExperimentStatus.RUNNING and "traffic" in changed:
        edited.remove("traffic")
        audit_change(
            session,
            experiment,
            AuditAction.RAMP,
            actor,
            {"traffic": old["traffic"]},
            {"traffic": new["traffic"]},
            now,
        )
    if edited:
        before = {f: old.get(f) for f in edited}
        after: dict[str, Any] = {f: new.get(f) for f in edited}
        if reshuffle and status is ExperimentStatus.RUNNING and changed & _RESHUFFLE_MUTABLE:
            before["epoch"], after["epoch"] = experiment.epoch - 1, experiment.epoch
            after["reshuffle"] = True
        audit_change(session, experiment, AuditAction.EDIT, actor, before, after, now)
    return experiment


def _drop_nulls(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def require_status(experiment: Experiment, action: str, *allowed: ExperimentStatus) -> None:
    """Refuse an action the experiment's status does not allow.

    Raises:
        InvalidStateError: naming the status and what the action needs.
    """
    if experiment.status not in allowed:
        raise InvalidStateError(
            f"cannot {action} experiment {experiment.key!r}: it is {experiment.status}"
            f" (needs {' or '.join(allowed)})"
        )


def start_experiment(session: Session, key: str, *, actor: str, now: datetime) -> Experiment:
    """Start a draft, or restart a stopped experiment.

    A draft takes its layer buckets and begins assigning units. A stopped
    experiment restarts (audited as ``restart``): it keeps its buckets and its
    analysis window, and assigns units again.
    """
    experiment = get_experiment(session, key)
    require_status(experiment, "start", ExperimentStatus.DRAFT, ExperimentStatus.STOPPED)
    if experiment.status == ExperimentStatus.STOPPED:
        return _restart(session, experiment, actor=actor, now=now)
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
    after: dict[str, Any] = {
        "status": experiment.status,
        "started_at": now,
        "buckets": experiment.buckets,
    }
    audit_change(session, experiment, AuditAction.START, actor, {"status": "draft"}, after, now)
    return experiment


def _restart(session: Session, experiment: Experiment, *, actor: str, now: datetime) -> Experiment:
    before = {"status": experiment.status, "stopped_at": experiment.stopped_at}
    experiment.status = ExperimentStatus.RUNNING.value
    experiment.stopped_at = None
    experiment.updated_at = now
    session.flush()
    after = {"status": experiment.status, "stopped_at": None}
    audit_change(session, experiment, AuditAction.RESTART, actor, before, after, now)
    return experiment


def stop_experiment(session: Session, key: str, *, actor: str, now: datetime) -> Experiment:
    """Stop a running experiment: every unit is served the control, no exposures."""
    experiment = get_experiment(session, key)
    require_status(experiment, "stop", ExperimentStatus.RUNNING)
    experiment.status = ExperimentStatus.STOPPED.value
    experiment.stopped_at = now
    experiment.updated_at = now
    session.flush()
    after = {"status": experiment.status, "stopped_at": now.isoformat()}
    audit_change(session, experiment, AuditAction.STOP, actor, {"status": "running"}, after, now)
    return experiment


def archive_experiment(session: Session, key: str, *, actor: str, now: datetime) -> Experiment:
    """Hide a draft or concluded experiment from the list (it stays in the database).

    Raises:
        InvalidStateError: it is running or stopped (stop, then conclude it first),
            or already archived.
    """
    experiment = get_experiment(session, key)
    if experiment.archived_at is not None:
        raise InvalidStateError(f"experiment {key!r} is already archived")
    require_status(experiment, "archive", ExperimentStatus.DRAFT, ExperimentStatus.CONCLUDED)
    experiment.archived_at = now
    experiment.updated_at = now
    session.flush()
    after = {"archived_at": now}
    audit_change(session, experiment, AuditAction.ARCHIVE, actor, {"archived_at": None}, after, now)
    return experiment


def apply_spec(
    session: Session, document: Any, *, actor: str, now: datetime
) -> tuple[Experiment, str]:
    """Create or update one experiment from a spec document ("experiments as code").

    Returns:
        The experiment and what happened: ``created``, ``updated`` or ``unchanged``.
    """
    spec = validate_spec(document)
    existing = queries.find_experiment(session, spec.key)
    if existing is None:
        return create_experiment(session, spec, actor=actor, now=now), "created"
    before = spec_document(validate_spec(_drop_nulls(spec_of(existing))))
    target = spec_document(spec)
    if before == target:
        return existing, "unchanged"
    # A full replacement expressed as a merge-patch: absent optional fields reset.
    patch: dict[str, Any] = {k: target.get(k) for k in set(before) | set(target)}
    if isinstance(document, Mapping) and document.get("reshuffle") is True:
        patch["reshuffle"] = True
    return update_experiment(session, spec.key, patch, actor=actor, now=now), "updated"
