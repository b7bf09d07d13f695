"""Seeded simulations: peeking at every look keeps the A/A false positive rate <= alpha.

Every simulated experiment adds a batch of units to both variants at each look,
and the test is run at every look with plug-in standard errors. The batches are
drawn from their exact sufficient statistics (binomial counts; normal batch sums
with chi-square within-batch sums of squares), so thousands of experiments with
a hundred looks each stay fast and fully vectorised.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats

from experiments.domain import MetricKind
from experiments.stats.power import Baseline, power
from experiments.stats.sequential import boundary_z

Array = npt.NDArray[np.float64]
ALPHA = 0.05


def _upper_tolerance(rate: float, sims: int, sds: float = 3.0) -> float:
    """Binomial upper bound: rate + sds * sqrt(rate (1 - rate) / sims)."""
    return rate + sds * math.sqrt(rate * (1.0 - rate) / sims)


def _simulate_z(
    kind: str,
    sims: int,
    looks: int,
    batch: int,
    effect: float,
    seed: int,
) -> tuple[Array, Array]:
    """z statistics (sims, looks) of treatment - control and the total n at each look."""
    rng = np.random.default_rng(seed)
    z = np.empty((sims, looks))
    sums = np.zeros((2, sims))
    squares = np.zeros((2, sims))
    n = 0
    for look in range(looks):
        n += batch
        for v, shift in ((0, 0.0), (1, effect)):
            if kind == "conversion":
                hits = rng.binomial(batch, 0.1 + shift, size=sims).astype(float)
                sums[v] += hits
                squares[v] += hits
            else:
                # batch sum T ~ N(b mu, b sd^2); within-batch SS ~ sd^2 chi2(b - 1)
                total = rng.normal(batch * (5.0 + shift), 2.0 * math.sqrt(batch), size=sims)
                within = 4.0 * rng.chisquare(batch - 1, size=sims)
                sums[v] += total
                squares[v] += within + total**2 / batch
        mean = sums / n
        wald = mean * (1.0 - mean)  # binomial Wald variance for 0/1 values
        var = wald if kind == "conversion" else (squares - n * mean**2) / (n - 1)
        std_err = np.sqrt(var[0] / n + var[1] / n)
        with np.errstate(divide="ignore", invalid="ignore"):
            z[:, look] = np.where(std_err > 0, (mean[1] - mean[0]) / std_err, 0.0)
    totals = 2.0 * batch * np.arange(1, looks + 1, dtype=np.float64)
    return z, totals


@pytest.mark.parametrize("kind", ["conversion", "mean"], ids=["conversion", "mean"])
def test_peeking_at_every_look_keeps_the_false_positive_rate(kind: str) -> None:
    sims, looks, batch = 10_000, 100, 100
    z, totals = _simulate_z(kind, sims, looks, batch, effect=0.0, seed=20260101)
    planned = int(totals[-1] // 2)  # tuned for the middle of the run
    crit = np.array([boundary_z(n, planned, ALPHA) for n in totals])
    sequential_fpr = float(np.mean((np.abs(z) >= crit).any(axis=1)))
    naive_fpr = float(np.mean((np.abs(z) >= stats.norm.ppf(1 - ALPHA / 2)).any(axis=1)))
    assert sequential_fpr <= _upper_tolerance(ALPHA, sims)
    # The same simulation catches the inflation of peeking at a fixed-horizon test.
    assert naive_fpr > _upper_tolerance(ALPHA, sims, sds=10.0)


@pytest.mark.parametrize("kind", ["conversion", "mean"], ids=["conversion", "mean"])
def test_sequential_power_at_the_planned_look_matches_the_formula(kind: str) -> None:
    sims, looks, batch = 10_000, 20, 250
    effect = 0.02 if kind == "conversion" else 0.15
    z, totals = _simulate_z(kind, sims, looks, batch, effect=effect, seed=7)
    planned = int(totals[-1])
    crit = np.array([boundary_z(n, planned, ALPHA) for n in totals])
    at_plan = float(np.mean(np.abs(z[:, -1]) >= crit[-1]))
    with_peeking = float(np.mean((np.abs(z) >= crit).any(axis=1)))
    baseline = Baseline.conversion(0.1) if kind == "conversion" else Baseline(MetricKind.MEAN, 5, 4)
    expected = power(
        baseline,
        effect=effect,
        relative=False,
        total_units=planned,
        sequential=True,
        planned_n=planned,
    )
    assert 0.3 < expected < 0.95  # a regime where the check has teeth
    tolerance = 4.0 * math.sqrt(expected * (1 - expected) / sims)
    assert at_plan == pytest.approx(expected, abs=tolerance)
    assert with_peeking >= at_plan
