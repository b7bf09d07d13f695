"""The inputs of an analysis: what to judge, the data to judge it on, and what earlier looks left.

The analysis service builds them from the database (moments computed in SQL)
and from the previous snapshot (:class:`AnalysisHistory`, stored as JSON with
:func:`history_to_dict` and read back with :func:`history_from_dict`);
:func:`experiments.stats.frame.analyze_frame` builds them from a DataFrame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from experiments.domain import AnalysisMethod, Correction, MarginType, MetricKind, MetricRole
from experiments.stats.ml_summaries import MLSummary
from experiments.stats.summaries import Moments


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is judged (DESIGN.md "metric")."""

    name: str
    kind: MetricKind
    role: MetricRole
    higher_is_better: bool = True
    margin: float | None = None
    margin_type: MarginType = MarginType.RELATIVE
    threshold: float = 0.5


Interval = tuple[float, float]


@dataclass(frozen=True)
class RunningBound:
    """Running state of one always-valid comparison (``sequential``).

    Attributes:
        p_value: running minimum of the always-valid p-value over the looks so far.
        ci: running intersection of the always-valid intervals of the absolute difference.
        rel_ci: running intersection of the always-valid (Fieller) intervals of the
            relative lift (None when none was bounded yet).
    """

    p_value: float | None
    ci: Interval | None
    rel_ci: Interval | None = None


@dataclass(frozen=True)
class Look:
    """One earlier look of a group-sequential design (every method records its looks).

    Attributes:
        n: total units (all variants) at that look.
        information: information fraction ``n / planned_n``, capped at 1.
        boundary_z: the critical ``|z|`` the method used at that look.
    """

    n: int
    information: float
    boundary_z: float


@dataclass(frozen=True)
class KeptVerdict:
    """A verdict that later refreshes keep (taken when the method allowed a verdict).

    Attributes:
        status: ``ship``, ``rollback`` or ``no_effect``.
        variant: the variant shipped or rolled back (None for ``no_effect``).
        n: total units when the verdict was taken.
        rule: the rule that decided, in words.
        reasons: the reasons given then.
    """

    status: str
    variant: str | None
    n: int
    rule: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class AnalysisHistory:
    """What earlier looks of this experiment left behind (stored in its snapshots).

    Attributes:
        looks: the earlier looks, oldest first.
        running: running always-valid bounds, keyed ``f"{metric}|{variant}|{'cuped' or 'raw'}"``
            (see :func:`running_key`).
        srm_p_value: running minimum of the sequential SRM p-value.
        verdict: the verdict kept from an earlier look, if any.
    """

    looks: tuple[Look, ...] = ()
    running: Mapping[str, RunningBound] = field(default_factory=dict)
    srm_p_value: float | None = None
    verdict: KeptVerdict | None = None


def running_key(metric: str, variant: str, adjusted: bool) -> str:
    """The key of a comparison in :attr:`AnalysisHistory.running`."""
    return f"{metric}|{variant}|{'cuped' if adjusted else 'raw'}"


@dataclass(frozen=True)
class AnalysisSpec:
    """The experiment settings an analysis needs; ``weights`` lists every variant.

    Attributes:
        control: the control variant's key.
        weights: configured weight of every variant.
        metrics: the metrics, exactly one primary.
        alpha: two-sided level of the tests.
        power: planned power (planning only).
        mde: relative minimum detectable effect of the primary (planning only).
        method: ``fixed``, ``sequential``, ``group_sequential`` or ``bayesian``.
        planned_n: the frozen planned total sample size (None: planned from the
            blinded pooled baseline of this look).
        correction: correction across the treatments on the primary metric.
        prior_sd: Bayesian prior sd of the relative lift (None or 0: flat).
        win_probability: Bayesian chance to beat control that makes a winner with
            one treatment; None derives it from alpha (``1 − α/2``). With ``k``
            treatments the threshold is ``1 − (1 − win_probability)/k``.
        seed: seed of Monte Carlo and bootstrap computations.
        n_star: the frozen tuning sample of ``sequential`` (None: ``planned_n``).
        history: what earlier looks left (the server passes it; None in a
            single analysis of a file or frame).
        sequential_srm: use the sequential SRM test (True on the server, where
            each refresh is a look).
        looks: total units at each earlier look (notebook, when ``history`` is
            None); without them a group-sequential boundary assumes continuous
            monitoring.
    """

    control: str
    weights: Mapping[str, float]
    metrics: Sequence[MetricSpec]
    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.05
    method: AnalysisMethod = AnalysisMethod.FIXED
    planned_n: int | None = None
    correction: Correction = Correction.HOLM
    prior_sd: float | None = 0.3
    win_probability: float | None = None
    seed: int = 0
    n_star: int | None = None
    history: AnalysisHistory | None = None
    sequential_srm: bool = False
    looks: tuple[int, ...] = ()


@dataclass(frozen=True)
class MLArrays:
    """One variant's predictions for an ML metric (``clusters``: unit ids as ints)."""

    scores: npt.NDArray[np.float64]
    labels: npt.NDArray[np.float64]
    clusters: npt.NDArray[np.int64] | None = None


@dataclass(frozen=True)
class AnalysisData:
    """Sufficient statistics of an experiment.

    Attributes:
        units: exposed units per variant (for SRM and the planned sample).
        moments: metric name → variant → :class:`Moments` over columns ``[y]``,
            ``[y, x]``, ``[num, den]`` or ``[num, den, num_pre, den_pre]``.
        ml: metric name → variant → prediction arrays, or the summary SQL computed
            from them (:mod:`experiments.stats.ml_summaries`).
        has_covariate: metric name → whether the moments carry CUPED columns.
    """

    units: Mapping[str, int]
    moments: Mapping[str, Mapping[str, Moments]] = field(default_factory=dict)
    ml: Mapping[str, Mapping[str, MLArrays | MLSummary]] = field(default_factory=dict)
    has_covariate: Mapping[str, bool] = field(default_factory=dict)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _interval(value: Any) -> Interval | None:
    if value is None:
        return None
    low, high = (_number(v) for v in value)
    return None if low is None or high is None else (low, high)


def history_to_dict(history: AnalysisHistory) -> dict[str, Any]:
    """JSON-ready form of an :class:`AnalysisHistory` (what a snapshot stores).

    Numbers that are not finite become ``None``; :func:`history_from_dict` reads
    the result back to an equal object.
    """
    verdict = history.verdict
    return {
        "looks": [
            {"n": int(look.n), "information": float(look.information),
             "boundary_z": _number(look.boundary_z)}
            for look in history.looks
        ],
        "running": {
            key: {
                "p_value": _number(bound.p_value),
                "ci": None if bound.ci is None else list(bound.ci),
                "rel_ci": None if bound.rel_ci is None else list(bound.rel_ci),
            }
            for key, bound in history.running.items()
        },
        "srm_p_value": _number(history.srm_p_value),
        "verdict": None
        if verdict is None
        else {
            "status": verdict.status,
            "variant": verdict.variant,
            "n": int(verdict.n),
            "rule": verdict.rule,
            "reasons": list(verdict.reasons),
        },
    }  # fmt: skip


def history_from_dict(data: Mapping[str, Any] | None) -> AnalysisHistory:
    """The :class:`AnalysisHistory` stored by :func:`history_to_dict` (None → empty history)."""
    if not data:
        return AnalysisHistory()
    looks = tuple(
        Look(int(d["n"]), float(d["information"]), _number(d.get("boundary_z")) or math.inf)
        for d in data.get("looks") or ()
    )
    running = {
        str(key): RunningBound(
            _number(d.get("p_value")), _interval(d.get("ci")), _interval(d.get("rel_ci"))
        )
        for key, d in (data.get("running") or {}).items()
    }
    v = data.get("verdict")
    verdict = None
    if v:
        verdict = KeptVerdict(
            str(v["status"]),
            None if v.get("variant") is None else str(v["variant"]),
            int(v["n"]),
            str(v.get("rule") or ""),
            tuple(str(r) for r in v.get("reasons") or ()),
        )
    return AnalysisHistory(looks, running, _number(data.get("srm_p_value")), verdict)
