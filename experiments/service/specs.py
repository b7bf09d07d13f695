"""The experiment spec (DESIGN.md "Experiment spec"): validation by path, all at once.

The same pydantic models validate ``POST /api/v1/experiments``,
``xp experiments apply`` and the UI form, and generate the OpenAPI schema.
Field types and ranges are pydantic's job; the rules that tie fields together
(weights sum to 1, one control, one primary metric, what each metric kind
needs) are checked by :func:`_semantic_problems` on the raw document, so that a
single answer lists every problem, not just the first layer of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from experiments.assignment.targeting import validate_targeting
from experiments.domain import (
    EVENT_NAME_RE,
    EXPERIMENT_KEY_RE,
    AnalysisMethod,
    Correction,
    MarginType,
    MetricKind,
    MetricRole,
)
from experiments.errors import FieldProblem, InvalidInputError

WEIGHT_TOLERANCE = 1e-9

Key = Annotated[
    str, Field(pattern=EXPERIMENT_KEY_RE.pattern, description="slug [a-z0-9][a-z0-9_-]{0,63}")
]
EventName = Annotated[str, Field(pattern=EVENT_NAME_RE.pattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PercentileCap(_Strict):
    """Cap each unit's value at a percentile of all units' values."""

    percentile: float = Field(gt=0, lt=100)


class CupedSpec(_Strict):
    """Use the same metric in a pre-exposure window as covariate."""

    lookback_days: int = Field(default=14, ge=1, le=365)


class VariantSpec(_Strict):
    """One variant: key, share of the experiment's units and what to serve."""

    key: Key
    weight: float = Field(gt=0, le=1)
    is_control: bool = False
    params: dict[str, Any] = Field(default_factory=dict)


class MetricSpec(_Strict):
    """A metric and its role; which fields apply depends on ``kind``."""

    name: EventName
    kind: MetricKind
    role: MetricRole = MetricRole.SECONDARY
    higher_is_better: bool | None = None
    event: EventName | None = None
    numerator: EventName | None = None
    denominator: EventName | None = None
    cap: Annotated[float, Field(gt=0)] | PercentileCap | None = None
    window_days: float | None = Field(default=None, gt=0)
    cuped: CupedSpec | None = None
    margin: float | None = Field(default=None, ge=0)
    margin_type: MarginType | None = None
    threshold: float | None = Field(default=None, gt=0, lt=1)
    model: str | None = Field(default=None, min_length=1, max_length=128)


class ExperimentSpec(_Strict):
    """An experiment as code: the document of POST /api/v1/experiments."""

    key: Key
    name: str = Field(min_length=1, max_length=200)
    hypothesis: str | None = Field(default=None, max_length=5000)
    layer: Key | None = None
    traffic: float = Field(default=1.0, ge=0, le=1)
    targeting: dict[str, Any] | None = None
    forced: dict[str, str] = Field(default_factory=dict)
    variants: list[VariantSpec] = Field(min_length=2, max_length=26)
    metrics: list[MetricSpec] = Field(min_length=1, max_length=100)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0, lt=1)
    mde: float = Field(default=0.05, gt=0)
    method: AnalysisMethod = AnalysisMethod.FIXED
    correction: Correction | None = None
    planned_n: int | None = Field(default=None, gt=0)

    @property
    def control(self) -> VariantSpec:
        """The control variant (validation guarantees exactly one)."""
        return next(v for v in self.variants if v.is_control)

    @property
    def primary(self) -> MetricSpec:
        """The primary metric (validation guarantees exactly one)."""
        return next(m for m in self.metrics if m.role is MetricRole.PRIMARY)


class ExperimentPatch(BaseModel):
    """A JSON merge-patch of an experiment spec, plus ``reshuffle``."""

    model_config = ConfigDict(extra="allow")

    reshuffle: Literal[True] | None = None


def format_path(loc: tuple[int | str, ...]) -> str:
    """``('variants', 1, 'weight')`` → ``variants[1].weight``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "string_pattern_mismatch": "must match {pattern}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
}


def pydantic_problems(
    error: ValidationError, prefix: tuple[int | str, ...] = ()
) -> list[FieldProblem]:
    """Turn a pydantic error into field problems with readable messages."""
    problems: list[FieldProblem] = []
    for item in error.errors(include_url=False):
        # Unions report one error per member; the tag (e.g. "float") is noise in a path.
        raw_loc = item["loc"]
        loc = tuple(p for p in raw_loc if not (isinstance(p, str) and p in _UNION_TAGS))
        path = format_path(prefix + loc)
        if len(loc) != len(raw_loc) and any(p.path == path for p in problems):
            continue  # one message per union field is enough
        template = _MESSAGES.get(item["type"])
        ctx = item.get("ctx") or {}
        message = template.format(**ctx) if template else item["msg"].lower()
        problem = FieldProblem(path, message)
        if problem not in problems:
            problems.append(problem)
    return problems


_UNION_TAGS = {"float", "PercentileCap", "function-after[...]", "constrained-float"}

_KIND_FIELDS: dict[MetricKind, tuple[str, ...]] = {
    MetricKind.CONVERSION: ("event",),
    MetricKind.COUNT: ("event",),
    MetricKind.MEAN: ("event",),
    MetricKind.RATIO: ("numerator", "denominator"),
}


def _semantic_problems(doc: Mapping[str, Any]) -> list[FieldProblem]:
    """Rules across fields, checked defensively on the raw document."""
    problems: list[FieldProblem] = []
    variants = doc.get("variants")
    if isinstance(variants, list) and variants and all(isinstance(v, dict) for v in variants):
        controls = [i for i, v in enumerate(variants) if v.get("is_control") is True]
        if len(controls) != 1:
            problems.append(
                FieldProblem(
                    "variants",
                    f"exactly one variant must have is_control true, found {len(controls)}",
                )
            )
        weights = [v.get("weight") for v in variants]
        if all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights):
            total = math.fsum(float(w) for w in weights)
            if abs(total - 1.0) > WEIGHT_TOLERANCE:
                problems.append(
                    FieldProblem("variants", f"weights must sum to 1, got {total:.12g}")
                )
        keys = [v.get("key") for v in variants]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                problems.append(
                    FieldProblem(f"variants[{i}].key", f"duplicate variant key {key!r}")
                )
        forced = doc.get("forced")
        if isinstance(forced, dict):
            for unit, variant in forced.items():
                if isinstance(variant, str) and variant not in keys:
                    problems.append(FieldProblem(f"forced.{unit}", f"unknown variant {variant!r}"))
    metrics = doc.get("metrics")
    if isinstance(metrics, list) and all(isinstance(m, dict) for m in metrics):
        primaries = [m for m in metrics if m.get("role") == MetricRole.PRIMARY]
        if len(primaries) != 1:
            problems.append(
                FieldProblem(
                    "metrics", f"exactly one metric must have role primary, found {len(primaries)}"
                )
            )
        names = [m.get("name") for m in metrics]
        for i, metric in enumerate(metrics):
            problems.extend(_metric_problems(f"metrics[{i}]", metric))
            if names[i] in names[:i]:
                problems.append(
                    FieldProblem(f"metrics[{i}].name", f"duplicate metric name {names[i]!r}")
                )
    targeting = doc.get("targeting")
    if targeting is not None:
        problems.extend(validate_targeting(targeting))
    return problems


def _metric_problems(path: str, metric: Mapping[str, Any]) -> list[FieldProblem]:
    try:
        kind = MetricKind(str(metric.get("kind")))
    except ValueError:
        return []  # pydantic reports the bad kind
    role = metric.get("role", MetricRole.SECONDARY)
    problems: list[FieldProblem] = []
    for field in _KIND_FIELDS.get(kind, ()):
        if metric.get(field) is None:
            problems.append(FieldProblem(f"{path}.{field}", f"is required for {kind} metrics"))
    if kind.is_ml and role != MetricRole.ML:
        problems.append(
            FieldProblem(f"{path}.role", f"{kind} is an ML metric: its role must be ml")
        )
    if not kind.is_ml and role == MetricRole.ML:
        problems.append(
            FieldProblem(
                f"{path}.role", f"role ml is for ML metrics (auc, log_loss, ...), not {kind}"
            )
        )
    if kind.is_ml:
        for field in ("event", "numerator", "denominator", "cap", "cuped", "window_days"):
            if metric.get(field) is not None:
                problems.append(
                    FieldProblem(f"{path}.{field}", f"does not apply to {kind} metrics")
                )
    elif kind != MetricKind.RATIO:
        for field in ("numerator", "denominator"):
            if metric.get(field) is not None:
                problems.append(FieldProblem(f"{path}.{field}", "applies to ratio metrics only"))
    if metric.get("threshold") is not None and kind != MetricKind.ACCURACY:
        problems.append(FieldProblem(f"{path}.threshold", "applies to accuracy metrics only"))
    if kind == MetricKind.RATIO and metric.get("event") is not None:
        problems.append(
            FieldProblem(f"{path}.event", "ratio metrics use numerator and denominator")
        )
    if kind in (MetricKind.CONVERSION, MetricKind.RATIO) and metric.get("cap") is not None:
        problems.append(FieldProblem(f"{path}.cap", "applies to mean and count metrics only"))
    for field in ("margin", "margin_type"):
        if metric.get(field) is not None and role != MetricRole.GUARDRAIL:
            problems.append(FieldProblem(f"{path}.{field}", "applies to guardrail metrics only"))
    return problems


def validate_spec(document: Any) -> ExperimentSpec:
    """Validate an experiment spec document.

    Raises:
        InvalidInputError: listing every invalid field by path.
    """
    if not isinstance(document, Mapping):
        raise InvalidInputError.from_problems([FieldProblem("", "the spec must be a JSON object")])
    problems: list[FieldProblem] = []
    spec: ExperimentSpec | None = None
    try:
        spec = ExperimentSpec.model_validate(dict(document))
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc))
    for problem in _semantic_problems(document):
        if problem not in problems:
            problems.append(problem)
    if problems or spec is None:
        raise InvalidInputError.from_problems(problems)
    return spec


def spec_document(spec: ExperimentSpec) -> dict[str, Any]:
    """The JSON form of a spec, without unset optional metric fields."""
    doc = spec.model_dump(mode="json")
    doc["metrics"] = [
        {k: v for k, v in metric.items() if v is not None} for metric in doc["metrics"]
    ]
    return doc
