"""Shares, bucket ranges, layer allocation and variant boundaries.

Everything here works on the 10,000 buckets of :mod:`experiments.assignment.hashing`:

- a share (traffic, holdout fraction, variant weight) becomes a bucket count with
  :func:`share_to_buckets`, ``floor(share * 10000 + 0.5)``;
- a layer's buckets are owned by its experiments as half-open ranges ``[start, end)``;
  :func:`allocate_buckets` grows or shrinks one experiment's ranges without touching
  the others', so ramping up keeps every unit already in and ramping down only
  removes units;
- variant weights become cumulative bucket boundaries (:func:`compute_boundaries`),
  and :func:`variant_for` picks the variant whose interval holds the variant bucket.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

from experiments.assignment.hashing import BUCKETS
from experiments.errors import ConflictError

__all__ = [
    "BUCKETS",
    "allocate_buckets",
    "compute_boundaries",
    "count_buckets",
    "index_for",
    "is_bucket_in",
    "normalize_ranges",
    "share_to_buckets",
    "variant_for",
]

Range = tuple[int, int]


def share_to_buckets(share: float) -> int:
    """Turn a share of units into a number of buckets.

    Rounds half up, ``floor(share * 10000 + 0.5)``, so every language gets the same
    count (Python's ``round`` rounds half to even).

    Args:
        share: A number in ``[0, 1]``.

    Returns:
        A bucket count in ``0 .. 10000``.

    Raises:
        ValueError: If ``share`` is not a finite number in ``[0, 1]``.
    """
    if not (isinstance(share, int | float) and 0.0 <= share <= 1.0):
        raise ValueError(f"share: must be a number between 0 and 1, got {share!r}")
    return math.floor(share * BUCKETS + 0.5)


def normalize_ranges(ranges: Sequence[tuple[int, int]]) -> list[Range]:
    """Sort ranges and merge those that overlap or touch.

    Args:
        ranges: Half-open ``(start, end)`` pairs with ``0 <= start < end <= 10000``.

    Returns:
        Sorted, disjoint, non-adjacent ranges covering the same buckets.

    Raises:
        ValueError: If a range is out of bounds or empty.
    """
    checked: list[Range] = []
    for start, end in ranges:
        if not (0 <= start < end <= BUCKETS):
            raise ValueError(f"bucket range [{start}, {end}) is not within [0, {BUCKETS})")
        checked.append((start, end))
    checked.sort()
    merged: list[Range] = []
    for start, end in checked:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def count_buckets(ranges: Sequence[tuple[int, int]]) -> int:
    """Number of distinct buckets covered by ``ranges``."""
    return sum(end - start for start, end in normalize_ranges(ranges))


def is_bucket_in(ranges: Sequence[tuple[int, int]], value: int) -> bool:
    """Whether ``value`` falls in one of the sorted, disjoint ``ranges``.

    Args:
        ranges: Output of :func:`normalize_ranges`.
        value: A bucket.

    Returns:
        True if some ``start <= value < end``.
    """
    lo, hi = 0, len(ranges)
    while lo < hi:
        mid = (lo + hi) // 2
        start, end = ranges[mid]
        if value < start:
            hi = mid
        elif value >= end:
            lo = mid + 1
        else:
            return True
    return False


def _complement(ranges: Sequence[Range]) -> list[Range]:
    """Buckets of ``0..9999`` not in the normalized ``ranges``, as ranges."""
    free: list[Range] = []
    cursor = 0
    for start, end in ranges:
        if start > cursor:
            free.append((cursor, start))
        cursor = end
    if cursor < BUCKETS:
        free.append((cursor, BUCKETS))
    return free


def _take_first(ranges: Sequence[Range], count: int) -> list[Range]:
    """The ``count`` lowest buckets of the normalized ``ranges``."""
    taken: list[Range] = []
    for start, end in ranges:
        if count <= 0:
            break
        size = min(end - start, count)
        taken.append((start, start + size))
        count -= size
    return taken


def _format_share(buckets: int) -> str:
    return f"{buckets / BUCKETS:g}"


def allocate_buckets(
    taken: Sequence[tuple[int, int]],
    current: Sequence[tuple[int, int]],
    share: float,
    *,
    layer: str,
    experiment: str,
) -> list[tuple[int, int]]:
    """Compute an experiment's owned layer buckets for a new traffic share.

    Ramping up keeps all of ``current`` and adds the lowest free buckets; ramping
    down keeps the lowest ``share_to_buckets(share)`` buckets of ``current``. The
    result never overlaps ``taken``. Concluding an experiment needs no call: its
    ranges simply stop being part of anyone's ``taken``.

    Args:
        taken: Ranges owned by the layer's other active experiments.
        current: Ranges this experiment owns now (empty when it starts).
        share: The wanted share of the layer's buckets, in ``[0, 1]``.
        layer: Layer key, for the error message.
        experiment: Experiment key, for the error message.

    Returns:
        Sorted, disjoint ranges totalling ``share_to_buckets(share)`` buckets.

    Raises:
        ConflictError: If the layer lacks free buckets, e.g. ``layer home-feed has
            0.3 of its traffic free; ranker-v2 asks for 0.5``.
        ValueError: If a range is malformed, ``current`` overlaps ``taken``, or
            ``share`` is outside ``[0, 1]``.
    """
    wanted = share_to_buckets(share)
    others = normalize_ranges(taken)
    mine = normalize_ranges(current)
    others_count = sum(end - start for start, end in others)
    mine_count = sum(end - start for start, end in mine)
    if count_buckets([*others, *mine]) != others_count + mine_count:
        raise ValueError(f"experiment {experiment} owns buckets that another experiment owns")
    if wanted <= mine_count:
        return _take_first(mine, wanted)
    free = _complement(normalize_ranges([*others, *mine]))
    free_count = BUCKETS - others_count - mine_count
    if wanted - mine_count > free_count:
        holds = f" holds {_format_share(mine_count)} and" if mine_count else ""
        raise ConflictError(
            f"layer {layer} has {_format_share(free_count)} of its traffic free; "
            f"{experiment}{holds} asks for {share:g}"
        )
    return normalize_ranges([*mine, *_take_first(free, wanted - mine_count)])


def compute_boundaries(weights: Sequence[float]) -> tuple[int, ...]:
    """Cumulative bucket boundaries of variant weights.

    Boundary ``i`` is ``min(10000, floor(c_i * 10000 + 0.5))`` where ``c_i`` is the
    running sum (left to right, IEEE-754 double addition) of weights ``0..i`` divided
    by their total (summed the same way); the last boundary is forced to 10000.
    Variant ``i`` owns the variant buckets ``[boundary_{i-1}, boundary_i)`` (``boundary_{-1} = 0``).

    Args:
        weights: Non-negative variant weights in the configured order, positive sum.

    Returns:
        One non-decreasing boundary per weight, the last being 10000.

    Raises:
        ValueError: If a weight is negative or not finite, or all are zero.
    """
    if not weights:
        raise ValueError("weights: must not be empty")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError("weights: must be finite and >= 0")
    total = 0.0
    for weight in weights:  # left to right, as other languages will (not fsum)
        total += weight
    if total <= 0:
        raise ValueError("weights: must not all be zero")
    boundaries: list[int] = []
    running = 0.0
    for weight in weights[:-1]:
        running += weight
        boundaries.append(min(BUCKETS, math.floor(running / total * BUCKETS + 0.5)))
    boundaries.append(BUCKETS)
    return tuple(boundaries)


def index_for(boundaries: Sequence[int], value: int) -> int:
    """Index of the variant whose interval ``[boundary_{i-1}, boundary_i)`` holds ``value``.

    Args:
        boundaries: Output of :func:`compute_boundaries`.
        value: A variant bucket in ``0..9999``.

    Returns:
        The variant index.
    """
    return bisect_right(boundaries, value)


def variant_for(variants: Sequence[tuple[str, float]], value: int) -> str:
    """Choose a variant key from ``(key, weight)`` pairs and a variant bucket.

    Args:
        variants: ``(key, weight)`` in the configured order.
        value: The unit's variant bucket, ``bucket(variant_salt(salt), unit_id)``.

    Returns:
        The key of the variant whose cumulative interval holds ``value``.

    Raises:
        ValueError: If ``value`` is outside ``0..9999`` or the weights are invalid.
    """
    if not 0 <= value < BUCKETS:
        raise ValueError(f"bucket: must be in 0..{BUCKETS - 1}, got {value}")
    boundaries = compute_boundaries([weight for _, weight in variants])
    return variants[index_for(boundaries, value)][0]
