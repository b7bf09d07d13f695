from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from experiments.domain import MetricKind
from experiments.stats.ml_metrics import (
    MLEstimate,
    auc_from_histograms,
    auc_histogram_error_bound,
    bootstrap_count,
    compare_ml_metric,
    compute_ml_metric,
    delong_auc,
    is_lower_better,
)

Array = npt.NDArray[np.float64]
ML_KINDS = [k for k in MetricKind if k.is_ml]


def _data(n: int, seed: int, ties: bool = False) -> tuple[Array, Array]:
    rng = np.random.default_rng(seed)
    scores = rng.beta(2, 3, n)
    labels = (rng.random(n) < scores).astype(float)
    if ties:
        scores = np.round(scores, 1)
    return scores, labels


def _brute_delong(scores: Array, labels: Array) -> tuple[float, float]:
    """DeLong et al. (1988) structural components by the O(n^2) definition."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size


@pytest.mark.parametrize(
    ("n", "seed", "ties"),
    [(50, 1, False), (400, 2, False), (400, 3, True), (31, 4, True)],
    ids=["small", "medium", "ties", "small-ties"],
)
def test_auc_is_the_mann_whitney_u_and_delong_matches_brute_force(
    n: int, seed: int, ties: bool
) -> None:
    scores, labels = _data(n, seed, ties)
    result = compute_ml_metric(MetricKind.AUC, scores, labels, alpha=0.05)
    u = stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    n1, n0 = (labels == 1).sum(), (labels == 0).sum()
    assert result.estimate == pytest.approx(u / (n1 * n0), rel=1e-12)
    auc, variance = _brute_delong(scores, labels)
    assert delong_auc(scores, labels) == pytest.approx((auc, variance), rel=1e-10)
    assert result.std_err == pytest.approx(math.sqrt(variance), rel=1e-10)
    z = stats.norm.ppf(0.975)
    assert result.ci_low == pytest.approx(max(0.0, auc - z * math.sqrt(variance)))
    assert result.ci_high == pytest.approx(min(1.0, auc + z * math.sqrt(variance)))
    assert result.n == n


def _t_interval(losses: Array, alpha: float) -> tuple[float, float]:
    low, high = stats.t.interval(
        1 - alpha, losses.size - 1, loc=losses.mean(), scale=stats.sem(losses)
    )
    return float(low), float(high)


@pytest.mark.parametrize("alpha", [0.05, 0.1], ids=["alpha-0.05", "alpha-0.1"])
def test_mean_type_metrics_match_direct_formulas(alpha: float) -> None:
    scores, labels = _data(500, 7)
    scores[:3] = [0.0, 1.0, 0.0]  # clipped for the log loss
    labels[:3] = [1.0, 0.0, 0.0]
    p = np.clip(scores, 1e-15, 1 - 1e-15)
    expected = {
        MetricKind.LOG_LOSS: -(labels * np.log(p) + (1 - labels) * np.log(1 - p)),
        MetricKind.BRIER: (scores - labels) ** 2,
        MetricKind.ACCURACY: ((scores >= 0.4) == labels).astype(float),
        MetricKind.MAE: np.abs(scores - labels),
    }
    for kind, losses in expected.items():
        result = compute_ml_metric(kind, scores, labels, alpha=alpha, threshold=0.4)
        assert result.estimate == pytest.approx(losses.mean(), rel=1e-12), kind
        assert result.std_err == pytest.approx(stats.sem(losses), rel=1e-10), kind
        assert (result.ci_low, result.ci_high) == pytest.approx(_t_interval(losses, alpha)), kind
        assert math.isfinite(result.estimate)  # type: ignore[arg-type]


def test_accuracy_counts_a_score_at_the_threshold_as_positive() -> None:
    result = compute_ml_metric(
        MetricKind.ACCURACY, [0.5, 0.5, 0.2, 0.9], [1.0, 0.0, 0.0, 1.0], alpha=0.05
    )
    assert result.estimate == 0.75


def test_rmse_uses_the_delta_method_on_the_mse() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(10, 2, 800)
    predicted = truth + rng.normal(0, 1.5, 800)
    result = compute_ml_metric(MetricKind.RMSE, predicted, truth, alpha=0.05)
    squared = (predicted - truth) ** 2
    rmse = math.sqrt(squared.mean())
    std_err = stats.sem(squared) / (2 * rmse)
    assert result.estimate == pytest.approx(rmse)
    assert result.std_err == pytest.approx(std_err)
    crit = stats.t.ppf(0.975, 799)
    assert (result.ci_low, result.ci_high) == pytest.approx(
        (rmse - crit * std_err, rmse + crit * std_err)
    )


def _brute_ece(scores: Array, labels: Array) -> float:
    total = 0.0
    for b in range(10):
        upper = scores <= 1.0 if b == 9 else scores < (b + 1) / 10
        mask = (scores >= b / 10) & upper
        if mask.any():
            total += mask.sum() / scores.size * abs(labels[mask].mean() - scores[mask].mean())
    return total


def test_calibration_error_matches_the_binned_definition_and_is_reproducible() -> None:
    scores, labels = _data(3000, 5)
    scores[:4] = [0.0, 1.0, 0.1, 0.9]  # bin edges
    first = compute_ml_metric(MetricKind.CALIBRATION_ERROR, scores, labels, alpha=0.05, seed=1)
    again = compute_ml_metric(MetricKind.CALIBRATION_ERROR, scores, labels, alpha=0.05, seed=1)
    other = compute_ml_metric(MetricKind.CALIBRATION_ERROR, scores, labels, alpha=0.05, seed=2)
    assert first.estimate == pytest.approx(_brute_ece(scores, labels), rel=1e-12)
    assert first == again
    assert first.ci_low != other.ci_low
    assert first.ci_low is not None
    assert first.ci_high is not None
    assert first.std_err is not None
    assert 0 <= first.ci_low < first.ci_high
    assert first.std_err == pytest.approx(other.std_err, rel=0.15)


def test_bootstrap_statistics_match_the_metric_on_repeated_data() -> None:
    """A replicate with integer weights is the metric of the data repeated that many times."""
    scores, labels = _data(60, 9, ties=True)
    units = np.arange(60)
    counts = np.random.default_rng(0).integers(1, 4, 60)
    repeated_scores, repeated_labels = np.repeat(scores, counts), np.repeat(labels, counts)
    for kind in ML_KINDS:
        direct = compute_ml_metric(kind, repeated_scores, repeated_labels, alpha=0.05)
        clustered = compute_ml_metric(
            kind, repeated_scores, repeated_labels, alpha=0.05, clusters=np.repeat(units, counts)
        )
        assert clustered.estimate == pytest.approx(direct.estimate, rel=1e-12), kind


def test_cluster_bootstrap_accounts_for_duplicated_predictions() -> None:
    scores, labels = _data(1500, 12)
    once = compute_ml_metric(MetricKind.BRIER, scores, labels, alpha=0.05)
    copies = 4
    naive = compute_ml_metric(
        MetricKind.BRIER, np.tile(scores, copies), np.tile(labels, copies), alpha=0.05
    )
    clustered = compute_ml_metric(
        MetricKind.BRIER,
        np.tile(scores, copies),
        np.tile(labels, copies),
        alpha=0.05,
        clusters=np.tile(np.arange(1500), copies),
    )
    assert naive.std_err == pytest.approx(once.std_err / 2, rel=0.01)  # type: ignore[operator]
    # B = 1000 replicates: the bootstrap SE is within a few percent of the truth.
    assert clustered.std_err == pytest.approx(once.std_err, rel=0.1)
    assert clustered.estimate == pytest.approx(once.estimate)


def test_unique_clusters_keep_the_analytic_interval() -> None:
    scores, labels = _data(300, 13)
    plain = compute_ml_metric(MetricKind.AUC, scores, labels, alpha=0.05)
    unique = compute_ml_metric(
        MetricKind.AUC, scores, labels, alpha=0.05, clusters=np.arange(300) * 7
    )
    assert plain == unique


def test_cluster_bootstrap_of_auc_is_seeded() -> None:
    scores, labels = _data(400, 14)
    clusters = np.arange(400) // 3
    first = compute_ml_metric(MetricKind.AUC, scores, labels, alpha=0.05, clusters=clusters)
    assert first == compute_ml_metric(MetricKind.AUC, scores, labels, alpha=0.05, clusters=clusters)
    assert first != compute_ml_metric(
        MetricKind.AUC, scores, labels, alpha=0.05, clusters=clusters, seed=5
    )
    delong = compute_ml_metric(MetricKind.AUC, scores, labels, alpha=0.05)
    assert first.std_err == pytest.approx(delong.std_err, rel=0.2)


@pytest.mark.parametrize(
    ("kind", "scores", "labels", "reason"),
    [
        (MetricKind.AUC, [], [], "no predictions"),
        (MetricKind.AUC, [0.1, 0.4, 0.8], [1, 1, 1], "both positive and negative"),
        (MetricKind.AUC, [0.1, 0.4], [1, 0.5], "labels 0 or 1"),
        (MetricKind.ACCURACY, [0.1, 0.4], [2, 0], "labels 0 or 1"),
        (MetricKind.LOG_LOSS, [0.1, 0.4], [2, 0], "labels in [0, 1]"),
        (MetricKind.BRIER, [1.1, 0.4], [1, 0], "scores (probabilities) in [0, 1]"),
        (MetricKind.CALIBRATION_ERROR, [-0.1, 0.4], [1, 0], "scores (probabilities)"),
        (MetricKind.MAE, [math.nan, 0.4], [1, 0], "finite"),
        (MetricKind.RMSE, [1.0, 2.0], [math.inf, 0], "finite"),
    ],
    ids=[
        "empty",
        "one-class",
        "soft-auc-label",
        "accuracy-label",
        "log-loss-label",
        "brier-score",
        "ece-score",
        "nan-score",
        "inf-label",
    ],
)
def test_degenerate_inputs_give_a_reason(
    kind: MetricKind, scores: list[float], labels: list[float], reason: str
) -> None:
    result = compute_ml_metric(kind, scores, labels, alpha=0.05)
    assert result.estimate is None
    assert result.reason is not None
    assert reason in result.reason
    assert result.n == len(scores)


@pytest.mark.parametrize(
    ("kind", "scores", "labels", "reason"),
    [
        (MetricKind.BRIER, [0.3], [1.0], "fewer than 2"),
        (MetricKind.ACCURACY, [0.9, 0.1], [1.0, 0.0], "zero"),
        (MetricKind.RMSE, [1.0, 2.0], [1.0, 2.0], "zero"),
        (MetricKind.AUC, [0.2, 0.9, 0.8], [0, 1, 1], "undefined"),
    ],
    ids=["one-prediction", "perfect-accuracy", "perfect-rmse", "one-negative"],
)
def test_estimate_without_interval_gives_a_reason(
    kind: MetricKind, scores: list[float], labels: list[float], reason: str
) -> None:
    result = compute_ml_metric(kind, scores, labels, alpha=0.05)
    assert result.estimate is not None
    assert result.ci_low is None
    assert result.ci_high is None
    assert result.reason is not None
    assert reason in result.reason


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(ML_KINDS),
    data=st.lists(
        st.tuples(st.floats(-0.5, 1.5), st.sampled_from([0.0, 1.0, 0.5]), st.integers(0, 4)),
        max_size=25,
    ),
)
def test_never_nan_and_never_raises(kind: MetricKind, data: list[tuple[float, float, int]]) -> None:
    scores = [d[0] for d in data]
    labels = [d[1] for d in data]
    clusters = [d[2] for d in data]
    plain = compute_ml_metric(kind, scores, labels, alpha=0.05, n_boot=50)
    clustered = compute_ml_metric(kind, scores, labels, alpha=0.05, n_boot=50, clusters=clusters)
    for result in (plain, clustered):
        fields = [result.estimate, result.ci_low, result.ci_high, result.std_err]
        assert all(v is None or math.isfinite(v) for v in fields)
        if result.estimate is None or result.ci_low is None:
            assert result.reason is not None
    analytic = kind is not MetricKind.CALIBRATION_ERROR  # ECE uses a percentile bootstrap
    if analytic and plain.estimate is not None and plain.ci_low is not None:
        assert plain.ci_high is not None
        assert plain.ci_low <= plain.estimate <= plain.ci_high


def test_compare_is_the_independent_samples_difference() -> None:
    control = MLEstimate(0.70, 0.68, 0.72, 0.010, 1000, None)
    treatment = MLEstimate(0.73, 0.71, 0.75, 0.012, 900, None)
    diff, ci, p = compare_ml_metric(control, treatment, alpha=0.05)
    se = math.sqrt(0.010**2 + 0.012**2)
    assert diff == pytest.approx(0.03)
    assert ci == pytest.approx((0.03 - 1.959964 * se, 0.03 + 1.959964 * se))
    assert p == pytest.approx(2 * stats.norm.sf(0.03 / se))
    back, back_ci, back_p = compare_ml_metric(treatment, control, alpha=0.05)
    assert back == pytest.approx(-0.03)
    assert back_ci == pytest.approx((-ci[1], -ci[0]))  # type: ignore[index]
    assert back_p == pytest.approx(p)


_GOOD = MLEstimate(0.7, 0.6, 0.8, 0.05, 9, None)


@pytest.mark.parametrize(
    ("control", "treatment", "diff"),
    [
        (MLEstimate(None, None, None, None, 0, "no predictions"), _GOOD, None),
        (MLEstimate(0.5, None, None, None, 1, "fewer than 2"), _GOOD, 0.2),
        (
            MLEstimate(0.5, None, None, 0.0, 5, "zero"),
            MLEstimate(0.7, None, None, 0.0, 9, "0"),
            0.2,
        ),
    ],
    ids=["no-estimate", "no-std-err", "zero-std-err"],
)
def test_compare_propagates_undefined_values(
    control: MLEstimate, treatment: MLEstimate, diff: float | None
) -> None:
    got, ci, p = compare_ml_metric(control, treatment, alpha=0.05)
    assert got == (None if diff is None else pytest.approx(diff))
    assert ci is None
    assert p is None


@pytest.mark.parametrize("kind", list(MetricKind), ids=[k.value for k in MetricKind])
def test_lower_is_better_kinds(kind: MetricKind) -> None:
    lower = {"log_loss", "brier", "calibration_error", "rmse", "mae"}
    assert is_lower_better(kind) == (kind.value in lower)


@pytest.mark.parametrize("bins", [1000, 5000], ids=["1000-bins", "5000-bins"])
def test_auc_from_histograms_is_within_its_bound(bins: int) -> None:
    scores, labels = _data(20_000, 21)
    exact = compute_ml_metric(MetricKind.AUC, scores, labels, alpha=0.05).estimate
    edges = np.linspace(0, 1, bins + 1)
    pos, _ = np.histogram(scores[labels == 1], edges)
    neg, _ = np.histogram(scores[labels == 0], edges)
    approx, bound = auc_from_histograms(pos, neg), auc_histogram_error_bound(pos, neg)
    assert abs(approx - exact) <= bound  # type: ignore[operator]
    assert bound < 1.0 / bins


def test_auc_from_histograms_is_exact_when_every_score_has_its_bin() -> None:
    scores, labels = _data(500, 22, ties=True)
    values = np.unique(scores)
    pos = np.array([((scores == v) & (labels == 1)).sum() for v in values])
    neg = np.array([((scores == v) & (labels == 0)).sum() for v in values])
    exact = compute_ml_metric(MetricKind.AUC, scores, labels, alpha=0.05).estimate
    assert auc_from_histograms(pos, neg) == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize(
    ("pos", "neg", "message"),
    [
        ([1, 2], [1], "one length"),
        ([0, 0], [1, 2], "at least one positive"),
        ([1, -1], [1, 2], ">= 0"),
        ([1, math.nan], [1, 2], "finite"),
    ],
    ids=["length", "no-positive", "negative", "nan"],
)
def test_histogram_bad_input_is_named(pos: list[float], neg: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        auc_from_histograms(pos, neg)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": MetricKind.MEAN}, "ML metric kind"),
        ({"alpha": 0.0}, "alpha"),
        ({"threshold": math.nan}, "threshold"),
        ({"labels": [1.0]}, "one length"),
        ({"clusters": [1, 2]}, "clusters"),
        ({"n_boot": 1}, "n_boot"),
    ],
    ids=["business-kind", "alpha", "threshold", "labels-length", "clusters-length", "n-boot"],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "kind": MetricKind.AUC,
        "scores": [0.1, 0.5, 0.9],
        "labels": [0.0, 1.0, 1.0],
        "alpha": 0.05,
    }
    args.update(kwargs)
    kind, scores, labels = args.pop("kind"), args.pop("scores"), args.pop("labels")
    with pytest.raises(ValueError, match=message):
        compute_ml_metric(kind, scores, labels, **args)  # type: ignore[arg-type]


@pytest.mark.slow
def test_delong_interval_covers_the_true_auc() -> None:
    rng = np.random.default_rng(31)
    sims, n_pos, n_neg = 2000, 150, 250
    truth = stats.norm.cdf(1 / math.sqrt(2))  # P(X > Y), X ~ N(1, 1), Y ~ N(0, 1)
    labels = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    covered = 0
    for _ in range(sims):
        scores = np.r_[rng.normal(1, 1, n_pos), rng.normal(0, 1, n_neg)]
        result = compute_ml_metric(MetricKind.AUC, scores, labels, alpha=0.05)
        assert result.ci_low is not None
        assert result.ci_high is not None
        covered += result.ci_low <= truth <= result.ci_high
    tolerance = 4 * math.sqrt(0.95 * 0.05 / sims)
    assert covered / sims == pytest.approx(0.95, abs=tolerance)


@pytest.mark.parametrize(
    ("n_boot", "cells", "expected"),
    [
        (1000, 100, 1000),
        (1000, 200_000, 200),
        (1000, 10**7, 200),
        (500, 50_000, 500),
        (50, 10**7, 50),
    ],
    ids=["small", "large", "huge", "budget-above-request", "request-below-floor"],
)
def test_bootstrap_count_bounds_the_work(n_boot: int, cells: int, expected: int) -> None:
    assert bootstrap_count(n_boot, cells) == expected
