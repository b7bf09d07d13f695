"""The experiment form (create and edit): rows of inputs ↔ a spec document, errors by field.

The form posts flat names: ``key``, ``name``, ..., ``variants-1-weight``,
``control`` (the index of the control row), ``metrics-0-kind``. Blank rows are
skipped, so a document index can differ from a row index; :class:`SpecForm`
keeps both maps to put each problem of ``validate_spec`` (a path such as
``variants[1].weight``) next to the input it concerns.

Traffic and weights are typed as percentages. Weights are normalised to sum
to 1 when they add up to 100% within half a point, so three variants at 33.3%
are fine; a total further from 100% is an error that names it. Every other
spec field has an input: targeting rules as JSON, forced units one per line
(``unit_id = variant``), and per metric its direction, cap (a value or
``p99``), attribution window, CUPED lookback, guardrail margin and its type,
the accuracy threshold and the model name (docs/spec.md describes each).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from experiments.domain import AnalysisMethod, Correction, MarginType, MetricKind, MetricRole
from experiments.errors import FieldProblem

TOP_FIELDS = (
    "key",
    "name",
    "hypothesis",
    "layer",
    "traffic",
    "targeting",
    "forced",
    "alpha",
    "power",
    "mde",
    "method",
    "correction",
    "planned_n",
)
NUMBER_FIELDS = ("alpha", "power", "mde")
VARIANT_FIELDS = ("key", "weight", "params")
METRIC_FIELDS = (
    "name",
    "kind",
    "role",
    "event",
    "numerator",
    "denominator",
    "direction",
    "cap",
    "window_days",
    "cuped",
    "margin",
    "margin_type",
    "threshold",
    "model",
)
# What a person types; a row with none of these is blank and skipped.
_TYPED = (
    *("name", "event", "numerator", "denominator", "cap"),
    *("window_days", "cuped", "margin", "threshold", "model"),
)
# Spec field of a metric → the input that shows its problems.
_METRIC_INPUT = {"higher_is_better": "direction", "lookback_days": "cuped", "percentile": "cap"}
MAX_VARIANT_ROWS = 26
MAX_METRIC_ROWS = 100
WEIGHT_SLACK = 0.5  # percentage points the weights may miss 100% by, then normalised
KINDS = tuple(k.value for k in MetricKind)
ROLES = tuple(r.value for r in MetricRole)
METHODS = tuple(m.value for m in AnalysisMethod)
CORRECTIONS = tuple(c.value for c in Correction)
MARGIN_TYPES = tuple(m.value for m in MarginType)

_PATH = re.compile(
    r"^(?P<section>variants|metrics)\[(?P<index>\d+)\](?:\.(?P<field>\w+))?(?:\.(?P<sub>\w+))?"
)
_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$", re.IGNORECASE)


def _number(raw: str, integer: bool = False) -> Any:
    """A number from a text input; unparseable text is passed on for the validator to name."""
    try:
        return int(raw) if integer else float(raw)
    except ValueError:
        return raw


def _finite(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _shown(value: Any) -> str:
    """A number as an input shows it: no trailing zeros, no float noise."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


@dataclass
class SpecForm:
    """What the user typed, how many rows to show, the problems by input name, and
    which inputs are locked (shown, not editable) in the experiment's status.
    """

    values: dict[str, str]
    variant_rows: int = 2
    metric_rows: int = 3
    errors: dict[str, list[str]] = field(default_factory=dict)
    variant_index: list[int] = field(default_factory=list)
    metric_index: list[int] = field(default_factory=list)
    locked: frozenset[str] = frozenset()

    @classmethod
    def initial(cls) -> SpecForm:
        """The empty form: a control and a treatment at 50/50 and a primary metric row."""
        return cls(
            values={
                "traffic": "100",
                "method": "fixed",
                "control": "0",
                "variants-0-key": "control",
                "variants-0-weight": "50",
                "variants-1-key": "treatment",
                "variants-1-weight": "50",
                "metrics-0-kind": "conversion",
                "metrics-0-role": "primary",
                "metrics-1-kind": "mean",
                "metrics-1-role": "guardrail",
                "metrics-2-kind": "conversion",
                "metrics-2-role": "secondary",
            }
        )

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], locked: Collection[str] = ()) -> SpecForm:
        """The form showing an experiment's spec (the edit page)."""
        values: dict[str, str] = {}
        for name in ("key", "name", "hypothesis", "layer", "method", "correction"):
            values[name] = str(doc.get(name) or "")
        values["traffic"] = _shown(round(float(doc.get("traffic", 1.0)) * 100, 10))
        for name in (*NUMBER_FIELDS, "planned_n"):
            values[name] = _shown(doc.get(name))
        if doc.get("targeting"):
            values["targeting"] = json.dumps(doc["targeting"], indent=2, sort_keys=True)
        values["forced"] = "\n".join(f"{u} = {v}" for u, v in (doc.get("forced") or {}).items())
        variants = list(doc.get("variants") or [])
        for i, v in enumerate(variants):
            values[f"variants-{i}-key"] = str(v.get("key", ""))
            values[f"variants-{i}-weight"] = _shown(round(float(v.get("weight", 0)) * 100, 8))
            if v.get("params"):
                values[f"variants-{i}-params"] = json.dumps(v["params"], sort_keys=True)
            if v.get("is_control"):
                values["control"] = str(i)
        metrics = list(doc.get("metrics") or [])
        for i, m in enumerate(metrics):
            p = f"metrics-{i}"
            for name in ("name", "kind", "role", "event", "numerator", "denominator", "model"):
                values[f"{p}-{name}"] = str(m.get(name) or "")
            for name in ("window_days", "margin", "threshold"):
                values[f"{p}-{name}"] = _shown(m.get(name))
            values[f"{p}-margin_type"] = str(m.get("margin_type") or "")
            higher = m.get("higher_is_better")
            values[f"{p}-direction"] = "" if higher is None else ("higher" if higher else "lower")
            cap = m.get("cap")
            values[f"{p}-cap"] = (
                f"p{_shown(cap['percentile'])}" if isinstance(cap, Mapping) else _shown(cap)
            )
            cuped = m.get("cuped")
            values[f"{p}-cuped"] = _shown(cuped.get("lookback_days")) if cuped else ""
        return cls(
            values,
            variant_rows=max(len(variants), 2),
            metric_rows=max(len(metrics), 1),
            locked=frozenset(locked),
        )

    @classmethod
    def from_form(cls, form: Mapping[str, str], locked: Collection[str] = ()) -> SpecForm:
        """The submitted values (only the names this form knows)."""

        def rows(name: str, default: int, limit: int) -> int:
            try:
                return min(max(int(form.get(name, default)), 1), limit)
            except ValueError:
                return default

        variant_rows = rows("variant_rows", 2, MAX_VARIANT_ROWS)
        metric_rows = rows("metric_rows", 3, MAX_METRIC_ROWS)
        names = [*TOP_FIELDS, "control", "spec_json"]
        names += [f"variants-{i}-{f}" for i in range(variant_rows) for f in VARIANT_FIELDS]
        names += [f"metrics-{i}-{f}" for i in range(metric_rows) for f in METRIC_FIELDS]
        values = {name: str(form[name]) for name in names if name in form}
        return cls(values, variant_rows, metric_rows, locked=frozenset(locked))

    def value(self, name: str, default: str = "") -> str:
        """The entered value of an input."""
        return self.values.get(name, default)

    def is_locked(self, name: str) -> bool:
        """Whether an input (or a section: variants, metrics) cannot change now."""
        return name.split("-", 1)[0] in self.locked

    def add_row(self, section: str) -> None:
        """Show one more empty variant or metric row."""
        if section == "variant":
            self.variant_rows = min(self.variant_rows + 1, MAX_VARIANT_ROWS)
        elif section == "metric":
            self.metric_rows = min(self.metric_rows + 1, MAX_METRIC_ROWS)

    def _text(self, name: str) -> str:
        return self.values.get(name, "").strip()

    def _json(self, name: str, path: str, problems: list[FieldProblem]) -> Any:
        try:
            return json.loads(self._text(name))
        except json.JSONDecodeError as exc:
            problems.append(
                FieldProblem(
                    path, f"is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
                )
            )
            return None

    def _variants(self, problems: list[FieldProblem]) -> list[dict[str, Any]]:
        variants: list[dict[str, Any]] = []
        percents: list[float | None] = []
        self.variant_index = []
        for row in range(self.variant_rows):
            raw = {f: self._text(f"variants-{row}-{f}") for f in VARIANT_FIELDS}
            if not any(raw.values()):
                continue
            path = f"variants[{len(variants)}]"
            variant: dict[str, Any] = {"key": raw["key"]}
            percent = _finite(raw["weight"]) if raw["weight"] else None
            if raw["weight"]:
                # A percentage; an unparseable one is passed on for the validator to name.
                variant["weight"] = percent / 100 if percent is not None else raw["weight"]
            percents.append(percent)
            variant["is_control"] = self._text("control") == str(row)
            if raw["params"]:
                params = self._json(f"variants-{row}-params", f"{path}.params", problems)
                if params is not None:
                    variant["params"] = params
            self.variant_index.append(row)
            variants.append(variant)
        if percents and all(p is not None and p > 0 for p in percents):
            total = math.fsum(p for p in percents if p is not None)
            if abs(total - 100.0) > WEIGHT_SLACK:
                problems.append(
                    FieldProblem(
                        "variants",
                        f"weights add up to {total:.4g}%: they must add up to 100%"
                        " (33.3% each for three variants is fine)",
                    )
                )
            else:
                for variant, percent in zip(variants, percents, strict=True):
                    assert percent is not None
                    variant["weight"] = percent / total
        return variants

    def _metric(self, row: int, path: str, problems: list[FieldProblem]) -> dict[str, Any]:
        raw = {f: self._text(f"metrics-{row}-{f}") for f in METRIC_FIELDS}
        metric: dict[str, Any] = {"name": raw["name"]}
        for name in ("kind", "role", "event", "numerator", "denominator", "margin_type", "model"):
            if raw[name]:
                metric[name] = raw[name]
        if raw["direction"] in ("higher", "lower"):
            metric["higher_is_better"] = raw["direction"] == "higher"
        for name in ("window_days", "margin", "threshold"):
            if raw[name]:
                metric[name] = _number(raw[name])
        if raw["cap"]:
            match = _PERCENTILE.match(raw["cap"])
            metric["cap"] = {"percentile": float(match.group(1))} if match else _number(raw["cap"])
        if raw["cuped"]:
            lookback = _number(raw["cuped"], integer=True)
            if isinstance(lookback, int):
                metric["cuped"] = {"lookback_days": lookback}
            else:
                problems.append(FieldProblem(f"{path}.cuped", "must be a whole number of days"))
        return metric

    def _metrics(self, problems: list[FieldProblem]) -> list[dict[str, Any]]:
        metrics: list[dict[str, Any]] = []
        self.metric_index = []
        for row in range(self.metric_rows):
            if not any(self._text(f"metrics-{row}-{f}") for f in _TYPED):
                continue
            metrics.append(self._metric(row, f"metrics[{len(metrics)}]", problems))
            self.metric_index.append(row)
        return metrics

    def _forced(self, problems: list[FieldProblem]) -> dict[str, str]:
        forced: dict[str, str] = {}
        for number, line in enumerate(self._text("forced").splitlines(), start=1):
            if not line.strip():
                continue
            unit, sep, variant = line.partition("=")
            if not sep or not unit.strip() or not variant.strip():
                problems.append(FieldProblem("forced", f"line {number}: write unit_id = variant"))
                continue
            forced[unit.strip()] = variant.strip()
        return forced

    def document(self) -> tuple[dict[str, Any], list[FieldProblem]]:
        """The spec document the rows describe, and the problems found while reading them.

        Blank optional inputs are left out, so the spec's defaults apply.
        """
        problems: list[FieldProblem] = []
        doc: dict[str, Any] = {"key": self._text("key"), "name": self._text("name")}
        for name in ("hypothesis", "layer", "method", "correction"):
            if self._text(name):
                doc[name] = self._text(name)
        traffic = self._text("traffic")
        if traffic:
            percent = _finite(traffic)
            if percent is None:
                problems.append(FieldProblem("traffic", "must be a number of percent (0 to 100)"))
            elif not 0 <= percent <= 100:
                problems.append(FieldProblem("traffic", "must be between 0 and 100 (%)"))
            else:
                doc["traffic"] = percent / 100
        for name in NUMBER_FIELDS:
            if self._text(name):
                doc[name] = _number(self._text(name))
        if self._text("planned_n"):
            doc["planned_n"] = _number(self._text("planned_n"), integer=True)
        if self._text("targeting"):
            targeting = self._json("targeting", "targeting", problems)
            if targeting is not None:
                doc["targeting"] = targeting
        forced = self._forced(problems)
        if forced:
            doc["forced"] = forced
        doc["variants"] = self._variants(problems)
        doc["metrics"] = self._metrics(problems)
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

        ``variants[1].weight`` → ``variants-<row>-weight``; ``metrics[0].cuped.lookback_days``
        → ``metrics-<row>-cuped``; a field the row has no input for → the row
        (``metrics-<row>``); ``variants`` → the section; a top-level field (or
        anything inside it, like ``targeting.country``) → its input; else ``form``.
        """
        match = _PATH.match(path)
        if match:
            section, index = match["section"], int(match["index"])
            name = match["field"]
            rows = self.variant_index if section == "variants" else self.metric_index
            if index >= len(rows):
                return section
            prefix = f"{section}-{rows[index]}"
            fields = VARIANT_FIELDS if section == "variants" else METRIC_FIELDS
            if name == "is_control" and section == "variants":
                return f"{prefix}-control"
            name = _METRIC_INPUT.get(str(name), name)
            return f"{prefix}-{name}" if name in fields else prefix
        top = path.split(".", 1)[0].split("[", 1)[0]
        if top in (*TOP_FIELDS, "variants", "metrics", "spec_json"):
            return top
        return "form"

    def place(self, problems: list[FieldProblem]) -> None:
        """File each problem's message under the input it belongs beside."""
        for problem in problems:
            name = self.input_for(problem.path)
            messages = self.errors.setdefault(name, [])
            # Inside targeting or forced, the path says where: keep it in the message.
            nested = name in ("targeting", "forced") and problem.path not in ("", name)
            message = f"{problem.path}: {problem.message}" if nested else problem.message
            if message not in messages:
                messages.append(message)

    def place_all_under(self, name: str, problems: list[FieldProblem]) -> None:
        """File every problem, with its path, under one input (the JSON textarea)."""
        self.errors.setdefault(name, []).extend(str(p) for p in problems)
