"""Server-side assign under load against ``GET /healthz`` on the same server, same clients.

    apt-get install wrk    # Debian's wrk: the load generator (C, keep-alive, Lua scripts)
    .venv/bin/python benchmarks/bench_assign_server.py [--url postgresql://...] [--runs 5]

Starts ``xp serve --workers 2`` on a fresh database with one running experiment
(3 variants, all traffic), then alternates, ``--runs`` times each, 10-second
wrk runs with 8 keep-alive connections (2 threads) of:

- the floor: ``GET /healthz`` (no key; the app and a database round trip);
- ``POST /api/v1/assign`` with a new unit id on every request, so every
  request records a first exposure, committed before the answer.

Prints the rates and the p50/p99 latencies (medians over the runs) and the
ratios. After every assign run it checks that every unit answered has its
exposure stored (durable before the answer) and that no request failed.
Targets (issue 12): rate ≥ 0.7× /healthz's, p99 ≤ 2× /healthz's p99, on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from experiments.storage.engine import make_engine, normalize_url
from experiments.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent

SPEC = {
    "key": "bench-assign",
    "name": "Server-side assign benchmark",
    "variants": [
        {"key": "control", "weight": 0.34, "is_control": True, "params": {"model": "a"}},
        {"key": "treatment-b", "weight": 0.33, "params": {"model": "b"}},
        {"key": "treatment-c", "weight": 0.33, "params": {"model": "c"}},
    ],
    "metrics": [{"name": "converted", "kind": "conversion", "event": "buy", "role": "primary"}],
}

LUA = r"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local prefix = "u"
function init(args)
  prefix = args[1] .. "-" .. tostring(tid) .. "-"
end
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, '{"unit_id":"' .. prefix .. counter .. '"}')
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_database(url: str | None, tmp: Path) -> str:
    if url is None:
        return f"sqlite:///{tmp / 'bench.sqlite3'}"
    name = f"xp_bench_assign_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(normalize_url(url)).set(database=name).render_as_string(hide_password=False)


def drop_database(base: str | None, url: str) -> None:
    if base is None:
        return
    name = make_url(url).database
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "experiments.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"xp {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def wrk(
    url: str, script: Path, seconds: int, extra: list[str], prefix: str = "x"
) -> dict[str, Any]:
    command = ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), url]
    done = subprocess.run(
        [*command, "--", prefix, *extra], capture_output=True, text=True, check=True
    )
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {
        "rate": rate,
        "requests": total,
        "p50": pct("50"),
        "p99": pct("99"),
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="PostgreSQL server URL; default SQLite")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="run gunicorn's gthread worker with this many threads instead of `xp serve`",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp())
    database = fresh_database(args.url, tmp)
    engine = make_engine(database)
    upgrade(engine)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env.update(
        XP_DATABASE_URL=database,
        XP_INSTANCE_PATH=str(tmp / "instance"),
        XP_SECRET_KEY="bench",
        XP_LOG_LEVEL="WARNING",
    )
    spec = tmp / "spec.json"
    spec.write_text(__import__("json").dumps(SPEC))
    run_cli(env, "experiments", "apply", str(spec))
    run_cli(env, "experiments", "start", "bench-assign")
    key = run_cli(env, "keys", "create", "--scope", "ingest").strip().splitlines()[-1]
    command = [sys.executable, "-m", "experiments.cli", "serve", "--port", str(port)]
    command += ["--workers", str(args.workers)]
    if args.threads:
        command = [str(Path(sys.executable).parent / "gunicorn"), "-k", "gthread"]
        command += ["--threads", str(args.threads), "-w", str(args.workers)]
        command += ["-b", f"127.0.0.1:{port}", "web:create_app()"]
    server = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "server.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        healthz_lua = tmp / "healthz.lua"
        healthz_lua.write_text("")
        assign_lua = tmp / "assign.lua"
        assign_lua.write_text(
            'wrk.method = "POST"\n'
            f'wrk.headers["Authorization"] = "Bearer {key}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n' + LUA
        )
        how = f"gthread x {args.threads} threads" if args.threads else "xp serve"
        print(f"database: {engine.dialect.name}; {how}, {args.workers} workers; wrk -t2 -c8")
        print(f"load average before: {os.getloadavg()}")
        wrk(f"{base}/healthz", healthz_lua, 2, [])  # warm-up
        wrk(f"{base}/api/v1/assign", assign_lua, 2, [], prefix="warm")
        health, assign = [], []
        answered = 0
        for run in range(args.runs):
            health.append(wrk(f"{base}/healthz", healthz_lua, args.seconds, []))
            result = wrk(f"{base}/api/v1/assign", assign_lua, args.seconds, [], prefix=f"r{run}")
            assign.append(result)
            assert result["non2xx"] == 0, result
            answered += result["requests"]
        print(f"load average after: {os.getloadavg()}")
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT count(*) FROM exposures WHERE unit_id NOT LIKE 'warm-%'")
            ).scalar_one()
        assert stored >= answered, f"{stored} exposures stored < {answered} answered"
        print(f"exposures stored {stored:,} ≥ answered {answered:,} (in-flight at the end too)")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        engine.dispose()
        drop_database(args.url, database)

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"\n{'path':<44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    table = [("floor: GET /healthz", health), ("POST /api/v1/assign (new unit)", assign)]
    for name, rows in table:
        rate, p50, p99 = med(rows, "rate"), med(rows, "p50"), med(rows, "p99")
        print(f"{name:<44} {rate:>9,.0f} {p50:>8.2f} {p99:>8.2f}")
    rate_ratio = med(assign, "rate") / med(health, "rate")
    p99_ratio = med(assign, "p99") / med(health, "p99")
    verdict = "met" if rate_ratio >= 0.7 else "MISSED"
    print(f"rate = {rate_ratio:.2f}× /healthz (target ≥ 0.7): {verdict}")
    print(
        f"p99 = {p99_ratio:.2f}× /healthz's (target ≤ 2): {'met' if p99_ratio <= 2 else 'MISSED'}"
    )
    print(
        "per-run rate ratios: "
        + ", ".join(f"{a['rate'] / h['rate']:.2f}" for a, h in zip(assign, health, strict=True))
    )


if __name__ == "__main__":
    main()
