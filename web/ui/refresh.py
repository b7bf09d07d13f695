"""Recompute an experiment's report now (the report page's POST button).

One function, so that when the analysis lease of ``service/refresh.py`` lands
(one analysis per experiment at a time across workers and hosts), switching to
it is one line.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from experiments.config import Settings
from experiments.service.analysis import run_analysis


def refresh_now(session: Session, key: str, *, settings: Settings, now: datetime) -> None:
    """Run an analysis of ``key`` in the request's transaction (the view commits it)."""
    run_analysis(session, key, settings=settings, now=now)
