"""Analyse a per-unit table: the notebook API ``analyze_frame`` and the ``xp analyze-file`` core.

A DataFrame with one row per unit is turned into the same sufficient statistics
SQL produces (one :class:`Moments` per metric and variant, shifted by the metric's
overall mean for precision), then :func:`experiments.stats.analysis.analyze`
runs and the report comes back as a dict in the report JSON schema.

Metric SPEC strings: ``conversion:COL`` (0/1 per unit), ``count:COL``,
``mean:COL`` and ``ratio:NUM/DEN``. Covariates (CUPED): ``{"revenue":
"pre_revenue"}`` or, for a ratio, ``{"take_rate": "pre_plays/pre_impressions"}``.
Bad input raises ``ValueError`` with a one-line message naming the problem.

This is the only module of ``experiments.stats`` that imports pandas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from experiments.domain import AnalysisMethod, MetricKind, MetricRole
from experiments.stats.analysis import AnalysisData, AnalysisSpec, MetricSpec, analyze
from experiments.stats.results import report_to_dict
from experiments.stats.summaries import Moments

FloatArray = npt.NDArray[np.float64]
Cap = float | Mapping[str, float]

_KINDS = {"conversion", "count", "mean", "ratio"}
_SPEC_HELP = "expected conversion:COL, count:COL, mean:COL or ratio:NUM/DEN"


def parse_metric_spec(name: str, spec: str) -> tuple[MetricKind, list[str]]:
    """Split ``kind:COL`` or ``ratio:NUM/DEN`` into the kind and its column names."""
    kind, sep, cols = str(spec).partition(":")
    columns = cols.split("/") if sep else []
    expected = 2 if kind == "ratio" else 1
    if kind not in _KINDS or len(columns) != expected or not all(c.strip() for c in columns):
        raise ValueError(f"metric '{name}': bad SPEC '{spec}' ({_SPEC_HELP})")
    return MetricKind(kind), [c.strip() for c in columns]


def cap_values(values: npt.ArrayLike, cap: Cap) -> FloatArray:
    """Winsorise per-unit values from above, before the moments are built.

    Args:
        values: per-unit values (of all units of all variants, so a percentile
            cap is the same for every variant).
        cap: a value, or ``{"percentile": q}`` with ``0 < q <= 100`` (the cap is
            the q-th percentile of ``values``, linear interpolation).

    Returns:
        ``min(value, cap)`` for each unit.
    """
    x = np.asarray(values, dtype=float)
    if isinstance(cap, Mapping):
        if set(cap) != {"percentile"}:
            raise ValueError(f"cap must be a number or {{'percentile': q}}, got {dict(cap)}")
        q = float(cap["percentile"])
        if not 0.0 < q <= 100.0:
            raise ValueError(f"cap percentile must be in (0, 100], got {q}")
        if x.size == 0:
            return x
        limit = float(np.percentile(x, q))
    else:
        limit = float(cap)
        if not math.isfinite(limit):
            raise ValueError(f"cap must be a finite number, got {cap}")
    capped: FloatArray = np.minimum(x, limit)
    return capped


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


def _check_options(alpha: float, method: str, planned_n: int | None) -> AnalysisMethod:
    if method not in {m.value for m in AnalysisMethod}:
        raise ValueError(f"unknown method '{method}' (expected fixed, sequential or bayesian)")
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if planned_n is not None and (not isinstance(planned_n, int) or planned_n <= 0):
        raise ValueError(f"planned_n must be a positive integer, got {planned_n}")
    return AnalysisMethod(method)


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
    caps: Mapping[str, Cap] | None = None,
    mde: float = 0.05,
    power: float = 0.8,
) -> dict[str, Any]:
    """Analyse an experiment from a per-unit DataFrame (DESIGN.md "Python API for notebooks").

    Args:
        df: one row per unit.
        variant_col: the column holding each unit's variant.
        control: the control variant's key.
        metrics: metric name → SPEC (``conversion:COL``, ``count:COL``, ``mean:COL``,
            ``ratio:NUM/DEN``).
        primary: the primary metric; default the first of ``metrics``. The others
            are secondary.
        weights: configured weight per variant (sum 1); default equal weights.
        covariates: metric name → pre-period column (``NUM/DEN`` for ratios) for CUPED.
        alpha: two-sided level of every test.
        method: ``fixed``, ``sequential`` or ``bayesian``.
        planned_n: planned total units (sequential tuning, ``no_effect`` vs
            ``keep_running``); default from the power calculation.
        caps: metric name → upper cap (a value or ``{"percentile": q}``) for mean
            and count metrics, applied per unit before the analysis.
        mde: relative minimum detectable effect of the primary metric.
        power: the planned power.

    Returns:
        The report as a dict in the report JSON schema.

    Raises:
        ValueError: with a one-line message naming the bad input.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError("df must be a pandas DataFrame")
    analysis_method = _check_options(alpha, method, planned_n)
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
        if name in caps:
            if kind not in (MetricKind.MEAN, MetricKind.COUNT):
                raise ValueError(f"metric '{name}': caps apply to mean and count metrics only")
            values[0] = cap_values(values[0], caps[name])
        if name in covariates:
            pre = str(covariates[name]).split("/")
            if len(pre) != len(columns) or not all(c.strip() for c in pre):
                shape = "NUM/DEN" if kind is MetricKind.RATIO else "one column"
                raise ValueError(f"metric '{name}': covariate must be {shape}")
            values += [_column(df, c.strip(), name) for c in pre]
            has_covariate[name] = True
        table = np.column_stack(values)
        shift = table.mean(axis=0)
        moments[name] = {
            v: Moments.from_values(table[labels == v], shift=shift) for v in variant_weights
        }
        role = MetricRole.PRIMARY if name == primary_name else MetricRole.SECONDARY
        specs.append(MetricSpec(name, kind, role))

    units = {v: int(np.sum(labels == v)) for v in variant_weights}
    spec = AnalysisSpec(
        control=control,
        weights=variant_weights,
        metrics=specs,
        alpha=float(alpha),
        power=power,
        mde=mde,
        method=analysis_method,
        planned_n=planned_n,
    )
    data = AnalysisData(units=units, moments=moments, has_covariate=has_covariate)
    return report_to_dict(analyze(spec, data))
