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

The work is done by the closures :func:`~experiments.assignment.config.parse_config`
compiled once per experiment (:mod:`experiments.assignment.compiled`); this module
checks the unit id and dispatches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from experiments.assignment.config import ConfigSnapshot, parse_config
from experiments.assignment.result import Assignment, AssignmentReason
from experiments.domain import UNIT_ID_MAX

__all__ = [
    "Assignment",
    "AssignmentReason",
    "ConfigSnapshot",
    "evaluate",
    "evaluate_all",
    "parse_config",
]

_UNIT_ID_PROBLEM = f"unit_id: must be a string of 1 to {UNIT_ID_MAX} characters"


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
    if not isinstance(unit_id, str) or not 0 < len(unit_id) <= UNIT_ID_MAX:
        raise ValueError(_UNIT_ID_PROBLEM)
    if config is None:
        return Assignment(key, None, {}, False, AssignmentReason.NO_CONFIG)
    run = config.evaluators.get(key)
    if run is None:
        return Assignment(key, None, {}, False, AssignmentReason.UNKNOWN_EXPERIMENT)
    return run(unit_id, unit_id.encode("utf-8"), attributes, None)


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
    if not isinstance(unit_id, str) or not 0 < len(unit_id) <= UNIT_ID_MAX:
        raise ValueError(_UNIT_ID_PROBLEM)
    if config is None:
        return {}
    unit = unit_id.encode("utf-8")
    cache: dict[bytes, int] = {}
    return {key: run(unit_id, unit, attributes, cache) for key, run in config.evaluators.items()}
