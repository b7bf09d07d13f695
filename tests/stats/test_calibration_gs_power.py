"""Group-sequential power targets of issue 9: 2,000 units per variant, 10% -> 12%, 10 looks.

The z statistics of 20,000 simulated experiments are computed in numpy from
their cumulative conversions (the engine's own formula: the unpooled Wald
standard error) and compared with the boundaries of :mod:`.group_sequential`;
a subset is analysed look by look through ``analyze_frame`` to show that the
public entry point takes exactly the same decisions. For reference the fixed
test and the always-valid mixture test tuned at the planned sample are
simulated on the same data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from experiments import analyze_frame
from experiments.stats import group_sequential as gs
from experiments.stats.sequential import sequential_interval
from tests.stats.calibration import assert_at_least, figure

PER_VARIANT, LOOKS, RATES = 2000, 10, (0.10, 0.12)
PLANNED = 2 * PER_VARIANT
BATCH = PER_VARIANT // LOOKS
INFO = tuple((j + 1) / LOOKS for j in range(LOOKS))
SIMS = 20_000


def _z(success: np.ndarray, n: np.ndarray) -> np.ndarray:
    p = success / n
    se = np.sqrt((p[0] * (1 - p[0]) + p[1] * (1 - p[1])) / n)
    return (p[1] - p[0]) / se


def _ships(z: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Ship at the first look whose |z| crosses its boundary, when z > 0 there."""
    crossed = np.abs(z) >= bounds
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    rows = np.arange(z.shape[0])
    return (first >= 0) & (z[rows, np.maximum(first, 0)] > 0)


KNOWN = np.array(gs.design_boundaries(INFO, 0.05))
ALONE = np.array([gs.continuous_boundary(0.05) / math.sqrt(t) for t in INFO])


@pytest.mark.slow
def test_group_sequential_power_targets() -> None:
    rng = np.random.default_rng(71)
    new = np.stack([rng.binomial(BATCH, p, size=(SIMS, LOOKS)) for p in RATES])
    success, n = np.cumsum(new, axis=2), BATCH * np.arange(1, LOOKS + 1)
    z = _z(success, n)
    known, alone = _ships(z, KNOWN), _ships(z, ALONE)
    assert_at_least("group_sequential power, earlier looks known", int(known.sum()), SIMS, 0.47)
    assert_at_least("group_sequential power, each look alone", int(alone.sum()), SIMS, 0.38)
    # References on the same data: the fixed test at the planned sample (pooled z) ...
    pooled = success[..., -1].sum(axis=0) / PLANNED
    se0 = np.sqrt(pooled * (1 - pooled) * 2 / PER_VARIANT)
    fixed = (success[1, :, -1] - success[0, :, -1]) / PER_VARIANT / se0 >= 1.959964
    figure("reference: fixed test at planned_n", int(fixed.sum()), SIMS, "~0.506")
    # ... and the mixture test tuned at planned_n, its running p-value over the 10 looks.
    p_min = np.ones(SIMS)
    p, se = success / n, None
    for k in range(LOOKS):
        se = np.sqrt((p[0, :, k] * (1 - p[0, :, k]) + p[1, :, k] * (1 - p[1, :, k])) / n[k])
        diff = p[1, :, k] - p[0, :, k]
        p_k = np.array([
            sequential_interval(d, s, 2 * int(n[k]), PLANNED, 0.05).p_value or 1.0
            for d, s in zip(diff[:2000], se[:2000], strict=True)
        ])  # fmt: skip
        p_min[:2000] = np.minimum(p_min[:2000], np.where(diff[:2000] > 0, p_k, 1.0))
    figure("reference: mixture test tuned at planned_n", int((p_min[:2000] < 0.05).sum()), 2000,
           "~0.190")  # fmt: skip
    assert known.mean() > alone.mean()
    assert fixed.mean() > known.mean()


@pytest.mark.slow
def test_analyze_frame_takes_the_same_group_sequential_decisions() -> None:
    rng = np.random.default_rng(72)
    sims, agree_known, agree_alone = 60, 0, 0
    for _ in range(sims):
        units = {
            v: (rng.random(PER_VARIANT) < r).astype(int)
            for v, r in zip(("control", "treatment"), RATES, strict=True)
        }
        cum = np.stack([np.cumsum(units[v].reshape(LOOKS, BATCH).sum(axis=1)) for v in units])
        z = _z(cum[:, None, :], BATCH * np.arange(1, LOOKS + 1))
        expected = (bool(_ships(z, KNOWN[None])[0]), bool(_ships(z, ALONE[None])[0]))
        decided = {True: False, False: False}
        for known in (True, False):
            for k in range(LOOKS):
                m = BATCH * (k + 1)
                frame = pd.DataFrame({
                    "variant": np.repeat(["control", "treatment"], m),
                    "y": np.concatenate([units["control"][:m], units["treatment"][:m]]),
                })  # fmt: skip
                earlier = [2 * BATCH * (j + 1) for j in range(k)] if known else None
                report = analyze_frame(
                    frame, metrics={"y": "conversion:y"}, method="group_sequential",
                    planned_n=PLANNED, looks=earlier,
                )  # fmt: skip
                status = report["decision"]["status"]
                if status in ("ship", "rollback"):
                    decided[known] = status == "ship"
                    break
        agree_known += decided[True] == expected[0]
        agree_alone += decided[False] == expected[1]
    assert agree_known == sims
    assert agree_alone == sims
