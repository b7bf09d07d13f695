"""Group commit: concurrent requests share one transaction; each waits for its commit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from experiments.storage.engine import make_engine, make_session_factory
from experiments.storage.group_commit import GroupCommitter
from experiments.storage.ingest import EVENTS, EXPOSURES
from experiments.storage.models import Event
from tests.conftest import DatabaseFactory

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def sessions(database_factory: DatabaseFactory) -> Any:
    engine = make_engine(database_factory.create())
    yield make_session_factory(engine)
    engine.dispose()


def test_concurrent_inserts_are_all_committed_before_they_return(sessions: Any) -> None:
    committer = GroupCommitter(sessions)
    returned: list[int] = []
    stored_when_returned: list[int] = []

    def request(i: int) -> None:
        rows = [(f"e-{i}-{j}", f"u{i}", "play", 1.0, NOW, "{}") for j in range(5)]
        committer.insert(EVENTS, rows, received_at=NOW)
        with sessions() as check:  # another connection sees them: committed
            stored_when_returned.append(
                check.scalar(
                    select(func.count()).select_from(Event).where(Event.unit_id == f"u{i}")
                )
            )
        returned.append(i)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(returned) == list(range(16))
    assert stored_when_returned == [5] * 16
    with sessions() as check:
        assert check.scalar(select(func.count()).select_from(Event)) == 80


def test_a_failed_round_raises_in_every_request_and_commits_nothing(sessions: Any) -> None:
    committer = GroupCommitter(sessions)
    # experiment 999 does not exist: the foreign key refuses the round
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        committer.insert(EXPOSURES, [(999, 0, "u1", "control", NOW)], received_at=NOW)
    committer.insert(EVENTS, [("after", "u", "play", 1.0, NOW, "{}")], received_at=NOW)
    with sessions() as check:
        assert check.scalar(select(func.count()).select_from(Event)) == 1
