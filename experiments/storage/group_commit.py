"""Group commit: concurrent requests of one worker share one transaction for small inserts.

Server-side assign records a unit's first exposures before it answers, so
each request needs a durable commit, and a commit costs a disk flush (fsync)
on either database. A worker serving several requests at once (threads) would
otherwise flush once per request, one after the other on SQLite's single
write lock. :class:`GroupCommitter` runs one writer thread per process:
requests hand it their rows and wait; the writer takes everything handed in
meanwhile, inserts it with one ``INSERT … ON CONFLICT DO NOTHING`` per table,
commits once, and wakes every request of the round. An answer is still sent
only after its rows are committed (or with the error that stopped them).

The writer is started on first use in each process (a forked worker starts
its own) and uses its own session from the worker's session factory.

A request alone in its process (a sync worker, a quiet moment) skips the
hand-over and writes in its own transaction (:meth:`GroupCommitter.commit_with`).
SQLite gains most (one writer at a time, each commit flushing alone);
PostgreSQL shares WAL flushes between concurrent commits by itself, and still
gains the round trips of the transactions it no longer opens
(``benchmarks/bench_assign_server.py``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from experiments.storage.ingest import _Target, insert_ignoring_duplicates

log = logging.getLogger(__name__)


@dataclass
class _Request:
    target: _Target
    rows: Sequence[Sequence[Any]]
    received_at: datetime
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupCommitter:
    """One writer thread per process that commits the rows of concurrent requests together."""

    def __init__(self, sessions: Callable[[], Session], *, grouped: bool = True) -> None:
        """Create the committer (its thread starts on first use).

        Args:
            sessions: Makes the writer's sessions (the worker's session factory).
            grouped: Share commits across requests (SQLite); if False,
                :meth:`commit_with` writes in the request's transaction.
        """
        self._sessions = sessions
        self._grouped = grouped
        self._init_process_state()

    def commit_with(
        self,
        session: Session,
        target: _Target,
        rows: Sequence[Sequence[Any]],
        *,
        received_at: datetime,
    ) -> None:
        """End the request's unit of work with ``rows`` written: durable when this returns.

        Alone in the process (a sync worker, or a quiet moment), a request
        writes in its own transaction; while others are committing, it joins
        the next shared round.
        """
        self._ensure_process()
        with self._count_lock:
            alone = self._committing == 0
            self._committing += 1
        try:
            if not self._grouped or alone or not rows:
                insert_ignoring_duplicates(session, target, rows, received_at=received_at)
                session.commit()
                return
            session.commit()  # the request's reads end here; its rows go in the next round
            self.insert(target, rows, received_at=received_at)
        finally:
            with self._count_lock:
                self._committing -= 1

    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self._count_lock = threading.Lock()
        self._committing = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: list[_Request] = []
        self._thread: threading.Thread | None = None

    def insert(
        self, target: _Target, rows: Sequence[Sequence[Any]], *, received_at: datetime
    ) -> None:
        """Insert ``rows`` (skipping duplicates) and return once they are committed.

        Raises:
            Exception: Whatever stopped the round's transaction (nothing of the
                round was committed).
        """
        if not rows:
            return
        request = _Request(target, rows, received_at)
        self._ensure_process()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="xp-group-commit", daemon=True
                )
                self._thread.start()
            self._pending.append(request)
            self._wake.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error

    def _ensure_process(self) -> None:
        if self._pid != os.getpid():  # first use after a fork: the parent's thread is not ours
            with _FORK_GUARD:
                if self._pid != os.getpid():
                    self._init_process_state()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending:
                    self._wake.wait()
                batch, self._pending = self._pending, []
            self._commit(batch)

    def _commit(self, batch: list[_Request]) -> None:
        error: BaseException | None = None
        session = self._sessions()
        try:
            groups: dict[tuple[str, datetime], list[Sequence[Any]]] = {}
            targets: dict[str, _Target] = {}
            for request in batch:
                key = (request.target.table, request.received_at)
                targets[request.target.table] = request.target
                groups.setdefault(key, []).extend(request.rows)
            for (table, received_at), rows in groups.items():
                insert_ignoring_duplicates(session, targets[table], rows, received_at=received_at)
            session.commit()
        except Exception as exc:  # boundary: every waiting request gets the error
            log.warning("group commit of %d requests failed: %s", len(batch), exc)
            error = exc
            session.rollback()
        finally:
            session.close()
        for request in batch:
            request.error = error
            request.done.set()


_FORK_GUARD = threading.Lock()


def _renew_guard() -> None:
    global _FORK_GUARD
    _FORK_GUARD = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_guard)
