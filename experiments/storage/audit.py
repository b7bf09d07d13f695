"""Reads of the audit log (entries are added by ``service/audit.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from experiments.storage.models import AuditEntry


def experiment_entries(session: Session, experiment_id: int) -> list[AuditEntry]:
    """Every entry of one experiment, oldest first."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.experiment_id == experiment_id)
        .order_by(AuditEntry.at, AuditEntry.id)
    )
    return list(session.scalars(stmt))


def latest_entries(session: Session, actions: Sequence[str], *, limit: int) -> list[AuditEntry]:
    """The latest entries with one of ``actions``, newest first."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.action.in_(list(actions)))
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
