"""The ``xp`` command line (DESIGN.md "CLI").

Exit codes: 0 success; 2 bad input (one line on stderr naming it); 1 anything
else. With ``--format json`` stdout holds exactly one JSON document; logs and
progress bars go to stderr.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from experiments.cli_analyze_file import analyze_file_command
from experiments.config import Settings, load_settings
from experiments.errors import ConfigError, InvalidInputError, NotFoundError, XpError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("xp")


def _now() -> datetime:
    return datetime.now(UTC)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Map domain errors to exit codes: bad input and unknown names → 2, others → 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (InvalidInputError, NotFoundError, ConfigError) as exc:
            _fail(exc.message, 2)
        except XpError as exc:
            _fail(exc.message, 1)

    return wrapper  # type: ignore[return-value]


class _State:
    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigError as exc:
                _fail(exc.message, 2)
        assert self._settings is not None
        return self._settings


@contextmanager
def unit_of_work(settings: Settings) -> Iterator[Session]:
    """A session whose work is committed when the block succeeds (the CLI owns it)."""
    from experiments.storage.engine import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    session = make_session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        engine.dispose()


pass_state = click.make_pass_decorator(_State, ensure=True)


@click.group()
@click.version_option(package_name="xp")
def main() -> None:
    """xp: A/B experiments that tie ML models to business metrics."""
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s"
    )


# ----------------------------------------------------------------------------- db
@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_state
@handle_errors
def db_upgrade(state: _State) -> None:
    """Apply migrations to the configured database."""
    from experiments.storage.engine import make_engine
    from experiments.storage.migrate import upgrade

    engine = make_engine(state.settings.database_url)
    upgrade(engine)
    engine.dispose()
    click.echo(
        f"database at {engine.url.render_as_string(hide_password=True)} is up to date", err=True
    )


def _require_migrated(settings: Settings) -> None:
    """Stop with a clear message when the schema is behind the code."""
    from experiments.storage.engine import make_engine
    from experiments.storage.migrate import pending_revision

    engine = make_engine(settings.database_url)
    try:
        head = pending_revision(engine)
    finally:
        engine.dispose()
    if head is not None:
        raise InvalidInputError(
            f"the database at {engine.url.render_as_string(hide_password=True)} is not at"
            f" schema {head}: run `xp db upgrade` first"
        )


# -------------------------------------------------------------------------- serve
@main.command()
@click.option("--host", default=None, help="Interface to bind (default: settings.host).")
@click.option("--port", type=int, default=None, help="Port (default: settings.port).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Gunicorn workers.")
@pass_state
@handle_errors
def serve(state: _State, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the web app with gunicorn."""
    from experiments.server import run_server

    settings = state.settings
    _require_migrated(settings)
    run_server(settings, host or settings.host, port or settings.port, workers or settings.workers)


# ----------------------------------------------------------------------------- keys
@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--scope", type=click.Choice(["ingest", "admin"]), required=True)
@click.option("--name", default=None, help="A name people recognise.")
@pass_state
@handle_errors
def keys_create(state: _State, scope: str, name: str | None) -> None:
    """Create an API key and print it (the key alone on the last line)."""
    from experiments.service.keys import create_api_key

    with unit_of_work(state.settings) as session:
        key, token = create_api_key(session, scope=scope, name=name, now=_now())
        click.echo(
            f"created {key.scope} key {key.name!r} (prefix {key.prefix}); shown once:", err=True
        )
    click.echo(token)


# ---------------------------------------------------------------------- experiments
@main.group()
def experiments() -> None:
    """Experiments as code, and their lifecycle."""


def _read_specs(path: Path) -> list[Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(raw.decode("utf-8"))
            data = data.get("experiments", data)
        else:
            data = json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}"
        ) from None
    return data if isinstance(data, list) else [data]


@experiments.command("apply")
@click.argument("file", type=click.Path(path_type=Path))
@pass_state
@handle_errors
def experiments_apply(state: _State, file: Path) -> None:
    """Create or update experiments from a JSON or TOML spec file (one or a list)."""
    from experiments.service.experiments import apply_spec

    documents = _read_specs(file)
    with unit_of_work(state.settings) as session:
        results = []
        for index, document in enumerate(documents):
            try:
                experiment, action = apply_spec(session, document, now=_now())
            except InvalidInputError as exc:
                where = f"{file}[{index}]" if len(documents) > 1 else str(file)
                raise InvalidInputError(f"{where}: {exc.message}", exc.details) from None
            results.append((experiment.key, action))
    for key, action in results:
        click.echo(f"{action} {key}")


def _lifecycle(action: str) -> Callable[..., None]:
    @click.argument("key")
    @pass_state
    @handle_errors
    def command(state: _State, key: str) -> None:
        from experiments.service import experiments as svc

        function = getattr(svc, f"{action}_experiment")
        with unit_of_work(state.settings) as session:
            experiment = function(session, key, now=_now())
            status = experiment.status
        click.echo(f"{key}: {status}" + (" (promoted)" if action == "promote" else ""))

    command.__doc__ = f"{action.capitalize()} experiment KEY."
    return command


for _action in ("start", "stop", "promote"):
    experiments.command(_action)(_lifecycle(_action))


@experiments.command("conclude")
@click.argument("key")
@click.option("--decision", type=click.Choice(["ship", "rollback", "iterate"]), required=True)
@click.option("--variant", default=None, help="The variant to ship.")
@click.option("--rationale", required=True, help="Why: what the report showed.")
@click.option("--by", "decided_by", default=None, help="Who decided (default: $USER).")
@pass_state
@handle_errors
def experiments_conclude(
    state: _State,
    key: str,
    decision: str,
    variant: str | None,
    rationale: str,
    decided_by: str | None,
) -> None:
    """Record the decision on experiment KEY and return its layer buckets."""
    import getpass

    from experiments.service.experiments import conclude_experiment

    with unit_of_work(state.settings) as session:
        experiment = conclude_experiment(
            session,
            key,
            decision=decision,
            variant=variant,
            rationale=rationale,
            decided_by=decided_by or getpass.getuser(),
            now=_now(),
        )
        shipped = experiment.decision_variant
    click.echo(f"{key}: concluded ({decision}{' ' + shipped if shipped else ''})")


@experiments.command("list")
@pass_state
@handle_errors
def experiments_list(state: _State) -> None:
    """List experiments."""
    from experiments.service.experiments import list_experiments

    with unit_of_work(state.settings) as session:
        for e in list_experiments(session):
            click.echo(f"{e.key:<32} {e.status:<10} {e.name}")


# ------------------------------------------------------------------------- simulate
@main.command()
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
def simulate(state: _State, key: str, users: int, days: int, seed: int, lift: float) -> None:
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
                session, key, plan, settings=state.settings, now=_now(), on_progress=bar.update
            )
    click.echo(
        f"{result.units} units, {result.exposed} exposed, {result.events} events,"
        f" {result.predictions} predictions, {result.labels} labels",
        err=True,
    )


# --------------------------------------------------------------------------- report
@main.command()
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
def report(state: _State, key: str, fmt: str, output: Path | None, refresh: bool) -> None:
    """The significance report of experiment KEY (latest snapshot)."""
    from experiments.service.analysis import load_report

    with unit_of_work(state.settings) as session:
        document = load_report(session, key, settings=state.settings, now=_now(), refresh=refresh)
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
        from experiments.report_markdown import render_markdown

        return render_markdown(document)
    from experiments.report_html import render_report_html

    return render_report_html(document)


@main.command()
@click.option("--all", "all_", is_flag=True, required=True, help="Every running experiment.")
@pass_state
@handle_errors
def analyze(state: _State, all_: bool) -> None:
    """Refresh the snapshots of every running experiment (for cron)."""
    from experiments.service.analysis import run_analysis
    from experiments.service.experiments import list_experiments

    with unit_of_work(state.settings) as session:
        keys = [e.key for e in list_experiments(session, "running")]
        with click.progressbar(keys, label="analysing", file=sys.stderr) as bar:
            for key in bar:
                run_analysis(session, key, settings=state.settings, now=_now())
    click.echo(f"{len(keys)} experiment(s) analysed", err=True)


@main.command()
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
def plan(state: _State, key: str, lookback_days: int, fmt: str) -> None:
    """Sample size and duration of experiment KEY from recent traffic."""
    from experiments.service.planning import plan_experiment

    with unit_of_work(state.settings) as session:
        result = plan_experiment(
            session, key, settings=state.settings, now=_now(), lookback_days=lookback_days
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


# ----------------------------------------------------------------------------- demo
@main.command()
@click.option("--users", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True)
@click.option("--serve/--no-serve", default=True, show_default=True, help="Serve it afterwards.")
@click.option("--port", type=int, default=None)
@pass_state
@handle_errors
def demo(state: _State, users: int, serve: bool, port: int | None) -> None:
    """Create a demo database with realistic experiments, then serve it."""
    from experiments.service.demo import seed_demo
    from experiments.storage.engine import make_engine
    from experiments.storage.migrate import upgrade

    settings = state.settings
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    with (
        unit_of_work(settings) as session,
        click.progressbar(
            length=users * 2, label="simulating demo traffic", file=sys.stderr
        ) as bar,
    ):
        summary = seed_demo(
            session, settings=settings, now=_now(), users=users, on_progress=bar.update
        )
    for line in summary:
        click.echo(line, err=True)
    if serve:
        from experiments.server import run_server

        url = f"http://{settings.host}:{port or settings.port}/"
        click.echo(f"xp demo is serving at {url}  (Ctrl-C to stop)")
        run_server(settings, settings.host, port or settings.port, settings.workers)


main.add_command(analyze_file_command)

if __name__ == "__main__":
    main()
