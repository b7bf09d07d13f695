"""Plan an experiment from real traffic: baseline, sample size and duration.

The primary metric's baseline mean and per-unit variance, and the rate at
which units arrive, come from the last ``lookback_days`` of events
(``storage/planning.py``); the sample size comes from ``stats/power.py`` for
the experiment's MDE, alpha, power, weights and method. Units enter an
experiment as they are first seen, so the duration is the first day on which
``share × cumulative distinct units`` reaches the sample size, where ``share``
is the experiment's traffic times the share outside the global holdout;
beyond the lookback window the last week's arrival rate is extrapolated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from experiments.config import Settings
from experiments.domain import AnalysisMethod, MetricKind, MetricRole
from experiments.errors import FieldProblem, InvalidInputError
from experiments.service.analysis import metric_queries
from experiments.service.experiments import get_experiment
from experiments.stats.power import Baseline, sample_size
from experiments.storage.models import Experiment
from experiments.storage.planning import MAX_LOOKBACK_DAYS, load_traffic_baseline

EXTRAPOLATION_DAYS = 7


def _days_to_reach(needed: int, cumulative: list[int], share: float) -> tuple[int | None, str]:
    entered = [share * c for c in cumulative]
    for day, units in enumerate(entered, start=1):
        if units >= needed:
            return day, f"reached on day {day} of the observed traffic"
    window = min(EXTRAPOLATION_DAYS, len(entered) - 1)
    rate = (entered[-1] - entered[-1 - window]) / window if window > 0 else 0.0
    if rate <= 0:
        return None, "no new units arrived recently: the sample size cannot be reached"
    extra = (needed - entered[-1]) / rate
    days = len(entered) + int(-(-extra // 1))
    return days, f"extrapolated at {rate:,.0f} new units/day entering after day {len(entered)}"


def plan_experiment(
    session: Session, key: str, *, settings: Settings, now: datetime, lookback_days: int = 14
) -> dict[str, Any]:
    """Baseline, sample size and expected duration of an experiment's primary metric.

    Raises:
        NotFoundError: unknown key.
        InvalidInputError: the lookback is out of range.
    """
    experiment = get_experiment(session, key)
    return plan_for(session, experiment, settings=settings, now=now, lookback_days=lookback_days)


def plan_for(
    session: Session,
    experiment: Experiment,
    *,
    settings: Settings,
    now: datetime,
    lookback_days: int = 14,
) -> dict[str, Any]:
    """:func:`plan_experiment` for an experiment object, saved or not (the create form)."""
    key = experiment.key
    if not 1 <= lookback_days <= MAX_LOOKBACK_DAYS:
        raise InvalidInputError.from_problems(
            [FieldProblem("lookback_days", f"must be between 1 and {MAX_LOOKBACK_DAYS}")]
        )
    primary = next(m for m in experiment.metrics if m.role == MetricRole.PRIMARY)
    query = next(q for q in metric_queries(experiment) if q.name == primary.name)
    traffic = load_traffic_baseline(session, query, until=now, days=lookback_days)
    variants = sorted(experiment.variants, key=lambda v: not v.is_control)
    weights = [v.weight for v in variants]
    share = experiment.traffic * (1.0 - settings.holdout_fraction)
    kind = MetricKind(primary.kind)
    result: dict[str, Any] = {
        "experiment": key,
        "metric": primary.name,
        "kind": kind.value,
        "lookback_days": traffic.days,
        "active_units": traffic.moments.n,
        "cumulative_units": traffic.cumulative_units,
        "share_entering": share,
        "mde": experiment.mde,
        "alpha": experiment.alpha,
        "power": experiment.power,
        "method": experiment.method,
        "weights": {v.key: v.weight for v in variants},
        "baseline_mean": None,
        "baseline_sd": None,
        "sample_size": None,
        "per_variant": None,
        "days_needed": None,
        "reasons": [],
    }
    try:
        baseline = Baseline.from_moments(traffic.moments, kind)
    except ValueError as exc:
        result["reasons"].append(
            f"no usable baseline for {primary.name} in the last {traffic.days} days: {exc}"
        )
        return result
    result["baseline_mean"] = baseline.mean
    result["baseline_sd"] = baseline.var**0.5
    total = sample_size(
        baseline,
        mde=experiment.mde,
        relative=True,
        alpha=experiment.alpha,
        power=experiment.power,
        weights=weights,
        sequential=experiment.method == AnalysisMethod.SEQUENTIAL,
    )
    result["sample_size"] = total
    result["per_variant"] = {v.key: int(-(-total * v.weight // 1)) for v in variants}
    if share <= 0:
        result["reasons"].append("the experiment's traffic is 0: no unit would enter")
        return result
    days, how = _days_to_reach(total, traffic.cumulative_units, share)
    result["days_needed"] = days
    result["reasons"].append(
        f"{total:,} units to detect a {experiment.mde:.1%} relative change in "
        f"{primary.name} (baseline {baseline.mean:.4g}) at alpha {experiment.alpha:g} "
        f"with power {experiment.power:.0%}; {how}"
    )
    return result
