"""The xp client: assign locally from a cached config, log everything in the background.

The caller's thread only evaluates, validates and appends to a bounded queue;
it never does I/O or JSON encoding. A background sender delivers batches and a
refresher keeps the config fresh (see :mod:`experiments.sdk._worker`); with
``threaded=False`` nothing runs in the background: ``flush()`` sends on the
caller's thread and ``refresh()`` fetches the config (scripts, tests, jobs).

Forks. ``os.register_at_fork`` resets every live client in a child process
(e.g. a gunicorn worker forked from a master that built the client): new
locks, a new HTTP connection pool, an empty queue and zeroed stats. Items
queued before the fork stay with the parent, which sends them, so nothing is
sent twice. The child keeps the config snapshot and starts its own threads
on its first call.

Exit. Every client is closed at interpreter exit (``atexit``): queued items
are flushed for up to ``close_timeout`` seconds; what remains is counted as
dropped and reported. Processes that end with ``os._exit`` (some pre-fork
servers' workers) should call :meth:`Client.close` themselves, e.g. in a
``worker_exit`` hook.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import random
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from experiments.assignment import Assignment, evaluate, evaluate_all
from experiments.sdk._config_cache import ConfigCache
from experiments.sdk._delivery import RetryPolicy
from experiments.sdk._items import (
    UNIT_ID_MAX,
    Item,
    build_event,
    build_exposure,
    build_label,
    build_prediction,
    new_id,
)
from experiments.sdk._queue import ClientStats, ItemQueue
from experiments.sdk._transport import Transport
from experiments.sdk._worker import Worker
from experiments.sdk.errors import (
    ConfigFetchError,
    InvalidItemError,
    SdkError,
)

logger = logging.getLogger("experiments.sdk")
_now = time.time  # wall clock of exposures (bound once: the assign hot path)

ERROR_REASON = "error"  # SDK-only Assignment.reason: evaluation failed, see on_error


class Client:
    """Assign units to variants locally and log exposures, events and predictions.

    ``assign``, ``assign_all``, ``track`` and the ``log_*`` methods never raise:
    problems are logged on the ``experiments.sdk`` logger and passed to
    ``on_error`` (see :mod:`experiments.sdk.errors`). When the queue is full
    the newest item is dropped and counted; callers are never blocked.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        on_error: Callable[[SdkError], None] | None = None,
        refresh_interval: float = 30.0,
        wait_for_config: bool = True,
        batch_size: int = 2000,
        flush_interval: float = 1000.0,
        capacity: int = 100_000,
        max_retries: int = 10,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float = 5.0,
        close_timeout: float = 10.0,
        exposure_cache_size: int = 100_000,
        threaded: bool = True,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Create the client, fetch the config and start the background threads.

        Args:
            base_url: Server root, e.g. ``http://127.0.0.1:8000``.
            api_key: An API key of scope ``ingest`` (or ``admin``).
            on_error: Called with each :class:`SdkError` (from the caller's
                thread for invalid input, from the sender thread otherwise);
                exceptions it raises are logged and ignored.
            refresh_interval: Seconds between config refreshes.
            wait_for_config: Fetch the config before returning (one attempt,
                at most ``timeout`` seconds); if False the refresher fetches it
                in the background and ``assign`` falls back until it arrives.
            batch_size: Items per request; a full batch is sent at once. 2,000 by
                default: per-request costs then weigh little per item, and a batch
                of small items stays far below the server's 10,000-item and 5 MB limits.
            flush_interval: Milliseconds after which a partial batch is sent.
            capacity: Most items queued at once, beyond which the newest is dropped.
            max_retries: Retries of a transient failure before dropping a batch.
            backoff_base: Seconds of the first backoff cap (doubled per retry).
            backoff_max: Largest backoff cap in seconds.
            timeout: Seconds for each HTTP request.
            close_timeout: Seconds :meth:`close` waits at interpreter exit.
            exposure_cache_size: (experiment, unit, variant) triples remembered
                to log each exposure once.
            threaded: Run the sender and refresher threads (see module docs).
            transport: ``httpx`` transport to use, e.g. ``httpx.MockTransport``.
            clock: Monotonic clock in seconds (injected in tests).
            sleep: Wait between retries (injected in tests); by default an
                interruptible wait that :meth:`close` cuts short.
            rng: Random source of the backoff jitter.

        Raises:
            ValueError: If an argument is out of range.
        """
        _check_arguments(base_url, api_key, locals())
        self._on_error = on_error
        self._close_timeout = float(close_timeout)
        self._transport = Transport(base_url, api_key, timeout=timeout, transport=transport)
        self._config = ConfigCache()
        self._queue = ItemQueue(capacity, batch_size, flush_interval / 1000.0, clock)
        self._worker = Worker(
            self._transport,
            self._queue,
            RetryPolicy(max_retries, backoff_base, backoff_max),
            self._report,
            self._refresh_config,
            refresh_interval=float(refresh_interval),
            threaded=threaded,
            clock=clock,
            sleep=sleep,
            rng=rng,
        )
        self._warned_no_config = False
        self._exposure_cache_size = exposure_cache_size
        self._seen: OrderedDict[tuple[str, str, Any], None] = OrderedDict()
        _live_clients.add(self)
        if wait_for_config:
            self._refresh_config()
        self._worker.start(fetch_config_first=not wait_for_config)

    # -- assignment ---------------------------------------------------------------

    def assign(
        self,
        key: str,
        unit_id: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        log_exposure: bool = True,
    ) -> Assignment:
        """Evaluate experiment ``key`` for a unit from the cached config.

        Queues an exposure when the unit is in the experiment (once per
        experiment, unit and variant while remembered); fallbacks log none.

        Returns:
            The assignment. Without any config, ``reason`` is ``no_config``
            (one warning is logged per client); if evaluation fails (e.g. a
            bad ``unit_id``) the reason is ``error`` and ``on_error`` is told.
        """
        try:
            snapshot = self._config.snapshot
            run = None if snapshot is None else snapshot.evaluators.get(key)
            if run is not None and type(unit_id) is str and 0 < len(unit_id) <= UNIT_ID_MAX:
                # evaluate()'s own steps, inlined: the hot path saves a call.
                assignment = run(unit_id, unit_id.encode("utf-8"), attributes, None)
            else:  # no config, unknown key or a suspicious unit id: the full checks
                if snapshot is None:
                    self._warn_no_config()
                assignment = evaluate(snapshot, key, unit_id, attributes)
            if log_exposure and assignment.in_experiment:
                # _expose()'s first step inlined: a unit already exposed costs one lookup.
                seen_key = (key, unit_id, assignment.variant)
                if seen_key not in self._seen:
                    self._expose_new(seen_key)
                else:
                    self._refresh_seen(seen_key)
            return assignment
        except Exception as exc:  # boundary: never raise into the host application
            self._fail("assign", exc)
            return Assignment(str(key), None, {}, False, ERROR_REASON)

    def assign_all(
        self,
        unit_id: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        log_exposure: bool = True,
    ) -> dict[str, Assignment]:
        """Evaluate every experiment of the cached config for a unit, in one pass.

        Returns:
            ``{experiment key: Assignment}``; empty without config or on error.
        """
        try:
            snapshot = self._config.snapshot
            if snapshot is None:
                self._warn_no_config()
            assignments = evaluate_all(snapshot, unit_id, attributes)
            if log_exposure:
                for key, assignment in assignments.items():
                    if assignment.in_experiment:
                        self._expose(key, unit_id, assignment.variant)
            return assignments
        except Exception as exc:  # boundary: never raise into the host application
            self._fail("assign", exc)
            return {}

    def _expose(self, experiment: str, unit_id: str, variant: Any) -> None:
        """Queue the first exposure of (experiment, unit, variant) while it is remembered."""
        seen_key = (experiment, unit_id, variant)
        if seen_key not in self._seen:
            self._expose_new(seen_key)
        else:
            self._refresh_seen(seen_key)

    def _refresh_seen(self, seen_key: tuple[str, str, Any]) -> None:
        try:  # noqa: SIM105 (contextlib.suppress costs ~10x on this hot path)
            self._seen.move_to_end(seen_key)
        except KeyError:  # evicted by another thread meanwhile
            pass

    def _expose_new(self, seen_key: tuple[str, str, Any]) -> None:
        """Remember and queue a new exposure.

        No lock: each ``OrderedDict`` operation is atomic under the GIL; two
        threads assigning the same new unit at the same instant may both
        queue its exposure, which the server stores once (first exposure wins).
        """
        seen = self._seen
        seen[seen_key] = None
        if len(seen) > self._exposure_cache_size:
            try:  # noqa: SIM105 (contextlib.suppress costs ~10x on this hot path)
                seen.popitem(last=False)
            except KeyError:  # emptied by another thread meanwhile
                pass
        experiment, unit_id, variant = seen_key
        # The tuple is exposure_tuple()'s form, built inline: one call less per assign.
        if not self._worker.offer_exposure((experiment, unit_id, variant, _now())):
            seen.pop(seen_key, None)  # not queued: let the next assign try again

    def _warn_no_config(self) -> None:
        if not self._warned_no_config:
            self._warned_no_config = True
            logger.warning("xp sdk: no config yet; assign serves fallbacks (reason no_config)")

    # -- logging ------------------------------------------------------------------

    def track(
        self,
        name: str,
        unit_id: str,
        value: float = 1.0,
        *,
        timestamp: datetime | None = None,
        properties: Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue a business event; returns at once with its ``event_id``.

        Args:
            name: Event name matching ``[A-Za-z0-9_.:-]{1,128}``.
            unit_id: The unit (1 to 256 characters).
            value: A finite number (default 1).
            timestamp: Timezone-aware time of the event (default: now).
            properties: A JSON object of at most 8 KB (checked on the sender
                thread; the mapping is copied, nested values are not).
            event_id: Idempotency key; a UUID4 by default.

        Returns:
            The event id (also when the event was rejected or dropped; see
            ``on_error`` and :meth:`stats`).
        """
        event_id = new_id() if event_id is None else event_id
        try:
            item = build_event(event_id, name, unit_id, value, timestamp, properties)
        except Exception as exc:  # boundary: never raise into the host application
            self._fail("events", exc)
        else:
            self._enqueue("events", item)
        return event_id

    def log_exposure(
        self,
        experiment: str,
        unit_id: str,
        variant: str,
        *,
        timestamp: datetime | None = None,
        exposure_id: str | None = None,
    ) -> str:
        """Queue an exposure explicitly (``assign`` does this by itself).

        Returns:
            The exposure id.
        """
        exposure_id = new_id() if exposure_id is None else exposure_id
        try:
            item = build_exposure(exposure_id, experiment, unit_id, variant, timestamp)
        except Exception as exc:  # boundary: never raise into the host application
            self._fail("exposures", exc)
        else:
            self._enqueue("exposures", item)
        return exposure_id

    def log_prediction(
        self,
        experiment: str,
        unit_id: str,
        model: str,
        score: float,
        *,
        variant: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
        prediction_id: str | None = None,
    ) -> str:
        """Queue a model prediction for a unit in an experiment.

        Args:
            experiment: The experiment key.
            unit_id: The unit.
            model: Model name, e.g. ``ranker_b``.
            score: Finite probability or value.
            variant: The unit's variant; by default evaluated from the cached
                config (with ``attributes``). A unit that is not in the
                experiment is rejected unless ``variant`` is given.
            attributes: Unit attributes, for that evaluation's targeting.
            timestamp: Timezone-aware time of the prediction (default: now).
            prediction_id: Id to join labels on; a UUID4 by default.

        Returns:
            The prediction id, to pass to :meth:`log_label`.
        """
        prediction_id = new_id() if prediction_id is None else prediction_id
        try:
            if variant is None:
                found = evaluate(self._config.snapshot, experiment, unit_id, attributes)
                if not found.in_experiment:
                    raise InvalidItemError(
                        f"variant: unit is not in experiment {experiment!r} "
                        f"(reason {found.reason}); pass variant= to log it anyway",
                        kind="predictions",
                    )
                variant = str(found.variant)
            item = build_prediction(
                prediction_id, experiment, unit_id, variant, model, score, timestamp
            )
        except Exception as exc:  # boundary: never raise into the host application
            self._fail("predictions", exc)
        else:
            self._enqueue("predictions", item)
        return prediction_id

    def log_label(
        self, prediction_id: str, label: float, *, timestamp: datetime | None = None
    ) -> None:
        """Queue the observed label of a prediction (before or after the prediction)."""
        try:
            item = build_label(prediction_id, label, timestamp)
        except Exception as exc:  # boundary: never raise into the host application
            self._fail("labels", exc)
        else:
            self._enqueue("labels", item)

    def _enqueue(self, kind: str, item: Item) -> bool:
        return self._worker.enqueue(kind, item)

    # -- reporting ----------------------------------------------------------------

    def _fail(self, kind: str, exc: Exception) -> None:
        if isinstance(exc, SdkError):
            error = exc
        elif isinstance(exc, ValueError):  # evaluate()'s one-line input errors
            error = InvalidItemError(str(exc), kind=kind)
        else:
            logger.exception("xp sdk: unexpected error in %s", kind)
            error = SdkError(f"{kind}: unexpected {type(exc).__name__}: {exc}", kind=kind)
        if kind != "assign":
            self._worker.counters.add(rejected=1)
        self._report(error)

    def _report(self, error: SdkError) -> None:
        logger.warning("xp sdk: %s", error.message)
        if self._on_error is None:
            return
        try:
            self._on_error(error)
        except Exception:  # boundary: a faulty callback must not break the SDK
            logger.exception("xp sdk: on_error callback raised")

    # -- config -------------------------------------------------------------------

    def refresh(self) -> bool:
        """Fetch the config now (conditional on its ETag).

        Returns:
            True when the server answered (new config or 304); False on failure,
            in which case the last good snapshot stays in use.
        """
        return self._refresh_config()

    def _refresh_config(self) -> bool:
        try:
            self._config.refresh(self._transport)
        except ConfigFetchError as exc:
            self._report(exc)
            return False
        except Exception as exc:  # boundary: the refresher thread must survive
            logger.exception("xp sdk: config refresh failed")
            self._report(ConfigFetchError(f"config: {exc!r}", kind="config"))
            return False
        return True

    # -- flush, stats, close ------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Send everything queued now and wait for it.

        Args:
            timeout: Seconds to wait at most. With ``threaded=False`` the
                deliveries started before the deadline finish (with retries).

        Returns:
            True when nothing is left queued or in flight.
        """
        return self._worker.flush(timeout)

    def stats(self) -> ClientStats:
        """Counts of queued, sent, retried, dropped and rejected items."""
        counters = self._worker.counters
        snapshot = self._config.snapshot
        return ClientStats(
            queued=self._queue.queued,
            sent=counters.sent,
            retried=counters.retried,
            dropped=counters.dropped,
            rejected=counters.rejected,
            config_version=None if snapshot is None else snapshot.version,
        )

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the threads and release connections (idempotent).

        Items still queued after ``timeout`` seconds (default ``close_timeout``)
        are counted as dropped and reported; later calls drop what they log,
        while ``assign`` goes on serving from the last config.
        """
        self._worker.close(self._close_timeout if timeout is None else timeout)
        _live_clients.discard(self)

    def _reset_after_fork(self) -> None:
        """Run in a forked child: fresh locks, queue, stats, connections, threads."""
        self._config.reset_after_fork()
        self._worker.reset_after_fork()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _check_arguments(base_url: str, api_key: str, args: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first bad constructor argument."""
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url: must start with http:// or https://, got {base_url!r}")
    if not isinstance(api_key, str) or not api_key:
        raise ValueError("api_key: must be a non-empty string")
    for name in ("batch_size", "capacity", "exposure_cache_size"):
        if not isinstance(args[name], int) or args[name] < 1:
            raise ValueError(f"{name}: must be an integer >= 1, got {args[name]!r}")
    if not isinstance(args["max_retries"], int) or args["max_retries"] < 0:
        raise ValueError(f"max_retries: must be an integer >= 0, got {args['max_retries']!r}")
    for name in ("refresh_interval", "flush_interval", "backoff_base", "timeout"):
        if not _is_finite_number(args[name]) or not args[name] > 0:
            raise ValueError(f"{name}: must be a finite number > 0, got {args[name]!r}")
    for name in ("backoff_max", "close_timeout"):
        if not _is_finite_number(args[name]) or not args[name] >= 0:
            raise ValueError(f"{name}: must be a finite number >= 0, got {args[name]!r}")


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _close_all() -> None:
    for client in list(_live_clients):
        try:
            client.close()
        except Exception:  # boundary: interpreter exit must go on
            logger.exception("xp sdk: closing a client at exit failed")


def _reset_all_after_fork() -> None:
    for client in list(_live_clients):
        client._reset_after_fork()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_after_fork)
