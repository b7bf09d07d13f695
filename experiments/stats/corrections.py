"""Multiple-comparison corrections and guardrail non-inferiority.

Families (DESIGN.md "Multiple comparisons"): the treatments on the primary
metric (Holm by default), all secondary metrics × treatments (Benjamini–Hochberg,
exploratory), the ML metrics × treatments (Holm, for ``ml_divergence``);
guardrails are one-sided tests without a family correction (non-inferiority at
α; the harm-only check at α/G, see :mod:`.comparisons`).

* Bonferroni: ``p̃_i = min(1, m·p_i)``.
* Holm (1979) step-down: with ``p_(1) ≤ … ≤ p_(m)``,
  ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j))``.
* Benjamini–Hochberg (1995) step-up: ``p̃_(i) = min_{j ≥ i} min(1, m·p_(j)/j)``.

These are the adjusted p-values of statsmodels ``multipletests`` (methods
``bonferroni``, ``holm``, ``fdr_bh``). An undefined p-value (``None``) is not
part of its family: it stays ``None`` and does not count in ``m``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from experiments.domain import Correction


class GuardrailStatus(StrEnum):
    """Outcome of a guardrail: non-inferiority with a margin, harm-only check without one."""

    NON_INFERIOR = "non_inferior"
    INFERIOR = "inferior"
    INCONCLUSIVE = "inconclusive"
    HARMED = "harmed"
    NOT_HARMED = "not_harmed"


def adjust_p_values(
    p_values: Sequence[float | None], correction: Correction | str
) -> list[float | None]:
    """Adjusted p-values of one family, in the input order.

    Args:
        p_values: raw p-values; ``None`` entries are left out of the family.
        correction: ``holm``, ``bonferroni``, ``bh`` or ``none``.

    Returns:
        The adjusted p-values (``None`` where the input was ``None``).
    """
    method = Correction(correction)
    if not p_values:
        return []
    index = [i for i, p in enumerate(p_values) if p is not None]
    raw = np.array([p_values[i] for i in index], dtype=float)
    if np.any((raw < 0.0) | (raw > 1.0)) or not np.all(np.isfinite(raw)):
        raise ValueError("p-values must be numbers in [0, 1]")
    m = raw.size
    adjusted = raw.copy()
    if m and method is Correction.BONFERRONI:
        adjusted = np.minimum(1.0, m * raw)
    elif m and method is Correction.HOLM:
        order = np.argsort(raw, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * raw[order])
        adjusted[order] = np.minimum(1.0, stepped)
    elif m and method is Correction.BH:
        order = np.argsort(raw, kind="stable")
        scaled = m * raw[order] / np.arange(1, m + 1)
        stepped = np.minimum.accumulate(scaled[::-1])[::-1]
        adjusted[order] = np.minimum(1.0, stepped)
    out: list[float | None] = [None] * len(p_values)
    for i, value in zip(index, adjusted, strict=True):
        out[i] = float(value)
    return out


def guardrail_status(
    bounds: tuple[float, float] | None, *, margin: float, higher_is_better: bool
) -> GuardrailStatus:
    """Non-inferiority verdict from the one-sided ``1 − alpha`` bounds of treatment − control.

    ``bounds`` is the two-sided ``1 − 2·alpha`` interval of the difference, whose
    ends are the one-sided ``1 − alpha`` bounds. With the change ``g`` measured
    in the good direction (``g = diff`` or ``−diff``): ``non_inferior`` when the
    lower bound of ``g`` is above ``−margin``; ``inferior`` when its upper bound
    is below ``−margin``; else ``inconclusive`` (also when the bounds are undefined).

    Args:
        bounds: ``(low, high)`` of treatment − control, or ``None``.
        margin: tolerated harm in the metric's units (>= 0).
        higher_is_better: the metric's good direction.
    """
    if margin < 0.0:
        raise ValueError(f"guardrail margin must be >= 0, got {margin}")
    if bounds is None:
        return GuardrailStatus.INCONCLUSIVE
    low, high = bounds if higher_is_better else (-bounds[1], -bounds[0])
    if low > -margin:
        return GuardrailStatus.NON_INFERIOR
    if high < -margin:
        return GuardrailStatus.INFERIOR
    return GuardrailStatus.INCONCLUSIVE
