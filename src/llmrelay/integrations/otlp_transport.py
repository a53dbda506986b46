"""A light transport for the OTLP/HTTP span exporter: one persistent ``http.client`` connection.

The exporter's default transport posts each batch through a ``requests`` session (its adapters,
hooks, cookie jar and header merging: ~13k instructions a post on the gateway's export thread);
for a plain ``http://`` endpoint reached without a proxy the same POST goes out over a kept-alive
``http.client.HTTPConnection``. The exporter's client still does the rest as before: headers
(``OTEL_EXPORTER_OTLP_*HEADERS``), compression, timeout, retries and back-off. TLS endpoints, a
proxy from the environment or a session of one's own keep the ``requests`` transport.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport

__all__ = ["HTTPClientTransport", "light_transport_for"]


@dataclass(frozen=True, slots=True)
class _Result(BaseHTTPResult):
    body: bytes = b""
    response_headers: Any = field(default=None, hash=False, compare=False)

    def content(self) -> bytes:
        return self.body

    def headers(self) -> Any:
        return self.response_headers if self.response_headers is not None else {}


class HTTPClientTransport(BaseHTTPTransport):
    """POSTs over one kept-alive ``http.client.HTTPConnection`` per endpoint (reopened after an
    error or a response that closes it); safe to call from several threads (one at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._url: str | None = None
        self._target = "/"
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self, url: str, timeout: float | None) -> http.client.HTTPConnection:
        if url != self._url or self._conn is None:
            if self._conn is not None:
                self._conn.close()
            parts = urllib.parse.urlsplit(url)
            self._conn = http.client.HTTPConnection(parts.hostname or "localhost", parts.port or 80, timeout=timeout)
            self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            self._url = url
        conn = self._conn
        if conn.timeout != timeout:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        return conn

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                timeout: float | None = None, data: bytes | None = None) -> BaseHTTPResult:
        with self._lock:
            conn = self._connection(url, timeout)
            try:
                conn.request(method, self._target, data, headers or {})
                response = conn.getresponse()
                body = response.read()
            except Exception as error:  # noqa: BLE001 - reported as the result (as the requests transport does)
                conn.close()
                return _Result(error=error)
            return _Result(status_code=response.status, reason=response.reason, body=body,
                           response_headers=response.headers)

    def is_connection_error(self, exception: Exception | None) -> bool:
        return isinstance(exception, (OSError, http.client.HTTPException))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def light_transport_for(endpoint: str) -> HTTPClientTransport | None:
    """The light transport when ``endpoint`` is plain HTTP reached directly (no proxy from the
    environment applies to it, as ``requests`` would use), else None."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
        return None
    proxies = urllib.request.getproxies_environment()
    if (proxies.get("http") or proxies.get("all")) and not urllib.request.proxy_bypass_environment(
            parts.netloc, proxies):
        return None
    return HTTPClientTransport()
