"""Conclusions: the engine's verdict as the default, a reason to override it, the record."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.orm import Session

from experiments.errors import InvalidInputError
from experiments.service import decisions
from experiments.service import experiments as svc
from experiments.service.analysis import load_report
from experiments.service.specs import validate_spec
from experiments.storage.models import AnalysisSnapshot
from tests.factories import spec_document


def _running_with_verdict(session: Session, now: datetime, status: str, **extra: str) -> None:
    svc.create_experiment(session, validate_spec(spec_document()), actor="t", now=now)
    experiment = svc.start_experiment(session, "ranker-v2", actor="t", now=now)
    session.add(
        AnalysisSnapshot(
            experiment_id=experiment.id,
            computed_at=now,
            engine_version="test",
            settings={},
            inputs={},
            report={"decision": {"status": status, **extra}, "metrics": {}, "srm": {}},
        )
    )
    session.flush()


@pytest.mark.parametrize(
    ("verdict", "suggested"),
    [
        ({"status": "ship", "variant": "treatment"}, ("ship", "treatment")),
        ({"status": "rollback", "variant": "treatment"}, ("rollback", None)),
        ({"status": "no_effect"}, ("rollback", None)),
        ({"status": "keep_running"}, None),
        ({"status": "waiting"}, None),
        ({"status": "invalid"}, None),
    ],
    ids=["ship", "rollback", "no-effect", "keep-running", "waiting", "invalid"],
)
def test_suggested_conclusion(verdict: dict[str, str], suggested: tuple | None) -> None:
    assert decisions.suggested_conclusion({"decision": verdict}) == suggested


def test_overriding_the_verdict_needs_a_reason(session: Session, now: datetime) -> None:
    _running_with_verdict(session, now, "ship", variant="treatment")
    with pytest.raises(InvalidInputError) as caught:
        decisions.check_conclusion(session, "ranker-v2", decision="rollback", rationale="no")
    assert caught.value.details[0].path == "override_reason"
    assert "suggests ship treatment" in caught.value.details[0].message
    # The same decision as the verdict needs no reason.
    check = decisions.check_conclusion(session, "ranker-v2", decision="ship", rationale="won")
    assert check["label"] == "ship treatment"
    assert any("promotes treatment" in line for line in check["consequences"])
    decisions.conclude_experiment(
        session,
        "ranker-v2",
        decision="rollback",
        rationale="the lift is real but support costs rose",
        override_reason="support tickets doubled in the treatment",
        actor="ana@example.com",
        now=now,
        require_override_reason=True,
    )
    experiment = svc.get_experiment(session, "ranker-v2")
    assert experiment.extra["override_reason"] == "support tickets doubled in the treatment"


def test_the_report_carries_the_recorded_decision(
    session: Session, now: datetime, settings: object
) -> None:
    _running_with_verdict(session, now, "ship", variant="treatment")
    report = load_report(session, "ranker-v2", settings=settings, now=now)  # type: ignore[arg-type]
    assert report["decision"]["recorded"] is None
    decisions.conclude_experiment(
        session, "ranker-v2", decision="ship", rationale="won", actor="ana@example.com", now=now
    )
    decisions.promote_experiment(session, "ranker-v2", actor="boss@example.com", now=now)
    report = load_report(session, "ranker-v2", settings=settings, now=now)  # type: ignore[arg-type]
    assert report["decision"]["recorded"] == {
        "decision": "ship",
        "variant": "treatment",
        "rationale": "won",
        "by": "ana@example.com",
        "at": now.isoformat(),
        "promoted": True,
    }
    assert report["decision"]["status"] == "ship"  # the engine's verdict is kept beside it
