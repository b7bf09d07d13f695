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
    from experiments.service.audit import cli_actor
    from experiments.service.experiments import apply_spec

    documents = _read_specs(file)
    actor = cli_actor()
    with unit_of_work(state.settings) as session:
        results = []
        for index, document in enumerate(documents):
            try:
                experiment, action = apply_spec(session, document, actor=actor, now=now())
            except InvalidInputError as exc:
                where = f"{file}[{index}]" if len(documents) > 1 else str(file)
                raise InvalidInputError(f"{where}: {exc.message}", exc.details) from None
            results.append((experiment.key, action))
    for key, action in results:
        click.echo(f"{action} {key}")


_LIFECYCLE = {
    "start": ("experiments", "Start experiment KEY (a draft), or restart it when stopped."),
    "stop": ("experiments", "Stop experiment KEY: every unit gets the control again."),
    "archive": ("experiments", "Archive experiment KEY (a draft or concluded): hidden from lists."),
    "promote": ("decisions", "Promote the shipped variant of KEY: every unit gets its params."),
    "unpromote": ("decisions", "Undo the promotion of KEY: every unit gets the default again."),
}


def _lifecycle(action: str) -> Callable[..., None]:
    module, help_text = _LIFECYCLE[action]

    @click.argument("key")
    @pass_state
    @handle_errors
    def command(state: State, key: str) -> None:
        import importlib

        from experiments.service.audit import cli_actor

        function = getattr(
            importlib.import_module(f"experiments.service.{module}"), f"{action}_experiment"
        )
        with unit_of_work(state.settings) as session:
            experiment = function(session, key, actor=cli_actor(), now=now())
            status = experiment.status
            promoted = experiment.promoted_at is not None
        click.echo(f"{key}: {status}" + (" (promoted)" if promoted else ""))

    command.__doc__ = help_text
    return command


for _action in _LIFECYCLE:
    experiments.command(_action)(_lifecycle(_action))


@experiments.command("conclude")
@click.argument("key")
@click.option("--decision", type=click.Choice(["ship", "rollback", "iterate"]), required=True)
@click.option("--variant", default=None, help="The variant to ship.")
@click.option("--rationale", required=True, help="Why: what the report showed.")
@pass_state
@handle_errors
def experiments_conclude(
    state: State, key: str, decision: str, variant: str | None, rationale: str
) -> None:
    """Record the decision on experiment KEY (decided by cli:USER) and free its buckets."""
    from experiments.service.audit import cli_actor
    from experiments.service.decisions import conclude_experiment

    with unit_of_work(state.settings) as session:
        experiment = conclude_experiment(
            session,
            key,
            decision=decision,
            variant=variant,
            rationale=rationale,
            actor=cli_actor(),
            now=now(),
        )
        shipped = experiment.decision_variant
    click.echo(f"{key}: concluded ({decision}{' ' + shipped if shipped else ''})")


@experiments.command("list")
@click.option("--archived", is_flag=True, help="Include archived experiments.")
@pass_state
@handle_errors
def experiments_list(state: State, archived: bool) -> None:
    """List experiments."""
    from experiments.service.experiments import list_experiments

    with unit_of_work(state.settings) as session:
        for e in list_experiments(session, include_archived=archived):
            click.echo(f"{e.key:<32} {e.status:<10} {e.name}")
