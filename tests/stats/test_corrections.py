from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from experiments.domain import Correction
from experiments.stats.corrections import GuardrailStatus, adjust_p_values, guardrail_status

METHODS = [
    (Correction.HOLM, "holm"),
    (Correction.BONFERRONI, "bonferroni"),
    (Correction.BH, "fdr_bh"),
]


@pytest.mark.parametrize(("correction", "reference"), METHODS, ids=[m[1] for m in METHODS])
@pytest.mark.parametrize("seed", [0, 1, 2], ids=["seed0", "seed1", "seed2"])
def test_matches_statsmodels_multipletests(
    correction: Correction, reference: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    p = np.r_[rng.uniform(0, 0.05, 4), rng.uniform(0, 1, 8), [0.01, 0.01]]  # with ties
    rng.shuffle(p)
    expected = multipletests(p, method=reference)[1]
    assert adjust_p_values(list(p), correction) == pytest.approx(list(expected), rel=1e-12)


def test_none_is_identity() -> None:
    assert adjust_p_values([0.2, 0.01], Correction.NONE) == [0.2, 0.01]


def test_undefined_p_values_are_left_out_of_the_family() -> None:
    out = adjust_p_values([0.01, None, 0.04], "holm")
    assert out[1] is None
    assert out[0] == pytest.approx(0.02)
    assert out[2] == pytest.approx(0.04)
    assert adjust_p_values([], Correction.BH) == []


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")], ids=["negative", "above-one", "nan"])
def test_invalid_p_values_raise(bad: float) -> None:
    with pytest.raises(ValueError, match="p-values must be numbers in"):
        adjust_p_values([0.1, bad], Correction.HOLM)


GUARDRAIL_CASES = [
    ((-0.5, 1.0), 1.0, True, GuardrailStatus.NON_INFERIOR),
    ((-1.5, 1.0), 1.0, True, GuardrailStatus.INCONCLUSIVE),
    ((-3.0, -1.2), 1.0, True, GuardrailStatus.INFERIOR),
    ((-1.0, 0.5), 1.0, False, GuardrailStatus.NON_INFERIOR),  # lower is better: +0.5 harm < 1
    ((1.2, 3.0), 1.0, False, GuardrailStatus.INFERIOR),
    ((0.1, 0.3), 0.0, True, GuardrailStatus.NON_INFERIOR),
    ((-0.1, 0.3), 0.0, True, GuardrailStatus.INCONCLUSIVE),
    (None, 1.0, True, GuardrailStatus.INCONCLUSIVE),
]


@pytest.mark.parametrize(
    ("bounds", "margin", "higher", "expected"),
    GUARDRAIL_CASES,
    ids=["ni", "unsure", "inferior", "lower-better-ni", "lower-better-inferior",
         "zero-margin-ni", "zero-margin-unsure", "undefined"],
)  # fmt: skip
def test_guardrail_status(
    bounds: tuple[float, float] | None, margin: float, higher: bool, expected: GuardrailStatus
) -> None:
    assert guardrail_status(bounds, margin=margin, higher_is_better=higher) is expected


def test_negative_margin_raises() -> None:
    with pytest.raises(ValueError, match="margin must be >= 0"):
        guardrail_status((0.0, 1.0), margin=-1.0, higher_is_better=True)
