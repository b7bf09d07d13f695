"""Each experiment of a snapshot compiled once into one closure: the evaluation hot path.

:func:`compile_experiment` turns an :class:`ExperimentConfig` into a function
``(unit_id, unit_bytes, attributes, cache) -> Assignment`` whose free variables
hold everything that does not depend on the unit, prepared when the snapshot is
parsed:

- the hash prefixes ``UTF-8(salt) || 0x00`` as bytes (holdout, layer, traffic,
  variant), so a draw is one concatenation and one XXH64 call;
- the variants' cumulative bucket boundaries, searched with ``bisect``;
- the layer's owned buckets as a 10,000-byte membership table (one index
  instead of a search over ranges);
- the targeting tree as a compiled predicate;
- for every possible outcome, the :class:`Assignment` fields as a ready tuple,
  so a call allocates the assignment and nothing else.

The precedence is the one of :mod:`experiments.assignment.evaluate` (README.md);
the golden vectors check it byte for byte.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import xxhash

from experiments.assignment.hashing import BUCKETS
from experiments.assignment.result import Assignment, AssignmentReason, Fields, copy_json

if TYPE_CHECKING:
    from experiments.assignment.config import ExperimentConfig

__all__ = ["Evaluator", "compile_experiment"]

Evaluator = Callable[
    [str, bytes, "Mapping[str, Any] | None", "dict[bytes, int] | None"], Assignment
]
"""A compiled experiment: ``(unit_id, UTF-8 unit_id, attributes, hash cache) -> Assignment``.

The cache maps a shared prefix (holdout, layer) to the unit's bucket, so that
``evaluate_all`` hashes each at most once per unit; ``None`` for one experiment.
"""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _copier(params: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    """``dict`` for flat params (a shallow copy protects them), else a deep copy."""
    if any(isinstance(v, dict | list) for v in params.values()):
        return copy_json
    return dict


def _fields(
    key: str, variant: str | None, params: dict[str, Any], exposed: bool, reason: str
) -> Fields:
    return (key, variant, params, exposed, reason, _copier(params))


def compile_experiment(
    exp: ExperimentConfig,
    *,
    holdout_prefix: bytes,
    holdout_buckets: int,
) -> Evaluator:
    """Compile one experiment of a snapshot into its evaluation closure.

    Args:
        exp: The parsed :class:`~experiments.assignment.config.ExperimentConfig`.
        holdout_prefix: The snapshot's holdout hash prefix.
        holdout_buckets: Holdout buckets (``n(fraction)``); 0 means no holdout.

    Returns:
        The :data:`Evaluator` of ``exp``.
    """
    key: str = exp.key
    state = str(exp.state)
    new = tuple.__new__
    cls = Assignment
    if state == "promoted":  # StrEnum values: no import of config at run time
        promoted = exp.variants[exp.promoted_index]
        fixed = _fields(key, promoted.key, promoted.params, False, AssignmentReason.PROMOTED)
        return lambda unit_id, unit, attributes, cache: new(cls, fixed)
    control = exp.variants[exp.control_index]
    if state == "stopped":
        fixed = _fields(key, None, control.params, False, AssignmentReason.NOT_RUNNING)
        return lambda unit_id, unit, attributes, cache: new(cls, fixed)

    def fallback(reason: AssignmentReason) -> Fields:
        return _fields(key, None, control.params, False, reason)

    holdout = fallback(AssignmentReason.HOLDOUT)
    not_targeted = fallback(AssignmentReason.NOT_TARGETED)
    outside = fallback(AssignmentReason.TRAFFIC)
    assigned = tuple(
        _fields(key, v.key, v.params, True, AssignmentReason.ASSIGNED) for v in exp.variants
    )
    forced_fields: dict[str, Fields] | None = {
        unit_id: _fields(
            key, exp.variants[i].key, exp.variants[i].params, False, AssignmentReason.FORCED
        )
        for unit_id, i in exp.forced.items()
    } or None
    targeting = exp.targeting
    layer_prefix: bytes | None = None
    layer_owned = b""
    if exp.layer is not None:
        layer_prefix = exp.layer.prefix
        table = bytearray(BUCKETS)
        for start, end in exp.layer.buckets:
            table[start:end] = b"\x01" * (end - start)
        layer_owned = bytes(table)
    traffic_prefix: bytes = exp.traffic_prefix
    traffic_buckets: int = exp.traffic_buckets
    traffic_all = traffic_buckets >= BUCKETS
    variant_prefix: bytes = exp.variant_prefix
    boundaries: tuple[int, ...] = exp.boundaries
    digest = xxhash.xxh64_intdigest
    hashes_holdout = holdout_buckets > 0
    single = len(assigned) == 1

    if (
        forced_fields is None
        and not hashes_holdout
        and targeting is None
        and layer_prefix is None
        and traffic_all
        and not single
    ):
        # The common shape (everyone in, no forced units, no holdout, no
        # targeting, no layer): one hash, one search, one tuple.
        def evaluate_everyone(
            unit_id: str,
            unit: bytes,
            attributes: Mapping[str, Any] | None,
            cache: dict[bytes, int] | None,
        ) -> Assignment:
            return new(
                cls, assigned[bisect_right(boundaries, digest(variant_prefix + unit) % BUCKETS)]
            )

        return evaluate_everyone

    def evaluate(
        unit_id: str,
        unit: bytes,
        attributes: Mapping[str, Any] | None,
        cache: dict[bytes, int] | None,
    ) -> Assignment:
        if forced_fields is not None:
            found = forced_fields.get(unit_id)
            if found is not None:
                return new(cls, found)
        if hashes_holdout:
            if cache is None:
                draw = digest(holdout_prefix + unit) % BUCKETS
            else:
                draw = cache.get(holdout_prefix, -1)
                if draw < 0:
                    draw = cache[holdout_prefix] = digest(holdout_prefix + unit) % BUCKETS
            if draw < holdout_buckets:
                return new(cls, holdout)
        if targeting is not None and not targeting(attributes or _EMPTY):
            return new(cls, not_targeted)
        if layer_prefix is not None:
            if cache is None:
                draw = digest(layer_prefix + unit) % BUCKETS
            else:
                draw = cache.get(layer_prefix, -1)
                if draw < 0:
                    draw = cache[layer_prefix] = digest(layer_prefix + unit) % BUCKETS
            if not layer_owned[draw]:
                return new(cls, outside)
        elif not traffic_all and digest(traffic_prefix + unit) % BUCKETS >= traffic_buckets:
            return new(cls, outside)
        if single:
            return new(cls, assigned[0])
        draw = digest(variant_prefix + unit) % BUCKETS
        return new(cls, assigned[bisect_right(boundaries, draw)])

    return evaluate
