"""API keys remembered per worker process, fresh as long as the config version is.

Every API request authenticates its key; :func:`find_key` answers from this
process's memory while the config version (one indexed row, read once per
request) is unchanged. Creating or revoking a key bumps the version
(``storage/config_version.py``), so a revoked key is refused by the next
request in every worker.
"""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from experiments.storage import queries
from experiments.storage.config_version import has_uncommitted_change, read_config_version
from experiments.storage.models import ApiKey

MAX_KEYS = 10_000
"""Digests remembered at most (unknown ones included); then the cache starts afresh."""

_lock = threading.Lock()
_version: int | None = None
_keys: dict[str, ApiKey | None] = {}


def find_key(session: Session, key_hash: str) -> ApiKey | None:
    """The unrevoked key with this digest, or None (cached while the config is unchanged)."""
    global _version
    version = read_config_version(session)
    with _lock:
        if version != _version:
            _keys.clear()
            _version = version
        if key_hash in _keys:
            return _keys[key_hash]
    found = queries.find_api_key(session, key_hash)
    # A copy owned by no session: the request's teardown rollback cannot expire it.
    key = None if found is None else queries.detached_api_key(found)
    if not has_uncommitted_change(session):
        with _lock:
            if version == _version:
                if len(_keys) >= MAX_KEYS:
                    _keys.clear()
                _keys[key_hash] = key
    return key
