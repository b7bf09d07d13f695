"""The config snapshot: parse ``GET /api/v1/config`` once into a fast, checked form.

The snapshot is the contract between the server, :mod:`experiments.assignment` and
the SDK (README.md shows the document). :func:`parse_config` checks every field,
pre-encodes the salts, turns weights into bucket boundaries and compiles targeting,
so that :func:`experiments.assignment.evaluate.evaluate` only hashes and compares.
Unknown fields are ignored, so a newer server can add some without breaking
older SDKs; an unknown ``hash_version`` is refused, because it would assign units
differently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from experiments.assignment.allocation import (
    compute_boundaries,
    normalize_ranges,
    share_to_buckets,
)
from experiments.assignment.compiled import Evaluator, compile_experiment
from experiments.assignment.hashing import (
    BUCKETS,
    HASH_VERSION,
    message_prefix,
    traffic_salt,
    variant_salt,
)
from experiments.assignment.targeting import Predicate, compile_targeting, validate_targeting
from experiments.domain import EXPERIMENT_KEY_RE, UNIT_ID_MAX
from experiments.errors import FieldProblem

__all__ = [
    "ConfigSnapshot",
    "ExperimentConfig",
    "ExperimentState",
    "LayerConfig",
    "VariantConfig",
    "parse_config",
]


class ExperimentState(StrEnum):
    """Statuses an experiment can have inside a config snapshot."""

    RUNNING = "running"
    STOPPED = "stopped"
    PROMOTED = "promoted"


@dataclass(frozen=True, slots=True)
class VariantConfig:
    """One variant: key, weight, control flag and the params served.

    ``has_nested_params`` tells evaluation whether a shallow copy of ``params`` is
    enough to protect the snapshot from callers that mutate what they get.
    """

    key: str
    weight: float
    is_control: bool
    params: dict[str, Any]
    has_nested_params: bool = False


@dataclass(frozen=True, slots=True)
class LayerConfig:
    """The layer an experiment lives in and the layer buckets it owns."""

    key: str
    prefix: bytes
    buckets: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """One experiment, ready to evaluate (salts encoded, boundaries computed)."""

    key: str
    state: ExperimentState
    salt: str
    traffic: float
    traffic_buckets: int
    traffic_prefix: bytes
    variant_prefix: bytes
    layer: LayerConfig | None
    targeting: Predicate | None
    forced: Mapping[str, int]
    variants: tuple[VariantConfig, ...]
    boundaries: tuple[int, ...]
    control_index: int
    promoted_index: int

    @property
    def control(self) -> VariantConfig:
        """The control variant."""
        return self.variants[self.control_index]


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """A parsed, validated config snapshot; build it with :func:`parse_config`.

    ``evaluators`` holds each experiment compiled once into its evaluation
    closure (:mod:`experiments.assignment.compiled`), in the snapshot's order.
    """

    version: str
    holdout_fraction: float
    holdout_buckets: int
    holdout_prefix: bytes
    experiments: Mapping[str, ExperimentConfig]
    evaluators: Mapping[str, Evaluator]


class _Problems:
    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(FieldProblem(path, message))


def _salt(value: Any, path: str, problems: _Problems) -> str | None:
    if not isinstance(value, str) or not value or "\x00" in value:
        problems.add(path, "must be a non-empty string without NUL characters")
        return None
    return value


def _share(value: Any, path: str, problems: _Problems) -> float | None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0.0 <= value <= 1.0  # also refuses NaN
    ):
        problems.add(path, "must be a number between 0 and 1")
        return None
    return float(value)


def _parse_variants(
    raw: Any, path: str, problems: _Problems
) -> tuple[tuple[VariantConfig, ...], tuple[int, ...], int] | None:
    if not isinstance(raw, list) or not raw:
        problems.add(path, "must be a non-empty list")
        return None
    variants: list[VariantConfig] = []
    start = len(problems.items)
    for i, item in enumerate(raw):
        vpath = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            problems.add(vpath, "must be an object")
            continue
        key: Any = item.get("key")
        weight: Any = item.get("weight")
        params: Any = item.get("params", {})
        is_control = item.get("is_control", False)
        if not isinstance(key, str) or not key:
            problems.add(f"{vpath}.key", "must be a non-empty string")
        elif any(v.key == key for v in variants):
            problems.add(f"{vpath}.key", f"duplicates variant {key}")
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight < 0
        ):
            problems.add(f"{vpath}.weight", "must be a number >= 0")
        if not isinstance(is_control, bool):
            problems.add(f"{vpath}.is_control", "must be true or false")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            problems.add(f"{vpath}.params", "must be an object")
        if len(problems.items) == start:
            nested = any(isinstance(v, dict | list) for v in params.values())
            variants.append(VariantConfig(str(key), float(weight), is_control, params, nested))
    if len(problems.items) > start:
        return None
    controls = [i for i, v in enumerate(variants) if v.is_control]
    if len(controls) != 1:
        problems.add(path, f"must have exactly one control, found {len(controls)}")
        return None
    total = math.fsum(v.weight for v in variants)
    if abs(total - 1.0) > 1e-6:
        problems.add(path, f"weights must sum to 1, got {total:g}")
        return None
    return tuple(variants), compute_boundaries([v.weight for v in variants]), controls[0]


def _parse_layer(raw: Any, path: str, problems: _Problems) -> LayerConfig | None:
    if not isinstance(raw, Mapping):
        problems.add(path, "must be an object or null")
        return None
    key = raw.get("key")
    if not isinstance(key, str) or not key:
        problems.add(f"{path}.key", "must be a non-empty string")
    salt = _salt(raw.get("salt"), f"{path}.salt", problems)
    ranges = raw.get("buckets")
    pairs: list[tuple[int, int]] = []
    if not isinstance(ranges, list):
        problems.add(f"{path}.buckets", "must be a list of [start, end] pairs")
        return None
    for i, pair in enumerate(ranges):
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) for b in pair)
            or not 0 <= pair[0] < pair[1] <= BUCKETS
        ):
            problems.add(
                f"{path}.buckets[{i}]",
                f"must be [start, end] with 0 <= start < end <= {BUCKETS}",
            )
        else:
            pairs.append((pair[0], pair[1]))
    if not isinstance(key, str) or not key or salt is None or len(pairs) != len(ranges):
        return None
    merged = normalize_ranges(pairs)
    if sum(e - s for s, e in merged) != sum(e - s for s, e in pairs):
        problems.add(f"{path}.buckets", "ranges must not overlap")
        return None
    return LayerConfig(key, message_prefix(salt), tuple(merged))


def _parse_experiment(raw: Any, path: str, problems: _Problems) -> ExperimentConfig | None:
    if not isinstance(raw, Mapping):
        problems.add(path, "must be an object")
        return None
    start = len(problems.items)
    state: ExperimentState | None = None
    key = raw.get("key")
    if not isinstance(key, str) or not EXPERIMENT_KEY_RE.match(key):
        problems.add(f"{path}.key", "must match [a-z0-9][a-z0-9_-]{0,63}")
    try:
        state = ExperimentState(str(raw.get("status")))
    except ValueError:
        problems.add(f"{path}.status", "must be one of running, stopped, promoted")
    salt = _salt(raw.get("salt"), f"{path}.salt", problems)
    traffic = _share(raw.get("traffic", 1.0), f"{path}.traffic", problems)
    layer_raw = raw.get("layer")
    layer = None if layer_raw is None else _parse_layer(layer_raw, f"{path}.layer", problems)
    targeting_raw = raw.get("targeting")
    targeting_problems = validate_targeting(targeting_raw, f"{path}.targeting")
    problems.items.extend(targeting_problems)
    parsed = _parse_variants(raw.get("variants"), f"{path}.variants", problems)
    index = {v.key: i for i, v in enumerate(parsed[0])} if parsed else {}
    forced_raw = raw.get("forced") or {}
    forced: dict[str, int] = {}
    if not isinstance(forced_raw, Mapping):
        problems.add(f"{path}.forced", "must be an object of unit id to variant key")
    elif parsed:
        for unit_id, variant in forced_raw.items():
            if not isinstance(unit_id, str) or not 1 <= len(unit_id) <= UNIT_ID_MAX:
                problems.add(f"{path}.forced", f"unit ids must have 1 to {UNIT_ID_MAX} chars")
            elif variant not in index:
                problems.add(f"{path}.forced.{unit_id}", f"unknown variant {variant!r}")
            else:
                forced[unit_id] = index[variant]
    promoted = raw.get("promoted_variant")
    promoted_index = -1
    if len(problems.items) == start and state is ExperimentState.PROMOTED:
        if promoted not in index:
            problems.add(f"{path}.promoted_variant", "must name a variant when promoted")
        else:
            promoted_index = index[promoted]
    if len(problems.items) > start:
        return None
    if parsed is None or salt is None or traffic is None or state is None:
        return None  # unreachable: each of these added a problem
    variants, boundaries, control_index = parsed
    return ExperimentConfig(
        key=str(key),
        state=state,
        salt=salt,
        traffic=traffic,
        traffic_buckets=share_to_buckets(traffic),
        traffic_prefix=message_prefix(traffic_salt(salt)),
        variant_prefix=message_prefix(variant_salt(salt)),
        layer=layer,
        targeting=compile_targeting(targeting_raw),
        forced=MappingProxyType(forced),
        variants=variants,
        boundaries=boundaries,
        control_index=control_index,
        promoted_index=promoted_index,
    )


def _check_layers(experiments: list[tuple[int, ExperimentConfig]], problems: _Problems) -> None:
    """Experiments of one layer share its salt and own disjoint buckets."""
    seen: dict[str, tuple[bytes, list[tuple[int, int]], str]] = {}
    for i, exp in experiments:
        if exp.layer is None:
            continue
        layer = exp.layer
        if layer.key not in seen:
            seen[layer.key] = (layer.prefix, list(layer.buckets), exp.key)
            continue
        salt, owned, first = seen[layer.key]
        if layer.prefix != salt:
            problems.add(
                f"experiments[{i}].layer.salt", f"differs from {first}'s in layer {layer.key}"
            )
        total = sum(e - s for s, e in owned) + sum(e - s for s, e in layer.buckets)
        merged = normalize_ranges([*owned, *layer.buckets])
        if sum(e - s for s, e in merged) != total:
            problems.add(
                f"experiments[{i}].layer.buckets",
                f"overlap another experiment's buckets in layer {layer.key}",
            )
        owned.extend(layer.buckets)


def parse_config(document: Mapping[str, Any]) -> ConfigSnapshot:
    """Parse and check a config snapshot document (the body of ``GET /api/v1/config``).

    Args:
        document: The decoded JSON object.

    Returns:
        A :class:`ConfigSnapshot` ready for ``evaluate`` / ``evaluate_all``.

    Raises:
        ValueError: One line naming every problem by path, e.g.
            ``experiments[0].variants[1].weight: must be a number >= 0``.
    """
    if not isinstance(document, Mapping):
        raise ValueError("config: must be a JSON object")
    problems = _Problems()
    hash_version = document.get("hash_version", HASH_VERSION)
    if hash_version != HASH_VERSION:
        raise ValueError(
            f"hash_version: config uses {hash_version!r}, this code knows {HASH_VERSION}"
        )
    version = document.get("version")
    if not isinstance(version, str):
        problems.add("version", "must be a string")
    holdout = document.get("holdout") or {"fraction": 0.0, "salt": "xp-global-holdout"}
    fraction: float | None = 0.0
    holdout_salt: str | None = "xp-global-holdout"
    if not isinstance(holdout, Mapping):
        problems.add("holdout", "must be an object")
    else:
        fraction = _share(holdout.get("fraction", 0.0), "holdout.fraction", problems)
        holdout_salt = _salt(holdout.get("salt"), "holdout.salt", problems)
    raw_experiments = document.get("experiments", [])
    parsed: list[tuple[int, ExperimentConfig]] = []
    if not isinstance(raw_experiments, list):
        problems.add("experiments", "must be a list")
    else:
        for i, raw in enumerate(raw_experiments):
            exp = _parse_experiment(raw, f"experiments[{i}]", problems)
            if exp is None:
                continue
            if any(other.key == exp.key for _, other in parsed):
                problems.add(f"experiments[{i}].key", f"duplicates experiment {exp.key}")
            parsed.append((i, exp))
        _check_layers(parsed, problems)
    if problems.items:
        raise ValueError("invalid config: " + "; ".join(str(p) for p in problems.items))
    if not isinstance(version, str) or fraction is None or holdout_salt is None:
        raise ValueError("invalid config")  # unreachable: each of these added a problem
    holdout_buckets = share_to_buckets(fraction)
    holdout_prefix = message_prefix(holdout_salt)
    evaluators = {
        exp.key: compile_experiment(
            exp, holdout_prefix=holdout_prefix, holdout_buckets=holdout_buckets
        )
        for _, exp in parsed
    }
    return ConfigSnapshot(
        version=version,
        holdout_fraction=fraction,
        holdout_buckets=holdout_buckets,
        holdout_prefix=holdout_prefix,
        experiments=MappingProxyType({exp.key: exp for _, exp in parsed}),
        # A plain dict (typed read-only): ``evaluate`` looks it up on every call,
        # and a MappingProxyType lookup costs half as much again.
        evaluators=evaluators,
    )
