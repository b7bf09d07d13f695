"""The create-experiment form: rows of inputs ↔ a spec document, and errors by field.

The form posts flat names: ``key``, ``name``, ..., ``variants-1-weight``,
``control`` (the index of the control row), ``metrics-0-kind``. Blank rows are
skipped, so a document index can differ from a row index; :class:`SpecForm`
keeps both maps to put each problem of ``validate_spec`` (a path such as
``variants[1].weight``) next to the input it concerns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from experiments.domain import AnalysisMethod, MetricKind, MetricRole
from experiments.errors import FieldProblem

TOP_FIELDS = ("key", "name", "hypothesis", "layer", "traffic", "alpha", "power", "mde", "method")
NUMBER_FIELDS = frozenset({"traffic", "alpha", "power", "mde"})
VARIANT_FIELDS = ("key", "weight", "params")
METRIC_FIELDS = ("name", "kind", "role", "event", "numerator", "denominator", "margin")
MAX_VARIANT_ROWS = 26
MAX_METRIC_ROWS = 100
KINDS = tuple(k.value for k in MetricKind)
ROLES = tuple(r.value for r in MetricRole)
METHODS = tuple(m.value for m in AnalysisMethod)

_PATH = re.compile(r"^(?P<section>variants|metrics)\[(?P<index>\d+)\](?:\.(?P<field>\w+))?")


def _number(raw: str, integer: bool = False) -> Any:
    """A number from a text input; unparseable text is passed on for the validator to name."""
    try:
        return int(raw) if integer else float(raw)
    except ValueError:
        return raw


@dataclass
class SpecForm:
    """What the user typed, how many rows to show, and the problems by input name."""

    values: dict[str, str]
    variant_rows: int = 2
    metric_rows: int = 3
    errors: dict[str, list[str]] = field(default_factory=dict)
    variant_index: list[int] = field(default_factory=list)
    metric_index: list[int] = field(default_factory=list)

    @classmethod
    def initial(cls) -> SpecForm:
        """The empty form: a control and a treatment at 50/50 and a primary metric row."""
        return cls(
            values={
                "traffic": "1",
                "method": "fixed",
                "control": "0",
                "variants-0-key": "control",
                "variants-0-weight": "0.5",
                "variants-1-key": "treatment",
                "variants-1-weight": "0.5",
                "metrics-0-kind": "conversion",
                "metrics-0-role": "primary",
                "metrics-1-kind": "mean",
                "metrics-1-role": "guardrail",
                "metrics-2-kind": "conversion",
                "metrics-2-role": "secondary",
            }
        )

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> SpecForm:
        """The submitted values (only the names this form knows)."""

        def rows(name: str, default: int, limit: int) -> int:
            try:
                return min(max(int(form.get(name, default)), 1), limit)
            except ValueError:
                return default

        variant_rows = rows("variant_rows", 2, MAX_VARIANT_ROWS)
        metric_rows = rows("metric_rows", 3, MAX_METRIC_ROWS)
        names = [*TOP_FIELDS, "planned_n", "control", "spec_json"]
        names += [f"variants-{i}-{f}" for i in range(variant_rows) for f in VARIANT_FIELDS]
        names += [f"metrics-{i}-{f}" for i in range(metric_rows) for f in METRIC_FIELDS]
        values = {name: str(form[name]) for name in names if name in form}
        return cls(values, variant_rows, metric_rows)

    def value(self, name: str, default: str = "") -> str:
        """The entered value of an input."""
        return self.values.get(name, default)

    def add_row(self, section: str) -> None:
        """Show one more empty variant or metric row."""
        if section == "variant":
            self.variant_rows = min(self.variant_rows + 1, MAX_VARIANT_ROWS)
        elif section == "metric":
            self.metric_rows = min(self.metric_rows + 1, MAX_METRIC_ROWS)

    def _text(self, name: str) -> str:
        return self.values.get(name, "").strip()

    def _variants(self, problems: list[FieldProblem]) -> list[dict[str, Any]]:
        variants: list[dict[str, Any]] = []
        self.variant_index = []
        for row in range(self.variant_rows):
            raw = {f: self._text(f"variants-{row}-{f}") for f in VARIANT_FIELDS}
            if not any(raw.values()):
                continue
            path = f"variants[{len(variants)}]"
            variant: dict[str, Any] = {"key": raw["key"]}
            if raw["weight"]:
                variant["weight"] = _number(raw["weight"])
            variant["is_control"] = self._text("control") == str(row)
            if raw["params"]:
                try:
                    variant["params"] = json.loads(raw["params"])
                except json.JSONDecodeError as exc:
                    problems.append(
                        FieldProblem(
                            f"{path}.params",
                            f"is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})",
                        )
                    )
            self.variant_index.append(row)
            variants.append(variant)
        return variants

    def _metrics(self) -> list[dict[str, Any]]:
        metrics: list[dict[str, Any]] = []
        self.metric_index = []
        for row in range(self.metric_rows):
            raw = {f: self._text(f"metrics-{row}-{f}") for f in METRIC_FIELDS}
            typed = ("name", "event", "numerator", "denominator", "margin")
            if not any(raw[f] for f in typed):
                continue
            metric: dict[str, Any] = {
                f: raw[f] for f in ("name", "kind", "role", "event", "numerator", "denominator")
            }
            metric = {k: v for k, v in metric.items() if v or k == "name"}
            if raw["margin"]:
                metric["margin"] = _number(raw["margin"])
            self.metric_index.append(row)
            metrics.append(metric)
        return metrics

    def document(self) -> tuple[dict[str, Any], list[FieldProblem]]:
        """The spec document the rows describe, and the problems found while reading them.

        Blank optional inputs are left out, so the spec's defaults apply.
        """
        problems: list[FieldProblem] = []
        doc: dict[str, Any] = {"key": self._text("key"), "name": self._text("name")}
        for name in ("hypothesis", "layer", "method"):
            if self._text(name):
                doc[name] = self._text(name)
        for name in sorted(NUMBER_FIELDS):
            if self._text(name):
                doc[name] = _number(self._text(name))
        if self._text("planned_n"):
            doc["planned_n"] = _number(self._text("planned_n"), integer=True)
        doc["variants"] = self._variants(problems)
        doc["metrics"] = self._metrics()
        return doc, problems

    def json_document(self) -> tuple[Any, list[FieldProblem]]:
        """The spec from the "spec as JSON" textarea."""
        try:
            return json.loads(self.values.get("spec_json", "")), []
        except json.JSONDecodeError as exc:
            message = f"is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
            return None, [FieldProblem("spec_json", message)]

    def input_for(self, path: str) -> str:
        """The input (or row, or section) a problem's path belongs beside.

        ``variants[1].weight`` → ``variants-<row>-weight``; a field the row has
        no input for → the row (``metrics-<row>``); ``variants`` → the section;
        a top-level field → its input; anything else → ``form``.
        """
        match = _PATH.match(path)
        if match:
            section, index, name = match["section"], int(match["index"]), match["field"]
            rows = self.variant_index if section == "variants" else self.metric_index
            if index >= len(rows):
                return section
            prefix = f"{section}-{rows[index]}"
            fields = VARIANT_FIELDS if section == "variants" else METRIC_FIELDS
            if name == "is_control" and section == "variants":
                return f"{prefix}-control"
            return f"{prefix}-{name}" if name in fields else prefix
        top = path.split(".", 1)[0].split("[", 1)[0]
        if top in (*TOP_FIELDS, "planned_n", "variants", "metrics", "spec_json"):
            return top
        return "form"

    def place(self, problems: list[FieldProblem]) -> None:
        """File each problem's message under the input it belongs beside."""
        for problem in problems:
            messages = self.errors.setdefault(self.input_for(problem.path), [])
            if problem.message not in messages:
                messages.append(problem.message)

    def place_all_under(self, name: str, problems: list[FieldProblem]) -> None:
        """File every problem, with its path, under one input (the JSON textarea)."""
        self.errors.setdefault(name, []).extend(str(p) for p in problems)
