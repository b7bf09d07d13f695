"""Calibration of the Bayesian decision and of the sign-safe lift (issue 9), through analyze_frame.

A/A with N = 2,000 units: conversion at 1% (the Beta model) and revenue with
90% and 97% zeros (lognormal(3, 2.5) spend): ship and rollback each at most
alpha/2 = 0.025. Negative control means: a positive lift ships, and of two
winners the larger improvement ships.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments import analyze_frame
from tests.stats.calibration import assert_at_least, assert_at_most

N = 2000
REPS = 1600  # enough for a 95% bound to see 1.3 x alpha/2
VARIANT = np.repeat(["control", "treatment"], N // 2)


def _revenue(rng: np.random.Generator, size: int, zeros: float, lift: float = 1.0) -> np.ndarray:
    buys = rng.random(size) >= zeros
    return np.where(buys, rng.lognormal(3.0, 2.5, size) * lift, 0.0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scenario", "seed"),
    [("conversion 1%", 91), ("revenue 90% zeros", 92), ("revenue 97% zeros", 93)],
    ids=["conversion-1pct", "revenue-90-zeros", "revenue-97-zeros"],
)
def test_bayesian_aa_ships_and_rolls_back_at_most_half_alpha(scenario: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    statuses = []
    for _ in range(REPS):
        if scenario.startswith("conversion"):
            frame = pd.DataFrame({"variant": VARIANT, "y": (rng.random(N) < 0.01).astype(int)})
            metric = "conversion:y"
        else:
            zeros = 0.90 if "90" in scenario else 0.97
            frame = pd.DataFrame({"variant": VARIANT, "y": _revenue(rng, N, zeros)})
            metric = "mean:y"
        report = analyze_frame(frame, metrics={"y": metric}, method="bayesian", planned_n=N)
        statuses.append(report["decision"]["status"])
    for status in ("ship", "rollback"):
        hits = statuses.count(status)
        assert_at_most(f"bayesian A/A {scenario}: {status}", hits, REPS, 0.025)


def _negative(rng: np.random.Generator, means: dict[str, float], n: int) -> pd.DataFrame:
    variant = np.repeat(list(means), n)
    profit = np.concatenate([rng.normal(m, 20.0, n) for m in means.values()])
    return pd.DataFrame({"variant": variant, "profit": profit})


@pytest.mark.parametrize("method", ["fixed", "bayesian"], ids=str)
def test_negative_control_mean_gives_a_positive_lift_and_ships(method: str) -> None:
    frame = _negative(np.random.default_rng(7), {"control": -10.0, "treatment": -8.0}, 3000)
    report = analyze_frame(frame, metrics={"profit": "mean:profit"}, method=method, planned_n=6000)
    c = report["metrics"]["profit"]["comparisons"][0]
    assert c["rel_lift"] == pytest.approx(0.2, abs=0.06)
    assert c["rel_ci"][0] > 0
    assert c["direction"] == "better"
    assert report["decision"]["status"] == "ship"
    if method == "bayesian":
        assert c["chance_to_beat_control"] > 0.999


@pytest.mark.parametrize("method", ["fixed", "bayesian"], ids=str)
def test_of_two_winners_the_larger_improvement_ships(method: str) -> None:
    means = {"control": -10.0, "small": -10.0 + 1.8, "large": -10.0 + 11.9}
    frame = _negative(np.random.default_rng(8), means, 3000)
    report = analyze_frame(frame, metrics={"profit": "mean:profit"}, method=method, planned_n=9000)
    assert report["decision"]["status"] == "ship"
    assert report["decision"]["variant"] == "large"
    assert any("differs significantly from the runner-up 'small'" in r
               for r in report["decision"]["reasons"])  # fmt: skip


@pytest.mark.slow
def test_negative_means_ship_the_larger_winner_at_the_power_of_the_test() -> None:
    rng = np.random.default_rng(94)
    reps, shipped_large, shipped_small = 200, 0, 0
    means = {"control": -10.0, "small": -8.2, "large": 1.9}
    for _ in range(reps):
        frame = _negative(rng, means, 300)
        report = analyze_frame(frame, metrics={"profit": "mean:profit"}, method="bayesian",
                               planned_n=900)  # fmt: skip
        shipped_large += report["decision"]["variant"] == "large"
        shipped_small += report["decision"]["variant"] == "small"
    assert_at_least("negative means: ships the +11.9 winner", shipped_large, reps, 0.98)
    assert shipped_small == 0
