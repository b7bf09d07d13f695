"""Write tests/data/assignment_vectors.json (run once; the tests then check the file).

    .venv/bin/python tests/assignment/make_vectors.py

Buckets are computed here from the README formula directly (XXH64 digest read as
big-endian, mod 10000), not through ``experiments.assignment.hashing``, and checked
against the library before anything is written. Regenerating the file is only
legitimate together with a bump of ``HASH_VERSION``: any change in the mapping
reshuffles every running experiment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import xxhash

from experiments.assignment import HASH_VERSION, bucket, evaluate, parse_config
from experiments.assignment.allocation import compute_boundaries, share_to_buckets

OUT = Path(__file__).resolve().parents[1] / "data" / "assignment_vectors.json"


def reference_bucket(salt: str, unit_id: str) -> int:
    message = salt.encode("utf-8") + b"\x00" + unit_id.encode("utf-8")
    return int.from_bytes(xxhash.xxh64(message, seed=0).digest(), "big") % 10_000


SALTS = [
    "",
    "a",
    "3f9c2a71",
    "traffic:3f9c2a71",
    "variant:3f9c2a71",
    "layer:home-feed",
    "xp-global-holdout",
    "sel-\u00e9t\u00e9",
]
UNIT_IDS = [
    "",
    "0",
    "user-42",
    "qa-user-1",
    "with space",
    "with:colon",
    "caf\u00e9",
    "\u7528\u6237-7",
    "dice-\U0001f3b2",
    "x" * 256,
    "user-1",
    "user-2",
]

WEIGHTS: list[list[float]] = [
    [1.0],
    [0.5, 0.5],
    [1 / 3, 1 / 3, 1 / 3],
    [0.25, 0.25, 0.25, 0.25],
    [0.2, 0.2, 0.2, 0.2, 0.2],
    [0.1, 0.2, 0.3, 0.4],
    [0.9, 0.1],
    [0.1, 0.9],
    [0.33, 0.33, 0.34],
    [0.7, 0.2, 0.1],
    [0.00005, 0.99995],
    [0.00015, 0.99985],
    [0.12345, 0.87655],
    [0.0, 1.0],
    [0.5, 0.0, 0.5],
    [0.01, 0.01, 0.98],
    [1 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6],
    [1 / 7] * 7,
    [0.6, 0.4],
    [0.05, 0.95],
    [0.03125, 0.96875],  # c * 10000 = 312.5 exactly: half up gives 313 (banker's 312)
]
SHARES = [0.0, 1.0, 0.5, 0.3, 0.26, 0.03125, 0.00005, 0.00004, 0.99995, 0.1 + 0.2, 0.123456]


def variant(key: str, weight: float, params: dict[str, Any], control: bool = False) -> Any:
    return {"key": key, "weight": weight, "is_control": control, "params": params}


def experiment(key: str, salt: str, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": key,
        "status": "running",
        "salt": salt,
        "traffic": 1.0,
        "layer": None,
        "targeting": None,
        "forced": {},
        "variants": [
            variant("control", 0.5, {"model": "ranker_a"}, control=True),
            variant("treatment", 0.5, {"model": "ranker_b"}),
        ],
        "promoted_variant": None,
    }
    doc.update(fields)
    return doc


def config(*experiments: dict[str, Any], holdout: float = 0.0) -> dict[str, Any]:
    return {
        "version": "v1",
        "holdout": {"fraction": holdout, "salt": "xp-global-holdout"},
        "experiments": list(experiments),
    }


HOME_FEED = {"key": "home-feed", "salt": "layer:home-feed"}
THREE_WAY = [
    variant("control", 0.2, {"objective_weights": {"engagement": 1.0}}, control=True),
    variant("mix-a", 0.3, {"objective_weights": {"engagement": 0.7, "quality": 0.3}}),
    variant("mix-b", 0.5, {"objective_weights": {"engagement": 0.5, "quality": 0.5}}),
]
CONFIGS: dict[str, dict[str, Any]] = {
    "simple": config(experiment("simple", "5e1d0c3b")),
    "traffic-30": config(experiment("partial", "a1b2c3d4", traffic=0.3, variants=THREE_WAY)),
    "layer": config(
        experiment(
            "ranker-v2",
            "3f9c2a71",
            traffic=0.26,
            layer={**HOME_FEED, "buckets": [[0, 2500], [7000, 7100]]},
        ),
        experiment(
            "ranker-v3", "77aa01fe", traffic=0.25, layer={**HOME_FEED, "buckets": [[2500, 5000]]}
        ),
        experiment("independent", "0badcafe", traffic=0.5),
    ),
    "holdout-20": config(experiment("held", "feed5eed"), holdout=0.2),
    "targeting": config(
        experiment(
            "targeted",
            "c0ffee00",
            targeting={"country": {"in": ["US", "CA"]}, "age": {"gte": 18}},
            forced={"qa-user-1": "treatment", "qa-user-2": "control"},
        )
    ),
    "stopped": config(experiment("old", "deadbeef", status="stopped")),
    "promoted": config(
        experiment("won", "12345678", status="promoted", promoted_variant="treatment")
    ),
}
UNITS = [f"user-{i}" for i in range(20)]
ATTRIBUTES: list[dict[str, Any] | None] = [
    {"country": "US", "age": 30},
    {"country": "CA", "age": 18},
    {"country": "US", "age": 17},
    {"country": "FR", "age": 40},
    {"age": 30},
    None,
]


def assignment_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for name, doc in CONFIGS.items():
        snapshot = parse_config(doc)
        units = list(UNITS)
        if name == "targeting":
            units = ["qa-user-1", "qa-user-2", *UNITS[:10]]
        for exp in doc["experiments"]:
            for i, unit_id in enumerate(units):
                attrs = ATTRIBUTES[i % len(ATTRIBUTES)] if name == "targeting" else None
                result = evaluate(snapshot, exp["key"], unit_id, attrs)
                layer = exp["layer"]
                cases.append(
                    {
                        "id": f"{name}/{exp['key']}/{unit_id}",
                        "config": name,
                        "experiment": exp["key"],
                        "unit_id": unit_id,
                        "attributes": attrs,
                        "buckets": {
                            "holdout": reference_bucket("xp-global-holdout", unit_id),
                            "traffic": reference_bucket("traffic:" + exp["salt"], unit_id),
                            "layer": reference_bucket(layer["salt"], unit_id) if layer else None,
                            "variant": reference_bucket("variant:" + exp["salt"], unit_id),
                        },
                        "expected": {
                            "variant": result.variant,
                            "params": result.params,
                            "in_experiment": result.in_experiment,
                            "reason": str(result.reason),
                        },
                    }
                )
    return cases


def main() -> None:
    bucket_cases = []
    for salt in SALTS:
        for unit_id in UNIT_IDS:
            expected = reference_bucket(salt, unit_id)
            if bucket(salt, unit_id) != expected:
                raise SystemExit(f"library disagrees with the README formula on {salt!r}")
            bucket_cases.append(
                {
                    "id": f"{salt or '<empty>'}|{unit_id[:24] or '<empty>'}",
                    "salt": salt,
                    "unit_id": unit_id,
                    "bucket": expected,
                }
            )
    boundary_cases = [
        {
            "id": "/".join(f"{w:.6g}" for w in weights),
            "weights": weights,
            "boundaries": list(compute_boundaries(weights)),
        }
        for weights in WEIGHTS
    ]
    share_cases = [
        {"id": f"{share!r}", "share": share, "buckets": share_to_buckets(share)} for share in SHARES
    ]
    document = {
        "hash_version": HASH_VERSION,
        "formula": "experiments/assignment/README.md",
        "bucket": bucket_cases,
        "shares": share_cases,
        "boundaries": boundary_cases,
        "configs": CONFIGS,
        "assignment": assignment_cases(),
    }
    OUT.write_text(json.dumps(document, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    total = sum(len(document[k]) for k in ("bucket", "shares", "boundaries", "assignment"))
    print(f"wrote {total} vectors to {OUT}")


if __name__ == "__main__":
    main()
