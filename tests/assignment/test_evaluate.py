from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.assignment import (
    Assignment,
    AssignmentReason,
    allocate_buckets,
    evaluate,
    evaluate_all,
    parse_config,
)
from experiments.assignment.allocation import share_to_buckets
from tests.assignment.documents import make_config, make_experiment

UNITS = [f"user-{i}" for i in range(20_000)]


def within_binomial(count: int, n: int, p: float, z: float = 4.5) -> bool:
    """|count - np| below z binomial standard deviations (two-sided ~7e-6 at z=4.5)."""
    return abs(count - n * p) <= z * np.sqrt(n * p * (1 - p))


def test_no_config() -> None:
    assert evaluate(None, "ranker-v2", "u1") == Assignment(
        "ranker-v2", None, {}, False, "no_config"
    )
    assert evaluate_all(None, "u1") == {}


def test_unknown_experiment() -> None:
    result = evaluate(parse_config(make_config()), "nope", "u1")
    assert (result.variant, result.params, result.in_experiment) == (None, {}, False)
    assert result.reason == AssignmentReason.UNKNOWN_EXPERIMENT


def test_running_assigns_and_marks_exposure() -> None:
    snapshot = parse_config(make_config())
    results = [evaluate(snapshot, "ranker-v2", u) for u in UNITS[:200]]
    assert all(r.reason == "assigned" and r.in_experiment for r in results)
    assert {r.variant for r in results} == {"control", "treatment"}
    for r in results:
        assert r.params == {"model": "a" if r.variant == "control" else "b"}


def test_stopped_serves_control_without_exposure() -> None:
    snapshot = parse_config(make_config(make_experiment(status="stopped")))
    for unit in UNITS[:100]:
        assert evaluate(snapshot, "ranker-v2", unit) == Assignment(
            "ranker-v2", None, {"model": "a"}, False, "not_running"
        )


def test_promoted_serves_the_winner_to_everyone() -> None:
    doc = make_config(
        make_experiment(
            status="promoted",
            promoted_variant="treatment",
            traffic=0.1,
            forced={"qa": "control"},
            targeting={"country": {"eq": "US"}},
        ),
        holdout=0.5,
    )
    snapshot = parse_config(doc)
    for unit in [*UNITS[:100], "qa"]:
        assert evaluate(snapshot, "ranker-v2", unit) == Assignment(
            "ranker-v2", "treatment", {"model": "b"}, False, "promoted"
        )


def test_forced_wins_over_holdout_targeting_and_traffic() -> None:
    doc = make_config(
        make_experiment(
            traffic=0.0, targeting={"country": {"eq": "US"}}, forced={"qa-user-1": "treatment"}
        ),
        holdout=1.0,
    )
    snapshot = parse_config(doc)
    forced = evaluate(snapshot, "ranker-v2", "qa-user-1", {"country": "FR"})
    assert forced == Assignment("ranker-v2", "treatment", {"model": "b"}, False, "forced")
    other = evaluate(snapshot, "ranker-v2", "user-1", {"country": "US"})
    assert other.reason == "holdout"


def test_forced_does_not_apply_when_stopped() -> None:
    snapshot = parse_config(
        make_config(make_experiment(status="stopped", forced={"qa": "treatment"}))
    )
    assert evaluate(snapshot, "ranker-v2", "qa").reason == "not_running"


@pytest.mark.parametrize(
    ("holdout", "traffic", "attributes", "reason"),
    [
        (1.0, 1.0, {"country": "US"}, "holdout"),
        (1.0, 0.0, {"country": "FR"}, "holdout"),
        (0.0, 0.0, {"country": "FR"}, "not_targeted"),
        (0.0, 0.0, None, "not_targeted"),
        (0.0, 0.0, {"country": "US"}, "traffic"),
        (0.0, 1.0, {"country": "US"}, "assigned"),
    ],
    ids=[
        "holdout-first",
        "holdout-over-all",
        "targeting-before-traffic",
        "no-attributes",
        "traffic",
        "assigned",
    ],
)
def test_precedence(
    holdout: float, traffic: float, attributes: dict[str, Any] | None, reason: str
) -> None:
    doc = make_config(
        make_experiment(traffic=traffic, targeting={"country": {"eq": "US"}}), holdout=holdout
    )
    result = evaluate(parse_config(doc), "ranker-v2", "user-7", attributes)
    assert result.reason == reason
    if reason != "assigned":
        assert (result.variant, result.params, result.in_experiment) == (
            None,
            {"model": "a"},
            False,
        )


def test_params_are_copies() -> None:
    variants = [
        {
            "key": "control",
            "weight": 1.0,
            "is_control": True,
            "params": {"objective_weights": {"engagement": 0.7}, "tags": [1]},
        },
    ]
    snapshot = parse_config(make_config(make_experiment(variants=variants)))
    first = evaluate(snapshot, "ranker-v2", "u1")
    first.params["objective_weights"]["engagement"] = 0.0
    first.params["tags"].append(2)
    again = evaluate(snapshot, "ranker-v2", "u1")
    assert again.params == {"objective_weights": {"engagement": 0.7}, "tags": [1]}


@pytest.mark.parametrize("unit_id", ["", "x" * 257, 42], ids=["empty", "too-long", "not-str"])
def test_bad_unit_id(unit_id: Any) -> None:
    snapshot = parse_config(make_config())
    with pytest.raises(ValueError, match="unit_id: must be a string of 1 to 256 characters"):
        evaluate(snapshot, "ranker-v2", unit_id)
    with pytest.raises(ValueError, match="unit_id: must be a string of 1 to 256 characters"):
        evaluate_all(snapshot, unit_id)


def test_evaluate_all_matches_evaluate() -> None:
    layer = {"key": "home-feed", "salt": "layer:home-feed"}
    doc = make_config(
        make_experiment("a", layer={**layer, "buckets": [[0, 3000]]}),
        make_experiment("b", layer={**layer, "buckets": [[3000, 4000], [9000, 10_000]]}),
        make_experiment("c", traffic=0.4, targeting={"age": {"gte": 18}}),
        make_experiment("d", status="stopped"),
        make_experiment("e", status="promoted", promoted_variant="control"),
        holdout=0.1,
    )
    snapshot = parse_config(doc)
    for i, unit in enumerate(UNITS[:500]):
        attributes = {"age": i % 40}
        every = evaluate_all(snapshot, unit, attributes)
        assert list(every) == ["a", "b", "c", "d", "e"]
        assert every == {k: evaluate(snapshot, k, unit, attributes) for k in every}


def share_in(snapshot: Any, key: str, units: list[str]) -> dict[str, str | None]:
    return {u: evaluate(snapshot, key, u).variant for u in units}


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=100), min_size=2, max_size=5),
    st.sampled_from([[0.5, 0.5], [0.2, 0.3, 0.5], [0.9, 0.1]]),
)
def test_ramping_traffic_never_moves_a_unit(percents: list[int], weights: list[float]) -> None:
    variants = [
        {"key": f"v{i}", "weight": w, "is_control": i == 0, "params": {}}
        for i, w in enumerate(weights)
    ]
    units = UNITS[:1500]
    seen: dict[str, str] = {}
    previous: dict[str, str | None] | None = None
    for percent in percents:
        snapshot = parse_config(
            make_config(make_experiment(traffic=percent / 100, variants=variants))
        )
        now = share_in(snapshot, "ranker-v2", units)
        for unit, variant in now.items():
            if variant is not None:
                assert seen.setdefault(unit, variant) == variant  # never another variant
        if previous is not None:
            was_in = {u for u, v in previous.items() if v is not None}
            is_in = {u for u, v in now.items() if v is not None}
            assert (was_in <= is_in) or (is_in <= was_in)  # up adds, down removes
        previous = now


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(min_value=0, max_value=50)),
        min_size=1,
        max_size=8,
    )
)
def test_layer_ramps_keep_variants_and_mutual_exclusion(steps: list[tuple[str, int]]) -> None:
    units = UNITS[:800]
    owned: dict[str, list[tuple[int, int]]] = {}
    seen: dict[tuple[str, str], str] = {}
    for name, percent in steps:
        taken = [r for other, ranges in owned.items() if other != name for r in ranges]
        free = 10_000 - sum(e - s for s, e in taken)
        if share_to_buckets(percent / 100) > free:
            continue
        owned[name] = allocate_buckets(
            taken, owned.get(name, []), percent / 100, layer="home-feed", experiment=name
        )
        experiments = [
            make_experiment(
                key,
                layer={
                    "key": "home-feed",
                    "salt": "layer:home-feed",
                    "buckets": [list(r) for r in ranges],
                },
            )
            for key, ranges in owned.items()
            if ranges
        ]
        snapshot = parse_config(
            make_config(*experiments) if experiments else {"version": "v", "experiments": []}
        )
        for unit in units:
            entered = [a for a in evaluate_all(snapshot, unit).values() if a.in_experiment]
            assert len(entered) <= 1  # no unit in two experiments of one layer
            for a in entered:
                assert a.variant is not None
                assert seen.setdefault((a.experiment, unit), a.variant) == a.variant


def test_layers_and_unlayered_experiments_are_independent() -> None:
    layer = {"key": "home-feed", "salt": "layer:home-feed", "buckets": [[0, 5000]]}
    doc = make_config(make_experiment("a", layer=layer), make_experiment("z", traffic=0.5))
    snapshot = parse_config(doc)
    both = sum(all(x.in_experiment for x in evaluate_all(snapshot, u).values()) for u in UNITS)
    assert within_binomial(both, len(UNITS), 0.25)


@pytest.mark.parametrize("fraction", [0.05, 0.2], ids=["5pct", "20pct"])
def test_holdout_fraction_is_honoured(fraction: float) -> None:
    snapshot = parse_config(make_config(make_experiment(), make_experiment("b"), holdout=fraction))
    held = 0
    for unit in UNITS:
        reasons = {a.reason for a in evaluate_all(snapshot, unit).values()}
        assert len(reasons) == 1  # a held-out unit sees no experiment at all
        held += reasons == {"holdout"}
    assert within_binomial(held, len(UNITS), fraction)


@pytest.mark.parametrize("traffic", [0.1, 0.5], ids=["10pct", "50pct"])
def test_traffic_and_weights_are_honoured(traffic: float) -> None:
    variants = [
        {"key": "control", "weight": 0.2, "is_control": True, "params": {}},
        {"key": "mix", "weight": 0.8, "is_control": False, "params": {}},
    ]
    snapshot = parse_config(make_config(make_experiment(traffic=traffic, variants=variants)))
    results = [evaluate(snapshot, "ranker-v2", u) for u in UNITS]
    entered = [r for r in results if r.in_experiment]
    assert within_binomial(len(entered), len(UNITS), traffic)
    controls = sum(r.variant == "control" for r in entered)
    assert within_binomial(controls, len(entered), 0.2)
