"""Deliver batches: retry what is transient, split what is refused, count everything.

Per batch (``POST /api/v1/<kind>`` with ``{"<kind>": [...]}``):

* 2xx: every item is ``sent`` (the server dedupes by id, so a retried
  batch that had in fact arrived is counted once there).
* connection error, timeout, 429, 5xx: retried up to ``max_retries`` times
  after ``uniform(0, min(backoff_max, backoff_base * 2**attempt))`` seconds
  ("full jitter", Brooker, *Exponential Backoff And Jitter*, AWS Architecture
  Blog, 2015), or after the ``Retry-After`` the server sent. Then dropped.
* 400 or 413: the server wrote nothing, so the batch is split in halves and
  each half sent again, recursively; a single item refused this way is
  ``rejected`` with the server's message. Good items are all delivered and
  a bad item costs about ``2 log2(batch_size)`` extra requests.
* 401, 403, any other status: the batch is ``dropped`` and reported; retrying
  with the same key cannot succeed.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from experiments.sdk._items import encode_batch
from experiments.sdk._queue import Counters, Item
from experiments.sdk._transport import Transport
from experiments.sdk.errors import DeliveryError, RejectedItemError, SdkError

logger = logging.getLogger("experiments.sdk")

RETRY_AFTER_MAX = 600.0  # seconds; a larger Retry-After is taken as this


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures."""

    max_retries: int
    backoff_base: float
    backoff_max: float


@dataclass(frozen=True)
class _Outcome:
    """What one batch came to after its retries."""

    verdict: str  # "sent" | "split" | "drop"
    message: str = ""
    status_code: int | None = None


class Dispatcher:
    """Sends batches through the transport and accounts for every item."""

    def __init__(
        self,
        transport: Transport,
        counters: Counters,
        policy: RetryPolicy,
        report: Callable[[SdkError], None],
        sleep: Callable[[float], None],
        rng: random.Random,
        is_aborted: Callable[[], bool],
    ) -> None:
        """Wire the dispatcher.

        Args:
            transport: Where requests go.
            counters: Totals to update.
            policy: Retry limits.
            report: Called with each problem (logs and calls ``on_error``).
            sleep: Waits between retries (injected in tests; interruptible in
                production so that closing the client does not wait out a backoff).
            rng: Source of the jitter.
            is_aborted: True once the client gives up on pending deliveries.
        """
        self._transport = transport
        self._counters = counters
        self._policy = policy
        self._report = report
        self._sleep = sleep
        self._rng = rng
        self._is_aborted = is_aborted

    def deliver(self, kind: str, items: list[Any]) -> None:
        """Deliver one batch of queued items, splitting and retrying as needed."""
        payloads, invalid = encode_batch(kind, items)
        for exc in invalid:
            self._counters.add(rejected=1)
            self._report(exc)
        stack = [payloads] if payloads else []
        while stack:
            batch = stack.pop()
            if self._is_aborted():
                outcome = _Outcome("drop", "client closed before delivery")
            else:
                outcome = self._send_with_retries(kind, batch)
            if outcome.verdict == "sent":
                self._counters.add(sent=len(batch))
            elif outcome.verdict == "split" and len(batch) > 1:
                middle = len(batch) // 2
                stack.append(batch[middle:])
                stack.append(batch[:middle])
            elif outcome.verdict == "split":
                self._counters.add(rejected=1)
                self._report(
                    RejectedItemError(
                        f"{kind}: server refused the item: {outcome.message}",
                        kind=kind,
                        items=_documents(batch),
                        status_code=outcome.status_code,
                    )
                )
            else:
                lost = batch + [item for rest in stack for item in rest]
                stack.clear()
                self._counters.add(dropped=len(lost))
                self._report(
                    DeliveryError(
                        f"{kind}: dropped {len(lost)} items: {outcome.message}",
                        kind=kind,
                        items=_documents(lost),
                        status_code=outcome.status_code,
                    )
                )

    def _send_with_retries(self, kind: str, batch: list[str]) -> _Outcome:
        attempt = 0
        while True:
            retry_after: float | None = None
            status: int | None = None
            try:
                body = f'{{"{kind}":[{",".join(batch)}]}}'.encode()
                response = self._transport.send_json("POST", f"/api/v1/{kind}", body)
            except httpx.TransportError as exc:
                message = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # boundary: a custom transport failed; do not retry
                logger.exception("xp sdk: sending %s failed unexpectedly", kind)
                return _Outcome("drop", f"unexpected {type(exc).__name__}: {exc}")
            else:
                status = response.status_code
                message = f"HTTP {status}{_error_text(response)}"
                if 200 <= status < 300:
                    return _Outcome("sent")
                if status in (400, 413):
                    return _Outcome("split", message, status)
                if status != 429 and status < 500:
                    if status in (401, 403):
                        message += " (check the API key and its scope)"
                    return _Outcome("drop", message, status)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt >= self._policy.max_retries:
                return _Outcome("drop", f"{message}; gave up after {attempt} retries", status)
            if self._is_aborted():
                return _Outcome("drop", f"{message}; client closed before delivery", status)
            if retry_after is None:
                cap = min(self._policy.backoff_max, self._policy.backoff_base * 2.0**attempt)
                retry_after = self._rng.uniform(0.0, cap)
            logger.info(
                "xp sdk: %s batch of %d failed (%s); retry %d in %.2f s",
                kind,
                len(batch),
                message,
                attempt + 1,
                retry_after,
            )
            self._sleep(retry_after)
            if self._is_aborted():
                return _Outcome("drop", f"{message}; client closed before delivery", status)
            attempt += 1
            self._counters.add(retried=len(batch))


def _documents(texts: list[str]) -> list[Item]:
    """The items of a batch decoded again, for an error report (a rare path)."""
    return [json.loads(text) for text in texts]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3).

    Accepts delay-seconds or an HTTP-date; returns ``None`` when absent or
    unreadable, and caps the wait at :data:`RETRY_AFTER_MAX`.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)


def _error_text(response: httpx.Response) -> str:
    """``: message`` from the error body, with the first detail, if present."""
    try:
        body: Any = response.json()
        error = body["error"]
        text = str(error["message"])
        details = error.get("details") or []
        if details and isinstance(details[0], dict):
            first = details[0]
            where = first.get("path") or ""
            text += f" ({where}: {first.get('message')})" if where else ""
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
    return f": {text}"
