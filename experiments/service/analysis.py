"""Run analyses: SQL sufficient statistics → stats engine → stored snapshot.

A snapshot keeps the inputs (the moments SQL returned), the settings and the
engine version beside the report, so a report can be re-derived and audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from experiments import __version__
from experiments.config import Settings
from experiments.domain import (
    AnalysisMethod,
    Correction,
    ExperimentStatus,
    MarginType,
    MetricKind,
    MetricRole,
)
from experiments.errors import InvalidStateError
from experiments.service.decisions import with_recorded_decision
from experiments.service.experiments import get_experiment
from experiments.service.timeseries import build_timeseries
from experiments.stats.analysis import (
    AnalysisData,
    AnalysisSpec,
    MetricSpec,
    MLSummary,
    analyze,
)
from experiments.stats.ml_metrics import is_lower_better
from experiments.stats.results import report_to_dict
from experiments.stats.summaries import Moments
from experiments.storage import queries
from experiments.storage.aggregates import MetricQuery, compute_metric_moments
from experiments.storage.ml_aggregates import compute_ml_summaries
from experiments.storage.models import AnalysisSnapshot, Experiment


def _metric_spec(definition: dict[str, Any]) -> MetricSpec:
    kind = MetricKind(definition["kind"])
    higher = definition.get("higher_is_better")
    if higher is None:
        higher = not is_lower_better(kind)
    return MetricSpec(
        name=definition["name"],
        kind=kind,
        role=MetricRole(definition.get("role", "secondary")),
        higher_is_better=bool(higher),
        margin=definition.get("margin", 0.0 if definition.get("role") == "guardrail" else None),
        margin_type=MarginType(definition.get("margin_type") or "relative"),
        threshold=float(definition.get("threshold") or 0.5),
    )


def analysis_spec_for(experiment: Experiment, settings: Settings) -> AnalysisSpec:
    """The stats engine's view of an experiment's settings."""
    control = next(v.key for v in experiment.variants if v.is_control)
    return AnalysisSpec(
        control=control,
        weights={v.key: v.weight for v in experiment.variants},
        metrics=[_metric_spec(m.definition) for m in experiment.metrics],
        alpha=experiment.alpha,
        power=experiment.power,
        mde=experiment.mde,
        method=AnalysisMethod(experiment.method),
        planned_n=experiment.planned_n,
        correction=Correction(experiment.correction or settings.correction),
        prior_sd=settings.bayes_prior_sd or None,
        win_probability=settings.bayes_win_probability,
        seed=experiment.id,
    )


def metric_queries(experiment: Experiment) -> list[MetricQuery]:
    """What SQL must aggregate for each business metric of an experiment."""
    result = []
    for metric in experiment.metrics:
        d = metric.definition
        kind = MetricKind(d["kind"])
        if kind.is_ml:
            continue
        events = (d["numerator"], d["denominator"]) if kind is MetricKind.RATIO else (d["event"],)
        cap = d.get("cap")
        cuped = d.get("cuped")
        result.append(
            MetricQuery(
                name=d["name"],
                kind=kind.value,
                events=events,
                window_days=d.get("window_days"),
                cap=float(cap) if isinstance(cap, int | float) else None,
                cap_percentile=float(cap["percentile"]) if isinstance(cap, dict) else None,
                lookback_days=float(cuped["lookback_days"]) if cuped else None,
            )
        )
    return result


def _moments_document(moments: Moments) -> dict[str, Any]:
    return {
        "n": moments.n,
        "shift": list(moments.shift),
        "sums": list(moments.sums),
        "products": [list(row) for row in moments.products],
    }


def _experiment_header(experiment: Experiment, now: datetime) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "key": experiment.key,
        "name": experiment.name,
        "hypothesis": experiment.hypothesis,
        "status": experiment.status,
        "started_at": iso(experiment.started_at),
        "analysis_started_at": iso(experiment.analysis_started_at),
        "stopped_at": iso(experiment.stopped_at),
        "computed_at": now.isoformat(),
        "engine_version": __version__,
        "variants": {
            v.key: {"weight": v.weight, "is_control": v.is_control, "params": v.params}
            for v in experiment.variants
        },
        "metrics": {m.name: m.definition for m in experiment.metrics},
    }


def run_analysis(
    session: Session, key: str, *, settings: Settings, now: datetime
) -> AnalysisSnapshot:
    """Analyse an experiment now and store the snapshot.

    Raises:
        NotFoundError: unknown key.
        InvalidStateError: a draft has nothing to analyse.
    """
    experiment = get_experiment(session, key)
    if experiment.status == ExperimentStatus.DRAFT:
        raise InvalidStateError(f"experiment {key!r} is a draft: start it before analysing")
    spec = analysis_spec_for(experiment, settings)
    until = experiment.stopped_at or now
    sql = compute_metric_moments(
        session,
        experiment_id=experiment.id,
        epoch=experiment.epoch,
        metrics=metric_queries(experiment),
        until=until,
        skew_seconds=settings.clock_skew_seconds,
    )
    variants = [v.key for v in experiment.variants]
    units = {v: sql.units.get(v, 0) for v in variants}
    moments: dict[str, dict[str, Moments]] = {}
    has_covariate: dict[str, bool] = {}
    for query in metric_queries(experiment):
        width = len(query.events) * (2 if query.lookback_days is not None else 1)
        found = sql.moments.get(query.name, {})
        moments[query.name] = {v: found.get(v) or Moments.empty(width) for v in variants}
        has_covariate[query.name] = query.lookback_days is not None
    ml: dict[str, dict[str, MLSummary]] = {}
    ml_counts: dict[str, dict[str, int]] = {}
    for metric in experiment.metrics:
        kind = MetricKind(metric.kind)
        if not kind.is_ml:
            continue
        summaries = compute_ml_summaries(
            session,
            experiment_id=experiment.id,
            kind=kind,
            until=until,
            model=metric.definition.get("model"),
            threshold=float(metric.definition.get("threshold") or 0.5),
        )
        ml[metric.name] = summaries
        ml_counts[metric.name] = {
            v: summaries[v].profile.n if v in summaries else 0 for v in variants
        }
    data = AnalysisData(units=units, moments=moments, ml=ml, has_covariate=has_covariate)
    report = report_to_dict(analyze(spec, data))
    report["experiment"] = _experiment_header(experiment, now)
    # Over time, the primary metric only: it is what the charts show, and the
    # daily query's cost grows with days × units × metric columns.
    primary = next(m.name for m in spec.metrics if m.role is MetricRole.PRIMARY)
    report["timeseries"] = build_timeseries(
        session,
        experiment,
        spec=spec,
        metrics=[q for q in metric_queries(experiment) if q.name == primary],
        settings=settings,
        until=until,
        reference=sql,
    )
    snapshot = AnalysisSnapshot(
        experiment_id=experiment.id,
        computed_at=now,
        engine_version=__version__,
        settings={
            "alpha": spec.alpha,
            "power": spec.power,
            "mde": spec.mde,
            "method": spec.method.value,
            "correction": spec.correction.value,
            "planned_n": spec.planned_n,
            "prior_sd": spec.prior_sd,
            "win_probability": spec.win_probability,
            "clock_skew_seconds": settings.clock_skew_seconds,
            "until": until.isoformat(),
            "epoch": experiment.epoch,
        },
        inputs={
            "units": units,
            "caps": sql.caps,
            "moments": {
                name: {v: _moments_document(m) for v, m in per_variant.items()}
                for name, per_variant in moments.items()
            },
            "labelled_predictions": ml_counts,
        },
        report=report,
    )
    session.add(snapshot)
    session.flush()
    return snapshot


def load_report(
    session: Session, key: str, *, settings: Settings, now: datetime, refresh: bool = False
) -> dict[str, Any]:
    """The latest snapshot's report, computing a snapshot when none exists or on refresh."""
    experiment = get_experiment(session, key)
    snapshot = None if refresh else queries.latest_snapshot(session, experiment.id)
    if snapshot is None:
        snapshot = run_analysis(session, key, settings=settings, now=now)
    return with_recorded_decision(snapshot.report, experiment)
