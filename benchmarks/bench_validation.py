"""Validation of a 10,000-event body against an orjson parse of the same body, same run.

    .venv/bin/python benchmarks/bench_validation.py [--runs 9]

Rows (medians of ``--runs``; ratio = time / orjson's time):

- floor: ``orjson.loads(body)`` (parsing only, no checks);
- pydantic: ``TypeAdapter(Body).validate_json(body)`` with the ingestion's
  pydantic models (the whole batch in one call);
- msgspec: ``Decoder(Body).decode(body)`` with the same rules as structs,
  ``properties`` kept as raw JSON text (what the service runs);
- the hardening checks alone (NUL, timestamp offset and range, properties
  size, depth and escapes: ``check_items``) on the decoded batch, reported apart.

Target (issue 12): type validation ≤ 3× the parse.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter

from experiments.config import Settings
from experiments.service.batches import (
    EventIn,
    check_items,
    may_hold_big_numbers,
    validate_body,
)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn]


def make_body(count: int) -> bytes:
    now = datetime.now(UTC)
    return orjson.dumps(
        {
            "events": [
                {
                    "event_id": uuid.uuid4().hex,
                    "unit_id": f"user-{i % 5000}",
                    "name": "play" if i % 3 else "impression",
                    "value": 1.0,
                    "timestamp": (now - timedelta(seconds=i)).isoformat(),
                    "properties": {"slot": i % 10, "surface": "home"},
                }
                for i in range(count)
            ]
        }
    )


def median_seconds(run: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    body = make_body(args.events)
    settings = Settings(secret_key="bench")
    now = datetime.now(UTC)
    adapter = TypeAdapter(Body)
    items = validate_body("events", body, settings)
    print(f"load average before: {os.getloadavg()}")
    rows = [
        ("floor: orjson.loads", lambda: orjson.loads(body)),
        ("pydantic TypeAdapter.validate_json", lambda: adapter.validate_json(body)),
        (
            "msgspec decode (chosen; properties raw)",
            lambda: validate_body("events", body, settings),
        ),
        (
            "hardening checks alone (check_items)",
            lambda: check_items(  # as the service calls it (body-level scans included)
                "events",
                items,
                settings,
                now,
                may_hold_nul=b"\\u0000" in body,
                may_hold_big_numbers=may_hold_big_numbers(body),
            ),
        ),
    ]
    results = [(name, median_seconds(run, args.runs)) for name, run in rows]
    print(f"load average after: {os.getloadavg()}")
    base = results[0][1]
    print(f"{args.events:,} events, {len(body):,} bytes; medians of {args.runs} runs")
    print(f"{'path':<42} {'ms':>8} {'µs/event':>9} {'× parse':>8}")
    for name, seconds in results:
        print(
            f"{name:<42} {seconds * 1e3:>8.2f} {seconds / args.events * 1e6:>9.2f}"
            f" {seconds / base:>8.2f}"
        )
    chosen = results[2][1] / base
    print(
        f"type validation = {chosen:.2f}× the parse (target ≤ 3×): "
        + ("met" if chosen <= 3 else "MISSED")
    )


if __name__ == "__main__":
    main()
