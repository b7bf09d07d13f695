from __future__ import annotations

from typing import Any

import pytest

from experiments.assignment import parse_config
from experiments.assignment.config import ExperimentState
from tests.assignment.documents import make_config, make_experiment


def test_parse_minimal_document() -> None:
    snapshot = parse_config({"version": "7", "experiments": []})
    assert snapshot.version == "7"
    assert snapshot.holdout_buckets == 0
    assert dict(snapshot.experiments) == {}


def test_parse_precomputes_evaluation_fields() -> None:
    layer = {"key": "home-feed", "salt": "layer:home-feed", "buckets": [[7000, 7100], [0, 2500]]}
    doc = make_config(make_experiment(layer=layer, forced={"qa": "treatment"}), holdout=0.05)
    snapshot = parse_config(doc)
    exp = snapshot.experiments["ranker-v2"]
    assert exp.state is ExperimentState.RUNNING
    assert exp.traffic_prefix == b"traffic:salt-ranker-v2\x00"
    assert exp.variant_prefix == b"variant:salt-ranker-v2\x00"
    assert exp.boundaries == (5000, 10_000)
    assert exp.layer is not None
    assert exp.layer.buckets == ((0, 2500), (7000, 7100))
    assert exp.forced == {"qa": 1}
    assert snapshot.holdout_buckets == 500


def test_unknown_fields_are_ignored() -> None:
    doc = make_config(make_experiment(future_field=1))
    doc["another"] = {"x": 1}
    assert "ranker-v2" in parse_config(doc).experiments


def bad(path: str, value: Any) -> dict[str, Any]:
    """A valid document with one field replaced (path is 'exp.FIELD' or a top-level key)."""
    doc = make_config()
    if path.startswith("exp."):
        doc["experiments"][0][path[4:]] = value
    else:
        doc[path] = value
    return doc


def variants(*items: tuple[str, Any, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "weight": w, "is_control": c, "params": {}} for k, w, c in items]


BAD_DOCUMENTS = [
    ("version", bad("version", 3), "version: must be a string"),
    (
        "holdout-fraction",
        bad("holdout", {"fraction": 1.5, "salt": "h"}),
        "holdout.fraction: must be a number between 0 and 1",
    ),
    (
        "holdout-salt",
        bad("holdout", {"fraction": 0.1, "salt": ""}),
        "holdout.salt: must be a non-empty",
    ),
    ("experiments-type", bad("experiments", {}), "experiments: must be a list"),
    ("key", bad("exp.key", "Bad Key"), "experiments[0].key: must match"),
    (
        "status",
        bad("exp.status", "draft"),
        "experiments[0].status: must be one of running, stopped, promoted",
    ),
    (
        "salt-nul",
        bad("exp.salt", "a\x00b"),
        "experiments[0].salt: must be a non-empty string without NUL",
    ),
    (
        "traffic",
        bad("exp.traffic", -0.5),
        "experiments[0].traffic: must be a number between 0 and 1",
    ),
    ("traffic-bool", bad("exp.traffic", True), "experiments[0].traffic: must be a number"),
    (
        "variants-empty",
        bad("exp.variants", []),
        "experiments[0].variants: must be a non-empty list",
    ),
    (
        "weight",
        bad("exp.variants", variants(("c", 0.5, True), ("t", "half", False))),
        "experiments[0].variants[1].weight: must be a number >= 0",
    ),
    (
        "weights-sum",
        bad("exp.variants", variants(("c", 0.5, True), ("t", 0.6, False))),
        "experiments[0].variants: weights must sum to 1, got 1.1",
    ),
    (
        "no-control",
        bad("exp.variants", variants(("c", 0.5, False), ("t", 0.5, False))),
        "experiments[0].variants: must have exactly one control, found 0",
    ),
    (
        "two-controls",
        bad("exp.variants", variants(("c", 0.5, True), ("t", 0.5, True))),
        "must have exactly one control, found 2",
    ),
    (
        "dup-variant",
        bad("exp.variants", variants(("c", 0.5, True), ("c", 0.5, False))),
        "experiments[0].variants[1].key: duplicates variant c",
    ),
    (
        "params",
        bad("exp.variants", [{"key": "c", "weight": 1, "is_control": True, "params": [1]}]),
        "experiments[0].variants[0].params: must be an object",
    ),
    (
        "forced-variant",
        bad("exp.forced", {"qa": "nope"}),
        "experiments[0].forced.qa: unknown variant 'nope'",
    ),
    ("forced-type", bad("exp.forced", ["qa"]), "experiments[0].forced: must be an object"),
    (
        "targeting",
        bad("exp.targeting", {"country": {"in": "US"}}),
        "experiments[0].targeting.country.in: must be a list",
    ),
    (
        "layer-type",
        bad("exp.layer", "home-feed"),
        "experiments[0].layer: must be an object or null",
    ),
    (
        "layer-range",
        bad("exp.layer", {"key": "l", "salt": "s", "buckets": [[0, 10_001]]}),
        "experiments[0].layer.buckets[0]: must be [start, end] with 0 <= start < end <= 10000",
    ),
    (
        "layer-overlap",
        bad("exp.layer", {"key": "l", "salt": "s", "buckets": [[0, 10], [5, 20]]}),
        "experiments[0].layer.buckets: ranges must not overlap",
    ),
    (
        "promoted-missing",
        bad("exp.status", "promoted"),
        "experiments[0].promoted_variant: must name a variant when promoted",
    ),
]


@pytest.mark.parametrize(
    ("document", "message"), [b[1:] for b in BAD_DOCUMENTS], ids=[b[0] for b in BAD_DOCUMENTS]
)
def test_bad_documents_name_the_problem(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="invalid config") as info:
        parse_config(document)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    doc = make_config(make_experiment(traffic=2, salt=""), make_experiment("b", status="x"))
    with pytest.raises(ValueError, match="invalid config") as info:
        parse_config(doc)
    for part in ("experiments[0].traffic", "experiments[0].salt", "experiments[1].status"):
        assert part in str(info.value)


def test_duplicate_experiment_keys() -> None:
    with pytest.raises(ValueError, match=r"experiments\[1\]\.key: duplicates experiment ranker-v2"):
        parse_config(make_config(make_experiment(), make_experiment()))


def test_layer_overlap_between_experiments_is_refused() -> None:
    layer = {"key": "home-feed", "salt": "layer:home-feed"}
    doc = make_config(
        make_experiment("a", layer={**layer, "buckets": [[0, 5000]]}),
        make_experiment("b", layer={**layer, "buckets": [[4000, 6000]]}),
    )
    with pytest.raises(
        ValueError,
        match=r"experiments\[1\]\.layer\.buckets: overlap another experiment's buckets in layer",
    ):
        parse_config(doc)


def test_layer_salt_must_agree() -> None:
    doc = make_config(
        make_experiment("a", layer={"key": "l", "salt": "one", "buckets": [[0, 10]]}),
        make_experiment("b", layer={"key": "l", "salt": "two", "buckets": [[10, 20]]}),
    )
    with pytest.raises(
        ValueError, match=r"experiments\[1\]\.layer\.salt: differs from a's in layer l"
    ):
        parse_config(doc)


@pytest.mark.parametrize("document", [[], "x", None], ids=["list", "str", "none"])
def test_non_object_document(document: Any) -> None:
    with pytest.raises(ValueError, match="config: must be a JSON object"):
        parse_config(document)


def test_unknown_hash_version_is_refused() -> None:
    doc = make_config()
    doc["hash_version"] = 2
    with pytest.raises(ValueError, match="hash_version: config uses 2, this code knows 1"):
        parse_config(doc)
