"""``xp simulate``, ``xp report``, ``xp analyze`` and ``xp plan``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from experiments.cli.base import State, handle_errors, now, pass_state, unit_of_work


@click.command()
@click.argument("key")
@click.option("--users", type=click.IntRange(1, 10_000_000), required=True)
@click.option("--days", type=click.IntRange(1, 365), default=14, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--lift",
    type=float,
    default=0.0,
    show_default=True,
    help="Relative effect of every treatment on response events.",
)
@pass_state
@handle_errors
def simulate(state: State, key: str, users: int, days: int, seed: int, lift: float) -> None:
    """Synthetic traffic for experiment KEY (through the ingestion service)."""
    from experiments.service.experiments import get_experiment
    from experiments.service.simulation import SimulationPlan, simulate_traffic

    with unit_of_work(state.settings) as session:
        experiment = get_experiment(session, key)
        events = {
            d.get(f)
            for m in experiment.metrics
            for d in [m.definition]
            for f in ("event", "numerator")
            if d.get(f)
        }
        effects = {
            v.key: {str(e): 1.0 + lift for e in events}
            for v in experiment.variants
            if not v.is_control
        }
        plan = SimulationPlan(users=users, days=days, seed=seed, effects=effects)
        with click.progressbar(length=users, label=f"simulating {key}", file=sys.stderr) as bar:
            result = simulate_traffic(
                session, key, plan, settings=state.settings, now=now(), on_progress=bar.update
            )
    click.echo(
        f"{result.units} units, {result.exposed} exposed, {result.events} events,"
        f" {result.predictions} predictions, {result.labels} labels",
        err=True,
    )


@click.command()
@click.argument("key")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "markdown", "html"]),
    default="markdown",
    show_default=True,
)
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write to FILE.")
@click.option("--refresh", is_flag=True, help="Compute a new snapshot first.")
@pass_state
@handle_errors
def report(state: State, key: str, fmt: str, output: Path | None, refresh: bool) -> None:
    """The significance report of experiment KEY (latest snapshot)."""
    from experiments.service.analysis import load_report

    with unit_of_work(state.settings) as session:
        document = load_report(session, key, settings=state.settings, now=now(), refresh=refresh)
    text = render_report(document, fmt)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


def render_report(document: dict[str, Any], fmt: str) -> str:
    """A report dict as json, markdown or self-contained html text."""
    if fmt == "json":
        return json.dumps(document, indent=2, allow_nan=False)
    if fmt == "markdown":
        from experiments.report.markdown import render_markdown

        return render_markdown(document)
    from experiments.report.html import render_report_html

    return render_report_html(document)


@click.command()
@click.option("--all", "all_", is_flag=True, required=True, help="Every running experiment.")
@pass_state
@handle_errors
def analyze(state: State, all_: bool) -> None:
    """Refresh the snapshots of every running experiment (for cron)."""
    from experiments.service.analysis import run_analysis
    from experiments.service.experiments import list_experiments

    with unit_of_work(state.settings) as session:
        keys = [e.key for e in list_experiments(session, "running")]
        with click.progressbar(keys, label="analysing", file=sys.stderr) as bar:
            for key in bar:
                run_analysis(session, key, settings=state.settings, now=now())
    click.echo(f"{len(keys)} experiment(s) analysed", err=True)


@click.command()
@click.argument("key")
@click.option(
    "--lookback-days",
    type=click.IntRange(1, 90),
    default=14,
    show_default=True,
    help="Days of recent events to estimate the baseline and traffic from.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@pass_state
@handle_errors
def plan(state: State, key: str, lookback_days: int, fmt: str) -> None:
    """Sample size and duration of experiment KEY from recent traffic."""
    from experiments.service.planning import plan_experiment

    with unit_of_work(state.settings) as session:
        result = plan_experiment(
            session, key, settings=state.settings, now=now(), lookback_days=lookback_days
        )
    if fmt == "json":
        click.echo(json.dumps(result, indent=2, allow_nan=False))
        return
    click.echo(f"{key}: primary metric {result['metric']} ({result['kind']})")
    click.echo(f"  last {result['lookback_days']} days: {result['active_units']:,} active units")
    if result["baseline_mean"] is not None:
        click.echo(
            f"  baseline mean {result['baseline_mean']:.4g},"
            f" sd per unit {result['baseline_sd']:.4g}"
        )
    if result["sample_size"] is not None:
        per_variant = ", ".join(f"{k} {v:,}" for k, v in result["per_variant"].items())
        click.echo(f"  sample size {result['sample_size']:,} units ({per_variant})")
    days = result["days_needed"]
    click.echo(f"  expected duration: {days} day(s)" if days else "  expected duration: unknown")
    for reason in result["reasons"]:
        click.echo(f"  - {reason}")
