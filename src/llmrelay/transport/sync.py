"""The blocking transport: urllib3, one connection pool per process (re-made after fork)."""

from __future__ import annotations

import os
import threading
from typing import Any

from ..exceptions import APIConnectionError, APIError, Timeout
from ..providers.base import HttpRequest
from .source import StreamSourceBase

__all__ = ["send", "SyncResponse", "SyncStreamSource"]

_pool: Any = None
_pool_pid: int | None = None
_lock = threading.Lock()


def _get_pool() -> Any:
    global _pool, _pool_pid
    pid = os.getpid()
    if _pool is None or _pool_pid != pid:
        with _lock:
            if _pool is None or _pool_pid != pid:
                import urllib3

                _pool = urllib3.PoolManager(num_pools=32, maxsize=64, retries=False)
                _pool_pid = pid
    return _pool


def _map_error(exc: BaseException, request: HttpRequest, provider: str | None, model: str | None) -> APIError:
    import urllib3.exceptions as ue

    where = request.url.split("?", 1)[0]
    # NewConnectionError subclasses ConnectTimeoutError in urllib3, but it is a refusal.
    if isinstance(exc, (ue.TimeoutError, TimeoutError)) and not isinstance(exc, ue.NewConnectionError):
        return Timeout(f"Timed out talking to {where}: {exc}", llm_provider=provider, model=model)
    return APIConnectionError(
        f"Connection error talking to {where}: {type(exc).__name__}: {exc}",
        llm_provider=provider,
        model=model,
    )


class SyncResponse:
    """Status and headers of a sent request; the body is read on demand."""

    __slots__ = ("status", "headers", "_raw", "_request", "_provider", "_model")

    def __init__(self, raw: Any, request: HttpRequest, provider: str | None, model: str | None) -> None:
        self._raw = raw
        self.status: int = raw.status
        self.headers: dict[str, str] = dict(raw.headers)
        self._request = request
        self._provider = provider
        self._model = model

    def read(self) -> bytes:
        try:
            data = self._raw.read()
        except Exception as exc:  # noqa: BLE001 - mapped to our hierarchy
            self.close()
            raise _map_error(exc, self._request, self._provider, self._model) from exc
        self._raw.release_conn()
        return data

    def read1(self) -> bytes:
        try:
            return self._raw.read1(65536)
        except Exception as exc:  # noqa: BLE001
            raise _map_error(exc, self._request, self._provider, self._model) from exc

    def set_read_timeout(self, seconds: float | None) -> None:
        """Bound every further read of this body by ``seconds`` (None: no bound)."""
        raw = self._raw
        sock = getattr(getattr(raw, "connection", None), "sock", None) if raw is not None else None
        if sock is not None:
            sock.settimeout(seconds)

    def close(self) -> None:
        """Drop the connection (it may be mid-body, so it is not returned to the pool)."""
        raw = self._raw
        if raw is not None:
            self._raw = None
            try:
                raw.close()
                raw.release_conn()
            except Exception:  # noqa: BLE001
                pass

    def release(self) -> None:
        """The body was read to its end: the connection goes back to the pool."""
        raw = self._raw
        if raw is not None:
            self._raw = None
            raw.release_conn()


def send(
    request: HttpRequest,
    timeout: float | None,
    provider: str | None = None,
    model: str | None = None,
    connect_timeout: float | None = None,
) -> SyncResponse:
    """Send ``request``; return once the status line and headers have arrived."""
    import urllib3

    pool = _get_pool()
    try:
        raw = pool.urlopen(
            request.method,
            request.url,
            body=request.body,
            headers=request.headers,
            preload_content=False,
            redirect=False,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout or timeout, read=timeout),
        )
    except Exception as exc:  # noqa: BLE001
        raise _map_error(exc, request, provider, model) from exc
    return SyncResponse(raw, request, provider, model)


class SyncStreamSource(StreamSourceBase):
    """A streamed HTTP response + the provider's decoder → batches of chunk dicts."""

    __slots__ = ()

    def next_batch(self) -> list | None:
        while self._ready():
            items = self._took(self._response.read1())
            if items:
                return items
        return None

    def set_read_timeout(self, seconds: float | None) -> None:
        """Change the read timeout for the rest of the stream (time to first chunk, idle)."""
        self._response.set_read_timeout(seconds)

    async def anext_batch(self) -> list | None:
        from ..streaming import StreamUsageError

        raise StreamUsageError("this stream was opened with completion(); use a for loop, not async for")
