from __future__ import annotations

import json
import math

from experiments.stats.spec import (
    AnalysisHistory,
    KeptVerdict,
    Look,
    RunningBound,
    history_from_dict,
    history_to_dict,
    running_key,
)


def test_history_round_trips_through_json() -> None:
    history = AnalysisHistory(
        looks=(Look(100, 0.1, 3.2), Look(250, 0.25, 2.9)),
        running={
            running_key("conv", "b", False): RunningBound(0.3, (-1.0, 2.0), (-0.1, 0.2)),
            running_key("conv", "b", True): RunningBound(None, None),
        },
        srm_p_value=0.5,
        verdict=KeptVerdict("ship", "b", 1000, "fixed: verdict at planned_n", ("b wins",)),
    )
    stored = json.loads(json.dumps(history_to_dict(history), allow_nan=False))
    assert history_from_dict(stored) == history
    assert set(stored["running"]) == {"conv|b|raw", "conv|b|cuped"}


def test_empty_history_and_infinite_boundaries() -> None:
    assert history_from_dict(None) == AnalysisHistory()
    assert history_from_dict({}) == AnalysisHistory()
    history = AnalysisHistory(looks=(Look(10, 0.01, math.inf),))
    stored = json.loads(json.dumps(history_to_dict(history), allow_nan=False))
    assert stored["looks"][0]["boundary_z"] is None
    assert history_from_dict(stored) == history
