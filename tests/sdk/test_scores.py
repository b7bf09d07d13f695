"""combine_scores: Σ wᵢ·scoreᵢ for floats and, duck-typed, numpy arrays."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.sdk import combine_scores


def test_floats() -> None:
    got = combine_scores({"engagement": 0.8, "quality": 0.5}, {"engagement": 0.7, "quality": 0.3})
    assert got == pytest.approx(0.7 * 0.8 + 0.3 * 0.5)


def test_scores_without_a_weight_are_ignored() -> None:
    assert combine_scores({"a": 2.0, "unused": 100.0}, {"a": 0.5}) == 1.0


def test_numpy_arrays_score_a_whole_candidate_list() -> None:
    rng = np.random.default_rng(0)
    engagement, quality = rng.random(1000), rng.random(1000)
    got = combine_scores(
        {"engagement": engagement, "quality": quality}, {"engagement": 0.7, "quality": 0.3}
    )
    np.testing.assert_allclose(got, 0.7 * engagement + 0.3 * quality, rtol=1e-15)
    assert got.shape == (1000,)
    assert engagement.max() <= 1.0  # inputs untouched


def test_numpy_weights_and_ints_are_numbers() -> None:
    assert combine_scores({"a": 1.0, "b": 2.0}, {"a": np.float64(0.5), "b": 1}) == 2.5


@pytest.mark.parametrize(
    ("weights", "error", "message"),
    [
        pytest.param({}, ValueError, "weights: must name at least one", id="empty"),
        pytest.param({"a": math.nan}, ValueError, "weights\\['a'\\]: must be finite", id="nan"),
        pytest.param({"a": "0.5"}, ValueError, "weights\\['a'\\]: must be a number", id="str"),
        pytest.param({"a": True}, ValueError, "weights\\['a'\\]: must be a number", id="bool"),
        pytest.param({"a": 1.0, "quality": 1.0}, KeyError, "objective 'quality'", id="missing"),
    ],
)
def test_bad_weights_name_the_objective(
    weights: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        combine_scores({"a": 1.0}, weights)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.tuples(finite, finite), min_size=1))
def test_matches_the_definition(pairs: dict[str, tuple[float, float]]) -> None:
    scores = {k: s for k, (s, _) in pairs.items()}
    weights = {k: w for k, (_, w) in pairs.items()}
    expected = math.fsum(s * w for s, w in pairs.values())
    tolerance = 1e-9 * (1 + math.fsum(abs(s * w) for s, w in pairs.values()))
    assert abs(combine_scores(scores, weights) - expected) <= tolerance
