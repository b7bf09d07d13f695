"""Per-variant summaries of ML metrics, computed in SQL from predictions joined with labels.

Python receives a handful of numbers per variant (a few thousand histogram
counts for the AUC), never the predictions; memory does not grow with their
number. The methods and their error are described in
``experiments/stats/ml_summaries.py``. Per metric and experiment:

1. ``labelled``: predictions (of one model, when given, and timestamped before
   the analysis time) joined with their labels; unlabelled ones drop out;
2. per kind:

   * mean-type (log loss, Brier, accuracy, MAE, MSE for RMSE): one query groups
     the rows by unit (loss sum, count, and the validation counts: min/max score,
     labels 0 and 1, invalid values), then gives per variant the moments of
     ``[L, n]`` about the variant's mean unit (a window average), like
     ``aggregates.py``, and the summed validation profile;
   * calibration error: the same query with the gap sums ``Σ(y − p)`` of the 10
     score bins in place of the loss;
   * AUC: a first query gives each variant's profile (with its [min, max] score
     and distinct units); the second counts positives and negatives per score
     bin. When units have several predictions, a third sums each unit's DeLong
     placements, read from window sums over the rows ordered by bin (no join).

One code path serves SQLite and PostgreSQL. Log loss needs ``ln()``, which
SQLite has when built with its math functions (the default of the CPython
builds since 3.35); without it the log-loss query fails with SQLite's "no such
function: ln".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from experiments.domain import MetricKind
from experiments.stats.ml_metrics import CALIBRATION_BINS, PROBABILITY_CLIP
from experiments.stats.ml_summaries import (
    AUC_BINS,
    CalibrationSummary,
    LossSummary,
    MLSummary,
    PredictionProfile,
    ScoreHistogram,
    bin_scale,
)
from experiments.stats.summaries import Moments
from experiments.storage.models import Label, Prediction

_LARGEST = 1.7976931348623157e308  # beyond it: ±inf (and NaN, which PostgreSQL sorts above all)


def _labelled(
    experiment_id: int, model: str | None, until: datetime
) -> Any:  # a Subquery with variant, unit_id, score, label
    stmt = (
        select(
            Prediction.variant.label("variant"),
            Prediction.unit_id.label("unit_id"),
            Prediction.score.label("score"),
            Label.label.label("label"),
        )
        .join(Label, Label.prediction_id == Prediction.prediction_id)
        .where(Prediction.experiment_id == experiment_id, Prediction.timestamp < until)
    )
    if model is not None:
        stmt = stmt.where(Prediction.model == model)
    return stmt.subquery("labelled")


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _profile_columns(score: Any, label: Any) -> list[ColumnElement[Any]]:
    """Per-group count, min/max score and counts of labels and invalid values."""
    return [
        func.count(),
        func.min(score),
        func.max(score),
        _count_if(label == 1.0),
        _count_if(label == 0.0),
        _count_if(or_(score > _LARGEST, score < -_LARGEST, label > _LARGEST, label < -_LARGEST)),
        _count_if(and_(label != 0.0, label != 1.0)),
        _count_if(or_(label < 0.0, label > 1.0)),
        _count_if(or_(score < 0.0, score > 1.0)),
    ]


def _merge_profile(columns: Sequence[Any]) -> list[ColumnElement[Any]]:
    """Per-variant totals of per-unit :func:`_profile_columns`."""
    return [
        func.sum(columns[0]),
        func.min(columns[1]),
        func.max(columns[2]),
        *(func.sum(c) for c in columns[3:]),
    ]


def _read_profile(n: Any, units: Any, values: Sequence[Any]) -> PredictionProfile:
    low, high, *counts = values
    return PredictionProfile(
        int(n or 0),
        int(units or 0),
        None if low is None else float(low),
        None if high is None else float(high),
        *(int(c or 0) for c in counts),
    )


def _profiles(session: Session, labelled: Any) -> dict[str, PredictionProfile]:
    n, *rest = _profile_columns(labelled.c.score, labelled.c.label)
    units = func.count(labelled.c.unit_id.distinct())
    stmt = select(labelled.c.variant, n, units, *rest).group_by(labelled.c.variant)
    return {str(row[0]): _read_profile(row[1], row[2], row[3:]) for row in session.execute(stmt)}


def _unit_moments(
    session: Session, source: Any, columns: Sequence[ColumnElement[Any]]
) -> dict[str, tuple[Moments, PredictionProfile]]:
    """Per variant, the moments of per-unit sums of ``columns`` and the profile, in one scan.

    The sums are shifted by the variant's mean unit before squaring (a window
    average), so the products keep their digits when the mean is large.
    """
    profile = _profile_columns(source.c.score, source.c.label)
    per_unit = (
        select(
            source.c.variant,
            *(cast(func.sum(c), Float).label(f"c{i}") for i, c in enumerate(columns)),
            *(c.label(f"p{i}") for i, c in enumerate(profile)),
        )
        .group_by(source.c.variant, source.c.unit_id)
        .subquery("per_unit")
    )
    values = [per_unit.c[f"c{i}"] for i in range(len(columns))]
    centered = select(
        per_unit.c.variant,
        *(
            (v - func.avg(v).over(partition_by=per_unit.c.variant)).label(f"d{i}")
            for i, v in enumerate(values)
        ),
        *(
            func.avg(v).over(partition_by=per_unit.c.variant).label(f"s{i}")
            for i, v in enumerate(values)
        ),
        *(per_unit.c[f"p{i}"] for i in range(len(profile))),
    ).subquery("centered")
    k = len(columns)
    outputs: list[ColumnElement[Any]] = [centered.c.variant, func.count()]
    outputs += _merge_profile([centered.c[f"p{i}"] for i in range(len(profile))])
    outputs += [func.max(centered.c[f"s{i}"]) for i in range(k)]
    outputs += [func.sum(centered.c[f"d{i}"]) for i in range(k)]
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    outputs += [func.sum(centered.c[f"d{i}"] * centered.c[f"d{j}"]) for i, j in pairs]
    out = {}
    width = len(profile)
    for row in session.execute(select(*outputs).group_by(centered.c.variant)):
        found = _read_profile(row[2], row[1], row[3 : 2 + width])
        numbers = [_float(v) for v in row[2 + width :]]
        products = [[0.0] * k for _ in range(k)]
        for (i, j), value in zip(pairs, numbers[2 * k :], strict=True):
            products[i][j] = products[j][i] = value
        moments = Moments(
            int(row[1]),
            tuple(numbers[:k]),
            tuple(numbers[k : 2 * k]),
            tuple(tuple(r) for r in products),
        )
        out[str(row[0])] = (moments, found)
    return out


def _float(value: Any) -> float:
    number = float(value) if value is not None else 0.0
    return number if math.isfinite(number) else 0.0


def _loss(kind: MetricKind, score: Any, label: Any, threshold: float) -> ColumnElement[Any]:
    """The per-prediction loss of a mean-type metric, as ``ml_summaries.prediction_losses``."""
    if kind is MetricKind.LOG_LOSS:
        low, high = PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP
        p = case((score < low, literal(low)), (score > high, literal(high)), else_=score)
        log_loss: ColumnElement[Any] = -(
            label * func.ln(p) + (literal(1.0) - label) * func.ln(literal(1.0) - p)
        )
        return log_loss
    if kind is MetricKind.ACCURACY:
        hit = or_(and_(score >= threshold, label == 1.0), and_(score < threshold, label != 1.0))
        return case((hit, 1.0), else_=0.0)
    if kind is MetricKind.MAE:
        absolute: ColumnElement[Any] = func.abs(score - label)
        return absolute
    squared: ColumnElement[Any] = (score - label) * (score - label)
    return squared


def _floor(session: Session, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``⌊value⌋`` of a non-negative value: SQLite's CAST truncates, PostgreSQL's rounds."""
    if session.get_bind().dialect.name == "sqlite":
        return cast(value, Integer)
    return cast(func.floor(value), Integer)


def _bin_expression(
    session: Session, labelled: Any, profiles: dict[str, PredictionProfile], bins: int
) -> ColumnElement[Any]:
    """``min(B − 1, ⌊(s − min_v)·scale_v⌋)`` with each variant's own min and scale."""
    whens = []
    for variant, p in profiles.items():
        if p.score_min is None or p.score_max is None:
            continue
        scale = bin_scale(p.score_min, p.score_max, bins)
        raw = _floor(session, (labelled.c.score - literal(p.score_min)) * literal(scale))
        whens.append((labelled.c.variant == variant, raw))
    raw_bin = case(*whens, else_=0) if whens else literal(0)
    return case((raw_bin > bins - 1, bins - 1), else_=raw_bin)


def _histograms(
    session: Session,
    labelled: Any,
    profiles: dict[str, PredictionProfile],
    bins: int,
) -> dict[str, ScoreHistogram]:
    binned = select(
        labelled.c.variant,
        labelled.c.unit_id,
        labelled.c.score,
        labelled.c.label,
        _bin_expression(session, labelled, profiles, bins).label("bin"),
    ).subquery("binned")
    counts = (
        select(
            binned.c.variant,
            binned.c.bin,
            _count_if(binned.c.label == 1.0).label("pos"),
            _count_if(binned.c.label == 0.0).label("neg"),
        )
        .group_by(binned.c.variant, binned.c.bin)
        .subquery("counts")
    )
    positives = {v: [0.0] * bins for v in profiles}
    negatives = {v: [0.0] * bins for v in profiles}
    for variant, b, pos, neg in session.execute(select(counts)):
        positives[str(variant)][int(b)] = float(pos)
        negatives[str(variant)][int(b)] = float(neg)
    placements: dict[str, tuple[Moments, PredictionProfile]] = {}
    if any(p.units < p.n for p in profiles.values()):
        # Window sums over the predictions ordered by bin (peers share a bin, so the
        # default RANGE frame counts the whole bin): N_{<b} + ½N_b = N_{≤b} − ½N_b and
        # P_{>b} + ½P_b = P − P_{≤b} + ½P_b. No join: one sort of the rows.
        is_pos = case((binned.c.label == 1.0, 1.0), else_=0.0)
        is_neg = case((binned.c.label == 0.0, 1.0), else_=0.0)
        variant, b = binned.c.variant, binned.c.bin
        joined = select(
            variant,
            binned.c.unit_id,
            binned.c.score,
            binned.c.label,
            (
                func.sum(is_neg).over(partition_by=variant, order_by=b)
                - 0.5 * func.sum(is_neg).over(partition_by=[variant, b])
            ).label("below"),
            (
                func.sum(is_pos).over(partition_by=variant)
                - func.sum(is_pos).over(partition_by=variant, order_by=b)
                + 0.5 * func.sum(is_pos).over(partition_by=[variant, b])
            ).label("above"),
        ).subquery("placed")
        positive = joined.c.label == 1.0
        placements = _unit_moments(
            session,
            joined,
            [
                case((positive, cast(joined.c.below, Float)), else_=0.0),
                case((positive, 1.0), else_=0.0),
                case((positive, 0.0), else_=cast(joined.c.above, Float)),
                case((positive, 0.0), else_=1.0),
            ],
        )
    return {
        v: ScoreHistogram(
            p,
            tuple(positives[v]),
            tuple(negatives[v]),
            placements[v][0] if p.units < p.n else None,
        )
        for v, p in profiles.items()
    }


def compute_ml_summaries(
    session: Session,
    *,
    experiment_id: int,
    kind: MetricKind,
    until: datetime,
    model: str | None = None,
    threshold: float = 0.5,
    bins: int = AUC_BINS,
) -> dict[str, MLSummary]:
    """Per variant, the sufficient statistics of one ML metric, computed in SQL.

    Args:
        session: the database session.
        experiment_id: the experiment's id.
        kind: the ML metric kind.
        until: only predictions timestamped before it count (the analysis time).
        model: only this model's predictions, when given.
        threshold: the score at or above which accuracy predicts 1.
        bins: equal-width score bins of the AUC histogram (at least 1,000).

    Returns:
        variant → summary, for variants with at least one labelled prediction;
        pass them to :func:`experiments.stats.ml_summaries.estimate_from_summary`
        (or as ``AnalysisData.ml``). Invalid inputs (a label that is not 0/1 for
        the AUC...) give a summary whose ``profile.problem(kind)`` says why.

    Raises:
        ValueError: ``kind`` is not an ML kind, or fewer than 1,000 bins.
    """
    if not kind.is_ml:
        raise ValueError(f"compute_ml_summaries takes an ML metric kind, got {kind.value}")
    if bins < 1000:
        raise ValueError(f"bins must be >= 1000, got {bins}")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    labelled = _labelled(experiment_id, model, until)
    if kind is MetricKind.AUC:
        profiles = _profiles(session, labelled)  # the bins need each variant's [min, max]
        valid = {v: p for v, p in profiles.items() if p.problem(kind) is None}
        out: dict[str, MLSummary] = {}
        if valid:
            out.update(_histograms(session, _restrict(labelled, valid), valid, bins))
        for v, p in profiles.items():
            out.setdefault(v, ScoreHistogram(p, (), ()))
        return out
    # One scan gives the moments and the profile; the expressions stay finite (or
    # NaN, never an SQL error) on invalid rows, whose variants are then discarded.
    score, label = labelled.c.score, labelled.c.label
    if kind is MetricKind.CALIBRATION_ERROR:
        raw = cast(score * float(CALIBRATION_BINS), Float)
        top = CALIBRATION_BINS - 1
        b = case((raw >= top, top), (raw < 0.0, 0), else_=_floor(session, raw))
        columns: list[ColumnElement[Any]] = [
            case((b == i, label - score), else_=0.0) for i in range(CALIBRATION_BINS)
        ]
    else:
        columns = [_loss(kind, score, label, threshold)]
    columns.append(literal(1.0))
    width = len(columns)
    summaries: dict[str, MLSummary] = {}
    for v, (moments, profile) in _unit_moments(session, labelled, columns).items():
        if profile.problem(kind) is not None:
            moments = Moments.empty(width)
        if kind is MetricKind.CALIBRATION_ERROR:
            summaries[v] = CalibrationSummary(profile, moments)
        else:
            summaries[v] = LossSummary(kind, profile, moments)
    return summaries


def _restrict(labelled: Any, variants: dict[str, PredictionProfile]) -> Any:
    """The labelled rows of the variants whose inputs are valid (the others give no loss)."""
    return select(labelled).where(labelled.c.variant.in_(list(variants))).subquery("valid")
