"""Local assignment through the client: golden vectors, exposures, LRU dedup, predictions."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from experiments.sdk import InvalidItemError
from tests.sdk.fakes import FakeServer, MakeClient, Recorder

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "assignment_vectors.json").read_text("utf-8")
)
CASES_BY_CONFIG: dict[str, list[dict[str, Any]]] = defaultdict(list)
for _case in VECTORS["assignment"]:
    CASES_BY_CONFIG[_case["config"]].append(_case)


@pytest.mark.parametrize("config_name", sorted(CASES_BY_CONFIG), ids=sorted(CASES_BY_CONFIG))
def test_golden_vectors_through_the_client(
    make_client: MakeClient, server: FakeServer, config_name: str
) -> None:
    """The SDK serves exactly what the shared vectors say, and logs exposures for 'assigned'."""
    server.config = VECTORS["configs"][config_name]
    client = make_client(batch_size=10_000)
    expected_exposures = set()
    for case in CASES_BY_CONFIG[config_name]:
        got = client.assign(case["experiment"], case["unit_id"], case["attributes"])
        want = case["expected"]
        assert (got.variant, got.params, got.in_experiment, got.reason) == (
            want["variant"],
            want["params"],
            want["in_experiment"],
            want["reason"],
        ), case["id"]
        if want["in_experiment"]:
            expected_exposures.add((case["experiment"], case["unit_id"], want["variant"]))
    assert client.flush()
    sent = {(e["experiment"], e["unit_id"], e["variant"]) for e in server.stored["exposures"]}
    assert sent == expected_exposures
    assert len(server.stored["exposures"]) == len(expected_exposures)


def test_assign_logs_one_exposure_per_unit_and_variant(
    make_client: MakeClient, server: FakeServer
) -> None:
    client = make_client()
    for _ in range(5):
        a = client.assign("ranker-v2", "user-42")
    assert a.in_experiment
    client.assign("ranker-v2", "user-43")
    assert client.flush()
    assert [(e["unit_id"], e["variant"]) for e in server.stored["exposures"]] == [
        ("user-42", a.variant),
        ("user-43", client.assign("ranker-v2", "user-43").variant),
    ]


def test_exposure_cache_is_a_bounded_lru(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client(exposure_cache_size=2)
    for unit in ["a", "b", "a", "c", "a", "b"]:
        client.assign("ranker-v2", unit)
    # a, b logged; a refreshed (most recent); c evicts b; a stays; b is logged again.
    assert client.flush()
    assert [e["unit_id"] for e in server.stored["exposures"]] == ["a", "b", "c", "b"]
    assert len(client._seen) == 2


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        pytest.param("dark", "traffic", id="outside-traffic"),
        pytest.param("missing", "unknown_experiment", id="unknown"),
    ],
)
def test_fallbacks_log_no_exposure(
    make_client: MakeClient, server: FakeServer, key: str, reason: str
) -> None:
    client = make_client()
    a = client.assign(key, "u1")
    assert (a.in_experiment, a.reason) == (False, reason)
    assert client.stats().queued == 0


def test_log_exposure_false_queues_nothing(make_client: MakeClient) -> None:
    client = make_client()
    assert client.assign("ranker-v2", "u1", log_exposure=False).in_experiment
    assert client.stats().queued == 0
    client.assign("ranker-v2", "u1")  # not remembered by the peek: logged now
    assert client.stats().queued == 1


def test_assign_all_logs_exposures_of_each_experiment_in(
    make_client: MakeClient, server: FakeServer
) -> None:
    client = make_client()
    everything = client.assign_all("u1", {"country": "US"})
    assert set(everything) == {"ranker-v2", "dark"}
    assert everything["ranker-v2"].reason == "assigned"
    assert everything["dark"].reason == "traffic"
    assert everything["ranker-v2"] == client.assign("ranker-v2", "u1", log_exposure=False)
    client.assign_all("u1")
    assert client.flush()
    assert [e["experiment"] for e in server.stored["exposures"]] == ["ranker-v2"]


@pytest.mark.parametrize(
    "unit_id",
    [
        pytest.param("", id="empty"),
        pytest.param("u" * 257, id="too-long"),
        pytest.param(7, id="not-str"),
    ],
)
def test_assign_with_a_bad_unit_reports_and_serves_an_error_fallback(
    make_client: MakeClient, errors: Recorder, unit_id: Any
) -> None:
    client = make_client()
    a = client.assign("ranker-v2", unit_id)
    assert (a.experiment, a.variant, a.params, a.in_experiment, a.reason) == (
        "ranker-v2",
        None,
        {},
        False,
        "error",
    )
    assert client.assign_all(unit_id) == {}
    assert [type(e) for e in errors.errors] == [InvalidItemError, InvalidItemError]
    assert errors.errors[0].message.startswith("unit_id:")
    assert client.stats().rejected == 0  # nothing was to be sent


def test_params_are_a_copy(make_client: MakeClient) -> None:
    client = make_client()
    a = client.assign("ranker-v2", "u1")
    a.params["model"] = "hacked"
    assert client.assign("ranker-v2", "u1").params["model"] != "hacked"


def test_a_full_queue_forgets_the_exposure_so_it_is_logged_later(
    make_client: MakeClient, server: FakeServer
) -> None:
    client = make_client(capacity=1)
    client.track("play", unit_id="filler")
    client.assign("ranker-v2", "u1")  # queue full: exposure dropped
    assert client.stats().dropped == 1
    assert client.flush()
    client.assign("ranker-v2", "u1")
    assert client.flush()
    assert [e["unit_id"] for e in server.stored["exposures"]] == ["u1"]


def test_prediction_takes_the_variant_from_local_assignment(
    make_client: MakeClient, server: FakeServer
) -> None:
    client = make_client()
    variant = client.assign("ranker-v2", "u9", log_exposure=False).variant
    pid = client.log_prediction("ranker-v2", unit_id="u9", model="ranker_b", score=0.83)
    client.log_label(pid, label=1)
    assert client.flush()
    [prediction] = server.stored["predictions"]
    assert (prediction["prediction_id"], prediction["variant"]) == (pid, variant)
    assert server.stored["labels"][0]["prediction_id"] == pid
    assert server.stored["exposures"] == []  # predictions do not log exposures
