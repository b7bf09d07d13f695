"""What the SDK reports to the host application's ``on_error`` callback.

``assign`` and ``track`` never raise: every failure is logged on the
``experiments.sdk`` logger and passed, as one of these exceptions, to the
``on_error`` callback given to :class:`~experiments.sdk.Client`. Only the
constructor raises (``ValueError`` for a bad argument)::

    SdkError                    base; ``kind`` names the endpoint, ``items`` the payloads
    ├── InvalidItemError        failed local validation; never queued (counted ``rejected``)
    ├── RejectedItemError       the server refused it with 400/413, isolated by
    │                           splitting the batch (counted ``rejected``)
    ├── DeliveryError           given up: retries exhausted, 401/403, other 4xx, or
    │   │                       the client closed before delivery (counted ``dropped``)
    │   └── QueueFullError      the queue was full; the newest item was dropped
    └── ConfigFetchError        ``GET /api/v1/config`` failed; the last good snapshot
                                stays in use
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ConfigFetchError",
    "DeliveryError",
    "InvalidItemError",
    "QueueFullError",
    "RejectedItemError",
    "SdkError",
]


class SdkError(Exception):
    """Base of every problem the SDK reports.

    Attributes:
        message: One line naming the problem.
        kind: The endpoint concerned (``events``, ``exposures``, ``predictions``,
            ``labels``, ``config``), or ``None``.
        items: The payloads concerned (may be empty, e.g. for a config failure).
        status_code: The HTTP status that caused it, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        items: Sequence[Mapping[str, Any]] = (),
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.items: list[Mapping[str, Any]] = list(items)
        self.status_code = status_code


class InvalidItemError(SdkError, ValueError):
    """An item failed local validation and was never queued or sent."""


class RejectedItemError(SdkError):
    """The server refused this item (400 or 413 on a batch of one)."""


class DeliveryError(SdkError):
    """Items that were valid but could not be delivered."""


class QueueFullError(DeliveryError):
    """The bounded queue was full: the newest item was dropped, never blocking."""


class ConfigFetchError(SdkError):
    """The config could not be fetched or parsed; the last good snapshot is kept."""
