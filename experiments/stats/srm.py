"""Sample-ratio mismatch: are the exposed units split as the weights say?

* **One look** (a file, a frame): Pearson's chi-square goodness of fit of the
  observed units per variant against ``expected_v = N·w_v/Σw``:
  ``χ² = Σ (o_v − e_v)²/e_v`` with ``k − 1`` degrees of freedom (scipy ``chisquare``).
* **Every refresh a look** (the server): the sequential multinomial test of
  Lindon & Malek (2022, "Anytime-valid inference for multinomial count data",
  NeurIPS). Against the null ``p = w`` (the configured weights, normalised) the
  alternative is the Dirichlet prior ``p ~ Dir(κ·w)``; the Bayes factor of the
  counts ``x`` (``N = Σx``) is the Dirichlet-multinomial marginal over the null
  likelihood,

      BF = Γ(κ)/Γ(κ + N) · Π_v Γ(κw_v + x_v)/Γ(κw_v) / Π_v w_v^{x_v},

  a nonnegative martingale with mean 1 under the null whatever the order in
  which the units arrive, so by Ville's inequality ``P(∃ look: BF ≥ 1/α) ≤ α``
  and ``p = min(previous p, 1/BF)`` is an always-valid p-value at every look
  (the running minimum is kept in the snapshots). The prior concentration is
  ``κ = 100`` (``SRM_CONCENTRATION``), the default of the authors' reference
  implementation (savvi): it spreads the alternative over share deviations of
  a few percentage points, and any κ keeps the error guarantee.

``p < 0.001`` marks the experiment untrustworthy (Fabijan et al. 2019,
"Diagnosing sample ratio mismatch in online controlled experiments"): the
decision is blocked. ``detected`` uses the sequential p-value when it is
computed, else the chi-square.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from scipy import special

from experiments.stats.results import SrmResult

SRM_THRESHOLD = 0.001
SRM_CONCENTRATION = 100.0


def _counts(observed: Mapping[str, int], weights: Mapping[str, float]) -> dict[str, int]:
    unknown = sorted(set(observed) - set(weights))
    if unknown:
        raise ValueError(f"units observed for variants without a weight: {', '.join(unknown)}")
    if any(not math.isfinite(w) or w <= 0.0 for w in weights.values()):
        raise ValueError("variant weights must be positive numbers")
    counts = {v: int(observed.get(v, 0)) for v in weights}
    if any(c < 0 for c in counts.values()):
        raise ValueError("observed unit counts must be >= 0")
    return counts


def sequential_srm_p_value(
    observed: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    concentration: float = SRM_CONCENTRATION,
) -> float:
    """``min(1, 1/BF)`` of the Dirichlet-multinomial sequential test (Lindon & Malek 2022).

    Method: module docstring. Take the minimum with the previous look's value
    to get the running always-valid p-value.

    Args:
        observed: exposed units per variant.
        weights: configured weight per variant (> 0).
        concentration: the Dirichlet prior's concentration κ (> 0).

    Returns:
        ``1/BF`` capped at 1 (1 when there are no units).
    """
    if not (math.isfinite(concentration) and concentration > 0.0):
        raise ValueError(f"concentration must be > 0, got {concentration}")
    counts = _counts(observed, weights)
    total, weight_sum = sum(counts.values()), math.fsum(weights.values())
    if total == 0 or len(weights) < 2:
        return 1.0
    log_bf = special.gammaln(concentration) - special.gammaln(concentration + total)
    for v, w in weights.items():
        share, x = w / weight_sum, counts[v]
        prior = concentration * share
        log_bf += special.gammaln(prior + x) - special.gammaln(prior) - x * math.log(share)
    return 1.0 if log_bf <= 0.0 else math.exp(-float(log_bf))


def check_srm(
    observed: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    threshold: float = SRM_THRESHOLD,
    sequential: bool = False,
    previous_p_value: float | None = None,
) -> SrmResult:
    """Chi-square test (and optionally the sequential test) of the units per variant.

    Args:
        observed: exposed units per variant (a variant missing here has 0 units).
        weights: configured weight per variant (> 0).
        threshold: p-value below which a mismatch is detected.
        sequential: also compute the always-valid sequential p-value and detect with it.
        previous_p_value: the running sequential p-value of the earlier looks.

    Returns:
        The observed and expected counts, χ², p-values and whether SRM is detected;
        χ² and p are ``None`` when there are no units or fewer than 2 variants.
    """
    counts = _counts(observed, weights)
    total, weight_sum = sum(counts.values()), sum(weights.values())
    expected = {v: total * w / weight_sum for v, w in weights.items()}
    p_seq = None
    if sequential:
        p_seq = sequential_srm_p_value(counts, weights)
        if previous_p_value is not None:
            p_seq = min(p_seq, float(previous_p_value))
    if total == 0 or len(weights) < 2:
        detected = p_seq is not None and p_seq < threshold
        return SrmResult(counts, expected, None, None, detected, p_seq)
    chi2 = sum((counts[v] - e) ** 2 / e for v, e in expected.items())
    p_value = float(special.chdtrc(len(weights) - 1, chi2))  # chi-square survival function
    decisive = p_seq if p_seq is not None else p_value
    return SrmResult(counts, expected, float(chi2), p_value, decisive < threshold, p_seq)
