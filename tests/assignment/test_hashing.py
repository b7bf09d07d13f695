from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from experiments.assignment.hashing import (
    BUCKETS,
    bucket,
    bucket_prefixed,
    message_prefix,
    traffic_salt,
    variant_salt,
)

UNITS = [f"user-{i}" for i in range(100_000)]


def buckets_of(salt: str, units: list[str] = UNITS) -> np.ndarray:
    return np.fromiter((bucket(salt, u) for u in units), dtype=np.int64, count=len(units))


def chi_square_uniform_p(values: np.ndarray, cells: int) -> float:
    counts = np.bincount(values, minlength=cells)
    return float(stats.chisquare(counts).pvalue)


def test_bucket_range_and_determinism() -> None:
    values = buckets_of("3f9c2a71", UNITS[:1000])
    assert values.min() >= 0
    assert values.max() < BUCKETS
    assert list(values[:50]) == [bucket("3f9c2a71", u) for u in UNITS[:50]]


def test_prefixed_matches_bucket() -> None:
    assert message_prefix("sé") == b"s\xc3\xa9\x00"
    assert bucket_prefixed(message_prefix("s"), "café".encode()) == bucket("s", "café")


def test_salt_with_nul_is_refused() -> None:
    with pytest.raises(ValueError, match="salt: must not contain a NUL"):
        bucket("a\x00b", "user-1")
    with pytest.raises(ValueError, match="salt: must not contain a NUL"):
        message_prefix("\x00")


def test_salt_changes_the_bucket() -> None:
    a, b = buckets_of("salt-a", UNITS[:2000]), buckets_of("salt-b", UNITS[:2000])
    # Independent draws agree on ~1/10000 of units.
    assert int((a == b).sum()) <= 5


def test_derived_salts_differ() -> None:
    assert traffic_salt("s") == "traffic:s"
    assert variant_salt("s") == "variant:s"


@pytest.mark.parametrize(
    "salt", ["3f9c2a71", "layer:home-feed", "xp-global-holdout"], ids=["exp", "layer", "holdout"]
)
def test_uniform_over_buckets(salt: str) -> None:
    # 100k fixed ids over 10,000 buckets (10 expected per cell) and over 100
    # coarse cells (traffic thresholds are prefixes of the bucket range).
    values = buckets_of(salt)
    assert chi_square_uniform_p(values, BUCKETS) > 1e-3
    assert chi_square_uniform_p(values // 100, 100) > 1e-3


@pytest.mark.parametrize(
    "bad",
    [lambda u: len(u) % BUCKETS, lambda u: sum(u.encode()) % BUCKETS],
    ids=["length", "byte-sum"],
)
def test_uniformity_check_detects_a_poor_hash(bad: Callable[[str], int]) -> None:
    values = np.fromiter((bad(u) for u in UNITS), dtype=np.int64, count=len(UNITS))
    assert chi_square_uniform_p(values // 100, 100) < 1e-3


def test_traffic_and_variant_draws_are_independent() -> None:
    traffic = buckets_of(traffic_salt("3f9c2a71"))
    variant = buckets_of(variant_salt("3f9c2a71"))
    # 10 x 10 contingency table of deciles: chi-square test of independence.
    table = np.zeros((10, 10), dtype=np.int64)
    np.add.at(table, (traffic // 1000, variant // 1000), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # Units entering at 30% traffic split 50/50 like everyone else.
    entered = variant[traffic < 3000]
    share = float((entered < 5000).mean())
    tolerance = 4.5 * np.sqrt(0.25 / entered.size)
    assert abs(share - 0.5) < tolerance
    assert abs(np.corrcoef(traffic, variant)[0, 1]) < 4.5 / np.sqrt(traffic.size)
