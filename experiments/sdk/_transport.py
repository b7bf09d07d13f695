"""The SDK's only I/O seam: one object that sends one HTTP request.

:class:`Transport` wraps an ``httpx.Client``. Tests pass
``httpx.MockTransport(handler)`` as ``transport`` and see every request the
SDK makes; nothing else in the SDK touches the network.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import httpx

from experiments import __version__

_USER_AGENT = f"xp-python-sdk/{__version__}"
_JSON = {"Content-Type": "application/json"}


class Transport:
    """Send JSON requests to the xp server with the API key.

    Connection errors and timeouts surface as ``httpx.TransportError``; HTTP
    error statuses are returned, not raised, so the caller decides what is
    transient.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Prepare the transport; the ``httpx.Client`` is opened on first use.

        Args:
            base_url: Server root, e.g. ``http://127.0.0.1:8000``.
            api_key: Sent as ``Authorization: Bearer <api_key>``.
            timeout: Seconds for connecting, reading and writing.
            transport: An ``httpx`` transport to use instead of the network.
        """
        self._base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": _USER_AGENT,
            "Accept": "application/json",
        }
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self._base_url,
                    headers=self._headers,
                    timeout=self._timeout,
                    transport=self._transport,
                )
            return self._client

    def send(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request and read its whole response.

        Args:
            method: HTTP method, e.g. ``POST``.
            path: Path under the base URL, e.g. ``/api/v1/events``.
            json_body: A JSON-able body, or ``None`` for no body. Encoded
                strictly: NaN or infinity raise ``ValueError``.
            headers: Extra request headers.

        Returns:
            The response, already read.

        Raises:
            httpx.TransportError: On connection errors and timeouts.
            ValueError: If ``json_body`` is not strict JSON.
        """
        request_headers = dict(headers or {})
        content: bytes | None = None
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode()
            request_headers["Content-Type"] = "application/json"
        return self._http().request(method, path, content=content, headers=request_headers)

    def send_json(self, method: str, path: str, body: bytes) -> httpx.Response:
        """Send an already encoded JSON body (the sender's batches).

        Raises:
            httpx.TransportError: On connection errors and timeouts.
        """
        return self._http().request(method, path, content=body, headers=_JSON)

    def reset_after_fork(self) -> None:
        """Abandon the parent's connections in a forked child.

        The inherited sockets belong to the parent: closing them here could
        end the parent's TLS sessions, so the old client is dropped unclosed
        and a new one is opened on next use.
        """
        self._client = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connections (idempotent)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
