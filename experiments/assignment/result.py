"""The outcome of an evaluation: :class:`Assignment` and its :class:`AssignmentReason`.

An :class:`Assignment` is an immutable tuple subclass, so the hot path builds one
with a single C call (``tuple.__new__`` over prepared fields) instead of a
Python-level ``__init__``: it is the only object an evaluation allocates.
``params`` is copied from the snapshot lazily, on first access, and the copy is
kept by that assignment: callers may mutate what they get, and an assignment
whose params are never read costs no copy.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from operator import itemgetter
from typing import Any, NoReturn

__all__ = ["Assignment", "AssignmentReason", "copy_json"]


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


def copy_json(value: Any) -> Any:
    """Copy nested JSON containers (dicts and lists); scalars are shared."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


Fields = tuple[str, str | None, dict[str, Any], bool, str, Callable[[dict[str, Any]], Any]]
"""``(experiment, variant, source params, in_experiment, reason, copier)``."""


class Assignment(tuple):  # type: ignore[type-arg]
    """The outcome of evaluating one experiment for one unit.

    Attributes:
        experiment: The experiment key asked for.
        variant: The variant key the unit is assigned, forced or promoted to;
            ``None`` for every fallback (no variant was chosen).
        params: What the product should serve: this assignment's own copy,
            safe to mutate (made on first access).
        in_experiment: True only for ``assigned``: the caller logs an exposure.
        reason: One of :class:`AssignmentReason` (a ``str``).
    """

    # No __slots__: the lazily made params copy lives in the instance dict,
    # which CPython allocates only when it is first written.

    def __new__(
        cls,
        experiment: str,
        variant: str | None,
        params: dict[str, Any] | None = None,
        in_experiment: bool = False,
        reason: str = AssignmentReason.NO_CONFIG,
    ) -> Assignment:
        """Build an assignment; ``params`` is used as given (it is not copied)."""
        source = {} if params is None else params
        made = tuple.__new__(cls, (experiment, variant, source, in_experiment, reason, _same))
        return made

    # C-level getters (itemgetter): reading a field costs no Python call.
    experiment: str = property(itemgetter(0), doc="The experiment key asked for.")  # type: ignore[assignment]
    variant: str | None = property(  # type: ignore[assignment]
        itemgetter(1), doc="The chosen variant key, ``None`` for a fallback."
    )

    @property
    def params(self) -> dict[str, Any]:
        """The params to serve: this assignment's own copy (made once, on first access)."""
        state = self.__dict__
        params: dict[str, Any] | None = state.get("params")
        if params is None:
            params = state["params"] = self[5](self[2])
        return params

    in_experiment: bool = property(  # type: ignore[assignment]
        itemgetter(3), doc="True only when the hash assigned the unit: an exposure to log."
    )
    reason: str = property(  # type: ignore[assignment]
        itemgetter(4), doc="Why the unit got this (an :class:`AssignmentReason` value)."
    )

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"Assignment is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Assignment is immutable (cannot delete {name!r})")

    def _public(self) -> tuple[Any, ...]:
        return (self[0], self[1], self.params, self[3], self[4])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Assignment):
            return NotImplemented
        return self._public() == other._public()

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, Assignment):
            return NotImplemented
        return self._public() != other._public()

    __hash__ = None  # type: ignore[assignment]  # params is a dict: not hashable

    def __repr__(self) -> str:
        return (
            f"Assignment(experiment={self[0]!r}, variant={self[1]!r}, params={self.params!r}, "
            f"in_experiment={self[3]!r}, reason={str(self[4])!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (Assignment, self._public())


def _same(params: dict[str, Any]) -> dict[str, Any]:
    """The copier of an assignment built by hand: its params are its own already."""
    return params
