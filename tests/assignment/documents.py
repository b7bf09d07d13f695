"""Config documents for the assignment tests."""

from __future__ import annotations

from typing import Any


def make_experiment(key: str = "ranker-v2", **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": key,
        "status": "running",
        "salt": f"salt-{key}",
        "traffic": 1.0,
        "layer": None,
        "targeting": None,
        "forced": {},
        "variants": [
            {"key": "control", "weight": 0.5, "is_control": True, "params": {"model": "a"}},
            {"key": "treatment", "weight": 0.5, "is_control": False, "params": {"model": "b"}},
        ],
        "promoted_variant": None,
    }
    doc.update(fields)
    return doc


def make_config(*experiments: dict[str, Any], holdout: float = 0.0) -> dict[str, Any]:
    return {
        "version": "v1",
        "holdout": {"fraction": holdout, "salt": "xp-global-holdout"},
        "experiments": list(experiments) or [make_experiment()],
    }
