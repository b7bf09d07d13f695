"""The user docs are kept true by the code: every spec field, role and audit action."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from experiments.domain import AuditAction, UserRole
from experiments.service.specs import (
    CupedSpec,
    ExperimentSpec,
    MetricSpec,
    PercentileCap,
    VariantSpec,
    validate_spec,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _section(text: str, title: str) -> str:
    start = text.index(f"#{'#' if title != 'top' else ''} {title}")
    rest = text[start + 1 :]
    end = re.search(r"\n#{2,3} ", rest)
    return rest[: end.start()] if end else rest


@pytest.mark.parametrize(
    ("model", "section"),
    [
        (ExperimentSpec, "Experiment fields"),
        (VariantSpec, "Variant fields"),
        (MetricSpec, "Metric fields"),
        (PercentileCap, "Percentile cap"),
        (CupedSpec, "CUPED"),
    ],
    ids=["experiment", "variant", "metric", "cap", "cuped"],
)
def test_every_spec_field_is_documented(model: type[BaseModel], section: str) -> None:
    table = _section((DOCS / "spec.md").read_text(), section)
    documented = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE))
    assert documented == set(model.model_fields), section
    for line in table.splitlines():
        if line.startswith("| `"):
            assert len(line.split(" | ")) == 5, (
                f"every row gives type, default, range, example: {line}"
            )


def test_the_documented_example_is_the_shipped_file_and_is_valid() -> None:
    text = (DOCS / "spec.md").read_text()
    example = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])
    shipped = json.loads((DOCS / "examples" / "spec.json").read_text())
    assert example == shipped
    validate_spec(shipped)


def test_the_ui_guide_names_every_role_and_audit_action() -> None:
    text = (DOCS / "ui.md").read_text()
    for role in UserRole:
        assert f"| `{role}` |" in text
    for action in AuditAction:
        assert f"| `{action}` |" in text


def test_the_readme_links_the_docs() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    assert "docs/spec.md" in readme
    assert "docs/ui.md" in readme
