from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats

from experiments.domain import MetricKind, MetricRole
from experiments.stats.analysis import AnalysisData, AnalysisSpec, MetricSpec, MLArrays, analyze
from experiments.stats.ml_metrics import (
    auc_histogram_error_bound,
    compare_ml_metric,
    compute_ml_metric,
    delong_auc,
)
from experiments.stats.ml_summaries import (
    AUC_BINS,
    LOSS_KINDS,
    CalibrationSummary,
    LossSummary,
    ScoreHistogram,
    bin_scale,
    estimate_from_summary,
    score_bins,
    summarize_predictions,
)
from experiments.stats.summaries import Moments

Array = npt.NDArray[np.float64]
K = MetricKind
LOSS = sorted(LOSS_KINDS)


def _data(n: int, seed: int) -> tuple[Array, Array]:
    rng = np.random.default_rng(seed)
    scores = rng.beta(2, 3, n)
    return scores, (rng.random(n) < scores).astype(float)


def _clustered(units: int, seed: int) -> tuple[Array, Array, npt.NDArray[np.int64]]:
    """Predictions of units with 1–8 each and a shared per-unit effect (correlated)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, units)
    owner = np.repeat(np.arange(units), sizes)
    effect = rng.normal(0.0, 1.0, units)[owner]
    scores = 1.0 / (1.0 + np.exp(-(effect + rng.normal(0.0, 1.0, owner.size))))
    labels = (rng.random(owner.size) < 1.0 / (1.0 + np.exp(-1.5 * effect))).astype(float)
    return scores, labels, owner


def _estimate(kind: MetricKind, scores: Array, labels: Array, **kw: object) -> object:
    summary = summarize_predictions(kind, scores, labels, **kw)  # type: ignore[arg-type]
    return estimate_from_summary(kind, summary, alpha=0.05).estimate


@pytest.mark.parametrize("kind", LOSS, ids=[k.value for k in LOSS])
def test_mean_type_metrics_equal_the_array_path_without_clusters(kind: MetricKind) -> None:
    scores, labels = _data(700, 1)
    expected = compute_ml_metric(kind, scores, labels, alpha=0.05, threshold=0.4)
    summary = summarize_predictions(kind, scores, labels, threshold=0.4)
    result = estimate_from_summary(kind, summary, alpha=0.05)
    got = result.estimate
    assert result.error_bound == 0.0
    assert got.n == expected.n == 700
    assert got.reason is None
    for field in ("estimate", "std_err", "ci_low", "ci_high"):
        assert getattr(got, field) == pytest.approx(getattr(expected, field), rel=1e-9)


@pytest.mark.parametrize("kind", [K.LOG_LOSS, K.RMSE], ids=["log_loss", "rmse"])
def test_clustered_mean_type_se_is_the_cluster_robust_ratio_variance(kind: MetricKind) -> None:
    scores, labels, owner = _clustered(300, 2)
    summary = summarize_predictions(kind, scores, labels, clusters=owner)
    got = estimate_from_summary(kind, summary, alpha=0.05).estimate
    # closed form: Σ(L_g − R n_g)² / (G (G − 1) n̄²), over units g
    loss = (scores - labels) ** 2
    if kind is K.LOG_LOSS:
        loss = -(labels * np.log(scores) + (1 - labels) * np.log(1 - scores))
    sums, sizes = np.bincount(owner, weights=loss), np.bincount(owner).astype(float)
    g = sums.size
    r = sums.sum() / sizes.sum()
    se = math.sqrt(((sums - r * sizes) ** 2).sum() / (g * (g - 1) * sizes.mean() ** 2))
    if kind is K.RMSE:
        r, se = math.sqrt(r), se / (2 * math.sqrt(r))
    assert got.estimate == pytest.approx(r, rel=1e-12)
    assert got.std_err == pytest.approx(se, rel=1e-9)
    crit = stats.t.ppf(0.975, g - 1)
    assert got.ci_high == pytest.approx(r + crit * se, rel=1e-9)
    # and it agrees with the seeded cluster bootstrap of the array path
    boot = compute_ml_metric(kind, scores, labels, alpha=0.05, clusters=owner, n_boot=1000)
    assert boot.estimate == pytest.approx(got.estimate, rel=1e-9)
    assert got.std_err == pytest.approx(boot.std_err, rel=0.15)


@pytest.mark.parametrize(("n", "seed"), [(60, 3), (2000, 4)], ids=["small", "large"])
def test_auc_and_delong_variance_equal_delong_on_the_binned_scores(n: int, seed: int) -> None:
    scores, labels = _data(n, seed)
    summary = summarize_predictions(K.AUC, scores, labels)
    assert isinstance(summary, ScoreHistogram)
    assert len(summary.positives) == AUC_BINS
    result = estimate_from_summary(K.AUC, summary, alpha=0.05)
    binned = score_bins(
        scores, scores.min(), bin_scale(scores.min(), scores.max(), AUC_BINS), AUC_BINS
    )
    auc, variance = delong_auc(binned.astype(float), labels)
    assert result.estimate.estimate == pytest.approx(auc, rel=1e-12)
    assert result.estimate.std_err == pytest.approx(math.sqrt(variance), rel=1e-10)
    exact, _ = delong_auc(scores, labels)
    assert result.error_bound == pytest.approx(
        auc_histogram_error_bound(summary.positives, summary.negatives)
    )
    assert result.error_bound is not None
    assert abs(auc - exact) <= result.error_bound + 1e-15


def test_auc_error_bound_is_attained_by_ties_inside_a_bin() -> None:
    # positives just above negatives, all within one bin of 1,000: exact AUC 1, binned ½
    scores = np.r_[0.0, 0.5, 0.50001, 1.0]
    labels = np.r_[0.0, 0.0, 1.0, 1.0]
    summary = summarize_predictions(K.AUC, scores, labels, bins=1000)
    result = estimate_from_summary(K.AUC, summary, alpha=0.05)
    assert delong_auc(scores, labels)[0] == 1.0
    assert result.estimate.estimate == pytest.approx(0.875)
    assert result.error_bound == pytest.approx(0.125)


def test_clustered_auc_variance_is_the_cluster_sum_of_delong_placements() -> None:
    scores, labels, owner = _clustered(400, 5)
    summary = summarize_predictions(K.AUC, scores, labels, clusters=owner)
    assert isinstance(summary, ScoreHistogram)
    assert summary.placements is not None
    got = estimate_from_summary(K.AUC, summary, alpha=0.05).estimate
    # reference: DeLong placements of the binned scores, linearised and summed per unit
    b = score_bins(scores, scores.min(), bin_scale(scores.min(), scores.max(), AUC_BINS), AUC_BINS)
    pos, neg = b[labels == 1], b[labels == 0]
    m, k = pos.size, neg.size
    v10 = ((neg[None, :] < pos[:, None]) + 0.5 * (neg[None, :] == pos[:, None])).mean(axis=1)
    v01 = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean(axis=0)
    auc = v10.mean()
    psi = np.zeros(owner.max() + 1)
    np.add.at(psi, owner[labels == 1], (v10 - auc) / m)
    np.add.at(psi, owner[labels == 0], (v01 - auc) / k)
    g = psi.size
    assert got.estimate == pytest.approx(auc, rel=1e-12)
    assert got.std_err == pytest.approx(math.sqrt(g * psi.var(ddof=1)), rel=1e-8)
    boot = compute_ml_metric(K.AUC, scores, labels, alpha=0.05, clusters=owner)
    assert got.std_err == pytest.approx(boot.std_err, rel=0.15)
    # units share their effect, so ignoring clusters understates the error
    assert got.std_err > math.sqrt(delong_auc(scores, labels)[1]) * 1.1


@pytest.mark.parametrize("clustered", [False, True], ids=["predictions", "units"])
def test_calibration_error_is_exact_and_its_bootstrap_agrees(clustered: bool) -> None:
    if clustered:
        scores, labels, owner = _clustered(500, 6)
        clusters: npt.NDArray[np.int64] | None = owner
    else:
        scores, labels = _data(3000, 6)
        clusters = None
    summary = summarize_predictions(K.CALIBRATION_ERROR, scores, labels, clusters=clusters)
    assert isinstance(summary, CalibrationSummary)
    got = estimate_from_summary(K.CALIBRATION_ERROR, summary, alpha=0.05, seed=3).estimate
    boot = compute_ml_metric(K.CALIBRATION_ERROR, scores, labels, alpha=0.05, clusters=clusters)
    assert got.estimate == pytest.approx(boot.estimate, rel=1e-9)
    assert got.std_err == pytest.approx(boot.std_err, rel=0.15)
    assert got.ci_low is not None
    assert got.ci_high is not None
    assert got.ci_low < got.estimate < got.ci_high
    again = estimate_from_summary(K.CALIBRATION_ERROR, summary, alpha=0.05, seed=3).estimate
    assert again == got  # seeded


@pytest.mark.parametrize(
    ("kind", "scores", "labels", "clusters", "reason", "has_estimate"),
    [
        (K.AUC, [0.2, 0.4], [1.0, 1.0], None, "auc needs both positive and negative labels", False),
        (K.ACCURACY, [0.2, 0.4], [1.0, 2.0], None, "accuracy needs labels 0 or 1", False),
        (K.LOG_LOSS, [0.2, 1.4], [1.0, 0.0], None, "needs scores (probabilities) in [0, 1]", False),
        (K.BRIER, [0.2, 0.4], [1.0, -1.0], None, "brier needs labels in [0, 1]", False),
        (K.MAE, [0.2, np.inf], [1.0, 0.0], None, "scores and labels must be finite", False),
        (K.MAE, [], [], None, "no predictions", False),
        (K.MAE, [0.2, 0.4], [1.0, 0.0], [7, 7], "fewer than 2 units", True),
        (K.BRIER, [0.5, 0.5], [1.0, 0.0], None, "standard error is zero", True),
        (K.AUC, [0.3, 0.3, 0.3], [1.0, 0.0, 1.0], None, "standard error is undefined", True),
        (K.AUC, [0.3, 0.3, 0.3, 0.3], [1.0, 0.0, 1.0, 0.0], None, "standard error is zero", True),
        (K.CALIBRATION_ERROR, [0.2, 0.4], [1.0, 0.0], [1, 1], "fewer than 2 units", True),
    ],
    ids=[
        "auc-one-class",
        "accuracy-label-2",
        "log-loss-score-above-1",
        "brier-negative-label",
        "infinite-score",
        "empty",
        "one-unit",
        "zero-se",
        "auc-one-negative",
        "auc-all-tied",
        "calibration-one-unit",
    ],
)
def test_degenerate_inputs_give_a_reason(
    kind: MetricKind,
    scores: list[float],
    labels: list[float],
    clusters: list[int] | None,
    reason: str,
    has_estimate: bool,
) -> None:
    summary = summarize_predictions(kind, scores, labels, clusters=clusters)
    got = estimate_from_summary(kind, summary, alpha=0.05).estimate
    assert got.reason is not None
    assert reason in got.reason
    assert (got.estimate is not None) == has_estimate
    assert got.ci_low is None
    assert got.ci_high is None
    if not clusters:
        assert compute_ml_metric(kind, scores, labels, alpha=0.05).reason == got.reason


def test_bad_arguments_raise() -> None:
    summary = summarize_predictions(K.BRIER, [0.1, 0.9], [0.0, 1.0])
    with pytest.raises(ValueError, match="cannot give log_loss"):
        estimate_from_summary(K.LOG_LOSS, summary, alpha=0.05)
    with pytest.raises(ValueError, match="cannot give auc"):
        estimate_from_summary(K.AUC, summary, alpha=0.05)
    with pytest.raises(ValueError, match="alpha must be in"):
        estimate_from_summary(K.BRIER, summary, alpha=1.5)
    with pytest.raises(ValueError, match="ML metric kind"):
        summarize_predictions(K.MEAN, [0.1], [1.0])
    with pytest.raises(ValueError, match="bins must be"):
        summarize_predictions(K.AUC, [0.1], [1.0], bins=0)
    with pytest.raises(ValueError, match="one length"):
        summarize_predictions(K.AUC, [0.1], [1.0, 0.0])


def test_large_mean_losses_keep_their_variance() -> None:
    # MAE about 1e6 with a spread of 1: unshifted sums of squares would lose every digit
    rng = np.random.default_rng(7)
    labels = rng.normal(0.0, 1.0, 5000)
    scores = labels + 1e6 + rng.normal(0.0, 1.0, 5000)
    got = _estimate(K.MAE, scores, labels)
    expected = compute_ml_metric(K.MAE, scores, labels, alpha=0.05)
    assert got.std_err == pytest.approx(expected.std_err, rel=1e-6)  # type: ignore[attr-defined]


def _spec(kind: MetricKind) -> AnalysisSpec:
    return AnalysisSpec(
        control="control",
        weights={"control": 0.5, "treatment": 0.5},
        metrics=[
            MetricSpec("converted", K.CONVERSION, MetricRole.PRIMARY),
            MetricSpec("model", kind, MetricRole.ML),
        ],
    )


@pytest.mark.parametrize("kind", [K.LOG_LOSS, K.AUC], ids=["log_loss", "auc"])
def test_analyze_accepts_summaries_beside_arrays(kind: MetricKind) -> None:
    arrays, summaries = {}, {}
    for seed, variant in enumerate(("control", "treatment")):
        scores, labels = _data(1500, 10 + seed)
        arrays[variant] = MLArrays(scores, labels)
        summaries[variant] = summarize_predictions(kind, scores, labels)
    moments = {"converted": {v: Moments.from_values([0.0, 1.0, 1.0]) for v in arrays}}
    units = {"control": 3, "treatment": 3}
    by_arrays = analyze(_spec(kind), AnalysisData(units, moments, {"model": arrays}))
    by_sums = analyze(_spec(kind), AnalysisData(units, moments, {"model": summaries}))
    a, b = by_arrays.metrics["model"], by_sums.metrics["model"]
    tol = 1e-9 if kind is K.LOG_LOSS else 1e-3
    for v in arrays:
        assert b.variants[v].mean == pytest.approx(a.variants[v].mean, rel=tol)
        assert b.variants[v].n == a.variants[v].n == 1500
    assert b.comparisons[0].p_value == pytest.approx(a.comparisons[0].p_value, rel=tol)
    note = b.variants["control"].reason
    if kind is K.AUC:
        assert note is not None
        assert note.startswith(f"AUC from a {AUC_BINS}-bin score histogram: within ")
    else:
        assert note is None
    missing = analyze(_spec(kind), AnalysisData(units, moments, {"model": {}}))
    assert missing.metrics["model"].variants["control"].reason == "no predictions with labels"


def test_summary_types_match_their_kind() -> None:
    scores, labels = _data(50, 8)
    for kind in LOSS:
        summary = summarize_predictions(kind, scores, labels)
        assert isinstance(summary, LossSummary)
        assert summary.kind is kind
        assert summary.moments.k == 2
    calibration = summarize_predictions(K.CALIBRATION_ERROR, scores, labels)
    assert isinstance(calibration, CalibrationSummary)
    assert calibration.moments.k == 11


@pytest.mark.slow
@pytest.mark.parametrize("kind", [K.AUC, K.LOG_LOSS], ids=["auc", "log_loss"])
def test_aa_false_positive_rate_with_clustered_predictions(kind: MetricKind) -> None:
    """Two variants serving the same model: p < 0.05 in about 5% of runs.

    Units have 1–8 correlated predictions, so an interval that ignored the
    clusters would reject far more often. Tolerance: 3.5 binomial standard errors.
    """
    runs, alpha = 800, 0.05
    rejections = 0
    for run in range(runs):
        per_variant = []
        for part in range(2):
            scores, labels, owner = _clustered(150, 1000 + 2 * run + part)
            summary = summarize_predictions(kind, scores, labels, clusters=owner)
            per_variant.append(estimate_from_summary(kind, summary, alpha=alpha).estimate)
        _, _, p_value = compare_ml_metric(per_variant[0], per_variant[1], alpha=alpha)
        assert p_value is not None
        rejections += p_value < alpha
    tolerance = 3.5 * math.sqrt(alpha * (1 - alpha) / runs)
    assert abs(rejections / runs - alpha) < tolerance
