"""Helpers of the seeded calibration simulations (issue 9): binomial tolerances and data.

A rate is accepted when the one-sided 95% Clopper–Pearson lower bound of the
observed rate is at most the target (the data are consistent with a rate <=
target), and every test first checks that it has enough replications for that
rule to reject a rate 30% above the target at its expected count ("teeth"):
800 replications for alpha = 0.05, 1,600 for alpha/2.
Each figure is printed as a ``CALIBRATION`` line (``pytest -s``) for the table
in ``experiments/stats/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from scipy import stats

from experiments.stats.analysis import AnalysisData, AnalysisSpec, analyze
from experiments.stats.results import Report
from experiments.stats.spec import AnalysisHistory, history_from_dict, history_to_dict
from experiments.stats.summaries import Moments

CONFIDENCE = 0.95


def clopper_pearson(hits: int, reps: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact binomial interval of a rate (Clopper & Pearson 1934)."""
    tail = (1 - confidence) / 2
    low = 0.0 if hits == 0 else float(stats.beta.ppf(tail, hits, reps - hits + 1))
    high = 1.0 if hits == reps else float(stats.beta.ppf(1 - tail, hits + 1, reps - hits))
    return low, high


def lower_bound(hits: int, reps: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper–Pearson lower bound."""
    return 0.0 if hits == 0 else float(stats.beta.ppf(1 - confidence, hits, reps - hits + 1))


def figure(name: str, hits: int, reps: int, target: str) -> str:
    low, high = clopper_pearson(hits, reps)
    line = (
        f"CALIBRATION | {name} | {hits}/{reps} | {hits / reps:.4f} | "
        f"[{low:.4f}, {high:.4f}] | {target}"
    )
    print(line)
    return line


def assert_at_most(name: str, hits: int, reps: int, target: float) -> None:
    """Rate <= target within simulation error, with a test able to see a 30% inflation."""
    inflated = math.ceil(1.3 * target * reps)
    assert lower_bound(inflated, reps) > target, f"{reps} replications cannot see 1.3x{target}"
    figure(name, hits, reps, f"<= {target:g}")
    assert lower_bound(hits, reps) <= target, f"{name}: {hits}/{reps} is above {target}"


def assert_at_least(name: str, hits: int, reps: int, target: float) -> None:
    """Rate >= target: the one-sided 95% upper bound must reach it."""
    figure(name, hits, reps, f">= {target:g}")
    upper = 1.0 if hits == reps else float(stats.beta.ppf(CONFIDENCE, hits + 1, reps - hits))
    assert upper >= target, f"{name}: {hits}/{reps} is below {target}"


def conversion_moments(successes: float, n: int) -> Moments:
    """Moments of ``n`` 0/1 values with ``successes`` ones (shift 0)."""
    return Moments(n, (0.0,), (float(successes),), ((float(successes),),))


def cumulative_conversions(
    rng: np.random.Generator, sims: int, looks: int, batch: int, rates: Sequence[float]
) -> np.ndarray:
    """Cumulative successes, shape (variants, sims, looks), ``batch`` new units per look."""
    new = np.stack([rng.binomial(batch, p, size=(sims, looks)) for p in rates])
    return np.cumsum(new, axis=2)


def run_looks(spec: AnalysisSpec, looks: Sequence[AnalysisData]) -> list[Report]:
    """Analyse each look like the server: the previous report's history, stored as JSON."""
    history = AnalysisHistory()
    reports = []
    for data in looks:
        report = analyze(replace(spec, history=history), data)
        history = history_from_dict(history_to_dict(report.history))
        reports.append(report)
    return reports


def first_verdict(reports: Sequence[Report]) -> str:
    """The first ship or rollback over the looks ('' when none)."""
    for report in reports:
        if report.decision.status in ("ship", "rollback"):
            return str(report.decision.status)
    return ""


def count(items: Sequence[object], predicate: Callable[[object], bool]) -> int:
    return sum(1 for item in items if predicate(item))
