"""ML metrics from sufficient statistics that SQL computes, never from the raw predictions.

A variant's labelled predictions are reduced (by ``storage/ml_aggregates.py``, or
by :func:`summarize_predictions` on arrays) to a few numbers, and each metric is
estimated from them:

* **Mean-type metrics** (``log_loss``, ``brier``, ``accuracy``, ``mae``, and the
  MSE behind ``rmse``): per unit ``g`` the loss sum ``L_g`` and the prediction
  count ``n_g``, summarised as shifted :class:`Moments` of ``[L, n]``. The
  estimate ``R = ΣL_g / Σn_g`` is the mean loss over predictions, exact in its
  inputs. Its variance is the cluster-robust (units as clusters) ratio-estimator
  variance ``Var(R) = (s²_L − 2R s_Ln + R² s²_n) / (G n̄²)`` with ddof-1
  (co)variances over the ``G`` units (Cochran 1977, Sec. 6.4; Deng, Knoblich & Lu
  2018), and the interval is ``R ± t_{G−1} SE``. When each unit has one
  prediction, ``s_n = 0`` and this is the Student t interval of a mean. For
  ``rmse = √R`` the standard error is ``SE(R) / (2√R)`` (delta method).
* **AUC** from a histogram of scores per label over ``B`` equal-width bins of
  ``[min, max]`` (``bin = min(B − 1, ⌊(s − min)·B/(max − min)⌋)``). The AUC of the
  binned scores is ``Σ_b P_b(N_{<b} + ½N_b)/(mk)`` and differs from the exact
  AUC by at most ``½ Σ_b P_b N_b / (mk)`` (:func:`auc_histogram_error_bound`), which
  is reported beside the estimate. Its variance is DeLong's (DeLong, DeLong &
  Clarke-Pearson 1988) on the binned scores: the placement of a positive in bin
  ``b`` is ``V10_b = (N_{<b} + ½N_b)/k`` and of a negative ``V01_b = (P_{>b} +
  ½P_b)/m``, so ``Var = s²(V10)/m + s²(V01)/k`` with the ddof-1 variances
  weighted by the bin counts. When units have several predictions, the
  placements are summed per unit (``X_g = ΣV10``, ``Y_g = ΣV01`` with counts
  ``m_g``, ``k_g``) and the cluster-robust variance of the linearised AUC,
  ``ψ_g = (X_g − A m_g)/m + (Y_g − A k_g)/k``, is ``G·s²(ψ)`` (Obuchowski 1997,
  Biometrics 53(2), in its influence-function form).
* **calibration_error**: per unit the gap sums ``D_gb = Σ(y − p)`` over the 10
  equal-width score bins and the count ``n_g``, summarised as :class:`Moments`
  of ``[D_1..D_10, n]``; ``ECE = Σ_b |ΣD_b| / Σn`` exactly. Its interval is a
  seeded parametric bootstrap: the totals are drawn as ``N(G·μ, G·Σ)`` with
  ``μ, Σ`` the per-unit mean and (ddof-0) covariance — the normal approximation
  of the cluster (or, with one prediction per unit, the ordinary) bootstrap
  distribution of the sums (Davison & Hinkley 1997, Sec. 2.3) — and the
  percentile interval of ``Σ_b|T_b|/T_n`` is reported.

Degenerate inputs give ``estimate=None`` and the same reasons as
:func:`experiments.stats.ml_metrics.compute_ml_metric`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from experiments.domain import MetricKind
from experiments.stats.frequentist import ratio_estimate
from experiments.stats.ml_metrics import (
    CALIBRATION_BINS,
    DEFAULT_BOOTSTRAP,
    PROBABILITY_CLIP,
    MLEstimate,
    auc_from_histograms,
    auc_histogram_error_bound,
)
from experiments.stats.summaries import Moments

FloatArray = npt.NDArray[np.float64]

AUC_BINS = 5000
LOSS_KINDS = frozenset(
    {MetricKind.LOG_LOSS, MetricKind.BRIER, MetricKind.ACCURACY, MetricKind.MAE, MetricKind.RMSE}
)
_BINARY_LABELS = frozenset({MetricKind.AUC, MetricKind.ACCURACY})
_PROBABILITY_SCORES = frozenset(
    {MetricKind.LOG_LOSS, MetricKind.BRIER, MetricKind.CALIBRATION_ERROR}
)


@dataclass(frozen=True)
class PredictionProfile:
    """Counts that validate one variant's labelled predictions.

    Attributes:
        n: labelled predictions.
        units: distinct units among them.
        score_min: smallest score (None when n = 0).
        score_max: largest score (None when n = 0).
        positives: predictions labelled 1.
        negatives: predictions labelled 0.
        non_finite: predictions whose score or label is not finite.
        labels_not_binary: labels other than 0 and 1.
        labels_outside_unit: labels outside [0, 1].
        scores_outside_unit: scores outside [0, 1].
    """

    n: int
    units: int
    score_min: float | None
    score_max: float | None
    positives: int
    negatives: int
    non_finite: int = 0
    labels_not_binary: int = 0
    labels_outside_unit: int = 0
    scores_outside_unit: int = 0

    def problem(self, kind: MetricKind) -> str | None:
        """Why these predictions cannot give ``kind``, or None (as ``compute_ml_metric``)."""
        if self.n == 0:
            return "no predictions"
        if self.non_finite:
            return "scores and labels must be finite"
        if kind in _BINARY_LABELS and self.labels_not_binary:
            return f"{kind.value} needs labels 0 or 1"
        if kind in _PROBABILITY_SCORES:
            if self.labels_outside_unit:
                return f"{kind.value} needs labels in [0, 1]"
            if self.scores_outside_unit:
                return f"{kind.value} needs scores (probabilities) in [0, 1]"
        if kind is MetricKind.AUC and (self.positives == 0 or self.negatives == 0):
            return "auc needs both positive and negative labels"
        return None


@dataclass(frozen=True)
class LossSummary:
    """Per-unit moments of ``[Σ loss, count]`` for a mean-type metric of one variant."""

    kind: MetricKind
    profile: PredictionProfile
    moments: Moments


@dataclass(frozen=True)
class ScoreHistogram:
    """Counts of positives and negatives per score bin (ascending), for the AUC.

    Attributes:
        profile: the validation counts.
        positives: positives per bin.
        negatives: negatives per bin.
        placements: per-unit moments of ``[ΣN-placement, m_g, ΣP-placement, k_g]``
            (placements as counts: ``N_{<b} + ½N_b`` for a positive, ``P_{>b} + ½P_b``
            for a negative), present when some unit has several predictions.
    """

    profile: PredictionProfile
    positives: tuple[float, ...]
    negatives: tuple[float, ...]
    placements: Moments | None = None


@dataclass(frozen=True)
class CalibrationSummary:
    """Per-unit moments of ``[D_1..D_10, n]`` (gap sums ``Σ(y − p)`` per score bin)."""

    profile: PredictionProfile
    moments: Moments


MLSummary = LossSummary | ScoreHistogram | CalibrationSummary


@dataclass(frozen=True)
class SummaryEstimate:
    """An ML estimate from a summary, with the bound of its approximation.

    Attributes:
        estimate: the estimate and interval (reasons as ``compute_ml_metric``).
        error_bound: largest possible distance of the estimate from the metric on
            the raw predictions (0 when exact, None when there is no estimate).
    """

    estimate: MLEstimate
    error_bound: float | None


def bin_scale(score_min: float, score_max: float, bins: int) -> float:
    """Factor ``B/(max − min)`` of the AUC binning (0 when all scores are equal)."""
    return 0.0 if score_max <= score_min else bins / (score_max - score_min)


def score_bins(
    scores: FloatArray, score_min: float, scale: float, bins: int
) -> npt.NDArray[np.intp]:
    """``min(B − 1, ⌊(s − min)·scale⌋)``: the same operations SQL runs, so the same bins."""
    raw = np.floor((scores - score_min) * scale)
    return np.minimum(raw, bins - 1).astype(np.intp)


def calibration_bins(scores: FloatArray) -> npt.NDArray[np.intp]:
    """``min(9, ⌊10·p⌋)``: the 10 equal-width bins of the calibration error."""
    raw = np.floor(scores * CALIBRATION_BINS)
    return np.minimum(raw, CALIBRATION_BINS - 1).astype(np.intp)


def prediction_losses(
    kind: MetricKind, scores: FloatArray, labels: FloatArray, threshold: float
) -> FloatArray:
    """Per-prediction losses whose mean is the metric (the squared error for RMSE)."""
    if kind is MetricKind.LOG_LOSS:
        p = np.clip(scores, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
        return np.asarray(-(labels * np.log(p) + (1.0 - labels) * np.log(1.0 - p)))
    if kind is MetricKind.ACCURACY:
        return np.asarray((scores >= threshold) == (labels == 1.0), dtype=np.float64)
    if kind is MetricKind.MAE:
        return np.asarray(np.abs(scores - labels))
    return np.asarray((scores - labels) ** 2)


def _student(
    estimate: float, std_err: float, n: int, df: int, alpha: float, low: float
) -> MLEstimate:
    if not math.isfinite(std_err):
        return MLEstimate(estimate, None, None, None, n, "standard error is undefined")
    if std_err == 0.0:
        return MLEstimate(estimate, None, None, 0.0, n, "standard error is zero")
    crit = float(stats.t.ppf(1.0 - alpha / 2.0, df=df))
    return MLEstimate(
        estimate, max(low, estimate - crit * std_err), estimate + crit * std_err, std_err, n, None
    )


def _estimate_loss(summary: LossSummary, alpha: float) -> MLEstimate:
    n, units = summary.profile.n, summary.moments.n
    mean, var = ratio_estimate(summary.moments)
    if mean is None:
        return MLEstimate(None, None, None, None, n, "no predictions")
    root = summary.kind is MetricKind.RMSE
    estimate = math.sqrt(max(mean, 0.0)) if root else mean
    if var is None or units < 2:
        return MLEstimate(estimate, None, None, None, n, "fewer than 2 units")
    std_err = math.sqrt(var)
    if root:
        if estimate == 0.0:
            return MLEstimate(estimate, None, None, 0.0, n, "standard error is zero")
        return _student(estimate, std_err / (2.0 * estimate), n, units - 1, alpha, 0.0)
    return _student(estimate, std_err, n, units - 1, alpha, -math.inf)


def _delong_binned(pos: FloatArray, neg: FloatArray, auc: float) -> float:
    """DeLong's variance of the binned AUC from the per-bin counts (NaN for < 2 of a class)."""
    m, k = float(pos.sum()), float(neg.sum())
    if m < 2 or k < 2:
        return math.nan
    v10 = (np.cumsum(neg) - neg + 0.5 * neg) / k
    v01 = (pos[::-1].cumsum()[::-1] - pos + 0.5 * pos) / m
    s10 = float((pos * (v10 - auc) ** 2).sum() / (m - 1))
    s01 = float((neg * (v01 - auc) ** 2).sum() / (k - 1))
    return s10 / m + s01 / k


def _clustered_auc_variance(placements: Moments, m: float, k: float, auc: float) -> float:
    """``G·s²(ψ)`` with ``ψ_g = (X_g/k − A m_g)/m + (Y_g/m − A k_g)/k`` (NaN for G < 2)."""
    units = placements.n
    if units < 2:
        return math.nan
    a = (1.0 / (m * k), -auc / m, 1.0 / (m * k), -auc / k)
    var = sum(a[i] * a[j] * placements.cov(i, j) for i in range(4) for j in range(4))
    return units * max(var, 0.0)


def _estimate_auc(summary: ScoreHistogram, alpha: float) -> tuple[MLEstimate, float]:
    n = summary.profile.n
    pos = np.asarray(summary.positives, dtype=np.float64)
    neg = np.asarray(summary.negatives, dtype=np.float64)
    auc = auc_from_histograms(pos, neg)
    bound = auc_histogram_error_bound(pos, neg)
    if summary.placements is not None:
        variance = _clustered_auc_variance(summary.placements, pos.sum(), neg.sum(), auc)
    else:
        variance = _delong_binned(pos, neg, auc)
    std_err = math.sqrt(variance) if math.isfinite(variance) else math.nan
    if not math.isfinite(std_err):
        return MLEstimate(auc, None, None, None, n, "standard error is undefined"), bound
    if std_err == 0.0:
        return MLEstimate(auc, None, None, 0.0, n, "standard error is zero"), bound
    crit = float(stats.norm.ppf(1.0 - alpha / 2.0))
    low, high = max(0.0, auc - crit * std_err), min(1.0, auc + crit * std_err)
    return MLEstimate(auc, low, high, std_err, n, None), bound


def _normal_draws(
    mean: FloatArray, cov: FloatArray, n_draws: int, rng: np.random.Generator
) -> FloatArray:
    """Draws of ``N(mean, cov)`` for a positive semi-definite ``cov`` (eigen square root)."""
    values, vectors = np.linalg.eigh(cov)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    z = rng.standard_normal((n_draws, mean.size))
    return np.asarray(mean + z @ root.T)


def _estimate_calibration(
    summary: CalibrationSummary, alpha: float, seed: int, n_boot: int
) -> MLEstimate:
    mo, n = summary.moments, summary.profile.n
    totals = np.array([mo.total(i) for i in range(mo.k)])
    estimate = float(np.abs(totals[:-1]).sum() / totals[-1])
    if mo.n < 2:
        return MLEstimate(estimate, None, None, None, n, "fewer than 2 units")
    cov = np.array([[mo.cov(i, j) for j in range(mo.k)] for i in range(mo.k)])
    cov *= (mo.n - 1) / mo.n  # the bootstrap resamples the empirical (ddof-0) distribution
    draws = _normal_draws(totals, mo.n * cov, n_boot, np.random.default_rng(seed))
    keep = draws[:, -1] > 0.0
    replicates = np.abs(draws[keep, :-1]).sum(axis=1) / draws[keep, -1]
    if replicates.size < 2:
        return MLEstimate(estimate, None, None, None, n, "calibration_error has no replicate")
    std_err = float(replicates.std(ddof=1))
    if std_err == 0.0:
        return MLEstimate(estimate, None, None, 0.0, n, "standard error is zero")
    low, high = (float(v) for v in np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0]))
    return MLEstimate(estimate, low, high, std_err, n, None)


def estimate_from_summary(
    kind: MetricKind,
    summary: MLSummary,
    *,
    alpha: float,
    seed: int = 0,
    n_boot: int = DEFAULT_BOOTSTRAP,
) -> SummaryEstimate:
    """One variant's ML metric and its ``(1 − alpha)`` interval from a summary.

    See the module docstring for each metric's method.

    Args:
        kind: the ML metric kind; it must match the summary's type.
        summary: what SQL (or :func:`summarize_predictions`) computed.
        alpha: one minus the confidence level, in (0, 1).
        seed: seed of the calibration error's parametric bootstrap.
        n_boot: replicates of that bootstrap.

    Returns:
        The estimate and its approximation bound; None fields with a reason for
        degenerate inputs.

    Raises:
        ValueError: ``alpha`` is outside (0, 1) or the summary does not fit ``kind``.
    """
    if not (math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    fits = (
        isinstance(summary, ScoreHistogram)
        if kind is MetricKind.AUC
        else isinstance(summary, CalibrationSummary)
        if kind is MetricKind.CALIBRATION_ERROR
        else isinstance(summary, LossSummary) and summary.kind is kind
    )
    if not fits:
        raise ValueError(f"a {type(summary).__name__} cannot give {kind.value}")
    problem = summary.profile.problem(kind)
    if problem is not None:
        return SummaryEstimate(MLEstimate(None, None, None, None, summary.profile.n, problem), None)
    if isinstance(summary, ScoreHistogram):
        estimate, bound = _estimate_auc(summary, alpha)
        return SummaryEstimate(estimate, bound)
    if isinstance(summary, CalibrationSummary):
        return SummaryEstimate(_estimate_calibration(summary, alpha, seed, n_boot), 0.0)
    return SummaryEstimate(_estimate_loss(summary, alpha), 0.0)


def _owners(clusters: npt.ArrayLike | None, n: int) -> tuple[npt.NDArray[np.intp], int]:
    if clusters is None:
        return np.arange(n), n
    _, inverse = np.unique(np.asarray(clusters), return_inverse=True)
    return inverse.astype(np.intp).ravel(), int(inverse.max()) + 1 if n else 0


def _profile(s: FloatArray, y: FloatArray, units: int) -> PredictionProfile:
    n = int(s.size)
    return PredictionProfile(
        n=n,
        units=units,
        score_min=float(s.min()) if n else None,
        score_max=float(s.max()) if n else None,
        positives=int((y == 1.0).sum()),
        negatives=int((y == 0.0).sum()),
        non_finite=int((~np.isfinite(s) | ~np.isfinite(y)).sum()),
        labels_not_binary=int((~np.isin(y, (0.0, 1.0))).sum()),
        labels_outside_unit=int(((y < 0.0) | (y > 1.0)).sum()),
        scores_outside_unit=int(((s < 0.0) | (s > 1.0)).sum()),
    )


def _unit_moments(columns: list[FloatArray], owner: npt.NDArray[np.intp], units: int) -> Moments:
    """Moments of per-unit sums of prediction-level columns (shifted by their means)."""
    sums = [np.bincount(owner, weights=c, minlength=units) for c in columns]
    return Moments.from_values(np.column_stack(sums) if units else np.zeros((0, len(columns))))


def summarize_predictions(
    kind: MetricKind,
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    clusters: npt.ArrayLike | None = None,
    threshold: float = 0.5,
    bins: int = AUC_BINS,
) -> MLSummary:
    """The summary SQL computes, from arrays (the reference for the SQL path and for files).

    Args:
        kind: the ML metric kind.
        scores: the predictions' scores.
        labels: their labels.
        clusters: the unit of each prediction (None: one unit per prediction).
        threshold: the score at or above which accuracy predicts 1.
        bins: number of equal-width score bins of the AUC histogram.

    Returns:
        A :class:`LossSummary`, :class:`ScoreHistogram` or :class:`CalibrationSummary`.
    """
    if not kind.is_ml:
        raise ValueError(f"summarize_predictions takes an ML metric kind, got {kind.value}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores and labels must be 1-D of one length, got {s.shape}, {y.shape}")
    owner, units = _owners(clusters, int(s.size))
    if owner.shape != s.shape:
        raise ValueError(f"clusters must match the scores' length, got {owner.shape}")
    profile = _profile(s, y, units)
    ones = np.ones(s.size)
    width = CALIBRATION_BINS + 1 if kind is MetricKind.CALIBRATION_ERROR else 2
    if profile.problem(kind) is not None:
        if kind is MetricKind.AUC:
            return ScoreHistogram(profile, (), ())
        if kind is MetricKind.CALIBRATION_ERROR:
            return CalibrationSummary(profile, Moments.empty(width))
        return LossSummary(kind, profile, Moments.empty(width))
    if kind is MetricKind.AUC:
        low = float(s.min())
        b = score_bins(s, low, bin_scale(low, float(s.max()), bins), bins)
        pos = np.bincount(b, weights=y, minlength=bins)
        neg = np.bincount(b, weights=1.0 - y, minlength=bins)
        placements = None
        if units < profile.n:
            below = (np.cumsum(neg) - neg + 0.5 * neg)[b]
            above = (pos[::-1].cumsum()[::-1] - pos + 0.5 * pos)[b]
            columns = [y * below, y, (1.0 - y) * above, 1.0 - y]
            placements = _unit_moments(columns, owner, units)
        return ScoreHistogram(profile, tuple(pos.tolist()), tuple(neg.tolist()), placements)
    if kind is MetricKind.CALIBRATION_ERROR:
        b = calibration_bins(s)
        gaps = [np.where(b == i, y - s, 0.0) for i in range(CALIBRATION_BINS)]
        return CalibrationSummary(profile, _unit_moments([*gaps, ones], owner, units))
    losses = prediction_losses(kind, s, y, threshold)
    return LossSummary(kind, profile, _unit_moments([losses, ones], owner, units))
