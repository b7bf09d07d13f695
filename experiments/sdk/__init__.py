"""The xp Python SDK: local assignment from a cached config, batched background logging.

Example::

    from experiments.sdk import Client, combine_scores

    client = Client(base_url="http://127.0.0.1:8000", api_key="...")
    a = client.assign("ranker-v2", unit_id="user-42", attributes={"country": "US"})
    score = combine_scores(model_scores, a.params["objective_weights"])
    client.track("play", unit_id="user-42", value=1.0)
    client.close()  # also done at interpreter exit

It imports only the standard library, ``httpx`` and :mod:`experiments.assignment`
(an import-linter contract enforces this).
"""

from __future__ import annotations

from experiments.assignment import Assignment, AssignmentReason
from experiments.sdk._queue import ClientStats
from experiments.sdk.client import Client
from experiments.sdk.errors import (
    ConfigFetchError,
    DeliveryError,
    InvalidItemError,
    QueueFullError,
    RejectedItemError,
    SdkError,
)
from experiments.sdk.scores import combine_scores

__all__ = [
    "Assignment",
    "AssignmentReason",
    "Client",
    "ClientStats",
    "ConfigFetchError",
    "DeliveryError",
    "InvalidItemError",
    "QueueFullError",
    "RejectedItemError",
    "SdkError",
    "combine_scores",
]
