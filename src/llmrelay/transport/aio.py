"""The async transport: a lean HTTP/1.1 client for ``http``/``https`` URLs (:mod:`.lean`, when
httptools is installed), aiohttp for the rest (and for everything with ``LLMRELAY_LEAN_HTTP=0``),
one pooled session per event loop.

A session belongs to the loop it was made on; when that loop is garbage-collected its
session's sockets are closed with it (see ``_forget``), so ``asyncio.run`` per call works.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any, Awaitable

from ..codecs.sse import SSEDecoder
from ..providers.base import HttpRequest
from . import lean
from .base import ResponseBase, StreamSourceBase, ssl_context, transport_error, upstream_headers

__all__ = ["send", "AsyncResponse", "AsyncStreamSource", "close_sessions", "LEAN"]

#: Whether ``http``/``https`` requests take the lean client (:mod:`.lean`); off with
#: ``LLMRELAY_LEAN_HTTP=0`` in the environment (or by setting this to False): aiohttp then
#: sends every request (for comparisons, or should an upstream need what only aiohttp does).
LEAN = os.environ.get("LLMRELAY_LEAN_HTTP", "1") != "0"

_sessions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]" = weakref.WeakKeyDictionary()


def _forget(connector: Any) -> None:
    # The loop is gone: close the sockets without it (aiohttp's sync close of transports).
    try:
        connector._close()  # noqa: SLF001 - no public sync close exists
    except Exception:  # noqa: BLE001
        pass


def _session() -> Any:
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, loop=loop)
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        _sessions[loop] = session
        weakref.finalize(loop, _forget, connector)
    return session


async def close_sessions() -> None:
    """Close this event loop's session and connections (call before the loop ends to close politely)."""
    await lean.close_pools()
    loop = asyncio.get_running_loop()
    session = _sessions.pop(loop, None)
    if session is not None and not session.closed:
        await session.close()


#: Largest read from a streamed body (what arrived since the last read, up to this).
_READ_MAX = 64 * 1024


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.TimeoutError, TimeoutError))


class AsyncResponse(ResponseBase):
    __slots__ = ()
    _timed_out = staticmethod(_timed_out)

    async def read(self) -> bytes:
        try:
            data = await self._raw.read()
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise self._error(exc) from exc
        self.release()
        return data

    async def readany(self) -> bytes:
        # At most _READ_MAX bytes: bounds one batch of decoded chunks (memory and time per step
        # when the caller is slow to consume, e.g. a gateway client that does not read).
        try:
            return await self._raw.content.read(_READ_MAX)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from exc

    def set_read_timeout(self, seconds: float | None) -> None:
        """Bound every further wait for bytes of this body by ``seconds`` (None: no bound).

        Takes effect now: a read timer already running (armed when the last bytes arrived, with
        the old value) is re-armed from this moment, so the bound on the current gap does not
        depend on where the upstream's bytes happened to be split into reads.
        """
        raw = self._raw
        protocol = getattr(getattr(raw, "connection", None), "protocol", None) if raw is not None else None
        if protocol is not None:
            protocol.read_timeout = seconds
            # aiohttp arms its timer only while a body is being read; re-arm only a running one.
            if getattr(protocol, "_read_timeout_handle", None) is not None:
                protocol._reschedule_timeout()  # noqa: SLF001 - no public way to re-arm it



def send(
    request: HttpRequest,
    timeout: float | None,
    provider: str | None = None,
    model: str | None = None,
    connect_timeout: float | None = None,
    ssl_verify: bool | str = True,
) -> "Awaitable[AsyncResponse | Any]":
    """Send ``request`` (awaited): the response once the status line and headers have arrived.

    ``ssl_verify``: False skips TLS verification; a string is the path of a CA bundle.
    (A plain function returning the sending coroutine: one coroutine less per request.)
    """
    if LEAN and request.method != "HEAD":
        where = lean.target(request.url)
        if where is not None and lean.available():
            return lean.send(where, request, timeout, provider, model, connect_timeout, ssl_verify)
    return _send_aiohttp(request, timeout, provider, model, connect_timeout, ssl_verify)


async def _send_aiohttp(request: HttpRequest, timeout: float | None, provider: str | None, model: str | None,
                        connect_timeout: float | None, ssl_verify: bool | str) -> "AsyncResponse":
    import aiohttp
    from yarl import URL

    session = _session()
    headers = request.headers
    extra = upstream_headers.get()
    if extra:  # (the lean client adds them to its request head)
        headers = {**{k: v for k, v in headers.items() if k.lower() not in extra}, **extra}
    try:
        raw = await session.request(
            request.method,
            # Send the URL exactly as built (yarl would otherwise decode %3A in a Bedrock model
            # id to ":", breaking the path a SigV4 signature covers); urllib3 does the same.
            URL(request.url, encoded=True),
            data=request.body,
            headers=headers,
            allow_redirects=False,
            ssl=True if ssl_verify is True else ssl_context(ssl_verify),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=connect_timeout or timeout, sock_read=timeout
            ),
        )
    except Exception as exc:  # noqa: BLE001
        raise transport_error(exc, request, provider, model, _timed_out(exc)) from exc
    return AsyncResponse(raw, request, provider, model)


class AsyncStreamSource(StreamSourceBase):
    """A streamed HTTP response + the provider's decoder → batches of chunk dicts."""

    __slots__ = ("stash", "_first")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Bytes read but not decoded yet: the rest of the read that carried the first event.
        self.stash = b""
        self._first = True

    async def anext_batch(self) -> list | None:
        while self._ready():
            if self.stash:
                data, self.stash = self.stash, b""
            else:
                data = await self._response.readany()
                if self._first and data:
                    data = self._first_event(data)
            items = self._took(data)
            if items:
                return items
        return None

    def _first_event(self, data: bytes) -> bytes:
        """The first read of an SSE body: only up to its first event now, the rest at the next
        batch, so the first chunk goes out before the rest of a burst is decoded."""
        self._first = False
        if type(getattr(self._decoder, "_wire", None)) is SSEDecoder:
            end = data.find(b"\n\n") + 2
            if 1 < end < len(data):
                self.stash = data[end:]
                return data[:end]
        return data

    def set_read_timeout(self, seconds: float | None) -> None:
        """Change the read timeout for the rest of the stream (time to first chunk, idle)."""
        self._response.set_read_timeout(seconds)

    def next_batch(self) -> list | None:
        from ..streaming import StreamUsageError

        raise StreamUsageError("this stream was opened with acompletion(); use async for, not for")
