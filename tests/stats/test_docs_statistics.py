"""docs/statistics.md stays true to the engine: every method, status and rule is described."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.domain import AnalysisMethod, Correction, DecisionStatus
from experiments.stats.corrections import GuardrailStatus
from experiments.stats.srm import SRM_CONCENTRATION

DOC = (Path(__file__).parents[2] / "docs" / "statistics.md").read_text()
README = (Path(__file__).parents[2] / "experiments" / "stats" / "README.md").read_text()


@pytest.mark.parametrize(
    "word",
    [*AnalysisMethod, *DecisionStatus, *GuardrailStatus, *Correction],
    ids=str,
)
def test_every_method_status_and_correction_is_documented(word: str) -> None:
    assert f"`{word}`" in DOC or f"`{word}`:" in DOC


def test_the_documented_constants_are_the_code_s() -> None:
    assert f"κ = {SRM_CONCENTRATION:g}" in DOC
    assert "α(t) = 2 − 2Φ(z_{1−α/2} / √t)" in DOC
    assert "(m_t − m_c) / |m_c|" in DOC


def test_calibration_tables_are_filled_in() -> None:
    for text in (DOC, README):
        assert "CALIBRATION_TABLE" not in text
        assert "| group_sequential power, earlier looks known |" in text
