"""The inputs of an analysis: what to judge and the data to judge it on.

The analysis service builds both from the database (moments computed in SQL);
:func:`experiments.stats.frame.analyze_frame` builds them from a DataFrame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class AnalysisSpec:
    """The experiment settings an analysis needs; ``weights`` lists every variant."""

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
    win_probability: float = 0.95
    seed: int = 0


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
