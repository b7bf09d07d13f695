"""Calibration of harm-only guardrails, of the relative interval and of ml_divergence (issue 9).

All through ``analyze_frame``, seeded, with Clopper–Pearson tolerances
(:mod:`tests.stats.calibration`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments import analyze_frame
from tests.stats.calibration import assert_at_least, assert_at_most, figure

ALPHA = 0.05


@pytest.mark.slow
def test_harm_only_guardrails_never_block_a_true_winner_and_rarely_roll_back() -> None:
    """A true +15% primary and 3 neutral guardrails without margins."""
    rng = np.random.default_rng(81)
    reps, n = 800, 6000
    variant = np.repeat(["control", "treatment"], n // 2)
    treated = variant == "treatment"
    metrics = {"conv": "conversion:conv", "revenue": "mean:revenue",
               "latency": "mean:latency", "refunds": "conversion:refunds"}  # fmt: skip
    guards = {"revenue": None, "latency": None, "refunds": None}
    shipped, shipped_alone, harmed_rollbacks = 0, 0, 0
    for _ in range(reps):
        frame = pd.DataFrame({
            "variant": variant,
            "conv": (rng.random(n) < np.where(treated, 0.115, 0.10)).astype(int),
            "revenue": rng.gamma(2.0, 10.0, n),
            "latency": rng.normal(200.0, 40.0, n),
            "refunds": (rng.random(n) < 0.05).astype(int),
        })  # fmt: skip
        report = analyze_frame(
            frame, metrics=metrics, guardrails=guards, planned_n=n,
            higher_is_better={"latency": False, "refunds": False},
        )  # fmt: skip
        status = report["decision"]["status"]
        shipped += status == "ship"
        # Without guardrails the primary alone ships exactly when it is significantly better.
        shipped_alone += report["metrics"]["conv"]["comparisons"][0]["direction"] == "better"
        harmed_rollbacks += status == "rollback" and "harm-only" in report["decision"]["rule"]
    figure("harm-only guardrails: ship rate (primary alone below)", shipped, reps, "~ power")
    figure("primary alone: ship rate (its power)", shipped_alone, reps, "~0.47")
    assert shipped_alone - shipped <= 0.03 * reps  # guardrails block at most ~alpha/2 of wins
    assert_at_most("harm-only guardrails: false rollbacks", harmed_rollbacks, reps, ALPHA)


def _revenue(rng: np.random.Generator, size: int, lift: float) -> np.ndarray:
    buys = rng.random(size) >= 0.97
    return np.where(buys, rng.lognormal(3.0, 2.5, size) * lift, 0.0)


@pytest.mark.slow
def test_relative_interval_covers_a_true_lift_on_revenue_with_97_percent_zeros() -> None:
    rng = np.random.default_rng(82)
    reps, n = 400, 20_000
    variant = np.repeat(["control", "treatment"], n // 2)
    bounded = covered = agree = 0
    for _ in range(reps):
        y = np.concatenate([_revenue(rng, n // 2, 1.0), _revenue(rng, n // 2, 1.05)])
        report = analyze_frame(pd.DataFrame({"variant": variant, "y": y}),
                               metrics={"y": "mean:y"}, planned_n=n)  # fmt: skip
        c = report["metrics"]["y"]["comparisons"][0]
        if c["rel_ci"] is None:
            assert "not distinguishable from 0" in c["reason"]
            continue
        bounded += 1
        covered += c["rel_ci"][0] <= 0.05 <= c["rel_ci"][1]
        excludes = (
            c["abs_ci"][0] > 0 or c["abs_ci"][1] < 0,
            c["rel_ci"][0] > 0 or c["rel_ci"][1] < 0,
        )
        agree += excludes[0] == excludes[1]
    assert bounded >= 0.8 * reps
    assert_at_least(
        "relative CI coverage of +5% (97% zeros, N=20k), bounded", covered, bounded, 0.93
    )
    assert agree == bounded  # excludes 0 exactly when the interval of the difference does


def _ml_frame(
    rng: np.random.Generator, n: int, conv: tuple[float, float], sharpness: tuple[float, float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    variant = np.repeat(["control", "treatment"], n // 2)
    rate = np.where(variant == "treatment", conv[1], conv[0])
    units = pd.DataFrame({
        "unit_id": np.arange(n).astype(str), "variant": variant,
        "conv": (rng.random(n) < rate).astype(int),
    })  # fmt: skip
    scores = rng.random(n)
    power = np.where(variant == "treatment", sharpness[1], sharpness[0])
    predictions = pd.DataFrame({
        "unit_id": units.unit_id, "variant": variant, "score": scores,
        "label": (rng.random(n) < scores**power).astype(float),
    })  # fmt: skip
    return units, predictions


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "conv", "sharpness"),
    [
        ("ML truly better, primary null", (0.10, 0.10), (1.0, 1.5)),
        ("primary truly worse, ML null", (0.10, 0.08), (1.0, 1.0)),
    ],
    ids=["ml-better-primary-null", "primary-worse-ml-null"],
)
def test_ml_divergence_under_one_sided_nulls(
    case: str, conv: tuple[float, float], sharpness: tuple[float, float]
) -> None:
    rng = np.random.default_rng(83 if "ML truly" in case else 84)
    reps, flagged, noted = 800, 0, 0
    for _ in range(reps):
        units, predictions = _ml_frame(rng, 3000, conv, sharpness)
        report = analyze_frame(units, metrics={"conv": "conversion:conv"}, planned_n=3000,
                               predictions=predictions, ml_metrics={"auc": "auc"})  # fmt: skip
        flagged += report["decision"]["ml_divergence"]
        noted += report["decision"]["ml_note"] is not None
    if "ML truly" in case:
        figure(f"ml_note rate ({case})", noted, reps, "ML better, business not shown")
    assert_at_most(f"ml_divergence flag rate ({case})", flagged, reps, ALPHA)
