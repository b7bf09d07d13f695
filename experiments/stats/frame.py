"""Analyse a per-unit table: the notebook API ``analyze_frame`` and the ``xp analyze-file`` core.

A DataFrame with one row per unit is turned into the same sufficient statistics
SQL produces (one :class:`Moments` per metric and variant, shifted by the metric's
overall mean for precision), then :func:`experiments.stats.analysis.analyze`
runs and the report comes back as a dict in the report JSON schema. With the
same data and settings it gives the decision the server gives; a call is one
look unless ``looks`` lists the earlier ones.

Metric SPEC strings: ``conversion:COL`` (0/1 per unit), ``count:COL``,
``mean:COL`` and ``ratio:NUM/DEN``. Covariates (CUPED): ``{"revenue":
"pre_revenue"}`` or, for a ratio, ``{"take_rate": "pre_plays/pre_impressions"}``.
Caps follow :mod:`.caps` (nearest-rank percentiles over all units, the same
cap on the covariate). ML metrics come from a predictions frame (one row per
prediction: variant, unit id, ``score``, ``label``), each variant's metric
from its own predictions with variances clustered by unit. Bad input raises
``ValueError`` with a one-line message naming the problem.

This is the only module of ``experiments.stats`` that imports pandas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from experiments.domain import MarginType, MetricKind, MetricRole
from experiments.stats.analysis import AnalysisData, AnalysisSpec, MetricSpec, MLArrays, analyze
from experiments.stats.caps import apply_cap, cap_limit, parse_cap
from experiments.stats.frame_options import (
    check_options,
    parse_directions,
    parse_guardrails,
    parse_metric_spec,
    parse_ml_metrics,
)
from experiments.stats.results import report_to_dict
from experiments.stats.summaries import Moments

__all__ = ["analyze_frame", "cap_values", "parse_metric_spec", "read_unit_file"]

FloatArray = npt.NDArray[np.float64]
Cap = float | Mapping[str, Any]
_PREDICTION_COLUMNS = ("score", "label")


def cap_values(values: npt.ArrayLike, cap: Cap) -> FloatArray:
    """Winsorise per-unit values from above with the cap rule of :mod:`.caps`.

    Args:
        values: per-unit values of all units of all variants (so a percentile
            cap is the same for every variant).
        cap: a value, or ``{"percentile": q}`` (nearest rank), optionally with
            ``"ignore_zeros": True``.

    Returns:
        ``min(value, cap)`` for each unit.
    """
    return apply_cap(values, cap_limit(values, parse_cap(cap)))


def read_unit_file(path: str | Path) -> pd.DataFrame:
    """Read a per-unit ``.csv`` or ``.parquet`` file (one row per unit)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in {".csv", ".parquet", ".pq"}:
        raise ValueError(f"unsupported file type '{p.suffix}' for {p} (expected .csv or .parquet)")
    if not p.is_file():
        raise ValueError(f"file not found: {p}")
    try:
        return pd.read_csv(p) if suffix == ".csv" else pd.read_parquet(p)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot read {p}: {first}") from exc


def _column(df: pd.DataFrame, column: str, metric: str) -> FloatArray:
    if column not in df.columns:
        raise ValueError(f"metric '{metric}': column '{column}' not found")
    series = df[column]
    if series.dtype == bool:
        series = series.astype(float)
    if not pd.api.types.is_numeric_dtype(series):
        raise ValueError(f"metric '{metric}': column '{column}' is not numeric")
    values = series.to_numpy(dtype=float, na_value=np.nan)
    missing = int(np.isnan(values).sum())
    if missing:
        raise ValueError(f"metric '{metric}': column '{column}' has {missing} NaN values")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"metric '{metric}': column '{column}' has infinite values")
    return values


def _weights(
    given: Mapping[str, float] | None, present: list[str], control: str
) -> dict[str, float]:
    if given is None:
        treatments = sorted(v for v in present if v != control)
        order = [control, *treatments]
        return {v: 1.0 / len(order) for v in order}
    weights = {str(k): float(v) for k, v in given.items()}
    missing = [v for v in present if v not in weights]
    if missing:
        raise ValueError(f"weights miss variant(s) found in the data: {', '.join(missing)}")
    if control not in weights:
        raise ValueError(f"weights miss the control '{control}'")
    bad = [k for k, w in weights.items() if not (math.isfinite(w) and w > 0.0)]
    if bad:
        raise ValueError(f"weight of '{bad[0]}' must be a number > 0")
    total = math.fsum(weights.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1, got {total:g}")
    return {control: weights[control], **{k: w for k, w in weights.items() if k != control}}


def _predictions(
    predictions: pd.DataFrame | None,
    ml: dict[str, MetricKind],
    *,
    variant_col: str,
    unit_col: str,
    variants: dict[str, float],
    units: pd.DataFrame,
) -> dict[str, dict[str, MLArrays]]:
    """Per ML metric and variant, the labelled predictions with their units as clusters."""
    if not ml:
        if predictions is not None:
            raise ValueError("predictions given without ml_metrics")
        return {}
    if not isinstance(predictions, pd.DataFrame):
        raise ValueError("ml_metrics need predictions, a DataFrame with one row per prediction")
    needed = [variant_col, unit_col, *_PREDICTION_COLUMNS]
    missing = [c for c in needed if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions: column '{missing[0]}' not found")
    frame = predictions[needed].dropna(subset=["label"])
    if frame[[variant_col, unit_col, "score"]].isna().any().any():
        raise ValueError("predictions: variant, unit id and score must not be missing")
    labels = frame[variant_col].astype(str).to_numpy(dtype=object)
    unknown = sorted(set(labels) - set(variants))
    if unknown:
        raise ValueError(f"predictions: unknown variant '{unknown[0]}'")
    unit_ids = frame[unit_col].astype(str).to_numpy(dtype=object)
    if unit_col in units.columns:
        # A prediction counts for the variant its unit was exposed to (DESIGN.md "prediction").
        index = pd.Index(units[unit_col].astype(str).to_numpy(dtype=object))
        if not index.is_unique:
            raise ValueError(f"column '{unit_col}' has duplicate unit ids")
        position = index.get_indexer(unit_ids)
        exposed = units["__variant"].to_numpy(dtype=object)[np.maximum(position, 0)]
        stray = int(((position < 0) | (exposed != labels)).sum())
        if stray:
            raise ValueError(
                f"predictions: {stray} rows belong to units not in the data or exposed to"
                " another variant"
            )
    for column in _PREDICTION_COLUMNS:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise ValueError(f"predictions: column '{column}' is not numeric")
    codes = pd.factorize(unit_ids)[0].astype(np.int64)
    scores = frame["score"].to_numpy(dtype=float)
    targets = frame["label"].to_numpy(dtype=float)
    by_variant = {
        v: MLArrays(scores[mask], targets[mask], codes[mask])
        for v in variants
        for mask in [labels == v]
    }
    return {name: by_variant for name in ml}


def analyze_frame(
    df: pd.DataFrame,
    variant_col: str = "variant",
    control: str = "control",
    metrics: Mapping[str, str] | None = None,
    primary: str | None = None,
    weights: Mapping[str, float] | None = None,
    covariates: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    method: str = "fixed",
    planned_n: int | None = None,
    *,
    guardrails: Mapping[str, Any] | None = None,
    higher_is_better: Mapping[str, bool] | None = None,
    caps: Mapping[str, Cap] | None = None,
    mde: float = 0.05,
    power: float = 0.8,
    prior_sd: float | None = 0.3,
    correction: str = "holm",
    predictions: pd.DataFrame | None = None,
    ml_metrics: Mapping[str, str] | None = None,
    unit_col: str = "unit_id",
    looks: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Analyse an experiment from a per-unit DataFrame (DESIGN.md "Python API for notebooks").

    Args:
        df: one row per unit.
        variant_col: the column holding each unit's variant.
        control: the control variant's key.
        metrics: metric name → SPEC (``conversion:COL``, ``count:COL``, ``mean:COL``,
            ``ratio:NUM/DEN``).
        primary: the primary metric; default the first of ``metrics``. The metrics
            that are neither primary nor guardrails are secondary.
        weights: configured weight per variant (sum 1); default equal weights.
        covariates: metric name → pre-period column (``NUM/DEN`` for ratios) for CUPED.
        alpha: two-sided level of every test.
        method: ``fixed``, ``sequential``, ``group_sequential`` or ``bayesian``.
        planned_n: planned (maximum) total units; default the power calculation on
            the primary metric pooled over all variants (blinded).
        guardrails: metric name → relative margin (``0.02``), ``None`` (harm-only
            check) or ``{"margin": 1.5, "margin_type": "absolute"}``.
        higher_is_better: metric name → its good direction (default True).
        caps: metric name → upper cap (a value or ``{"percentile": q}``, optionally
            ``"ignore_zeros": True``) for mean and count metrics (and their covariate).
        mde: relative minimum detectable effect of the primary metric (planning).
        power: the planned power.
        prior_sd: Bayesian prior sd of the relative lift; None is a flat prior.
        correction: across the treatments on the primary: ``holm``, ``bonferroni``,
            ``bh`` or ``none``.
        predictions: one row per prediction: ``variant_col``, ``unit_col``,
            ``score``, ``label`` (rows without a label are ignored).
        ml_metrics: ML metric name → kind (``auc``, ``log_loss``, ...), computed per
            variant from ``predictions`` with variances clustered by unit.
        unit_col: the unit id column of ``predictions`` (and of ``df``, if present,
            to check that each prediction belongs to its unit's variant).
        looks: total units at each earlier look (group-sequential boundaries;
            without them the boundary assumes continuous monitoring).

    Returns:
        The report as a dict in the report JSON schema.

    Raises:
        ValueError: with a one-line message naming the bad input.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError("df must be a pandas DataFrame")
    analysis_method, chosen_correction, earlier = check_options(
        alpha=alpha, method=method, planned_n=planned_n, mde=mde, power=power,
        prior_sd=prior_sd, correction=correction, looks=looks,
    )  # fmt: skip
    if not metrics or not isinstance(metrics, Mapping):
        raise ValueError("metrics must map metric names to SPEC strings")
    if variant_col not in df.columns:
        raise ValueError(f"variant column '{variant_col}' not found")
    if df.empty:
        raise ValueError("the data has no rows")
    if df[variant_col].isna().any():
        raise ValueError(f"variant column '{variant_col}' has missing values")
    labels = df[variant_col].astype(str).to_numpy()
    control = str(control)
    present = list(dict.fromkeys(labels.tolist()))
    if control not in present:
        found = ", ".join(sorted(present)[:10])
        raise ValueError(f"control '{control}' not found in column '{variant_col}' ({found})")
    if len(present) < 2 and weights is None:
        raise ValueError(f"column '{variant_col}' has only the control: no treatment to compare")
    variant_weights = _weights(weights, present, control)
    primary_name = primary if primary is not None else next(iter(metrics))
    if primary_name not in metrics:
        raise ValueError(f"primary '{primary_name}' is not one of the metrics")
    ml = parse_ml_metrics(ml_metrics)
    clash = sorted(set(ml) & set(metrics))
    if clash:
        raise ValueError(f"metric '{clash[0]}' is both a business and an ML metric")
    guards = parse_guardrails(guardrails, list(metrics), primary_name)
    directions = parse_directions(higher_is_better, list(metrics))
    covariates, caps = dict(covariates or {}), dict(caps or {})
    for label, option in (("covariate", covariates), ("cap", caps)):
        unknown = [k for k in option if k not in metrics]
        if unknown:
            raise ValueError(f"{label} given for unknown metric '{unknown[0]}'")

    specs, moments, has_covariate = [], {}, {}
    for name, text in metrics.items():
        kind, columns = parse_metric_spec(name, text)
        values = [_column(df, c, name) for c in columns]
        if kind is MetricKind.CONVERSION and not np.all(np.isin(values[0], (0.0, 1.0))):
            raise ValueError(f"metric '{name}': column '{columns[0]}' must hold 0/1 values")
        if kind is MetricKind.RATIO and np.any(values[1] < 0):
            raise ValueError(f"metric '{name}': denominator column '{columns[1]}' is negative")
        limit = None
        if name in caps:
            if kind not in (MetricKind.MEAN, MetricKind.COUNT):
                raise ValueError(f"metric '{name}': caps apply to mean and count metrics only")
            limit = cap_limit(values[0], parse_cap(caps[name], f"metric '{name}': cap"))
            values[0] = apply_cap(values[0], limit)
        if name in covariates:
            pre = str(covariates[name]).split("/")
            if len(pre) != len(columns) or not all(c.strip() for c in pre):
                shape = "NUM/DEN" if kind is MetricKind.RATIO else "one column"
                raise ValueError(f"metric '{name}': covariate must be {shape}")
            pre_values = [_column(df, c.strip(), name) for c in pre]
            values += [apply_cap(pre_values[0], limit), *pre_values[1:]]
            has_covariate[name] = True
        table = np.column_stack(values)
        shift = table.mean(axis=0)
        moments[name] = {
            v: Moments.from_values(table[labels == v], shift=shift) for v in variant_weights
        }
        role = MetricRole.PRIMARY if name == primary_name else MetricRole.SECONDARY
        margin, margin_type = guards.get(name, (None, MarginType.RELATIVE))
        if name in guards:
            role = MetricRole.GUARDRAIL
        specs.append(
            MetricSpec(
                name,
                kind,
                role,
                higher_is_better=directions.get(name, True),
                margin=margin,
                margin_type=margin_type,
            )
        )
    specs += [MetricSpec(name, kind, MetricRole.ML) for name, kind in ml.items()]
    units_frame = pd.DataFrame({"__variant": labels})
    if unit_col in df.columns:
        units_frame[unit_col] = df[unit_col].to_numpy()
    ml_data = _predictions(
        predictions, ml, variant_col=variant_col, unit_col=unit_col, variants=variant_weights,
        units=units_frame,
    )  # fmt: skip

    units = {v: int(np.sum(labels == v)) for v in variant_weights}
    spec = AnalysisSpec(
        control=control,
        weights=variant_weights,
        metrics=specs,
        alpha=float(alpha),
        power=float(power),
        mde=float(mde),
        method=analysis_method,
        planned_n=planned_n,
        correction=chosen_correction,
        prior_sd=None if prior_sd is None else float(prior_sd),
        looks=earlier or (),
    )
    data = AnalysisData(units=units, moments=moments, ml=ml_data, has_covariate=has_covariate)
    return report_to_dict(analyze(spec, data))
