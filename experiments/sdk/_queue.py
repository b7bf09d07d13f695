"""The bounded in-memory queue between the caller's thread and the sender.

One deque per endpoint (``kind``) under one lock, with a shared capacity.
``put`` is the only method on the caller's hot path: a lock, a length check
and an append; it never blocks and never encodes. When the queue is full the
**newest** item is refused (the caller counts it as dropped), so what was
queued first is delivered first and the host application is never slowed.

The sender takes batches with :meth:`ItemQueue.take_due` (full batches at
once, partial ones after ``flush_interval`` or when a flush is requested) and
reports them finished with :meth:`ItemQueue.done`; ``flush`` waits for the
queue and the in-flight batches to drain.

Exposures logged by ``assign`` take :meth:`ItemQueue.offer` instead, the
assignment hot path: no lock, only a capacity check and ``deque.append``
(atomic in CPython). The lock is taken only to wake the sender, when the
exposure deque gets its first item or fills a batch. Items leave every deque
by ``popleft`` under the lock, so an append racing with a take is never lost.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("exposures", "events", "predictions", "labels")
OFFERED = "exposures"
"""The kind appended without the lock (:meth:`ItemQueue.offer`)."""

Item = dict[str, Any]
Batch = tuple[str, list[Item]]


@dataclass(frozen=True)
class ClientStats:
    """Counts of items since the client started (or since a fork, in the child).

    Every item handed to the client ends in exactly one of ``sent``,
    ``dropped`` or ``rejected``, or is still ``queued``.

    Attributes:
        queued: Waiting in the queue or in a batch being sent.
        sent: Acknowledged by the server (new or duplicate).
        retried: Items sent again after a transient failure (once per retry).
        dropped: Valid items not delivered: queue full, retries exhausted,
            401/403 or another unexpected status, or the client closed first.
        rejected: Invalid items: refused locally, or by the server (400/413).
        config_version: Version of the config snapshot in use, ``None`` without one.
    """

    queued: int
    sent: int
    retried: int
    dropped: int
    rejected: int
    config_version: str | None = None


class Counters:
    """Thread-safe running totals for :class:`ClientStats`."""

    def __init__(self) -> None:
        self.reset()

    def add(self, *, sent: int = 0, retried: int = 0, dropped: int = 0, rejected: int = 0) -> None:
        """Add to the totals."""
        with self._lock:
            self.sent += sent
            self.retried += retried
            self.dropped += dropped
            self.rejected += rejected

    def reset(self) -> None:
        """Start from zero with a fresh lock (also used in a forked child)."""
        self._lock = threading.Lock()
        self.sent = 0
        self.retried = 0
        self.dropped = 0
        self.rejected = 0


class ItemQueue:
    """Bounded per-endpoint FIFO queues shared by callers and one sender."""

    def __init__(
        self,
        capacity: int,
        batch_size: int,
        flush_interval: float,
        clock: Callable[[], float],
    ) -> None:
        """Create an empty queue.

        Args:
            capacity: Most items held at once, all endpoints together.
            batch_size: Items per batch; a full batch is due at once.
            flush_interval: Seconds after which a partial batch is due.
            clock: Monotonic clock in seconds.
        """
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._clock = clock
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._items: dict[str, deque[Item]] = {kind: deque() for kind in KINDS}
        self._offered: deque[Item] = self._items[OFFERED]
        self._first_at: dict[str, float] = dict.fromkeys(KINDS, 0.0)
        self._size = 0  # items of the locked kinds (all but OFFERED)
        self._in_flight = 0
        self._flush_requests = 0
        self._stopping = False

    def reset_after_fork(self) -> None:
        """Forget every item and lock inherited from the parent process.

        The parent still holds those items and sends them; the child must not,
        or they would be sent twice. Locks are replaced because another thread
        of the parent may have held them at the moment of the fork.
        """
        self._init_state()

    def put(self, kind: str, item: Item) -> bool:
        """Append an item unless the queue is full; never blocks.

        Returns:
            False when the queue is full and the item was not added.
        """
        with self._lock:
            if self._size + len(self._offered) >= self.capacity:
                return False
            pending = self._items[kind]
            if not pending:
                self._first_at[kind] = self._clock()
                self._ready.notify()
            pending.append(item)
            if kind != OFFERED:
                self._size += 1
            if len(pending) % self.batch_size == 0:
                self._ready.notify()
            return True

    def offer(self, item: Item) -> bool:
        """Append an exposure without taking the lock (the ``assign`` hot path).

        The capacity check reads the sizes without the lock, so a few racing
        threads may overshoot the capacity by one item each; the sender is
        woken under the lock when the deque gets its first item or a full batch.

        Returns:
            False when the queue is full and the item was not added.
        """
        offered = self._offered
        if self._size + len(offered) >= self.capacity:
            return False
        offered.append(item)
        count = len(offered)
        if count == 1 or count % self.batch_size == 0:
            with self._lock:
                if self._first_at[OFFERED] == 0.0:
                    self._first_at[OFFERED] = self._clock()
                self._ready.notify()
        return True

    @property
    def queued(self) -> int:
        """Items waiting plus items in batches being sent."""
        with self._lock:
            return self._size + len(self._offered) + self._in_flight

    def take_due(self, *, force: bool = False) -> list[Batch]:
        """Remove the batches that are due and mark them in flight.

        Args:
            force: Take partial batches too, whatever their age.
        """
        with self._lock:
            return self._take_due_locked(force or self._flush_requests > 0 or self._stopping)

    def _take_due_locked(self, force: bool) -> list[Batch]:
        batches: list[Batch] = []
        now = self._clock()
        size = self.batch_size
        for kind, pending in self._items.items():
            taken = 0
            while len(pending) >= size:
                popleft = pending.popleft
                batches.append((kind, [popleft() for _ in range(size)]))
                taken += size
            if pending and self._first_at[kind] == 0.0:
                self._first_at[kind] = now  # offered while the sender was taking
            # Items left behind keep the older start time: at worst they leave early.
            if pending and (force or now - self._first_at[kind] >= self.flush_interval):
                # popleft by count: an offer() racing with this take stays queued
                count = len(pending)
                popleft = pending.popleft
                batches.append((kind, [popleft() for _ in range(count)]))
                taken += count
            if not pending:
                self._first_at[kind] = 0.0
            if kind != OFFERED:
                self._size -= taken
            self._in_flight += taken
        return batches

    def wait_for_batches(self) -> list[Batch] | None:
        """Block until batches are due; return ``None`` once stopped and empty."""
        with self._lock:
            while True:
                batches = self._take_due_locked(self._flush_requests > 0 or self._stopping)
                if batches:
                    return batches
                if self._stopping:
                    return None
                self._ready.wait(self._seconds_to_next_due())

    def _seconds_to_next_due(self) -> float:
        now = self._clock()
        starts = [self._first_at[kind] or now for kind, pending in self._items.items() if pending]
        if not starts:
            # Idle: wake up once per interval anyway, in case an offer() raced
            # past the wake-up (its deque was not empty when another filled it).
            return self.flush_interval
        return max(0.0, min(starts) + self.flush_interval - now)

    def done(self, count: int) -> None:
        """Mark ``count`` in-flight items finished (sent, rejected or dropped)."""
        with self._lock:
            self._in_flight -= count
            if self._size + len(self._offered) + self._in_flight == 0:
                self._idle.notify_all()

    def drain(self) -> list[Item]:
        """Remove and return every waiting item (used when closing)."""
        with self._lock:
            items: list[Item] = []
            for pending in self._items.values():
                popleft = pending.popleft
                items.extend(popleft() for _ in range(len(pending)))
            self._first_at = dict.fromkeys(KINDS, 0.0)
            self._size = 0
            if self._in_flight == 0:
                self._idle.notify_all()
            return items

    def wait_idle(self, timeout: float) -> bool:
        """Ask the sender to send partial batches now and wait until all is sent.

        Returns:
            True when the queue is empty and nothing is in flight.
        """
        with self._lock:
            self._flush_requests += 1
            self._ready.notify()
            try:
                return self._idle.wait_for(
                    lambda: self._size + len(self._offered) + self._in_flight == 0, timeout
                )
            finally:
                self._flush_requests -= 1

    def stop(self) -> None:
        """Let the sender send what is due and leave :meth:`wait_for_batches`."""
        with self._lock:
            self._stopping = True
            self._ready.notify_all()
