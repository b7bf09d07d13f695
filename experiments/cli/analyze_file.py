"""``xp analyze-file``: analyse a per-unit CSV or Parquet file (a thin layer over analyze_frame).

Bad input exits 2 with one line on stderr; with ``--format json`` stdout holds
exactly one JSON document.
"""

from __future__ import annotations

import json
import sys

import click

from experiments.report.markdown import render_markdown


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{option} expects NAME=VALUE, got '{item}'")
        if name.strip() in out:
            raise ValueError(f"{option} names '{name.strip()}' twice")
        out[name.strip()] = value.strip()
    return out


def _weights(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    weights = {}
    for name, value in _pairs(tuple(p for p in text.split(",") if p.strip()), "--weights").items():
        try:
            weights[name] = float(value)
        except ValueError:
            raise ValueError(f"--weights: weight of '{name}' is not a number: '{value}'") from None
    return weights


def _number(text: str | None, option: str, kind: type[int] | type[float]) -> int | float | None:
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(
            f"{option} must be {'an integer' if kind is int else 'a number'}"
        ) from None


@click.command("analyze-file")
@click.argument("file", type=str)
@click.option("--variant-col", required=True, help="Column holding each unit's variant.")
@click.option("--control", required=True, help="The control variant's key.")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    required=True,
    help="NAME=SPEC with SPEC conversion:COL, count:COL, mean:COL or ratio:NUM/DEN (repeat).",
)
@click.option("--primary", default=None, help="The primary metric (default: the first).")
@click.option("--weights", default=None, help="Configured weights, NAME=W,... (default equal).")
@click.option(
    "--covariate",
    "covariates",
    multiple=True,
    help="CUPED covariate METRIC=COL, or METRIC=NUM/DEN for a ratio (repeat).",
)
@click.option("--alpha", default="0.05", show_default=True, help="Two-sided level.")
@click.option("--method", default="fixed", show_default=True, help="fixed|sequential|bayesian")
@click.option("--planned-n", default=None, help="Planned total units.")
@click.option("--format", "output_format", default="json", show_default=True, help="json|markdown")
def analyze_file_command(
    file: str,
    variant_col: str,
    control: str,
    metrics: tuple[str, ...],
    primary: str | None,
    weights: str | None,
    covariates: tuple[str, ...],
    alpha: str,
    method: str,
    planned_n: str | None,
    output_format: str,
) -> None:
    """Analyse FILE, a per-unit CSV or Parquet file (one row per unit)."""
    from experiments.stats.frame import analyze_frame, read_unit_file

    try:
        if output_format not in {"json", "markdown"}:
            raise ValueError(f"unknown format '{output_format}' (expected json or markdown)")
        alpha_value = _number(alpha, "--alpha", float)
        planned = _number(planned_n, "--planned-n", int)
        df = read_unit_file(file)
        report = analyze_frame(
            df,
            variant_col=variant_col,
            control=control,
            metrics=_pairs(metrics, "--metric"),
            primary=primary,
            weights=_weights(weights),
            covariates=_pairs(covariates, "--covariate") or None,
            alpha=float(alpha_value if alpha_value is not None else 0.05),
            method=method,
            planned_n=None if planned is None else int(planned),
        )
    except ValueError as exc:
        message = " ".join(str(exc).split())
        click.echo(f"error: {message}", err=True)
        sys.exit(2)
    if output_format == "json":
        click.echo(json.dumps(report, allow_nan=False))
    else:
        click.echo(render_markdown(report), nl=False)
