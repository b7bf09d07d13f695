"""Winsorisation: one definition of a metric's cap, shared by the notebook and SQL paths.

A cap limits each unit's post-period value from above, ``min(y, cap)``, before
any moment is computed. It is either

* a value (``"cap": 500``), or
* a percentile (``{"percentile": 99}``, optionally ``"ignore_zeros": true``): the
  **nearest-rank** percentile of the N units' post-period values, all variants
  together: the value at rank ``⌈q/100 · N⌉`` (1-based) of the sorted values
  (Hyndman & Fan 1996, "Sample quantiles in statistical packages", definition
  1, the inverse of the empirical distribution function; no interpolation, so
  SQL's ``ORDER BY … OFFSET rank − 1`` gives the same value). With
  ``ignore_zeros`` the percentile is taken over the nonzero values only
  (N = the number of units with a nonzero value), which is what a cap on
  zero-inflated revenue usually means.

The same cap value is applied to the CUPED covariate column of the metric
(the pre-period value of the same quantity), so the regression sees both
columns on the same scale. :func:`nearest_rank` is the rank rule the storage
layer's SQL uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
CapSpec = float | int | Mapping[str, object]


@dataclass(frozen=True)
class Cap:
    """A parsed cap: a value, or a nearest-rank percentile (of the nonzero values)."""

    value: float | None = None
    percentile: float | None = None
    ignore_zeros: bool = False


def parse_cap(spec: CapSpec, name: str = "cap") -> Cap:
    """A :class:`Cap` from ``500`` or ``{"percentile": 99, "ignore_zeros": true}``.

    Raises:
        ValueError: with a one-line message naming ``name`` and the bad part.
    """
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"percentile", "ignore_zeros"})
        if unknown or "percentile" not in spec:
            raise ValueError(
                f"{name}: expected a number or {{'percentile': q, 'ignore_zeros': bool}}, "
                f"got {dict(spec)}"
            )
        q = spec["percentile"]
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0.0 < float(q) <= 100.0:
            raise ValueError(f"{name}: percentile must be in (0, 100], got {q}")
        ignore = spec.get("ignore_zeros", False)
        if not isinstance(ignore, bool):
            raise ValueError(f"{name}: ignore_zeros must be true or false, got {ignore}")
        return Cap(percentile=float(q), ignore_zeros=ignore)
    if isinstance(spec, bool) or not isinstance(spec, int | float) or not math.isfinite(spec):
        raise ValueError(f"{name}: must be a finite number or a percentile, got {spec}")
    return Cap(value=float(spec))


def nearest_rank(q: float, n: int) -> int:
    """The 1-based rank ``⌈q/100 · n⌉`` (at least 1) of the nearest-rank q-th percentile.

    Args:
        q: the percentile, in (0, 100].
        n: the number of values (>= 1).
    """
    if not 0.0 < q <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    # A relative hair below the product guards against 99.9 · 1000 / 100 = 999.0000000000001.
    position = q * n / 100.0
    return min(n, max(1, math.ceil(position * (1.0 - 1e-12))))


def cap_limit(values: npt.ArrayLike, cap: Cap) -> float | None:
    """The cap value for these per-unit values (all variants), or None when nothing to cap."""
    if cap.value is not None:
        return cap.value
    x = np.asarray(values, dtype=float)
    if cap.ignore_zeros:
        x = x[x != 0.0]
    if x.size == 0 or cap.percentile is None:
        return None
    rank = nearest_rank(cap.percentile, int(x.size))
    return float(np.partition(x, rank - 1)[rank - 1])


def apply_cap(values: npt.ArrayLike, limit: float | None) -> FloatArray:
    """``min(value, limit)`` per unit (the values unchanged when ``limit`` is None)."""
    x = np.asarray(values, dtype=float)
    return x if limit is None else np.minimum(x, limit)
