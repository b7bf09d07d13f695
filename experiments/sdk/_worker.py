"""The client's background side: queue, sender and refresher threads, flush and close.

A threaded worker runs two daemon threads: ``xp-sdk-sender`` takes due
batches from the queue and delivers them; ``xp-sdk-config`` calls the
config refresh every ``refresh_interval`` seconds. Unthreaded, nothing runs
in the background and :meth:`Worker.flush` delivers on the caller's thread.

Closing gives the sender ``timeout`` seconds to empty the queue, then aborts:
backoff waits are cut short, batches not yet sent are dropped and reported,
and nothing is retried any more.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from experiments.sdk._delivery import Dispatcher, RetryPolicy
from experiments.sdk._items import item_document
from experiments.sdk._queue import Batch, Counters, Item, ItemQueue
from experiments.sdk._transport import Transport
from experiments.sdk.errors import DeliveryError, QueueFullError, SdkError

logger = logging.getLogger("experiments.sdk")


class Worker:
    """Owns the queue, the counters and the threads of one client."""

    def __init__(
        self,
        transport: Transport,
        queue: ItemQueue,
        policy: RetryPolicy,
        report: Callable[[SdkError], None],
        refresh_config: Callable[[], bool],
        *,
        refresh_interval: float,
        threaded: bool,
        clock: Callable[[], float],
        sleep: Callable[[float], None] | None,
        rng: random.Random | None,
    ) -> None:
        """Wire the worker; threads start with :meth:`start`.

        Args:
            transport: Where batches go.
            queue: The bounded queue callers append to.
            policy: Retry limits.
            report: Logs a problem and passes it to ``on_error``.
            refresh_config: Fetches the config; returns False on failure.
            refresh_interval: Seconds between config refreshes.
            threaded: Run the sender and refresher threads.
            clock: Monotonic clock in seconds.
            sleep: Wait between retries; by default one that closing interrupts.
            rng: Source of the backoff jitter.
        """
        self.queue = queue
        self.counters = Counters()
        self._transport = transport
        self._report = report
        self._refresh_config = refresh_config
        self._refresh_interval = refresh_interval
        self._threaded = threaded
        self._clock = clock
        self._dispatcher = Dispatcher(
            transport,
            self.counters,
            policy,
            report,
            sleep or self._interruptible_sleep,
            rng or random.Random(),
            lambda: self._aborted,
        )
        self.closed = False
        self._overflowing = False
        self._fetch_first = False
        self._init_process_state()

    def _init_process_state(self) -> None:
        """Locks, events and thread handles: everything a forked child must renew."""
        self._start_lock = threading.Lock()
        self._abort_event = threading.Event()
        self._stop_event = threading.Event()
        self._aborted = False
        self.threads: list[threading.Thread] = []
        self._threads_pending = self._threaded and not self.closed

    def start(self, *, fetch_config_first: bool) -> None:
        """Start the threads (threaded workers only)."""
        self._fetch_first = fetch_config_first
        self._start_threads()

    def _start_threads(self) -> None:
        with self._start_lock:
            if not self._threads_pending or self.closed:
                return
            self.threads = [
                threading.Thread(target=self._run_sender, name="xp-sdk-sender", daemon=True),
                threading.Thread(
                    target=self._run_refresher,
                    args=(self._stop_event, self._fetch_first),
                    name="xp-sdk-config",
                    daemon=True,
                ),
            ]
            for thread in self.threads:
                thread.start()
            self._threads_pending = False

    def _run_sender(self) -> None:
        while (batches := self.queue.wait_for_batches()) is not None:
            self.deliver(batches)

    def _run_refresher(self, stop: threading.Event, fetch_first: bool) -> None:
        if fetch_first:
            self._refresh_config()
        while not stop.wait(self._refresh_interval):
            self._refresh_config()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._abort_event.wait(seconds)

    def deliver(self, batches: list[Batch]) -> None:
        """Deliver taken batches and mark them done (what the sender does per wake-up)."""
        for kind, items in batches:
            try:
                self._dispatcher.deliver(kind, items)
            except Exception:  # boundary: keep the sender alive, whatever happens
                logger.exception("xp sdk: delivering %d %s failed", len(items), kind)
            finally:
                self.queue.done(len(items))

    def enqueue(self, kind: str, item: Item) -> bool:
        """Queue an item; when full or closed, count it dropped and report.

        Returns:
            True when the item was queued.
        """
        if self._threads_pending:  # first call in a forked child
            self._start_threads()
        if self.closed:
            self.counters.add(dropped=1)
            self._report(
                DeliveryError(f"{kind}: client is closed", kind=kind, items=[item_document(item)])
            )
            return False
        if self.queue.put(kind, item):
            self._overflowing = False
            return True
        self._overflow(kind, item)
        return False

    def offer_exposure(self, item: Any) -> bool:
        """Queue an exposure from ``assign`` without the queue lock (see ``ItemQueue.offer``).

        Returns:
            True when the item was queued.
        """
        if self._threads_pending or self.closed:
            return self.enqueue("exposures", item)
        if self.queue.offer(item):
            self._overflowing = False
            return True
        self._overflow("exposures", item)
        return False

    def _overflow(self, kind: str, item: Any) -> None:
        self.counters.add(dropped=1)
        if not self._overflowing:  # report once per overflow episode, count every item
            self._overflowing = True
            self._report(
                QueueFullError(
                    f"{kind}: queue full ({self.queue.capacity} items); "
                    "dropping the newest items until it drains",
                    kind=kind,
                    items=[item_document(item)],
                )
            )

    def flush(self, timeout: float) -> bool:
        """Send what is queued now and wait up to ``timeout`` seconds.

        Returns:
            True when nothing is left queued or in flight.
        """
        if threading.current_thread() in self.threads:
            return False  # on_error on the sender thread: it cannot wait for itself
        if self._threads_pending:
            self._start_threads()
        if self.threads and self.threads[0].is_alive():
            return self.queue.wait_idle(timeout)
        deadline = self._clock() + timeout
        while self._clock() <= deadline and (batches := self.queue.take_due(force=True)):
            self.deliver(batches)
        return self.queue.queued == 0

    def close(self, timeout: float) -> None:
        """Flush for ``timeout`` seconds, then abort, stop the threads and count leftovers."""
        with self._start_lock:
            if self.closed:
                return
            self._threads_pending = False
        self.flush(timeout)
        self.closed = True
        self._aborted = True
        self._abort_event.set()
        self._stop_event.set()
        self.queue.stop()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(timeout=1.0)
        left = self.queue.drain()
        if left:
            self.counters.add(dropped=len(left))
            self._report(
                DeliveryError(
                    f"dropped {len(left)} items still queued at close",
                    items=[item_document(item) for item in left],
                )
            )
        self._transport.close()

    def reset_after_fork(self) -> None:
        """In a forked child: empty queue, zeroed counters, fresh locks and connections.

        The threads start again on the child's first call; the config
        snapshot came along with the fork, so the refresher waits one
        interval before its first fetch.
        """
        self.queue.reset_after_fork()
        self.counters.reset()
        self._transport.reset_after_fork()
        self._fetch_first = False
        self._init_process_state()
