"""Every change writes its audit entry, in the same transaction, with the actor and values."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from experiments.domain import AuditAction
from experiments.errors import InvalidInputError, InvalidStateError
from experiments.service import decisions
from experiments.service import experiments as svc
from experiments.service.audit import cli_actor, experiment_audit
from experiments.service.keys import create_api_key, revoke_api_key
from experiments.service.specs import validate_spec
from experiments.service.users import create_user, disable_user
from experiments.storage.models import AuditEntry
from tests.factories import spec_document


def _entries(session: Session) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_the_whole_lifecycle_is_audited_with_its_actors(session: Session, now: datetime) -> None:
    t = [now + timedelta(minutes=i) for i in range(10)]
    spec = validate_spec(spec_document(layer="feed", traffic=0.4))
    experiment = svc.create_experiment(session, spec, actor="ana@example.com", now=t[0])
    assert experiment.owner == "ana@example.com"
    svc.update_experiment(
        session, "ranker-v2", {"hypothesis": "sharper"}, actor="ana@example.com", now=t[1]
    )
    svc.start_experiment(session, "ranker-v2", actor="ana@example.com", now=t[2])
    svc.update_experiment(
        session, "ranker-v2", {"traffic": 0.6, "name": "Ranker v2"}, actor="ci key", now=t[3]
    )
    svc.stop_experiment(session, "ranker-v2", actor="cli:root", now=t[4])
    svc.start_experiment(session, "ranker-v2", actor="cli:root", now=t[5])
    decisions.conclude_experiment(
        session,
        "ranker-v2",
        decision="ship",
        rationale="take rate up",
        actor="bo@example.com",
        now=t[6],
    )
    decisions.promote_experiment(session, "ranker-v2", actor="admin@example.com", now=t[7])
    decisions.unpromote_experiment(session, "ranker-v2", actor="admin@example.com", now=t[8])
    svc.archive_experiment(session, "ranker-v2", actor="bo@example.com", now=t[9])
    entries = experiment_audit(session, svc.get_experiment(session, "ranker-v2"))
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("create", "ana@example.com"),
        ("edit", "ana@example.com"),
        ("start", "ana@example.com"),
        ("ramp", "ci key"),
        ("edit", "ci key"),
        ("stop", "cli:root"),
        ("restart", "cli:root"),
        ("conclude", "bo@example.com"),
        ("promote", "admin@example.com"),
        ("unpromote", "admin@example.com"),
        ("archive", "bo@example.com"),
    ]
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)  # oldest first
    by_action = {e["action"]: e for e in entries}
    assert by_action["create"]["before"] is None
    assert by_action["create"]["after"]["traffic"] == 0.4
    assert entries[1]["before"] == {"hypothesis": spec.hypothesis}
    assert entries[1]["after"] == {"hypothesis": "sharper"}
    assert by_action["ramp"]["before"] == {"traffic": 0.4}
    assert by_action["ramp"]["after"] == {"traffic": 0.6}
    assert entries[4]["after"] == {"name": "Ranker v2"}  # the rest of that patch
    assert by_action["start"]["after"]["status"] == "running"
    assert by_action["restart"]["before"]["status"] == "stopped"
    conclude = by_action["conclude"]["after"]
    assert conclude["decision"] == "ship"
    assert conclude["variant"] == "treatment"
    assert conclude["rationale"] == "take rate up"
    assert by_action["promote"]["after"]["variant"] == "treatment"
    assert by_action["unpromote"]["after"] == {"promoted_at": None}
    assert by_action["archive"]["after"]["archived_at"] == t[9].isoformat()
    experiment = svc.get_experiment(session, "ranker-v2")
    assert experiment.decided_by == "bo@example.com"
    assert experiment.archived_at == t[9]


def test_a_change_and_its_entry_commit_or_roll_back_together(
    session: Session, now: datetime
) -> None:
    svc.create_experiment(session, validate_spec(spec_document()), actor="ana", now=now)
    session.commit()
    count = session.scalar(select(func.count()).select_from(AuditEntry))
    svc.start_experiment(session, "ranker-v2", actor="ana", now=now)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == count
    assert svc.get_experiment(session, "ranker-v2").status == "draft"


def test_a_refused_change_writes_no_entry(session: Session, now: datetime) -> None:
    svc.create_experiment(session, validate_spec(spec_document()), actor="ana", now=now)
    count = len(_entries(session))
    with pytest.raises(InvalidStateError):
        svc.stop_experiment(session, "ranker-v2", actor="ana", now=now)
    with pytest.raises(InvalidStateError):
        decisions.promote_experiment(session, "ranker-v2", actor="ana", now=now)
    with pytest.raises(InvalidStateError):
        decisions.unpromote_experiment(session, "ranker-v2", actor="ana", now=now)
    assert len(_entries(session)) == count


def test_an_actor_is_required(session: Session, now: datetime) -> None:
    with pytest.raises(InvalidInputError, match="actor"):
        svc.create_experiment(session, validate_spec(spec_document()), actor="  ", now=now)


def test_keys_and_users_are_audited(session: Session, now: datetime) -> None:
    key, _ = create_api_key(session, scope="ingest", name="sdk", actor="cli:ops", now=now)
    revoke_api_key(session, "sdk", actor="boss@example.com", now=now)
    create_user(
        session, "boss@example.com", role="admin", password="x" * 12, actor="cli:ops", now=now
    )
    create_user(
        session,
        "dev@example.com",
        role="editor",
        password="x" * 12,
        actor="boss@example.com",
        now=now,
    )
    disable_user(session, "dev@example.com", actor="boss@example.com", now=now)
    rows = [(e.action, e.actor, e.target, e.experiment_id) for e in _entries(session)]
    assert rows == [
        (AuditAction.KEY_CREATE, "cli:ops", key.prefix, None),
        (AuditAction.KEY_REVOKE, "boss@example.com", key.prefix, None),
        (AuditAction.USER_CREATE, "cli:ops", "boss@example.com", None),
        (AuditAction.USER_CREATE, "boss@example.com", "dev@example.com", None),
        (AuditAction.USER_DISABLE, "boss@example.com", "dev@example.com", None),
    ]
    entries = _entries(session)
    assert entries[0].after == {"name": "sdk", "prefix": key.prefix, "scope": "ingest"}
    assert entries[3].after == {"email": "dev@example.com", "role": "editor"}
    assert "password" not in str(entries[2].after)


def test_cli_actor_names_the_operating_system_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "ana")
    assert cli_actor() == "cli:ana"
