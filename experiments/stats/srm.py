"""Sample-ratio mismatch: are the exposed units split as the weights say?

Pearson's chi-square goodness of fit of the observed units per variant against
``expected_v = N·w_v/Σw``: ``χ² = Σ (o_v − e_v)²/e_v`` with ``k − 1`` degrees of
freedom (scipy ``chisquare``). ``p < 0.001`` marks the experiment untrustworthy
(Fabijan et al. 2019, "Diagnosing sample ratio mismatch in online controlled
experiments"): a decision is blocked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from scipy import special

from experiments.stats.results import SrmResult

SRM_THRESHOLD = 0.001


def check_srm(
    observed: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    threshold: float = SRM_THRESHOLD,
) -> SrmResult:
    """Chi-square test of the units per variant against the configured weights.

    Args:
        observed: exposed units per variant (a variant missing here has 0 units).
        weights: configured weight per variant (> 0).
        threshold: p-value below which a mismatch is detected.

    Returns:
        The observed and expected counts, χ², p-value and whether SRM is detected;
        χ² and p are ``None`` when there are no units or fewer than 2 variants.
    """
    unknown = sorted(set(observed) - set(weights))
    if unknown:
        raise ValueError(f"units observed for variants without a weight: {', '.join(unknown)}")
    if any(not math.isfinite(w) or w <= 0.0 for w in weights.values()):
        raise ValueError("variant weights must be positive numbers")
    counts = {v: int(observed.get(v, 0)) for v in weights}
    if any(c < 0 for c in counts.values()):
        raise ValueError("observed unit counts must be >= 0")
    total, weight_sum = sum(counts.values()), sum(weights.values())
    expected = {v: total * w / weight_sum for v, w in weights.items()}
    if total == 0 or len(weights) < 2:
        return SrmResult(counts, expected, None, None, False)
    chi2 = sum((counts[v] - e) ** 2 / e for v, e in expected.items())
    p_value = float(special.chdtrc(len(weights) - 1, chi2))  # chi-square survival function
    return SrmResult(counts, expected, float(chi2), p_value, p_value < threshold)
