from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.special import gammaln

from experiments.stats.srm import SRM_CONCENTRATION, check_srm, sequential_srm_p_value

CASES = [
    ({"control": 50210, "treatment": 49790}, {"control": 0.5, "treatment": 0.5}, False),
    ({"control": 5000, "treatment": 5400}, {"control": 0.5, "treatment": 0.5}, True),
    ({"a": 2000, "b": 1010, "c": 990}, {"a": 0.5, "b": 0.25, "c": 0.25}, False),
    ({"a": 2000, "b": 1150, "c": 850}, {"a": 0.5, "b": 0.25, "c": 0.25}, True),
]


@pytest.mark.parametrize(
    ("observed", "weights", "detected"), CASES, ids=["clean", "mismatch", "3-way", "3-way-srm"]
)
def test_matches_scipy_chisquare(
    observed: dict[str, int], weights: dict[str, float], detected: bool
) -> None:
    result = check_srm(observed, weights)
    total = sum(observed.values())
    expected = [total * weights[v] for v in weights]
    ref = sps.chisquare([observed[v] for v in weights], f_exp=expected)
    assert result.chi2 == pytest.approx(ref.statistic)
    assert result.p_value == pytest.approx(ref.pvalue)
    assert result.detected is detected
    assert result.expected == pytest.approx(dict(zip(weights, expected, strict=True)))


def test_threshold_is_0_001() -> None:
    # chi2 with 1 df at p = 0.001 is 10.83; 10.5 stays below it, 11.0 above.
    def observed_for(chi2: float) -> dict[str, int]:
        d = round((chi2 * 100_000 / 4) ** 0.5)
        return {"control": 50_000 + d, "treatment": 50_000 - d}

    weights = {"control": 0.5, "treatment": 0.5}
    assert not check_srm(observed_for(10.5), weights).detected
    assert check_srm(observed_for(11.0), weights).detected


def test_weights_need_not_be_normalised_and_missing_variant_counts_zero() -> None:
    result = check_srm({"control": 10}, {"control": 2.0, "treatment": 2.0})
    assert result.observed == {"control": 10, "treatment": 0}
    assert result.expected == {"control": 5.0, "treatment": 5.0}
    assert result.chi2 == pytest.approx(10.0)


def test_no_units_is_not_a_mismatch() -> None:
    result = check_srm({}, {"control": 0.5, "treatment": 0.5})
    assert result.chi2 is None
    assert result.p_value is None
    assert not result.detected


@pytest.mark.parametrize(
    ("observed", "weights", "message"),
    [
        ({"x": 1}, {"control": 1.0, "t": 1.0}, "without a weight: x"),
        ({"control": 1}, {"control": 0.0, "t": 1.0}, "positive"),
        ({"control": -1}, {"control": 1.0, "t": 1.0}, ">= 0"),
    ],
    ids=["unknown-variant", "zero-weight", "negative-count"],
)
def test_bad_input(observed: dict[str, int], weights: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_srm(observed, weights)


def test_sequential_bayes_factor_is_the_dirichlet_multinomial_marginal() -> None:
    counts, weights = {"a": 5200, "b": 4800}, {"a": 0.5, "b": 0.5}
    k = SRM_CONCENTRATION
    log_bf = gammaln(k) - gammaln(k + 10000)
    log_bf += sum(gammaln(k / 2 + x) - gammaln(k / 2) - x * math.log(0.5) for x in counts.values())
    assert sequential_srm_p_value(counts, weights) == pytest.approx(math.exp(-log_bf))
    assert sequential_srm_p_value({"a": 0, "b": 0}, weights) == 1.0


def test_sequential_srm_keeps_the_running_minimum_and_decides() -> None:
    weights = {"a": 0.5, "b": 0.5}
    mismatch = check_srm({"a": 5400, "b": 4600}, weights, sequential=True)
    assert mismatch.p_value_sequential is not None
    assert mismatch.p_value_sequential < 0.001
    assert mismatch.detected
    later = check_srm({"a": 10100, "b": 9900}, weights, sequential=True, previous_p_value=1e-5)
    assert later.p_value_sequential == 1e-5
    assert later.detected  # a crossed boundary stays crossed
    assert later.p_value is not None
    assert later.p_value > 0.1
    single = check_srm({"a": 5200, "b": 4800}, weights)
    assert single.p_value_sequential is None
    assert single.detected  # chi-square p = 6e-5 < 0.001


def test_sequential_srm_false_alarms_stay_below_alpha_over_looks() -> None:
    rng = np.random.default_rng(5)
    sims, looks, batch = 300, 30, 200
    counts = np.cumsum(rng.binomial(batch, 0.5, size=(sims, looks)), axis=1)
    totals = batch * np.arange(1, looks + 1)
    alarms = 0
    for row in counts:
        p = min(
            sequential_srm_p_value({"a": int(a), "b": int(t - a)}, {"a": 0.5, "b": 0.5})
            for a, t in zip(row, totals, strict=True)
        )
        alarms += p < 0.05
    # Ville: P(any look below 0.05) <= 0.05; the 99.9% binomial bound of 300 draws is 30.
    assert alarms <= 30
