"""What the UI's overview pages show: the list, one experiment, the layers.

The experiment list with verdicts, one experiment's page, and the layers with
their bucket occupancy.

Read-only: nothing here writes. Each function gathers what one page needs, so
a view calls one function and renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from experiments.assignment.allocation import BUCKETS, count_buckets
from experiments.config import Settings
from experiments.domain import ExperimentStatus
from experiments.errors import FieldProblem, InvalidInputError
from experiments.service.audit import experiment_audit
from experiments.service.decisions import suggested_conclusion
from experiments.service.experiments import (
    experiment_document,
    get_experiment,
    unsaved_experiment,
)
from experiments.service.planning import plan_for
from experiments.service.specs import validate_spec
from experiments.storage import catalog
from experiments.storage.catalog import SORTS, ExperimentFilter
from experiments.storage.models import Experiment

_ACTIVE = (ExperimentStatus.RUNNING.value, ExperimentStatus.STOPPED.value)


def parse_filter(args: Mapping[str, str]) -> ExperimentFilter:
    """The list's filter from query parameters.

    ``q`` (text), ``status``, ``layer``, ``owner``, ``archived`` and ``sort``.

    Raises:
        InvalidInputError: an unknown status or sort order.
    """
    problems: list[FieldProblem] = []
    status = (args.get("status") or "").strip() or None
    if status is not None and status not in set(ExperimentStatus):
        problems.append(FieldProblem("status", f"must be one of {', '.join(ExperimentStatus)}"))
    sort = (args.get("sort") or "newest").strip()
    if sort not in SORTS:
        problems.append(FieldProblem("sort", f"must be one of {', '.join(SORTS)}"))
    if problems:
        raise InvalidInputError.from_problems(problems)
    return ExperimentFilter(
        text=(args.get("q") or "").strip()[:200],
        status=status,
        layer=(args.get("layer") or "").strip() or None,
        owner=(args.get("owner") or "").strip() or None,
        archived=(args.get("archived") or "").lower() in ("1", "true", "yes", "on"),
        sort=sort,
    )


def _primary_comparison(
    metrics: Mapping[str, Any], variant: str | None
) -> tuple[str | None, dict[str, Any] | None]:
    """The primary metric's comparison the decision rests on (CUPED-adjusted when present)."""
    for name, metric in metrics.items():
        if metric.get("role") != "primary":
            continue
        cuped = metric.get("cuped") or {}
        comparisons = list(cuped.get("comparisons") or metric.get("comparisons") or [])
        chosen = next((c for c in comparisons if c.get("variant") == variant), None)
        return name, chosen or (comparisons[0] if comparisons else None)
    return None, None


def verdict_summary(
    decision: Mapping[str, Any], metrics: Mapping[str, Any], srm: Mapping[str, Any]
) -> dict[str, Any]:
    """The verdict in a line: decision, the primary lift with its interval, units."""
    status = decision.get("status")
    metric, comparison = _primary_comparison(metrics, decision.get("variant"))
    observed = srm.get("observed") or {}
    return {
        "status": status,
        "variant": decision.get("variant"),
        "rule": decision.get("rule"),
        "reasons": list(decision.get("reasons") or []),
        "metric": metric,
        "comparison": comparison,
        "units": dict(observed),
        "total_units": sum(int(v or 0) for v in observed.values()),
        "planned_n": decision.get("planned_n"),
    }


def experiment_rows(session: Session, wanted: ExperimentFilter) -> list[dict[str, Any]]:
    """The experiment list: one row per experiment with its latest verdict (or None)."""
    found = catalog.search_experiments(session, wanted)
    verdicts = catalog.latest_verdicts(session, [e.id for e in found])
    rows = []
    for e in found:
        latest = verdicts.get(e.id)
        rows.append(
            {
                "key": e.key,
                "name": e.name,
                "status": e.status,
                "layer": e.layer.key if e.layer else None,
                "traffic": e.traffic,
                "owner": e.owner,
                "primary": next((m.name for m in e.metrics if m.role == "primary"), None),
                "started_at": e.started_at.isoformat() if e.started_at else None,
                "archived": e.archived_at is not None,
                "promoted": e.promoted_at is not None,
                "decision": e.decision,
                "verdict": (
                    verdict_summary(latest.decision, latest.metrics, latest.srm) if latest else None
                ),
            }
        )
    return rows


def list_choices(session: Session) -> dict[str, list[str]]:
    """The values the list's layer and owner filters offer."""
    return {"layers": catalog.list_layer_keys(session), "owners": catalog.list_owners(session)}


def _occupancy(experiment: Experiment) -> dict[str, Any]:
    ranges = [(int(a), int(b)) for a, b in experiment.buckets or []]
    return {
        "key": experiment.key,
        "name": experiment.name,
        "status": experiment.status,
        "traffic": experiment.traffic,
        "ranges": ranges,
        "buckets": count_buckets(ranges) if ranges else 0,
    }


def layer_occupancy(session: Session) -> list[dict[str, Any]]:
    """Each layer: which experiments own which of its 10,000 buckets, and the free share.

    Running and stopped experiments own buckets; drafts only ask for a share,
    which they take when they start (if it is still free).
    """
    layers = []
    for layer in catalog.layers_with_experiments(session):
        owners = [_occupancy(e) for e in layer.experiments if e.status in _ACTIVE]
        owners.sort(key=lambda o: o["ranges"][0][0] if o["ranges"] else BUCKETS)
        used = sum(o["buckets"] for o in owners)
        drafts = [
            {"key": e.key, "name": e.name, "traffic": e.traffic}
            for e in layer.experiments
            if e.status == ExperimentStatus.DRAFT and e.archived_at is None
        ]
        layers.append(
            {
                "key": layer.key,
                "buckets": BUCKETS,
                "experiments": [{**o, "share": o["buckets"] / BUCKETS} for o in owners],
                "occupied_share": used / BUCKETS,
                "free_share": (BUCKETS - used) / BUCKETS,
                "drafts": drafts,
            }
        )
    return layers


def experiment_overview(
    session: Session, key: str, *, settings: Settings, now: datetime
) -> dict[str, Any]:
    """Everything the experiment page shows.

    The document (spec, status, dates, decision), the plan from recent traffic
    for a draft, the current verdict with units per variant, the conclusion the
    verdict suggests (the conclude form's default) and the audit log.
    """
    experiment = get_experiment(session, key)
    latest = catalog.latest_verdicts(session, [experiment.id]).get(experiment.id)
    summary = verdict_summary(latest.decision, latest.metrics, latest.srm) if latest else None
    return {
        "experiment": experiment_document(experiment),
        "override_reason": (experiment.extra or {}).get("override_reason"),
        "plan": (
            plan_for(session, experiment, settings=settings, now=now)
            if experiment.status == ExperimentStatus.DRAFT
            else None
        ),
        "verdict": summary,
        "verdict_at": latest.computed_at.isoformat() if latest else None,
        "suggested": suggested_conclusion({"decision": latest.decision}) if latest else None,
        "audit": experiment_audit(session, experiment),
    }


def preview_plan(
    session: Session, document: Mapping[str, Any], *, settings: Settings, now: datetime
) -> dict[str, Any]:
    """The sample size and duration of a spec not saved yet (the create form's preview).

    Raises:
        InvalidInputError: the spec is invalid.
    """
    experiment = unsaved_experiment(session, validate_spec(document))
    return plan_for(session, experiment, settings=settings, now=now)
