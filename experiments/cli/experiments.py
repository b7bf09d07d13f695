"""``xp experiments``: experiments as code, and their lifecycle."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from experiments.cli.base import State, handle_errors, now, pass_state, unit_of_work
from experiments.errors import InvalidInputError


@click.group()
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
def experiments_apply(state: State, file: Path) -> None:
    """Create or update experiments from a JSON or TOML spec file (one or a list)."""
    from experiments.service.experiments import apply_spec

    documents = _read_specs(file)
    with unit_of_work(state.settings) as session:
        results = []
        for index, document in enumerate(documents):
            try:
                experiment, action = apply_spec(session, document, now=now())
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
    def command(state: State, key: str) -> None:
        from experiments.service import experiments as svc

        function = getattr(svc, f"{action}_experiment")
        with unit_of_work(state.settings) as session:
            experiment = function(session, key, now=now())
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
    state: State,
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
            now=now(),
        )
        shipped = experiment.decision_variant
    click.echo(f"{key}: concluded ({decision}{' ' + shipped if shipped else ''})")


@experiments.command("list")
@pass_state
@handle_errors
def experiments_list(state: State) -> None:
    """List experiments."""
    from experiments.service.experiments import list_experiments

    with unit_of_work(state.settings) as session:
        for e in list_experiments(session):
            click.echo(f"{e.key:<32} {e.status:<10} {e.name}")
