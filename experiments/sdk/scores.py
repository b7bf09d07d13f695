"""Combine per-objective model scores with a variant's objective weights."""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any


def combine_scores(scores: Mapping[str, Any], weights: Mapping[str, float]) -> Any:
    """Return the weighted sum ``Σᵢ wᵢ · scoreᵢ`` over the objectives in ``weights``.

    A variant's ``params`` can carry ``objective_weights``; scoring with them
    lets an experiment test a new trade-off between objectives without
    retraining any model (DESIGN.md "Assignment rules"). Each score may be a
    float or, duck-typed, an array (numpy or anything supporting ``*`` by a
    float and ``+``), so a whole candidate list is scored at once. Scores for
    objectives without a weight are ignored.

    Args:
        scores: Objective name to score (float or array).
        weights: Objective name to finite weight, e.g.
            ``assignment.params["objective_weights"]``.

    Returns:
        The combined score, of the scores' type (float, or array).

    Raises:
        ValueError: If ``weights`` is empty or a weight is not a finite number.
        KeyError: If an objective in ``weights`` has no score.

    Example:
        >>> combine_scores({"engagement": 0.8, "quality": 0.5},
        ...                {"engagement": 0.7, "quality": 0.3})
        0.71
    """
    if not weights:
        raise ValueError("weights: must name at least one objective")
    total: Any = None
    for objective, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, Real):
            raise ValueError(f"weights[{objective!r}]: must be a number, got {weight!r}")
        if not math.isfinite(weight):
            raise ValueError(f"weights[{objective!r}]: must be finite, got {weight!r}")
        if objective not in scores:
            raise KeyError(f"scores: no score for objective {objective!r}")
        term = scores[objective] * float(weight)
        total = term if total is None else total + term
    return total
