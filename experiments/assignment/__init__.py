"""Deterministic assignment of units to variants: pure, shared by the server and the SDK.

Standard library plus ``xxhash`` only; no I/O. See README.md for the byte-level
formula and the purity rule.
"""

from __future__ import annotations

from experiments.assignment.allocation import (
    BUCKETS,
    allocate_buckets,
    share_to_buckets,
    variant_for,
)
from experiments.assignment.config import ConfigSnapshot, parse_config
from experiments.assignment.evaluate import (
    Assignment,
    AssignmentReason,
    evaluate,
    evaluate_all,
)
from experiments.assignment.hashing import HASH_VERSION, bucket
from experiments.assignment.targeting import validate_targeting

__all__ = [
    "BUCKETS",
    "HASH_VERSION",
    "Assignment",
    "AssignmentReason",
    "ConfigSnapshot",
    "allocate_buckets",
    "bucket",
    "evaluate",
    "evaluate_all",
    "parse_config",
    "share_to_buckets",
    "validate_targeting",
    "variant_for",
]
