"""The ``xp`` command line (DESIGN.md "CLI"): the click group and its commands.

One module per command group; :mod:`.base` holds what they share (settings,
the unit of work, the mapping of errors to exit codes: 0 success, 2 bad input,
4 a failing health check, 1 anything else).
"""

from __future__ import annotations

import logging
import sys

import click

from experiments.cli.analysis import analyze, plan, report, simulate
from experiments.cli.analyze_file import analyze_file_command
from experiments.cli.db import db, serve
from experiments.cli.demo import demo
from experiments.cli.experiments import experiments
from experiments.cli.keys import keys
from experiments.cli.users import users


@click.group()
@click.version_option(package_name="xp")
def main() -> None:
    """xp: A/B experiments that tie ML models to business metrics."""
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s"
    )


for _command in (db, serve, keys, users, experiments, simulate, report, analyze, plan, demo):
    main.add_command(_command)
main.add_command(analyze_file_command)

__all__ = ["main"]
