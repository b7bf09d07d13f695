"""The audit log: every change, who made it, when, and the values before and after.

The service that makes a change calls :func:`record_change` in the caller's
transaction, so the change and its entry are committed (or rolled back)
together: there is no change without its entry and no entry without its change.

Actors are plain strings (DESIGN.md "Users and roles"): the signed-in user's
email in the web UI, the API key's name on the HTTP API, ``cli:USER`` (the
operating-system user) on the command line. :func:`cli_actor` builds the last.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from experiments.domain import AuditAction
from experiments.errors import FieldProblem, InvalidInputError
from experiments.storage import audit as storage
from experiments.storage.models import AuditEntry, Experiment

ACTOR_MAX = 254


def cli_actor() -> str:
    """``cli:USER`` for the operating-system user running the command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        user = "unknown"
    return f"cli:{user}"[:ACTOR_MAX]


def _jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601 strings, containers copied: what a JSON column stores."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def record_change(
    session: Session,
    *,
    actor: str,
    action: AuditAction,
    target: str,
    experiment: Experiment | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    now: datetime,
) -> AuditEntry:
    """Add an audit entry to the caller's transaction (flushed, not committed).

    Args:
        session: the transaction that makes the change.
        actor: who made it (email, API key name or ``cli:USER``).
        action: what was done.
        target: the experiment's key, the API key's prefix or the user's email.
        experiment: the experiment changed, if any (its entries are listed with it).
        before: the changed values before (None for a creation).
        after: the changed values after.
        now: when.

    Raises:
        InvalidInputError: an empty or over-long actor (a change must say who made it).
    """
    name = actor.strip() if isinstance(actor, str) else ""
    if not name or len(name) > ACTOR_MAX:
        raise InvalidInputError.from_problems(
            [FieldProblem("actor", f"must be 1 to {ACTOR_MAX} characters: who made the change")]
        )
    entry = AuditEntry(
        at=now,
        actor=name,
        action=AuditAction(action).value,
        experiment_id=experiment.id if experiment is not None else None,
        target=target,
        before=_jsonable(before) if before is not None else None,
        after=_jsonable(after) if after is not None else None,
    )
    session.add(entry)
    session.flush()
    return entry


def audit_document(entry: AuditEntry) -> dict[str, Any]:
    """One entry in the API's shape: ``{"at", "actor", "action", "before", "after"}``."""
    return {
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "before": entry.before,
        "after": entry.after,
    }


def experiment_audit(session: Session, experiment: Experiment) -> list[dict[str, Any]]:
    """Every entry of an experiment, oldest first."""
    return [audit_document(e) for e in storage.experiment_entries(session, experiment.id)]


def account_audit(session: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    """The latest key and user changes, newest first (the keys and users pages)."""
    actions = [
        AuditAction.KEY_CREATE,
        AuditAction.KEY_REVOKE,
        AuditAction.USER_CREATE,
        AuditAction.USER_DISABLE,
    ]
    entries = storage.latest_entries(session, [a.value for a in actions], limit=limit)
    return [{**audit_document(e), "target": e.target} for e in entries]
