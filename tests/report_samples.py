"""Report dicts in the report JSON schema, for the chart and HTML rendering tests.

Hand-written so that every case the renderers handle is present with known
numbers: two treatments, a guardrail, a lower-is-better secondary metric, a
CUPED-adjusted metric, an undefined relative lift, and ML metrics.
"""

from __future__ import annotations

import copy
from typing import Any


def _comparison(variant: str, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "variant": variant,
        "abs_diff": None,
        "abs_ci": None,
        "rel_lift": None,
        "rel_ci": None,
        "p_value": None,
        "p_value_adjusted": None,
        "significant": False,
        "direction": "inconclusive",
        "std_err": None,
        "reason": None,
    }
    base.update(values)
    return base


_SAMPLE: dict[str, Any] = {
    "alpha": 0.05,
    "method": "fixed",
    "control": "control",
    "srm": {
        "observed": {"control": 50210, "treatment": 49790, "treatment_b": 50102},
        "expected": {"control": 50034.0, "treatment": 50034.0, "treatment_b": 50034.0},
        "chi2": 1.76,
        "p_value": 0.41,
        "detected": False,
    },
    "metrics": {
        "take_rate": {
            "kind": "ratio",
            "role": "primary",
            "correction": "holm",
            "higher_is_better": True,
            "variants": {
                "control": {"n": 50210, "mean": 0.2485},
                "treatment": {"n": 49790, "mean": 0.2656},
                "treatment_b": {"n": 50102, "mean": 0.2490},
            },
            "comparisons": [
                _comparison(
                    "treatment",
                    abs_diff=0.0171,
                    abs_ci=[0.0075, 0.0266],
                    rel_lift=0.0687,
                    rel_ci=[0.0288, 0.1086],
                    p_value=0.00047,
                    p_value_adjusted=0.00094,
                    significant=True,
                    direction="better",
                ),
                _comparison(
                    "treatment_b",
                    abs_diff=0.0005,
                    abs_ci=[-0.009, 0.010],
                    rel_lift=0.002,
                    rel_ci=[-0.036, 0.040],
                    p_value=0.91,
                    p_value_adjusted=0.91,
                ),
            ],
            "cuped": {
                "theta": 0.8,
                "variance_reduction": 0.31,
                "comparisons": [
                    _comparison(
                        "treatment",
                        abs_diff=0.0160,
                        abs_ci=[0.0090, 0.0230],
                        rel_lift=0.0644,
                        rel_ci=[0.0362, 0.0926],
                        p_value=0.00001,
                        p_value_adjusted=0.00002,
                        significant=True,
                        direction="better",
                    ),
                    _comparison(
                        "treatment_b",
                        abs_diff=0.0004,
                        abs_ci=[-0.007, 0.008],
                        rel_lift=0.0016,
                        rel_ci=[-0.028, 0.032],
                        p_value=0.88,
                        p_value_adjusted=0.88,
                    ),
                ],
                "reason": None,
            },
        },
        "revenue": {
            "kind": "mean",
            "role": "guardrail",
            "correction": "none",
            "higher_is_better": True,
            "margin": 0.05,
            "margin_type": "relative",
            "variants": {
                "control": {"n": 50210, "mean": 2.221},
                "treatment": {"n": 49790, "mean": 2.187},
                "treatment_b": {"n": 50102, "mean": 1.90},
            },
            "comparisons": [
                _comparison(
                    "treatment",
                    abs_diff=-0.034,
                    abs_ci=[-0.08, 0.012],
                    rel_lift=-0.0153,
                    rel_ci=[-0.036, 0.0054],
                    p_value=0.15,
                    p_value_adjusted=0.15,
                    guardrail_status="non_inferior",
                ),
                _comparison(
                    "treatment_b",
                    abs_diff=-0.321,
                    abs_ci=[-0.37, -0.27],
                    rel_lift=-0.1445,
                    rel_ci=[-0.166, -0.123],
                    p_value=0.0000001,
                    p_value_adjusted=0.0000001,
                    significant=True,
                    direction="worse",
                    guardrail_status="inferior",
                ),
            ],
            "cuped": None,
        },
        "latency_ms": {
            "kind": "mean",
            "role": "secondary",
            "correction": "bh",
            "higher_is_better": False,
            "variants": {
                "control": {"n": 50210, "mean": 0.0},
                "treatment": {"n": 49790, "mean": 12.5},
                "treatment_b": {"n": 50102, "mean": 0.0},
            },
            "comparisons": [
                _comparison(
                    "treatment",
                    abs_diff=12.5,
                    abs_ci=[11.0, 14.0],
                    p_value=0.0001,
                    p_value_adjusted=0.0002,
                    significant=True,
                    direction="worse",
                    reason="control mean is 0: relative lift undefined",
                ),
                _comparison(
                    "treatment_b",
                    abs_diff=0.0,
                    direction="undefined",
                    reason="standard error is 0: p-value and intervals undefined",
                ),
            ],
            "cuped": None,
        },
        "ranker_auc": {
            "kind": "auc",
            "role": "ml",
            "correction": "none",
            "higher_is_better": True,
            "variants": {
                "control": {"n": 2002, "mean": 0.8696, "estimate": 0.8696, "ci": [0.854, 0.886]},
                "treatment": {"n": 1990, "mean": 0.9213, "estimate": 0.9213, "ci": [0.91, 0.93]},
                "treatment_b": {"n": 2010, "mean": 0.87, "estimate": 0.87, "ci": [0.855, 0.886]},
            },
            "comparisons": [
                _comparison(
                    "treatment",
                    abs_diff=0.0517,
                    abs_ci=[0.033, 0.070],
                    p_value=0.00001,
                    p_value_adjusted=0.00001,
                    significant=True,
                    direction="better",
                ),
                _comparison(
                    "treatment_b",
                    abs_diff=0.0004,
                    abs_ci=[-0.02, 0.021],
                    p_value=0.97,
                    p_value_adjusted=0.97,
                ),
            ],
            "cuped": None,
        },
    },
    "decision": {
        "status": "ship",
        "variant": "treatment",
        "reasons": [
            "'treatment' is significantly better on 'take_rate' (+6.44%, p < 0.001)",
            "every guardrail is non-inferior for 'treatment'",
        ],
        "ml_divergence": False,
        "units_needed": None,
    },
    "planned_n": 120000,
    "experiment": {
        "key": "ranker-v2",
        "name": "Ranker v2 against v1",
        "hypothesis": "The new ranker raises take rate without hurting revenue",
        "status": "running",
        "started_at": "2026-05-01T09:30:00+00:00",
        "analysis_started_at": "2026-05-01T09:30:00+00:00",
        "stopped_at": None,
        "computed_at": "2026-05-15T12:00:00.123456+00:00",
        "engine_version": "0.1.0",
        "variants": {
            "control": {"weight": 1 / 3, "is_control": True, "params": {"model": "ranker_a"}},
            "treatment": {
                "weight": 1 / 3,
                "is_control": False,
                "params": {
                    "model": "ranker_b",
                    "objective_weights": {"engagement": 0.7, "quality": 0.3},
                },
            },
            "treatment_b": {"weight": 1 / 3, "is_control": False, "params": {"model": "ranker_c"}},
        },
        "metrics": {
            "take_rate": {
                "name": "take_rate",
                "kind": "ratio",
                "numerator": "play",
                "denominator": "impression",
                "role": "primary",
                "cuped": {"lookback_days": 14},
            },
            "revenue": {
                "name": "revenue",
                "kind": "mean",
                "event": "purchase",
                "role": "guardrail",
                "margin": 0.05,
                "cap": {"percentile": 99.5},
            },
            "latency_ms": {
                "name": "latency_ms",
                "kind": "mean",
                "event": "latency",
                "role": "secondary",
                "higher_is_better": False,
            },
            "ranker_auc": {"name": "ranker_auc", "kind": "auc", "role": "ml"},
        },
    },
}


def sample_report() -> dict[str, Any]:
    """A fresh deep copy of the sample report (tests may change it)."""
    return copy.deepcopy(_SAMPLE)
