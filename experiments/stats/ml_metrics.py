"""ML metrics of one variant's predictions, each with a confidence interval.

Every variant serves its own model, so each metric is computed from that
variant's own ``scores`` and ``labels``; the comparison of two variants treats
their estimates as independent. Metrics and their intervals:

* ``auc``: the Mann–Whitney probability ``P(s⁺ > s⁻) + ½P(s⁺ = s⁻)``; variance by
  DeLong, DeLong & Clarke-Pearson (1988), computed with the O(n log n) midrank
  algorithm of Sun & Xu (2014, IEEE Signal Process. Lett. 21(11)): with
  ``T_z, T_x, T_y`` the midranks of a score among all, among the ``m``
  positives and among the ``k`` negatives, ``V10_i = (T_z,i − T_x,i)/k`` and
  ``V01_j = 1 − (T_z,j − T_y,j)/m``, ``AUC = mean(V10)`` and
  ``Var(AUC) = s²(V10)/m + s²(V01)/k``; normal interval clipped to [0, 1].
* ``log_loss`` (probabilities clipped to [1e-15, 1 − 1e-15]), ``brier``,
  ``accuracy`` (``score ≥ threshold`` against a 0/1 label) and ``mae``: means of
  per-prediction losses, with the Student t interval ``mean ± t_{n−1} s/√n``.
* ``rmse``: ``√MSE`` with the delta-method standard error ``SE(MSE)/(2√MSE)``.
* ``calibration_error``: expected calibration error over 10 equal-width bins,
  ``Σ_b (n_b/n)|ȳ_b − p̄_b| = Σ_b |Σ_b y − Σ_b p| / n`` (Naeini, Cooper &
  Hauskrecht 2015), with a seeded percentile bootstrap interval.

When ``clusters`` (unit ids) show that a unit has several predictions, the
predictions of a unit are not independent, and every interval instead comes from
a seeded cluster bootstrap over units (Davison & Hinkley 1997, Sec. 3.8). Bootstrap
intervals are percentile intervals with ``n_boot`` replicates (default 1000, cut to
no fewer than 200 when predictions × replicates would exceed 4·10⁷).
Degenerate inputs give ``estimate=None`` and a reason, never NaN or an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from experiments.domain import MetricKind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Statistic = Callable[[FloatArray], FloatArray]

LOWER_IS_BETTER = frozenset(
    {
        MetricKind.LOG_LOSS,
        MetricKind.BRIER,
        MetricKind.CALIBRATION_ERROR,
        MetricKind.RMSE,
        MetricKind.MAE,
    }
)
_BINARY_LABELS = frozenset({MetricKind.AUC, MetricKind.ACCURACY})
_PROBABILITY_SCORES = frozenset(
    {MetricKind.LOG_LOSS, MetricKind.BRIER, MetricKind.CALIBRATION_ERROR}
)
PROBABILITY_CLIP = 1e-15
CALIBRATION_BINS = 10
DEFAULT_BOOTSTRAP = 1000
_BOOTSTRAP_CELLS = 2_000_000  # weights held in memory at once, per chunk of replicates
BOOTSTRAP_WORK = 40_000_000  # replicates × cells per replicate, to bound the run time
MIN_BOOTSTRAP = 200


@dataclass(frozen=True)
class MLEstimate:
    """One variant's ML metric with its confidence interval.

    Attributes:
        estimate: the metric (None when it cannot be computed).
        ci_low: lower end of the ``(1 − alpha)`` interval (None when undefined).
        ci_high: upper end (None when undefined).
        std_err: standard error of the estimate (None when undefined).
        n: number of predictions used.
        reason: why a field is None (None when all are defined).
    """

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    std_err: float | None
    n: int
    reason: str | None


def is_lower_better(kind: MetricKind) -> bool:
    """True for metrics where smaller is better: log loss, Brier, ECE, RMSE, MAE."""
    return kind in LOWER_IS_BETTER


def _group_starts(sorted_values: npt.NDArray[np.generic]) -> npt.NDArray[np.intp]:
    """Indices where a run of equal values starts in a sorted array."""
    return np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])


def _auc_statistic(scores: FloatArray, labels: FloatArray, owner: IntArray) -> Statistic:
    """AUC with group weights: Σ_t P_t(N_{<t} + ½N_t) / (ΣP ΣN) over runs t of tied scores.

    ``P_t`` and ``N_t`` are the weighted numbers of positives and negatives with the
    t-th smallest score; a prediction's weight is its group's draw count.
    """
    order = np.argsort(scores, kind="stable")
    starts = _group_starts(scores[order])
    positive = labels[order]
    owner_sorted = owner[order]

    def statistic(counts: FloatArray) -> FloatArray:
        w = counts[:, owner_sorted]
        total = np.add.reduceat(w, starts, axis=1)
        pos = np.add.reduceat(w * positive, starts, axis=1)
        neg = total - pos
        below = np.cumsum(neg, axis=1) - neg
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(
                (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))
            )

    return statistic


def _calibration_statistic(
    scores: FloatArray, labels: FloatArray, owner: IntArray, size: int
) -> Statistic:
    """ECE with group weights: Σ_b |Σ_b w(y − p)| / Σw over 10 equal-width bins.

    Per-group, per-bin sums of ``y − p`` are formed once, so a replicate is one
    matrix product of the draw counts with them.
    """
    bins = np.minimum((scores * CALIBRATION_BINS).astype(np.intp), CALIBRATION_BINS - 1)
    cell = owner * CALIBRATION_BINS + bins
    gaps = np.bincount(cell, weights=labels - scores, minlength=size * CALIBRATION_BINS)
    gaps = gaps.reshape(size, CALIBRATION_BINS)
    sizes = np.bincount(owner, minlength=size).astype(np.float64)

    def statistic(counts: FloatArray) -> FloatArray:
        return np.asarray(np.abs(counts @ gaps).sum(axis=1) / (counts @ sizes))

    return statistic


def _losses(
    kind: MetricKind, scores: FloatArray, labels: FloatArray, threshold: float
) -> FloatArray:
    """Per-prediction losses whose mean is the metric (the MSE for RMSE)."""
    if kind is MetricKind.LOG_LOSS:
        p = np.clip(scores, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
        return np.asarray(-(labels * np.log(p) + (1.0 - labels) * np.log1p(-p)))
    if kind is MetricKind.ACCURACY:
        correct = (scores >= threshold) == (labels == 1.0)
        return np.asarray(correct, dtype=np.float64)
    if kind is MetricKind.MAE:
        return np.asarray(np.abs(scores - labels))
    return np.asarray((scores - labels) ** 2)  # Brier and the MSE behind RMSE


def _mean_statistic(losses: FloatArray, owner: IntArray, size: int, root: bool) -> Statistic:
    """Mean loss with group weights, ``Σ_g c_g L_g / Σ_g c_g n_g`` (its root for RMSE)."""
    sums = np.bincount(owner, weights=losses, minlength=size)
    sizes = np.bincount(owner, minlength=size).astype(np.float64)

    def statistic(counts: FloatArray) -> FloatArray:
        mean = (counts @ sums) / (counts @ sizes)
        return np.asarray(np.sqrt(mean) if root else mean)

    return statistic


def bootstrap_count(n_boot: int, cells: int) -> int:
    """Replicates to run: ``n_boot``, reduced for huge inputs to bound the work.

    ``min(n_boot, max(200, 4·10⁷ / cells))``: with 200 000 predictions a bootstrap
    still runs 200 replicates (a standard error within about 5%), in seconds.
    """
    return min(n_boot, max(MIN_BOOTSTRAP, BOOTSTRAP_WORK // max(cells, 1)))


def bootstrap_replicates(
    statistic: Statistic, size: int, *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> FloatArray:
    """Seeded bootstrap replicates of a statistic of group draw counts.

    Each replicate draws ``size`` groups (units for the cluster bootstrap, single
    predictions otherwise) with replacement from ``numpy.random.default_rng(seed)``
    and passes how often each group was drawn to ``statistic``. Replicates run in
    chunks so memory stays bounded.

    Args:
        statistic: maps a ``(B, size)`` matrix of draw counts to ``B`` values.
        size: number of groups.
        n_boot: number of replicates.
        seed: the random seed.

    Returns:
        ``n_boot`` replicate values (NaN where the statistic is undefined).
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // size)
    out: list[FloatArray] = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        draws = rng.integers(0, size, size=(rows, size))
        flat = (draws + size * np.arange(rows)[:, None]).ravel()
        counts = np.bincount(flat, minlength=rows * size).reshape(rows, size)
        out.append(statistic(counts.astype(np.float64)))
    return np.concatenate(out)


def _from_bootstrap(
    estimate: float, replicates: FloatArray, n: int, alpha: float, what: str
) -> MLEstimate:
    finite = replicates[np.isfinite(replicates)]
    if finite.size < 2:
        return MLEstimate(estimate, None, None, None, n, f"{what} has no defined replicate")
    low, high = (float(v) for v in np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0]))
    std_err = float(finite.std(ddof=1))
    if std_err == 0.0:
        return MLEstimate(estimate, None, None, 0.0, n, "standard error is zero")
    return MLEstimate(estimate, low, high, std_err, n, None)


def _from_std_err(
    estimate: float,
    std_err: float,
    n: int,
    crit: float,
    bounds: tuple[float, float],
) -> MLEstimate:
    if not math.isfinite(std_err):
        return MLEstimate(estimate, None, None, None, n, "standard error is undefined")
    if std_err == 0.0:
        return MLEstimate(estimate, None, None, 0.0, n, "standard error is zero")
    low = max(bounds[0], estimate - crit * std_err)
    high = min(bounds[1], estimate + crit * std_err)
    return MLEstimate(estimate, low, high, std_err, n, None)


def delong_auc(scores: FloatArray, labels: FloatArray) -> tuple[float, float]:
    """AUC and its DeLong variance by the midrank algorithm of Sun & Xu (2014).

    Args:
        scores: scores of the predictions.
        labels: their 0/1 labels (both classes present).

    Returns:
        ``(auc, variance)``; the variance is NaN with fewer than 2 of a class.
    """
    pos, neg = scores[labels == 1.0], scores[labels == 0.0]
    m, k = pos.size, neg.size
    all_ranks = stats.rankdata(np.concatenate([pos, neg]))
    v10 = (all_ranks[:m] - stats.rankdata(pos)) / k
    v01 = 1.0 - (all_ranks[m:] - stats.rankdata(neg)) / m
    auc = float(v10.mean())
    if m < 2 or k < 2:
        return auc, math.nan
    return auc, float(v10.var(ddof=1) / m + v01.var(ddof=1) / k)


def _problem(kind: MetricKind, scores: FloatArray, labels: FloatArray) -> str | None:
    """Why the inputs cannot give this metric, or None."""
    if scores.size == 0:
        return "no predictions"
    if not (np.isfinite(scores).all() and np.isfinite(labels).all()):
        return "scores and labels must be finite"
    if kind in _BINARY_LABELS and not np.isin(labels, (0.0, 1.0)).all():
        return f"{kind.value} needs labels 0 or 1"
    if kind in _PROBABILITY_SCORES:
        if ((labels < 0.0) | (labels > 1.0)).any():
            return f"{kind.value} needs labels in [0, 1]"
        if ((scores < 0.0) | (scores > 1.0)).any():
            return f"{kind.value} needs scores (probabilities) in [0, 1]"
    if kind is MetricKind.AUC and np.unique(labels).size < 2:
        return "auc needs both positive and negative labels"
    return None


def compute_ml_metric(
    kind: MetricKind,
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    alpha: float,
    threshold: float = 0.5,
    clusters: npt.ArrayLike | None = None,
    seed: int = 0,
    n_boot: int = DEFAULT_BOOTSTRAP,
) -> MLEstimate:
    """One variant's ML metric and its ``(1 − alpha)`` confidence interval.

    See the module docstring for each metric's formula and interval.

    Args:
        kind: an ML metric kind (auc, log_loss, brier, accuracy, calibration_error,
            rmse, mae).
        scores: the predictions' scores (probabilities for log loss, Brier, ECE).
        labels: their labels (0/1 for AUC and accuracy; in [0, 1] for log loss,
            Brier and ECE; any real value for RMSE and MAE).
        alpha: one minus the confidence level, in (0, 1).
        threshold: the score at or above which accuracy predicts 1.
        clusters: the unit id of each prediction (ints), for a cluster bootstrap
            when a unit has several predictions.
        seed: seed of the bootstrap.
        n_boot: number of bootstrap replicates (see :func:`bootstrap_count` for
            very large inputs).

    Returns:
        The estimate, or None fields with a reason for degenerate inputs.
    """
    if not kind.is_ml:
        raise ValueError(f"compute_ml_metric takes an ML metric kind, got {kind.value}")
    if not (math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores and labels must be 1-D of one length, got {s.shape}, {y.shape}")
    n = int(s.size)
    owner: IntArray = np.arange(n)
    size = n
    if clusters is not None:
        c = np.asarray(clusters)
        if c.shape != s.shape:
            raise ValueError(f"clusters must match the scores' length, got {c.shape}")
        _, inverse = np.unique(c, return_inverse=True)
        if inverse.size and inverse.max() + 1 < n:  # some unit has several predictions
            owner, size = inverse.astype(np.intp).ravel(), int(inverse.max()) + 1
    clustered = size < n
    problem = _problem(kind, s, y)
    if problem is not None:
        return MLEstimate(None, None, None, None, n, problem)

    statistic: Statistic
    if kind is MetricKind.AUC:
        statistic = _auc_statistic(s, y, owner)
    elif kind is MetricKind.CALIBRATION_ERROR:
        statistic = _calibration_statistic(s, y, owner, size)
    else:
        losses = _losses(kind, s, y, threshold)
        statistic = _mean_statistic(losses, owner, size, root=kind is MetricKind.RMSE)
    estimate = float(statistic(np.ones((1, size)))[0])

    if clustered or kind is MetricKind.CALIBRATION_ERROR:
        cells = n if kind is MetricKind.AUC else size  # AUC touches every prediction
        replicates = bootstrap_replicates(
            statistic, size, n_boot=bootstrap_count(n_boot, cells), seed=seed
        )
        return _from_bootstrap(estimate, replicates, n, alpha, kind.value)
    if kind is MetricKind.AUC:
        auc, variance = delong_auc(s, y)
        crit = float(stats.norm.ppf(1.0 - alpha / 2.0))
        return _from_std_err(auc, math.sqrt(variance), n, crit, (0.0, 1.0))
    if n < 2:
        return MLEstimate(estimate, None, None, None, n, "fewer than 2 predictions")
    crit = float(stats.t.ppf(1.0 - alpha / 2.0, df=n - 1))
    mean_se = float(losses.std(ddof=1)) / math.sqrt(n)
    if kind is MetricKind.RMSE:
        if estimate == 0.0:
            return MLEstimate(estimate, None, None, 0.0, n, "standard error is zero")
        return _from_std_err(estimate, mean_se / (2.0 * estimate), n, crit, (0.0, math.inf))
    return _from_std_err(estimate, mean_se, n, crit, (-math.inf, math.inf))


def compare_ml_metric(
    control: MLEstimate, treatment: MLEstimate, *, alpha: float
) -> tuple[float | None, tuple[float, float] | None, float | None]:
    """Treatment − control of an ML metric, the variants' estimates independent.

    Method: ``D = θ̂_t − θ̂_c``, ``SE = √(SE_c² + SE_t²)``, normal interval
    ``D ± z_{1−α/2} SE`` and two-sided Wald p-value ``2Φ(−|D|/SE)``.

    Args:
        control: the control's estimate.
        treatment: the treatment's estimate.
        alpha: one minus the confidence level, in (0, 1).

    Returns:
        ``(abs_diff, abs_ci, p_value)``; None where undefined (a missing estimate
        or standard error, or a standard error of 0).
    """
    if not (math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if control.estimate is None or treatment.estimate is None:
        return None, None, None
    diff = treatment.estimate - control.estimate
    if control.std_err is None or treatment.std_err is None:
        return diff, None, None
    std_err = math.hypot(control.std_err, treatment.std_err)
    if std_err == 0.0:
        return diff, None, None
    crit = float(stats.norm.ppf(1.0 - alpha / 2.0))
    p_value = float(2.0 * stats.norm.sf(abs(diff) / std_err))
    return diff, (diff - crit * std_err, diff + crit * std_err), p_value


def _check_histograms(
    pos_counts: npt.ArrayLike, neg_counts: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    pos = np.asarray(pos_counts, dtype=np.float64)
    neg = np.asarray(neg_counts, dtype=np.float64)
    if pos.ndim != 1 or pos.shape != neg.shape:
        raise ValueError("pos_counts and neg_counts must be 1-D of one length")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("histogram counts must be finite")
    if (pos < 0).any() or (neg < 0).any():
        raise ValueError("histogram counts must be >= 0")
    if pos.sum() == 0 or neg.sum() == 0:
        raise ValueError("auc needs at least one positive and one negative")
    return pos, neg


def auc_from_histograms(pos_counts: npt.ArrayLike, neg_counts: npt.ArrayLike) -> float:
    """AUC from per-bin counts of positives and negatives, bins in ascending score order.

    ``AUC ≈ Σ_b P_b (N_{<b} + ½N_b) / (P N)``: pairs in different bins are ordered
    by their bins, pairs sharing a bin count one half. The exact AUC differs only
    on the pairs sharing a bin, whose true contribution is in [0, 1] instead of
    ½, so ``|AUC_hist − AUC| ≤ ½ Σ_b P_b N_b / (P N)`` (half the fraction of
    positive–negative pairs sharing a bin; :func:`auc_histogram_error_bound`).

    Args:
        pos_counts: number of positives in each bin.
        neg_counts: number of negatives in each bin.

    Returns:
        The AUC.
    """
    pos, neg = _check_histograms(pos_counts, neg_counts)
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def auc_histogram_error_bound(pos_counts: npt.ArrayLike, neg_counts: npt.ArrayLike) -> float:
    """Bound ``½ Σ_b P_b N_b / (P N)`` on the error of :func:`auc_from_histograms`.

    Args:
        pos_counts: number of positives in each bin.
        neg_counts: number of negatives in each bin.

    Returns:
        The largest possible ``|AUC_hist − AUC|``.
    """
    pos, neg = _check_histograms(pos_counts, neg_counts)
    return float(0.5 * (pos * neg).sum() / (pos.sum() * neg.sum()))
