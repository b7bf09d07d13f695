"""SDK hot paths against their floors, measured in the same run.

    .venv/bin/pip install -c constraints.txt -e '.[bench]'   # GrowthBook, the peer
    .venv/bin/python benchmarks/bench_sdk.py [--runs 7] [--calls 100000]

Each row is the median of ``--runs`` runs of ``--calls`` calls, with a distinct
unit id per call (pre-generated, the same list for every row). Rows:

- floor: GrowthBook's Python SDK ``run()`` on a reused ``GrowthBook`` object
  (``set_attributes({"id": unit})`` then ``run(experiment)``; one experiment,
  3 variants; no tracking callback, its fastest public path);
- ``Client.assign()``: the same experiment (1 experiment, 3 variants) from a
  cached config, exposure logging on: every call is a new unit, so every call
  queues an exposure; the client's sender thread runs meanwhile and delivers
  every batch to a no-op transport (an ``httpx.MockTransport`` answering 200).
  After each run the client is flushed and ``delivered == enqueued`` is
  checked; the rate with the flush included is printed too;
- ``assign()`` of a unit already exposed; ``evaluate()`` alone; one XXH64 call;
- ``assign_all()`` over 20 experiments (µs per call; target ≤ 20 µs);
- ``track()`` (target < 10 µs).

Targets (issue 12): ``assign()`` ≥ 6× GrowthBook's ``run()``; ``assign_all`` over
20 experiments ≤ 20 µs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import xxhash

from experiments.assignment import evaluate, parse_config
from experiments.sdk import Client

PARAMS = [{"model": "ranker_a"}, {"model": "ranker_b"}, {"model": "ranker_c"}]


def experiment_document(key: str, salt: str, *, layer: dict[str, Any] | None = None) -> Any:
    return {
        "key": key,
        "status": "running",
        "salt": salt,
        "traffic": 1.0,
        "layer": layer,
        "variants": [
            {"key": "control", "weight": 1 / 3, "is_control": True, "params": PARAMS[0]},
            {"key": "treatment-b", "weight": 1 / 3, "is_control": False, "params": PARAMS[1]},
            {"key": "treatment-c", "weight": 1 / 3, "is_control": False, "params": PARAMS[2]},
        ],
    }


ONE = {"version": "bench-1", "experiments": [experiment_document("ranker-v2", "bench-salt")]}


def twenty() -> dict[str, Any]:
    """20 experiments: 10 independent, 10 sharing two layers, a 5% holdout."""
    experiments = [experiment_document(f"exp-{i}", f"salt-{i}") for i in range(10)]
    for i in range(10):
        layer = {
            "key": f"layer-{i % 2}",
            "salt": f"layer-salt-{i % 2}",
            "buckets": [[(i // 2) * 2000, (i // 2) * 2000 + 2000]],
        }
        experiments.append(experiment_document(f"layered-{i}", f"lsalt-{i}", layer=layer))
    return {
        "version": "bench-20",
        "holdout": {"fraction": 0.05, "salt": "bench-holdout"},
        "experiments": experiments,
    }


OK = b'{"accepted": 0, "duplicates": 0}'


def transport_for(config: dict[str, Any]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/config":
            return httpx.Response(200, json=config, headers={"ETag": '"bench"'})
        return httpx.Response(200, content=OK)  # the no-op sink

    return httpx.MockTransport(handle)


def new_client(config: dict[str, Any], *, threaded: bool = True, capacity: int) -> Client:
    return Client(
        "http://bench.invalid",
        "bench-key",
        transport=transport_for(config),
        threaded=threaded,
        capacity=capacity,
    )


def median_rate(runs: list[float], calls: int) -> float:
    return calls / statistics.median(runs)


def time_loop(run: Callable[[], object]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def growthbook_run(units: list[str]) -> Callable[[], tuple[float, float]] | None:
    """One timed GrowthBook loop per call: (wall seconds, process CPU seconds)."""
    try:
        from growthbook import Experiment, GrowthBook
    except ImportError:
        return None
    gb = GrowthBook(attributes={"id": "warm-up"})
    experiment = Experiment(key="ranker-v2", variations=PARAMS, weights=[1 / 3, 1 / 3, 1 / 3])
    set_attributes, run_experiment = gb.set_attributes, gb.run

    def loop() -> None:
        for unit in units:
            set_attributes({"id": unit})
            run_experiment(experiment)

    result = run_experiment(experiment)
    assert result.inExperiment, "GrowthBook did not assign the warm-up unit"

    def timed() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        loop()
        return time.perf_counter() - wall, time.process_time() - cpu

    return timed


def bench_assign(
    units: list[str], runs: int, floor: Callable[[], tuple[float, float]] | None
) -> dict[str, list[float]]:
    """Distinct units, exposure logging on, threaded sender to the no-op sink.

    Each run is preceded by a GrowthBook run (``floor``), so both see the same
    machine load; CPU time (all threads of the process, the sender's included)
    is recorded beside wall time.
    """
    out: dict[str, list[float]] = {k: [] for k in ("gb", "gb_cpu", "loop", "total", "cpu")}
    delivered = enqueued = 0
    for run in range(runs):
        if floor is not None:
            wall, cpu = floor()
            out["gb"].append(wall)
            out["gb_cpu"].append(cpu)
        client = new_client(ONE, capacity=len(units) + 1)
        prefix = f"r{run}-"
        run_units = [prefix + u for u in units]  # distinct across runs too
        assign = client.assign

        def loop(run_units: list[str] = run_units, assign: Any = assign) -> None:
            for unit in run_units:
                assign("ranker-v2", unit)

        began, cpu_began = time.perf_counter(), time.process_time()
        loop()
        out["loop"].append(time.perf_counter() - began)
        assert client.flush(timeout=120), "flush timed out"
        out["total"].append(time.perf_counter() - began)
        out["cpu"].append(time.process_time() - cpu_began)  # loop + sender until flushed
        stats = client.stats()
        assert stats.dropped == 0, stats
        assert stats.rejected == 0, stats
        assert stats.sent == len(units), f"delivered {stats.sent} != enqueued {len(units)}"
        delivered += stats.sent
        enqueued += len(units)
        client.close()
    out["delivered"], out["enqueued"] = [float(delivered)], [float(enqueued)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    runs, calls = args.runs, args.calls
    units = [f"user-{i}" for i in range(calls)]
    print(f"load average before: {os.getloadavg()}")

    measured = bench_assign(units, runs, growthbook_run(units))
    gb_runs, loop_times, total_times = measured["gb"], measured["loop"], measured["total"]
    delivered, enqueued = int(measured["delivered"][0]), int(measured["enqueued"][0])

    client = new_client(ONE, threaded=False, capacity=10)
    repeat = [time_loop(lambda: [client.assign("ranker-v2", "user-0") for _ in units])]
    repeat += [time_loop(lambda: [client.assign("ranker-v2", "user-0") for _ in units])]
    for _ in range(runs - 2):
        repeat.append(time_loop(lambda: [client.assign("ranker-v2", "user-0") for _ in units]))
    client._queue.drain()
    client.close(timeout=0)

    snapshot = parse_config(ONE)
    evaluate_times = [
        time_loop(lambda: [evaluate(snapshot, "ranker-v2", u) for u in units]) for _ in range(runs)
    ]
    digest = xxhash.xxh64_intdigest
    encoded = [b"variant:bench-salt\x00" + u.encode() for u in units]
    hash_times = [time_loop(lambda: [digest(m) for m in encoded]) for _ in range(runs)]

    many = twenty()
    all_client = new_client(many, capacity=len(units) * 20 + 1)
    some = units[: max(1, calls // 10)]
    all_times = []
    for run in range(runs):
        run_units = [f"a{run}-{u}" for u in some]
        all_times.append(
            time_loop(lambda run_units=run_units: [all_client.assign_all(u) for u in run_units])
        )
    assert all_client.flush(timeout=120)
    all_stats = all_client.stats()
    assert all_stats.dropped == 0, all_stats
    quiet_times = [
        time_loop(lambda: [all_client.assign_all(u, log_exposure=False) for u in some])
        for _ in range(runs)
    ]
    all_client.close()

    tracker = new_client(ONE, threaded=False, capacity=calls + 1)
    track_times = []
    for _ in range(runs):
        track_times.append(time_loop(lambda: [tracker.track("play", unit_id=u) for u in units]))
        tracker._queue.drain()
    tracker.close(timeout=0)

    print(f"load average after: {os.getloadavg()}")
    print(f"{runs} runs of {calls:,} calls, distinct unit ids; medians\n")
    print(f"{'path':<58} {'calls/s':>12} {'µs/call':>8} {'× GrowthBook':>13}")
    gb_rate = median_rate(gb_runs, calls) if gb_runs else None

    def row(name: str, rate: float) -> None:
        ratio = f"{rate / gb_rate:>13.2f}" if gb_rate else f"{'n/a':>13}"
        print(f"{name:<58} {rate:>12,.0f} {1e6 / rate:>8.2f} {ratio}")

    if gb_rate:
        row("floor: GrowthBook run() on a reused object", gb_rate)
    else:
        print("GrowthBook is not installed (pip install -e '.[bench]'): no floor")
    assign_rate = median_rate(loop_times, calls)
    row("Client.assign(), new unit, exposure queued (sender live)", assign_rate)
    row("  same, including the final flush to the no-op sink", median_rate(total_times, calls))
    row("Client.assign(), unit already exposed", median_rate(repeat, calls))
    row("evaluate() alone", median_rate(evaluate_times, calls))
    row("one XXH64 call (xxh64_intdigest)", median_rate(hash_times, calls))
    row("Client.track()", median_rate(track_times, calls))
    all_us = statistics.median(all_times) / len(some) * 1e6
    quiet_us = statistics.median(quiet_times) / len(some) * 1e6
    print(
        f"\nassign_all() over 20 experiments, new unit (~12 exposures queued): {all_us:.2f} µs"
        f" per call (target ≤ 20 µs): " + ("met" if all_us <= 20 else "MISSED")
    )
    print(
        f"assign_all() over 20 experiments, log_exposure=False: {quiet_us:.2f} µs per call"
        " (target ≤ 20 µs): " + ("met" if quiet_us <= 20 else "MISSED")
    )
    print(f"exposures delivered {delivered:,} == enqueued {enqueued:,}: {delivered == enqueued}")
    print(f"assign_all exposures sent {all_stats.sent:,}, dropped {all_stats.dropped}")
    if gb_rate:
        ratio = assign_rate / gb_rate
        verdict = "met" if ratio >= 6 else "MISSED"
        print(f"Client.assign() = {ratio:.2f}× GrowthBook run() (target ≥ 6×): {verdict}")
        spread = [g / t for g, t in zip(gb_runs, loop_times, strict=True)]
        print(
            "  per-run ratios (each against the GrowthBook run just before it): "
            + ", ".join(f"{r:.2f}" for r in spread)
        )
        cpu_ratio = statistics.median(measured["gb_cpu"]) / statistics.median(measured["cpu"])
        print(f"  CPU time, sender included until flushed: {cpu_ratio:.2f}× GrowthBook's")


if __name__ == "__main__":
    main()
