"""Sufficient statistics of per-unit columns, as SQL computes them.

A :class:`Moments` holds, for ``k`` per-unit columns ``x_1..x_k`` of one group
of units, the count ``n``, the shifted sums ``Σ(x_i − c_i)`` and the shifted
cross products ``Σ(x_i − c_i)(x_j − c_j)``. The shift ``c`` (a per-metric
reference value such as the overall mean, chosen by the caller) keeps the sums
of squares accurate when a column's mean is large against its spread: the
textbook ``Σx² − (Σx)²/n`` loses every significant digit when mean/sd ≈ 1e8,
while the shifted form keeps them (Chan, Golub & LeVeque 1983, "Algorithms for
computing the sample variance").

Everything the engine needs is derived from these numbers: means, ddof-1
variances and covariances, the ratio Σnum/Σden, and the moments of a pooled
sample (``a + b``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Moments:
    """Count, shifted sums and shifted cross products of ``k`` per-unit columns.

    Attributes:
        n: number of units.
        shift: the reference ``c_i`` subtracted from column ``i`` before summing.
        sums: ``Σ(x_i − c_i)`` for each column.
        products: ``Σ(x_i − c_i)(x_j − c_j)``, a symmetric ``k × k`` table.
    """

    n: int
    shift: tuple[float, ...]
    sums: tuple[float, ...]
    products: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        k = len(self.sums)
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if len(self.shift) != k or len(self.products) != k:
            raise ValueError("shift, sums and products must describe the same columns")
        if any(len(row) != k for row in self.products):
            raise ValueError("products must be a square table")
        values = (*self.shift, *self.sums, *(v for row in self.products for v in row))
        if not all(math.isfinite(v) for v in values):
            raise ValueError("moments must be finite numbers")

    @property
    def k(self) -> int:
        """Number of columns."""
        return len(self.sums)

    @classmethod
    def empty(cls, k: int = 1, shift: Sequence[float] | None = None) -> Moments:
        """Moments of no units."""
        c = tuple(float(v) for v in (shift if shift is not None else [0.0] * k))
        return cls(0, c, (0.0,) * k, tuple((0.0,) * k for _ in range(k)))

    @classmethod
    def from_values(cls, values: npt.ArrayLike, shift: Sequence[float] | None = None) -> Moments:
        """Moments of an ``(n, k)`` array (or a 1-D array, one column).

        Without ``shift`` the column means are used, the most accurate choice.
        """
        x = np.asarray(values, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError("values must be a 1-D or 2-D array")
        n, k = x.shape
        if shift is None:
            c = x.mean(axis=0) if n else np.zeros(k)
        else:
            c = np.asarray(shift, dtype=float)
        d = x - c
        return cls(
            n=int(n),
            shift=tuple(float(v) for v in c),
            sums=tuple(float(v) for v in d.sum(axis=0)),
            products=tuple(tuple(float(v) for v in row) for row in d.T @ d),
        )

    def mean(self, i: int = 0) -> float:
        """Mean of column ``i`` (NaN when n = 0)."""
        if self.n == 0:
            return math.nan
        return self.shift[i] + self.sums[i] / self.n

    def total(self, i: int = 0) -> float:
        """Σx_i, unshifted."""
        return self.sums[i] + self.n * self.shift[i]

    def cov(self, i: int = 0, j: int = 0) -> float:
        """Sample covariance of columns ``i`` and ``j`` with ddof 1 (NaN when n < 2).

        ``(Σd_i d_j − Σd_i Σd_j / n) / (n − 1)`` with ``d = x − c``; shift-invariant.
        """
        if self.n < 2:
            return math.nan
        value = (self.products[i][j] - self.sums[i] * self.sums[j] / self.n) / (self.n - 1)
        if i == j:
            value = max(value, 0.0)  # rounding can leave a tiny negative variance
        return value

    def var(self, i: int = 0) -> float:
        """Sample variance of column ``i`` with ddof 1."""
        return self.cov(i, i)

    def reshift(self, shift: Sequence[float]) -> Moments:
        """The same moments about another reference ``c'``.

        With ``δ = c − c'``: ``Σ(x − c') = Σd + nδ`` and
        ``Σ(x_i − c'_i)(x_j − c'_j) = P_ij + δ_j S_i + δ_i S_j + n δ_i δ_j``.
        """
        new = tuple(float(v) for v in shift)
        delta = [a - b for a, b in zip(self.shift, new, strict=True)]
        sums = tuple(s + self.n * d for s, d in zip(self.sums, delta, strict=True))
        products = tuple(
            tuple(
                self.products[i][j]
                + delta[j] * self.sums[i]
                + delta[i] * self.sums[j]
                + self.n * delta[i] * delta[j]
                for j in range(self.k)
            )
            for i in range(self.k)
        )
        return Moments(self.n, new, sums, products)

    def __add__(self, other: Moments) -> Moments:
        """Moments of the union of two disjoint groups of units."""
        if other.k != self.k:
            raise ValueError("cannot add moments of different columns")
        right = other if other.shift == self.shift else other.reshift(self.shift)
        return Moments(
            self.n + right.n,
            self.shift,
            tuple(a + b for a, b in zip(self.sums, right.sums, strict=True)),
            tuple(
                tuple(a + b for a, b in zip(ra, rb, strict=True))
                for ra, rb in zip(self.products, right.products, strict=True)
            ),
        )

    def select(self, columns: Sequence[int]) -> Moments:
        """Moments of a subset of the columns, in the given order."""
        return Moments(
            self.n,
            tuple(self.shift[i] for i in columns),
            tuple(self.sums[i] for i in columns),
            tuple(tuple(self.products[i][j] for j in columns) for i in columns),
        )
