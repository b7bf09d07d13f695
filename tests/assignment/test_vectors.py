"""Golden vectors: any change in the bucket mapping, the rounding or the precedence fails.

tests/data/assignment_vectors.json was written once by make_vectors.py; each
section feeds one test through pytest_generate_tests, one test id per vector.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import xxhash

from experiments.assignment import HASH_VERSION, bucket, evaluate, parse_config
from experiments.assignment.allocation import (
    compute_boundaries,
    index_for,
    is_bucket_in,
    share_to_buckets,
)

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "assignment_vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
SECTIONS = {
    "bucket_case": "bucket",
    "share_case": "shares",
    "boundary_case": "boundaries",
    "assignment_case": "assignment",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for fixture, section in SECTIONS.items():
        if fixture in metafunc.fixturenames:
            cases = VECTORS[section]
            metafunc.parametrize(fixture, cases, ids=[case["id"] for case in cases])


def test_file_is_for_this_hash_version_and_large_enough() -> None:
    assert VECTORS["hash_version"] == HASH_VERSION
    assert sum(len(VECTORS[section]) for section in SECTIONS.values()) >= 200
    ids = [case["id"] for section in SECTIONS.values() for case in VECTORS[section]]
    assert len(ids) == len(set(ids))


def test_xxh64_known_answer() -> None:
    # The published XXH64 value of the empty input with seed 0 (README "Check").
    assert xxhash.xxh64_intdigest(b"", seed=0) == 0xEF46DB3751D8E999


def test_bucket(bucket_case: dict[str, Any]) -> None:
    assert bucket(bucket_case["salt"], bucket_case["unit_id"]) == bucket_case["bucket"]


def test_share(share_case: dict[str, Any]) -> None:
    assert share_to_buckets(share_case["share"]) == share_case["buckets"]


def test_boundaries(boundary_case: dict[str, Any]) -> None:
    boundaries = boundary_case["boundaries"]
    assert list(compute_boundaries(boundary_case["weights"])) == boundaries
    # Every variant owns exactly [previous boundary, boundary).
    for i, (low, high) in enumerate(zip([0, *boundaries[:-1]], boundaries, strict=True)):
        if high > low:
            assert index_for(boundaries, low) == i
            assert index_for(boundaries, high - 1) == i


def test_assignment(assignment_case: dict[str, Any]) -> None:
    case = assignment_case
    document = VECTORS["configs"][case["config"]]
    snapshot = parse_config(document)
    result = evaluate(snapshot, case["experiment"], case["unit_id"], case["attributes"])
    expected = case["expected"]
    assert result.experiment == case["experiment"]
    assert result.variant == expected["variant"]
    assert result.params == expected["params"]
    assert result.in_experiment is expected["in_experiment"]
    assert result.reason == expected["reason"]


def test_assignment_follows_the_readme_from_its_buckets(assignment_case: dict[str, Any]) -> None:
    """Re-derive each assigned/traffic/holdout outcome from the recorded buckets."""
    case = assignment_case
    document = VECTORS["configs"][case["config"]]
    exp = next(e for e in document["experiments"] if e["key"] == case["experiment"])
    buckets, expected = case["buckets"], case["expected"]
    for name, salt in [
        ("holdout", document["holdout"]["salt"]),
        ("traffic", "traffic:" + exp["salt"]),
        ("variant", "variant:" + exp["salt"]),
    ]:
        assert bucket(salt, case["unit_id"]) == buckets[name]
    if expected["reason"] == "holdout":
        assert buckets["holdout"] < share_to_buckets(document["holdout"]["fraction"])
    if expected["reason"] in ("traffic", "assigned") and exp["status"] == "running":
        if exp["layer"] is None:
            entered = buckets["traffic"] < share_to_buckets(exp["traffic"])
        else:
            ranges = [tuple(r) for r in exp["layer"]["buckets"]]
            entered = is_bucket_in(sorted(ranges), buckets["layer"])
        assert entered is (expected["reason"] == "assigned")
    if expected["reason"] == "assigned":
        boundaries = compute_boundaries([v["weight"] for v in exp["variants"]])
        chosen = exp["variants"][index_for(boundaries, buckets["variant"])]
        assert chosen["key"] == expected["variant"]
