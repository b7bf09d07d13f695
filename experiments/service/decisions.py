"""Decisions: conclude an experiment, promote its shipped variant, un-promote it.

A person concludes with ship, roll back or iterate and a rationale; the actor
is recorded as ``decided_by`` (never a client-sent name). A concluded ``ship``
may be promoted: its variant's params become what every unit gets. Each change
is audited in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from experiments.domain import AuditAction, ConclusionDecision, ExperimentStatus
from experiments.errors import FieldProblem, InvalidInputError, InvalidStateError
from experiments.service.experiments import audit_change, get_experiment, require_status
from experiments.storage import queries
from experiments.storage.models import Experiment


def suggested_conclusion(report: Mapping[str, Any] | None) -> tuple[str, str | None] | None:
    """What the engine's verdict suggests recording, ``(decision, variant)``, or None.

    ``ship`` ships its variant; ``rollback`` and ``no_effect`` keep the control
    (rollback); a verdict not yet reached (keep running, waiting, invalid)
    suggests nothing.
    """
    verdict = (report or {}).get("decision") or {}
    status = verdict.get("status")
    if status == "ship":
        return ConclusionDecision.SHIP.value, verdict.get("variant")
    if status in ("rollback", "no_effect"):
        return ConclusionDecision.ROLLBACK.value, None
    return None


def latest_verdict(session: Session, experiment: Experiment) -> dict[str, Any] | None:
    """The decision of the experiment's latest analysis snapshot, or None."""
    snapshot = queries.latest_snapshot(session, experiment.id)
    return dict(snapshot.report.get("decision") or {}) if snapshot is not None else None


@dataclass(frozen=True)
class Conclusion:
    """A checked conclusion, not yet recorded."""

    experiment: Experiment
    decision: ConclusionDecision
    variant: str | None
    rationale: str
    verdict: dict[str, Any] | None
    override_reason: str | None

    @property
    def overrides(self) -> bool:
        """Whether it departs from what the engine's verdict suggests."""
        suggested = suggested_conclusion({"decision": self.verdict})
        return suggested is not None and suggested != (self.decision.value, self.variant)


def _check(
    session: Session,
    key: str,
    *,
    decision: str,
    rationale: str,
    variant: str | None,
    override_reason: str | None,
    require_override_reason: bool,
) -> Conclusion:
    experiment = get_experiment(session, key)
    require_status(experiment, "conclude", ExperimentStatus.RUNNING, ExperimentStatus.STOPPED)
    problems: list[FieldProblem] = []
    try:
        chosen: ConclusionDecision | None = ConclusionDecision(decision)
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
    if chosen is not ConclusionDecision.SHIP:
        variant = None
    reason = (override_reason or "").strip() or None
    verdict = latest_verdict(session, experiment)
    suggested = suggested_conclusion({"decision": verdict})
    overrides = suggested is not None and chosen is not None and suggested != (chosen, variant)
    if require_override_reason and overrides and reason is None:
        label = " ".join(v for v in suggested or () if v)
        problems.append(
            FieldProblem(
                "override_reason",
                f"is required: the engine's verdict suggests {label}; say why you decide otherwise",
            )
        )
    if problems:
        raise InvalidInputError.from_problems(problems)
    assert chosen is not None
    return Conclusion(
        experiment, chosen, variant, rationale.strip(), verdict, reason if overrides else None
    )


def check_conclusion(
    session: Session,
    key: str,
    *,
    decision: str,
    rationale: str,
    variant: str | None = None,
    override_reason: str | None = None,
) -> dict[str, Any]:
    """Check a conclusion the web form is about to record (reason needed to override).

    Returns:
        ``{"label": "ship treatment", "consequences": [sentences]}`` for the
        confirmation page; nothing is changed.

    Raises:
        InvalidInputError: as :func:`conclude_experiment` would.
        InvalidStateError: as :func:`conclude_experiment` would.
    """
    checked = _check(
        session,
        key,
        decision=decision,
        rationale=rationale,
        variant=variant,
        override_reason=override_reason,
        require_override_reason=True,
    )
    experiment = checked.experiment
    label = " ".join(v for v in (checked.decision.value, checked.variant) if v)
    consequences = [
        "The experiment stops assigning units for good: every unit gets the product's"
        " default again"
        + (
            f", and its buckets return to layer {experiment.layer.key}."
            if experiment.layer
            else "."
        )
    ]
    if checked.decision is ConclusionDecision.SHIP:
        consequences.append(
            f"Recording ship does not change what units get: an admin then promotes"
            f" {checked.variant} to give it to every unit."
        )
    if checked.overrides:
        status = (checked.verdict or {}).get("status")
        consequences.append(
            f"This departs from the engine's verdict ({status}); your reason is kept with"
            " the decision."
        )
    consequences.append("A conclusion cannot be undone.")
    return {"label": label, "consequences": consequences}


def conclude_experiment(
    session: Session,
    key: str,
    *,
    decision: str,
    rationale: str,
    variant: str | None = None,
    actor: str,
    now: datetime,
    override_reason: str | None = None,
    require_override_reason: bool = False,
) -> Experiment:
    """Record what was decided, why, and by whom (``actor``); the layer buckets return.

    ``ship`` needs the variant to ship (the only treatment by default). With
    ``require_override_reason`` (the web form), a decision other than the one the
    latest verdict suggests (:func:`suggested_conclusion`) needs an
    ``override_reason``; it is kept with the decision and in the audit log.

    Raises:
        InvalidInputError: an unknown decision or variant, an empty rationale, or an
            override without its reason.
        InvalidStateError: the experiment is not running or stopped.
    """
    checked = _check(
        session,
        key,
        decision=decision,
        rationale=rationale,
        variant=variant,
        override_reason=override_reason,
        require_override_reason=require_override_reason,
    )
    experiment = checked.experiment
    before = {"status": experiment.status}
    experiment.status = ExperimentStatus.CONCLUDED.value
    experiment.decision = checked.decision.value
    experiment.decision_variant = checked.variant
    experiment.decision_rationale = checked.rationale
    experiment.decided_by = actor
    experiment.concluded_at = now
    if checked.override_reason:
        experiment.extra = {**(experiment.extra or {}), "override_reason": checked.override_reason}
    if experiment.stopped_at is None:
        experiment.stopped_at = now
    experiment.buckets = None
    experiment.updated_at = now
    session.flush()
    after = {
        "status": experiment.status,
        "decision": checked.decision.value,
        "variant": checked.variant,
        "rationale": checked.rationale,
        "engine_verdict": (checked.verdict or {}).get("status"),
        "override_reason": checked.override_reason,
    }
    audit_change(session, experiment, AuditAction.CONCLUDE, actor, before, after, now)
    return experiment


def recorded_decision(experiment: Experiment) -> dict[str, Any] | None:
    """The human decision for the report (``decision.recorded``), or None before it."""
    if experiment.decision is None:
        return None
    return {
        "decision": experiment.decision,
        "variant": experiment.decision_variant,
        "rationale": experiment.decision_rationale,
        "by": experiment.decided_by,
        "at": experiment.concluded_at.isoformat() if experiment.concluded_at else None,
        "promoted": experiment.promoted_at is not None,
    }


def with_recorded_decision(report: Mapping[str, Any], experiment: Experiment) -> dict[str, Any]:
    """A copy of a report whose ``decision.recorded`` is the experiment's human decision."""
    document = dict(report)
    document["decision"] = {
        **(report.get("decision") or {}),
        "recorded": recorded_decision(experiment),
    }
    return document


def promote_experiment(session: Session, key: str, *, actor: str, now: datetime) -> Experiment:
    """Make a concluded ``ship`` decision's variant params the default every unit gets."""
    experiment = get_experiment(session, key)
    require_status(experiment, "promote", ExperimentStatus.CONCLUDED)
    if experiment.decision != ConclusionDecision.SHIP.value or not experiment.decision_variant:
        raise InvalidStateError(
            f"cannot promote experiment {key!r}: only a concluded 'ship' decision can be"
            f" promoted (it was {experiment.decision!r})"
        )
    if experiment.promoted_at is not None:
        raise InvalidStateError(f"experiment {key!r} is already promoted")
    experiment.promoted_at = now
    experiment.updated_at = now
    session.flush()
    before = {"promoted_at": None}
    after = {"promoted_at": now, "variant": experiment.decision_variant}
    audit_change(session, experiment, AuditAction.PROMOTE, actor, before, after, now)
    return experiment


def unpromote_experiment(session: Session, key: str, *, actor: str, now: datetime) -> Experiment:
    """Undo a promotion: every unit gets the product's default again.

    Raises:
        InvalidStateError: the experiment is not promoted.
    """
    experiment = get_experiment(session, key)
    if experiment.promoted_at is None:
        raise InvalidStateError(f"cannot unpromote experiment {key!r}: it is not promoted")
    before = {"promoted_at": experiment.promoted_at, "variant": experiment.decision_variant}
    experiment.promoted_at = None
    experiment.updated_at = now
    session.flush()
    after = {"promoted_at": None}
    audit_change(session, experiment, AuditAction.UNPROMOTE, actor, before, after, now)
    return experiment
