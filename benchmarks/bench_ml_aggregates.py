"""ML metrics in SQL against loading every labelled prediction into Python.

    .venv/bin/python benchmarks/bench_ml_aggregates.py [--predictions 1000000]
        [--per-unit 4] [--kinds auc,log_loss,calibration_error] [--database FILE]

Builds a SQLite database (a temporary file unless --database names one that
already holds the data) with --predictions labelled predictions of one
experiment, split between two variants, each unit having --per-unit predictions.
Then, per metric kind, it times (one run each, same process, same database):

- **load (baseline)**: every labelled prediction loaded into numpy (the path the SQL replaced)
  arrays → ``stats.ml_metrics.compute_ml_metric`` with the unit ids as clusters
  (the seeded cluster bootstrap), per variant: what the analysis did before;
- **sql**: ``storage.ml_aggregates.compute_ml_summaries`` →
  ``stats.ml_summaries.estimate_from_summary`` per variant.

Prints seconds, the ratio sql / load, the peak Python memory of each path
(tracemalloc, measured in a second, untimed run) and the largest difference of
the estimates (for the AUC, against the histogram's stated error bound).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from experiments.domain import MetricKind
from experiments.stats.ml_metrics import compute_ml_metric
from experiments.stats.ml_summaries import estimate_from_summary
from experiments.storage.engine import make_engine
from experiments.storage.ingest import LABELS, PREDICTIONS, insert_ignoring_duplicates
from experiments.storage.migrate import upgrade
from experiments.storage.ml_aggregates import compute_ml_summaries
from experiments.storage.models import Experiment, Label, Prediction

T0 = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = T0 + timedelta(days=1)
BATCH = 50_000


def _populate(session: Session, predictions: int, per_unit: int) -> int:
    exp = Experiment(
        key="bench-ml",
        name="bench",
        status="running",
        salt="s",
        epoch=0,
        forced={},
        extra={},
        created_at=T0,
        updated_at=T0,
    )
    session.add(exp)
    session.flush()
    rng = np.random.default_rng(0)
    units = predictions // per_unit
    effect = rng.normal(0.0, 1.0, units)
    for start in range(0, predictions, BATCH):
        index = np.arange(start, min(start + BATCH, predictions))
        unit = index // per_unit
        variant = np.where(unit % 2 == 0, "control", "treatment")
        scores = 1.0 / (1.0 + np.exp(-(effect[unit] + rng.normal(0.0, 1.0, index.size))))
        labels = (rng.random(index.size) < 1.0 / (1.0 + np.exp(-1.5 * effect[unit]))) * 1.0
        ids = [uuid.uuid4().hex for _ in index]
        insert_ignoring_duplicates(
            session,
            PREDICTIONS,
            [
                (pid, f"u{u}", exp.id, v, "ranker", float(s), T0, T0)
                for pid, u, v, s in zip(ids, unit, variant, scores, strict=True)
            ],
        )
        insert_ignoring_duplicates(
            session, LABELS, [(pid, float(y), T0, T0) for pid, y in zip(ids, labels, strict=True)]
        )
    session.commit()
    return exp.id


def _load_path(session: Session, experiment_id: int, kind: MetricKind) -> dict[str, Any]:
    """The baseline: every labelled prediction of each variant loaded into Python."""
    stmt = (
        select(Prediction.variant, Prediction.score, Label.label, Prediction.unit_id)
        .join(Label, Label.prediction_id == Prediction.prediction_id)
        .where(Prediction.experiment_id == experiment_id, Prediction.timestamp < UNTIL)
    )
    rows: dict[str, list[tuple[float, float, str]]] = {}
    for variant, score, label, unit in session.execute(stmt):
        rows.setdefault(str(variant), []).append((float(score), float(label), str(unit)))
    out = {}
    for variant, found in rows.items():
        scores, labels, units = zip(*found, strict=True)
        _, clusters = np.unique(np.asarray(units), return_inverse=True)
        out[variant] = compute_ml_metric(
            kind, np.asarray(scores), np.asarray(labels), alpha=0.05, clusters=clusters
        )
    return out


def _sql_path(session: Session, experiment_id: int, kind: MetricKind) -> dict[str, Any]:
    found = compute_ml_summaries(session, experiment_id=experiment_id, kind=kind, until=UNTIL)
    return {v: estimate_from_summary(kind, s, alpha=0.05) for v, s in found.items()}


def _timed(run: Callable[[], dict[str, Any]]) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def _peak_mib(run: Callable[[], dict[str, Any]]) -> float:
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main(argv: list[str] | None = None) -> None:
    """Build (or reuse) the database and print the comparison table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--per-unit", type=int, default=4)
    parser.add_argument("--kinds", default="auc,log_loss,calibration_error")
    parser.add_argument("--database", type=Path, default=None)
    args = parser.parse_args(argv)
    folder = tempfile.TemporaryDirectory()
    path = args.database or Path(folder.name) / "bench.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    fresh = not path.exists()
    if fresh:
        upgrade(engine)
    with Session(engine) as session:
        if fresh:
            start = time.perf_counter()
            experiment_id = _populate(session, args.predictions, args.per_unit)
            print(
                f"inserted {args.predictions} labelled predictions in "
                f"{time.perf_counter() - start:.0f} s"
            )
        else:
            experiment_id = session.query(Experiment.id).filter_by(key="bench-ml").one()[0]
        print(
            f"{'metric':<18} {'load s':>8} {'sql s':>8} {'sql/load':>9} "
            f"{'load MiB':>9} {'sql MiB':>8} {'max |diff|':>11} {'bound':>9}"
        )
        for name in args.kinds.split(","):
            kind = MetricKind(name)
            load_s, old = _timed(lambda k=kind: _load_path(session, experiment_id, k))
            sql_s, new = _timed(lambda k=kind: _sql_path(session, experiment_id, k))
            load_mib = _peak_mib(lambda k=kind: _load_path(session, experiment_id, k))
            sql_mib = _peak_mib(lambda k=kind: _sql_path(session, experiment_id, k))
            diff = max(abs(new[v].estimate.estimate - old[v].estimate) for v in old)
            bound = max(new[v].error_bound for v in new)
            print(
                f"{name:<18} {load_s:>8.2f} {sql_s:>8.2f} {sql_s / load_s:>9.3f} "
                f"{load_mib:>9.1f} {sql_mib:>8.2f} {diff:>11.2e} {bound:>9.2e}"
            )
    engine.dispose()
    folder.cleanup()


if __name__ == "__main__":
    main()
