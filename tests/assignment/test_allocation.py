from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.assignment.allocation import (
    BUCKETS,
    allocate_buckets,
    compute_boundaries,
    count_buckets,
    index_for,
    is_bucket_in,
    normalize_ranges,
    share_to_buckets,
    variant_for,
)
from experiments.errors import ConflictError


def as_set(ranges: list[tuple[int, int]]) -> set[int]:
    return {b for start, end in ranges for b in range(start, end)}


@pytest.mark.parametrize(
    ("share", "expected"),
    [(0.0, 0), (1.0, 10_000), (0.5, 5000), (0.03125, 313), (0.00004, 0), (0.1 + 0.2, 3000)],
    ids=["zero", "all", "half", "half-up-tie", "below-one-bucket", "float-noise"],
)
def test_share_to_buckets(share: float, expected: int) -> None:
    assert share_to_buckets(share) == expected


@pytest.mark.parametrize(
    "share", [-0.1, 1.5, float("nan"), float("inf")], ids=["neg", "above-1", "nan", "inf"]
)
def test_share_to_buckets_refuses_bad_shares(share: float) -> None:
    with pytest.raises(ValueError, match="share: must be a number between 0 and 1"):
        share_to_buckets(share)


def test_normalize_merges_and_sorts() -> None:
    assert normalize_ranges([(50, 60), (0, 10), (10, 20), (55, 70)]) == [(0, 20), (50, 70)]
    assert count_buckets([(0, 10), (5, 15)]) == 15


@pytest.mark.parametrize(
    "bad", [(-1, 5), (5, 5), (9000, 10_001), (7, 3)], ids=["neg", "empty", "past-end", "reversed"]
)
def test_normalize_refuses_bad_ranges(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="is not within"):
        normalize_ranges([bad])


def test_is_bucket_in() -> None:
    ranges = [(0, 2500), (7000, 7100)]
    hits = [b for b in (0, 2499, 2500, 6999, 7000, 7099, 7100, 9999) if is_bucket_in(ranges, b)]
    assert hits == [0, 2499, 7000, 7099]
    assert not is_bucket_in([], 0)


def test_start_takes_lowest_free_buckets() -> None:
    got = allocate_buckets([(0, 1000), (3000, 4000)], [], 0.25, layer="l", experiment="e")
    assert got == [(1000, 3000), (4000, 4500)]


def test_ramp_up_keeps_current_and_ramp_down_keeps_a_subset() -> None:
    current = [(5000, 6000)]
    up = allocate_buckets([(0, 1000)], current, 0.3, layer="l", experiment="e")
    assert as_set(current) <= as_set(up)
    assert count_buckets(up) == 3000
    down = allocate_buckets([(0, 1000)], up, 0.05, layer="l", experiment="e")
    assert as_set(down) <= as_set(up)
    assert count_buckets(down) == 500
    assert allocate_buckets([], up, 0.0, layer="l", experiment="e") == []


def test_full_layer_raises_conflict_naming_the_free_share() -> None:
    with pytest.raises(ConflictError) as info:
        allocate_buckets([(0, 7000)], [], 0.5, layer="home-feed", experiment="ranker-v2")
    assert str(info.value) == "layer home-feed has 0.3 of its traffic free; ranker-v2 asks for 0.5"


def test_ramp_beyond_free_share_names_what_is_held() -> None:
    with pytest.raises(
        ConflictError, match=r"has 0\.3 of .* ranker-v2 holds 0\.2 and asks for 0\.6"
    ):
        allocate_buckets(
            [(0, 5000)], [(5000, 7000)], 0.6, layer="home-feed", experiment="ranker-v2"
        )


def test_exactly_the_free_share_fits() -> None:
    got = allocate_buckets([(0, 7000)], [], 0.3, layer="l", experiment="e")
    assert got == [(7000, 10_000)]


def test_current_overlapping_taken_is_refused() -> None:
    with pytest.raises(ValueError, match="owns buckets that another experiment owns"):
        allocate_buckets([(0, 100)], [(50, 150)], 0.1, layer="l", experiment="e")


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([0.5, 0.5], (5000, 10_000)),
        ([1 / 3, 1 / 3, 1 / 3], (3333, 6667, 10_000)),
        ([0.03125, 0.96875], (313, 10_000)),
        ([0.0, 1.0], (0, 10_000)),
        ([2.0, 2.0], (5000, 10_000)),
    ],
    ids=["halves", "thirds", "half-up", "zero-weight", "unnormalised"],
)
def test_compute_boundaries(weights: list[float], expected: tuple[int, ...]) -> None:
    assert compute_boundaries(weights) == expected


@pytest.mark.parametrize(
    "weights",
    [[], [0.0, 0.0], [-0.1, 1.1], [float("nan"), 1.0]],
    ids=["empty", "zeros", "neg", "nan"],
)
def test_compute_boundaries_refuses_bad_weights(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="weights: must"):
        compute_boundaries(weights)


def test_variant_for() -> None:
    variants = [("control", 0.2), ("a", 0.3), ("b", 0.5)]
    assert [variant_for(variants, b) for b in (0, 1999, 2000, 4999, 5000, 9999)] == [
        "control",
        "control",
        "a",
        "a",
        "b",
        "b",
    ]
    assert variant_for([("off", 0.0), ("on", 1.0)], 0) == "on"
    with pytest.raises(ValueError, match=r"bucket: must be in 0\.\.9999"):
        variant_for(variants, 10_000)


def test_index_for_counts_each_variant_share() -> None:
    boundaries = compute_boundaries([0.1, 0.2, 0.3, 0.4])
    counts = [0, 0, 0, 0]
    for b in range(BUCKETS):
        counts[index_for(boundaries, b)] += 1
    assert counts == [1000, 2000, 3000, 4000]


# A layer's life: experiments start, ramp and conclude in any order.
shares = st.integers(min_value=0, max_value=40).map(lambda k: k / 100)
steps = st.lists(st.tuples(st.integers(0, 3), shares), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_layer_allocation_properties(history: list[tuple[int, float]]) -> None:
    owned: dict[str, list[tuple[int, int]]] = {}
    for index, share in history:
        name = f"exp-{index}"
        taken = [r for other, ranges in owned.items() if other != name for r in ranges]
        current = owned.get(name, [])
        free = BUCKETS - count_buckets(taken) if taken else BUCKETS
        if share_to_buckets(share) > free:
            with pytest.raises(ConflictError, match=f"{name} .*asks for"):
                allocate_buckets(taken, current, share, layer="l", experiment=name)
            continue
        new = allocate_buckets(taken, current, share, layer="l", experiment=name)
        assert count_buckets(new) == share_to_buckets(share)
        assert not as_set(new) & as_set(taken)  # mutual exclusion
        if count_buckets(new) >= count_buckets(current):
            assert as_set(current) <= as_set(new)  # ramp up: nobody leaves
        else:
            assert as_set(new) <= as_set(current)  # ramp down: nobody joins
        if share == 0:
            owned.pop(name, None)  # concluded: buckets return to the layer
        else:
            owned[name] = new
