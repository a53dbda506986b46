"""The blocking transport: urllib3, one connection pool per process (re-made after fork)."""

from __future__ import annotations

import os
import threading
from typing import Any

from ..providers.base import HttpRequest
from .base import ResponseBase, StreamSourceBase, transport_error

__all__ = ["send", "SyncResponse", "SyncStreamSource"]

_pool: Any = None
_pool_pid: int | None = None
_lock = threading.Lock()
#: Pools for calls with ``ssl_verify`` other than True (keyed by its value).
_other_pools: dict[Any, Any] = {}


def _get_pool(ssl_verify: bool | str = True) -> Any:
    global _pool, _pool_pid
    pid = os.getpid()
    if _pool is None or _pool_pid != pid:
        with _lock:
            if _pool is None or _pool_pid != pid:
                import urllib3

                _pool = urllib3.PoolManager(num_pools=32, maxsize=64, retries=False)
                _pool_pid = pid
                _other_pools.clear()
    if ssl_verify is True:
        return _pool
    pool = _other_pools.get(ssl_verify)
    if pool is None:
        import urllib3

        with _lock:
            pool = _other_pools.get(ssl_verify)
            if pool is None:
                tls: dict[str, Any] = (
                    {"cert_reqs": "CERT_NONE", "assert_hostname": False} if ssl_verify is False
                    else {"cert_reqs": "CERT_REQUIRED", "ca_certs": ssl_verify}
                )
                pool = _other_pools[ssl_verify] = urllib3.PoolManager(num_pools=8, maxsize=64, retries=False, **tls)
    return pool


def _timed_out(exc: BaseException) -> bool:
    import urllib3.exceptions as ue

    # NewConnectionError subclasses ConnectTimeoutError in urllib3, but it is a refusal.
    return isinstance(exc, (ue.TimeoutError, TimeoutError)) and not isinstance(exc, ue.NewConnectionError)


class SyncResponse(ResponseBase):
    __slots__ = ()
    _timed_out = staticmethod(_timed_out)

    def read(self) -> bytes:
        try:
            data = self._raw.read()
        except Exception as exc:  # noqa: BLE001 - mapped to our hierarchy
            self.close()
            raise self._error(exc) from exc
        self.release()
        return data

    def read1(self) -> bytes:
        try:
            return self._raw.read1(65536)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from exc

    def set_read_timeout(self, seconds: float | None) -> None:
        """Bound every further read of this body by ``seconds`` (None: no bound)."""
        raw = self._raw
        sock = getattr(getattr(raw, "connection", None), "sock", None) if raw is not None else None
        if sock is not None:
            sock.settimeout(seconds)

    def close(self) -> None:
        """Drop the connection (it may be mid-body, so it is not returned to the pool)."""
        raw = self._detach()
        if raw is not None:
            try:
                raw.close()
                raw.release_conn()
            except Exception:  # noqa: BLE001
                pass

    def release(self) -> None:
        """The body was read to its end: the connection goes back to the pool."""
        raw = self._detach()
        if raw is not None:
            raw.release_conn()


def send(
    request: HttpRequest,
    timeout: float | None,
    provider: str | None = None,
    model: str | None = None,
    connect_timeout: float | None = None,
    ssl_verify: bool | str = True,
) -> SyncResponse:
    """Send ``request``; return once the status line and headers have arrived.

    ``ssl_verify``: False skips TLS verification; a string is the path of a CA bundle.
    """
    import urllib3

    pool = _get_pool(ssl_verify)
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
        raise transport_error(exc, request, provider, model, _timed_out(exc)) from exc
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
