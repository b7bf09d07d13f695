"""The last good config snapshot and its conditional refresh.

``GET /api/v1/config`` is asked with ``If-None-Match`` set to the ETag of the
snapshot in use, so an unchanged config costs a 304 and no parsing. Any
failure (network, status, unparseable document) keeps the snapshot in use:
assignment goes on from the last good config while the server is away.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from experiments.assignment import ConfigSnapshot, parse_config
from experiments.sdk._transport import Transport
from experiments.sdk.errors import ConfigFetchError

CONFIG_PATH = "/api/v1/config"


class ConfigCache:
    """Holds the snapshot that ``assign`` reads; replaced atomically on refresh."""

    def __init__(self) -> None:
        # A plain attribute, not a property: ``assign`` reads it on every call.
        # Replacing it is one reference store, atomic for concurrent readers.
        self.snapshot: ConfigSnapshot | None = None
        self._etag: str | None = None
        # Serialises refreshes (background thread and an explicit refresh()).
        self._lock = threading.Lock()

    @property
    def etag(self) -> str | None:
        """The ETag of the snapshot in use."""
        return self._etag

    def reset_after_fork(self) -> None:
        """Replace the lock, which a parent thread may have held at the fork."""
        self._lock = threading.Lock()

    def refresh(self, transport: Transport) -> bool:
        """Fetch the config, conditionally on the ETag of the snapshot in use.

        Returns:
            True when a new snapshot was installed, False when the server said
            304 Not Modified.

        Raises:
            ConfigFetchError: The request failed or the document is invalid;
                the snapshot in use is unchanged.
        """
        with self._lock:
            headers = {"If-None-Match": self._etag} if self._etag and self.snapshot else {}
            try:
                response = transport.send("GET", CONFIG_PATH, headers=headers)
            except httpx.TransportError as exc:
                raise ConfigFetchError(
                    f"config: request failed ({type(exc).__name__}: {exc})", kind="config"
                ) from exc
            if response.status_code == 304 and self.snapshot is not None:
                return False
            if response.status_code != 200:
                raise ConfigFetchError(
                    f"config: server answered {response.status_code}{_error_message(response)}",
                    kind="config",
                    status_code=response.status_code,
                )
            try:
                snapshot = parse_config(response.json())
            except ValueError as exc:  # json.JSONDecodeError is a ValueError too
                raise ConfigFetchError(
                    f"config: unusable document ({exc})", kind="config", status_code=200
                ) from exc
            self.snapshot = snapshot
            self._etag = response.headers.get("ETag")
            return True


def _error_message(response: httpx.Response) -> str:
    """The server's ``error.message``, if the body carries one, as ``: message``."""
    try:
        body: Any = response.json()
        message = body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return ""
    return f": {message}" if isinstance(message, str) else ""
