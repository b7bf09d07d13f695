"""Evaluate a config snapshot for one unit: which variant, which params, why.

Precedence, first match wins (README.md explains each reason):

1. no snapshot                          -> ``no_config``
2. key not in the snapshot              -> ``unknown_experiment``
3. status ``promoted``                  -> ``promoted`` (the promoted variant, for all)
4. status ``stopped``                   -> ``not_running`` (control's params)
5. unit listed in ``forced``            -> ``forced`` (QA; wins over holdout,
                                           targeting and traffic)
6. unit in the global holdout           -> ``holdout``
7. attributes fail ``targeting``        -> ``not_targeted``
8. unit outside traffic / layer buckets -> ``traffic``
9. otherwise                            -> ``assigned`` (the only reason with
                                           ``in_experiment`` True: log an exposure)

Fallbacks (``not_running``, ``holdout``, ``not_targeted``, ``traffic``) serve the
control's params with ``variant=None``: the unit was not assigned to any variant
and has no exposure (DESIGN.md "exposure").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from experiments.assignment.allocation import index_for, is_bucket_in
from experiments.assignment.config import (
    ConfigSnapshot,
    ExperimentConfig,
    ExperimentState,
    VariantConfig,
    parse_config,
)
from experiments.assignment.hashing import bucket_prefixed
from experiments.domain import UNIT_ID_MAX

__all__ = [
    "Assignment",
    "AssignmentReason",
    "ConfigSnapshot",
    "evaluate",
    "evaluate_all",
    "parse_config",
]


class AssignmentReason(StrEnum):
    """Why a unit got what it got (the ``reason`` of an :class:`Assignment`)."""

    ASSIGNED = "assigned"
    FORCED = "forced"
    NOT_TARGETED = "not_targeted"
    TRAFFIC = "traffic"
    HOLDOUT = "holdout"
    NOT_RUNNING = "not_running"
    NO_CONFIG = "no_config"
    PROMOTED = "promoted"
    UNKNOWN_EXPERIMENT = "unknown_experiment"


@dataclass(frozen=True)
class Assignment:
    """The outcome of evaluating one experiment for one unit.

    Attributes:
        experiment: The experiment key asked for.
        variant: The variant key the unit is assigned, forced or promoted to;
            ``None`` for every fallback (no variant was chosen).
        params: What the product should serve (a fresh copy, safe to mutate).
        in_experiment: True only for ``assigned``: the caller logs an exposure.
        reason: One of :class:`AssignmentReason` (a ``str``).
    """

    experiment: str
    variant: str | None
    params: dict[str, Any] = field(default_factory=dict)
    in_experiment: bool = False
    reason: str = AssignmentReason.NO_CONFIG


def _copy_json(value: Any) -> Any:
    """Copy nested JSON containers so callers never mutate the snapshot."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def _params(variant: VariantConfig) -> dict[str, Any]:
    if variant.has_nested_params:
        return {k: _copy_json(v) for k, v in variant.params.items()}
    return dict(variant.params)


def _check_unit_id(unit_id: str) -> bytes:
    if not isinstance(unit_id, str) or not 1 <= len(unit_id) <= UNIT_ID_MAX:
        raise ValueError(f"unit_id: must be a string of 1 to {UNIT_ID_MAX} characters")
    return unit_id.encode("utf-8")


class _UnitHashes:
    """Per-unit cache so each salt (holdout, layer) is hashed at most once in a pass."""

    __slots__ = ("_cache", "unit")

    def __init__(self, unit: bytes) -> None:
        self.unit = unit
        self._cache: dict[bytes, int] = {}

    def cached(self, prefix: bytes) -> int:
        value = self._cache.get(prefix)
        if value is None:
            value = self._cache[prefix] = bucket_prefixed(prefix, self.unit)
        return value

    def once(self, prefix: bytes) -> int:
        """Bucket of a salt used by a single experiment: nothing to cache."""
        return bucket_prefixed(prefix, self.unit)


# Enum members bound once: attribute lookups on Enum classes are slow in the hot path.
_PROMOTED = ExperimentState.PROMOTED
_STOPPED = ExperimentState.STOPPED
_ASSIGNED = AssignmentReason.ASSIGNED
_FORCED = AssignmentReason.FORCED
_HOLDOUT = AssignmentReason.HOLDOUT
_NOT_TARGETED = AssignmentReason.NOT_TARGETED
_TRAFFIC = AssignmentReason.TRAFFIC


def _fallback(exp: ExperimentConfig, reason: AssignmentReason) -> Assignment:
    return Assignment(exp.key, None, _params(exp.control), False, reason)


def _evaluate_one(
    config: ConfigSnapshot,
    exp: ExperimentConfig,
    unit_id: str,
    hashes: _UnitHashes,
    attributes: Mapping[str, Any],
) -> Assignment:
    if exp.state is _PROMOTED:
        promoted = exp.variants[exp.promoted_index]
        return Assignment(
            exp.key, promoted.key, _params(promoted), False, AssignmentReason.PROMOTED
        )
    if exp.state is _STOPPED:
        return _fallback(exp, AssignmentReason.NOT_RUNNING)
    forced = exp.forced.get(unit_id)
    if forced is not None:
        variant = exp.variants[forced]
        return Assignment(exp.key, variant.key, _params(variant), False, _FORCED)
    if config.holdout_buckets and hashes.cached(config.holdout_prefix) < config.holdout_buckets:
        return _fallback(exp, _HOLDOUT)
    if exp.targeting is not None and not exp.targeting(attributes):
        return _fallback(exp, _NOT_TARGETED)
    if exp.layer is not None:
        if not is_bucket_in(exp.layer.buckets, hashes.cached(exp.layer.prefix)):
            return _fallback(exp, _TRAFFIC)
    elif exp.traffic_buckets < 10_000 and hashes.once(exp.traffic_prefix) >= exp.traffic_buckets:
        return _fallback(exp, _TRAFFIC)
    variant = exp.variants[index_for(exp.boundaries, hashes.once(exp.variant_prefix))]
    return Assignment(exp.key, variant.key, _params(variant), True, _ASSIGNED)


def evaluate(
    config: ConfigSnapshot | None,
    key: str,
    unit_id: str,
    attributes: Mapping[str, Any] | None = None,
) -> Assignment:
    """Evaluate experiment ``key`` for one unit, locally and deterministically.

    Args:
        config: The parsed snapshot, or ``None`` when none was fetched yet.
        key: The experiment key.
        unit_id: The unit's identifier (1 to 256 characters).
        attributes: Unit attributes for targeting; ``None`` means none.

    Returns:
        The :class:`Assignment`; see the module docstring for the precedence.

    Raises:
        ValueError: If ``unit_id`` is not a string of 1 to 256 characters.
    """
    unit = _check_unit_id(unit_id)
    if config is None:
        return Assignment(key, None, {}, False, AssignmentReason.NO_CONFIG)
    exp = config.experiments.get(key)
    if exp is None:
        return Assignment(key, None, {}, False, AssignmentReason.UNKNOWN_EXPERIMENT)
    return _evaluate_one(config, exp, unit_id, _UnitHashes(unit), attributes or {})


def evaluate_all(
    config: ConfigSnapshot | None,
    unit_id: str,
    attributes: Mapping[str, Any] | None = None,
) -> dict[str, Assignment]:
    """Evaluate every experiment of the snapshot for one unit in one pass.

    The holdout and each layer are hashed once for the unit, however many
    experiments share them.

    Args:
        config: The parsed snapshot, or ``None`` (gives an empty mapping).
        unit_id: The unit's identifier (1 to 256 characters).
        attributes: Unit attributes for targeting; ``None`` means none.

    Returns:
        ``{experiment key: Assignment}`` in the snapshot's order.

    Raises:
        ValueError: If ``unit_id`` is not a string of 1 to 256 characters.
    """
    hashes = _UnitHashes(_check_unit_id(unit_id))
    if config is None:
        return {}
    attrs = attributes or {}
    return {
        key: _evaluate_one(config, exp, unit_id, hashes, attrs)
        for key, exp in config.experiments.items()
    }
