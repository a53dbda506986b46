"""A lean HTTP/1.1 client for the async transport's common case (issue 18).

aiohttp's ``ClientSession.request`` costs a few hundred µs of Python per request (request and
response objects, header multidicts, timers, tracing hooks, cookie jar, payload writers) and
its body reader a few Python calls per read. For a gateway relaying many paced streams that
per-request work is most of what is left. This module does the same exchange with less:

- one :class:`_Conn` (an ``asyncio.Protocol``) per upstream connection, parsed by httptools'
  (llhttp) response parser, which also de-chunks bodies; a keep-alive pool per event loop and
  (scheme, host, port, TLS context), idle connections closed after :data:`KEEPALIVE` seconds;
- the request head written in one ``write`` with the body (the request line and ``Host`` are
  encoded once per URL);
- the response head checked by the parser, its framing headers found in it in one go, not header
  by header in Python callbacks; its headers split when first asked for (a streamed relay never
  asks), their lines' names and values remembered across responses (:data:`_LINES`);
- bodies delimited by Content-Length, chunked or the connection's end; gzip and deflate are
  asked for and decoded (zlib), other encodings passed on as they are;
- the read timeout (aiohttp's ``sock_read``: every wait for bytes, for the head and between body
  reads) kept by one timer per idle period, not one re-armed per read; the connect timeout by
  ``asyncio.wait_for`` around the connect, which only new connections do;
- backpressure: a body nobody reads pauses the connection's reads beyond :data:`HIGH_WATER`;
- a body can instead be handed piece by piece to a sink (the gateway's stream fast path,
  :mod:`llmrelay.proxy.fastpath`) from the read callback itself.

Errors are exceptions of this module (or ``TimeoutError``) that :func:`~.base.transport_error`
maps onto ours, as it does aiohttp's. A pooled connection is never retried after its request
was sent (an LLM request is not idempotent): only when the write fails at once on a reused
connection is the request sent again, once, on a new one.

:mod:`.aio` uses this client for ``http``/``https`` URLs when httptools is installed (the
``proxy`` extra) unless ``LLMRELAY_LEAN_HTTP=0``, and aiohttp for everything else.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any, Callable

from ..providers.base import HttpRequest
from .base import HeaderLines, ResponseBase, ssl_context, transport_error, upstream_headers

__all__ = ["send", "LeanResponse", "available", "close_pools", "target", "LeanError", "HIGH_WATER", "KEEPALIVE"]

#: Seconds a pooled connection may stay idle before it is closed instead of reused (aiohttp's
#: keep-alive timeout): a server usually closes idle connections after some time of its own.
KEEPALIVE = 15.0
#: Bytes of an unread body buffered before the connection stops being read.
HIGH_WATER = 256 * 1024
#: Largest read from a streamed body (as the aiohttp transport's ``_READ_MAX``).
READ_MAX = 64 * 1024
#: Largest response head accepted (status line and headers, interim responses' included): an
#: upstream that keeps sending header lines gets an error, not the memory to hold them.
HEAD_MAX = 256 * 1024

_IDLE, _HEAD, _BODY, _DONE, _BROKEN = range(5)


class LeanError(Exception):
    """A failed exchange (the connection, the bytes received)."""


class ServerDisconnected(LeanError):
    pass


class PayloadError(LeanError):
    pass


class ConnectError(LeanError):
    pass


class ProtocolError(LeanError):
    pass


class ReadTimeout(TimeoutError):
    pass


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.TimeoutError, TimeoutError))


_parser_class: Any = None


def available() -> bool:
    """Whether httptools (the ``proxy`` extra) is installed: without it :mod:`.aio` uses aiohttp."""
    global _parser_class
    if _parser_class is None:
        try:
            from httptools import HttpResponseParser
        except ImportError:
            _parser_class = False
        else:
            _parser_class = HttpResponseParser
    return _parser_class is not False


# ====================================================================== URLs
class _Target:
    """What one URL needs: where to connect and the request head's first lines."""

    __slots__ = ("scheme", "host", "port", "tls", "line_end", "host_line")

    def __init__(self, scheme: str, host: str, port: int, path: str, host_header: str) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.tls = scheme == "https"
        self.line_end = b" " + path.encode("ascii") + b" HTTP/1.1\r\n"
        self.host_line = b"Host: " + host_header.encode("idna" if not host_header.isascii() else "ascii") + b"\r\n"


_targets: dict[str, "_Target | None"] = {}


def target(url: str) -> "_Target | None":
    """The connection target of ``url`` if this client handles it (``http``/``https``, no user
    info, an ASCII path), else None (cached per URL)."""
    try:
        return _targets[url]
    except KeyError:
        pass
    result = _parse(url)
    if len(_targets) > 4096:
        _targets.clear()
    _targets[url] = result
    return result


def _parse(url: str) -> "_Target | None":
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host or parts.username is not None or parts.password is not None:
        return None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if not path.isascii() or any(c in path for c in " \r\n\t"):
        return None
    default = 443 if scheme == "https" else 80
    if port is None:
        port = default
    name = f"[{host}]" if ":" in host else host
    host_header = name if port == default else f"{name}:{port}"
    return _Target(scheme, host, port, path, host_header)


# ====================================================================== the connection
class _Conn(asyncio.Protocol):
    """One upstream HTTP/1.1 connection and the exchange it carries (one at a time)."""

    __slots__ = ("pool", "key", "loop", "transport", "parser", "state", "idle_since", "reused", "status",
                 "head_lines", "_headers", "head_waiter", "body", "size", "body_waiter", "exc", "sink", "on_end",
                 "delimited", "decoder", "keep_alive", "timeout", "last_read", "timer", "timer_at", "paused",
                 "relay_paused", "informational", "received", "chunked", "last_data", "chunk_starts",
                 "chunk_ends", "on_chunk_header", "on_chunk_complete", "head", "head_at")

    def __init__(self, pool: "_Pool", key: Any) -> None:
        self.pool = pool
        self.key = key
        self.loop = pool.loop
        self.transport: Any = None
        self.parser: Any = None
        self.state = _IDLE
        self.idle_since = 0.0
        self.reused = False
        # Chunk boundaries, for a sink that reads whole chunks itself (aligned()): httptools calls
        # these two at every chunk's start and end; C callables, no Python frame per chunk.
        self.last_data = b""  # the last read's bytes
        self.chunk_starts = iter(range(1 << 62))
        self.chunk_ends = iter(range(1 << 62))
        self.on_chunk_header = self.chunk_starts.__next__
        self.on_chunk_complete = self.chunk_ends.__next__
        # The read timeout's timer, armed for timer_at; it outlives an exchange (see arm()).
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.head_lines = b""  # the response head (status and header lines), split on demand (headers)
        self._headers: dict[str, str] | None = None
        self.head_waiter: asyncio.Future | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.body_waiter: asyncio.Future | None = None
        self.exc: BaseException | None = None
        self.sink: Callable[[bytes], None] | None = None
        self.on_end: Callable[[], None] | None = None
        self.delimited = False  # Content-Length or chunked (else the body ends with the connection)
        self.chunked = False  # Transfer-Encoding: chunked
        self.decoder: Any = None
        self.keep_alive = False
        self.timeout: float | None = None
        self.last_read = 0.0
        self.paused = False  # reading paused because nobody reads the buffered body
        self.relay_paused = False  # reading paused by the sink's owner (its client is slow)
        self.informational = False
        self.received = False
        self.head = b""  # the exchange's bytes while its head is read (see on_headers_complete)
        self.head_at = 0  # where in them the next head begins (after an interim response's)

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.parser = _parser_class(self)
        self.pool.open.add(self)

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state != _HEAD and state != _BODY:
            # bytes nobody asked for (after a complete response, on an idle connection)
            self._close()
            return
        self.last_read = self.loop.time()
        self.received = True
        self.last_data = data
        if state == _HEAD:  # (kept for on_headers_complete: one read, usually, so no copy)
            head = self.head
            head = self.head = head + data if head else data
            if len(head) > HEAD_MAX and head.find(b"\r\n\r\n", self.head_at, self.head_at + HEAD_MAX) < 0:
                self._fail(ProtocolError(f"Invalid HTTP response: a head of more than {HEAD_MAX} bytes"))
                self._close()
                return
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # noqa: BLE001 - httptools' parser errors (malformed bytes)
            if self.state == _HEAD or self.state == _BODY:
                self._fail(ProtocolError(f"Invalid HTTP response: {type(exc).__name__}: {exc}"))
            self._close()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost ends the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.open.discard(self)
        self.pool.forget(self)
        state = self.state
        if state == _BODY and not self.delimited and exc is None and not self.informational:
            self._complete()
        elif state == _HEAD or state == _BODY:
            if state == _BODY:
                error: BaseException = PayloadError("Response payload is not completed: the connection was closed")
            elif exc is not None:
                error = ServerDisconnected(f"Server disconnected: {type(exc).__name__}: {exc}")
            else:
                error = ServerDisconnected("Server disconnected")
            self._fail(error)
        if self.state != _DONE:
            self.state = _BROKEN
        self._cancel_timer()

    # ------------------------------------------------------------------ httptools callbacks
    # No ``on_header``: httptools would make two bytes objects and a Python call per header (an
    # OpenAI response has ~24), and each a dict entry and two decodes. The parser checks the
    # head (llhttp, strict: CRLF line ends, no folding, no control characters, one length), and
    # once it is complete the head's bytes are split here in one go (_take_head).
    def on_headers_complete(self) -> None:
        if self.state != _HEAD:  # a second response after the one asked for: not reusable
            self.keep_alive = False
            return
        status = self.parser.get_status_code()
        buf = self.head
        start = buf.find(b"HTTP/", self.head_at)  # (the parser allows empty lines before it)
        end = buf.find(b"\r\n\r\n", start)
        if start < 0 or end < 0:
            raise ProtocolError("response head not found")
        if 100 <= status < 200 and status != 101:  # an interim response: the real one follows
            self.informational = True
            self.head_at = end + 4
            return
        self.head = b""
        self._take_head(buf, start, end)
        self.status = status
        self.state = _BODY
        if status in (204, 304):
            self.delimited = True
        waiter = self.head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def headers(self) -> dict[str, str]:
        """The exchange's response headers (:func:`head_headers` of its head, split when first
        asked for: a streamed relay needs only the framing, which :meth:`_take_head` reads)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = head_headers(self.head_lines)
        return headers

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        self._headers = value

    def _take_head(self, buf: bytes, start: int, end: int) -> None:
        """What the head ``buf[start:end]`` (status line and header lines, checked by the
        parser) says of the body: each framing header line counts, in order. The headers
        themselves are split from it when asked for (:attr:`headers`).

        A header line begins after a CRLF (the head's first line is the status line) and its
        name ends at its first colon, so ``CRLF + name + ":"`` in the lower-cased head finds
        exactly the lines :func:`_line` gives that kind (~25 k instructions for OpenAI's 24
        lines, where splitting them all took ~90 k)."""
        head = self.head_lines = buf[start:end]  # (not the read's body bytes after it)
        self._headers = None
        low = head.lower()
        for kind, mark in _FRAMING_MARKS:
            i = low.find(mark)
            while i >= 0:
                value_start = i + len(mark)
                value_end = low.find(b"\r\n", value_start)
                if value_end < 0:
                    value_end = len(low)
                self._framing(kind, low[value_start:value_end])
                i = low.find(mark, value_end)

    def _framing(self, kind: int, value: bytes) -> None:
        """A framing header line's say (``kind`` of :data:`_KINDS`; ``value`` lower-cased bytes)."""
        if kind == 1:  # content-length
            self.delimited = True
        elif kind == 2:  # transfer-encoding
            if value.find(b"chunked") >= 0:
                self.delimited = self.chunked = True
        else:  # content-encoding
            coding = value.strip()
            if coding in (b"gzip", b"x-gzip"):
                self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif coding == b"deflate":
                self.decoder = _Deflate()

    def on_body(self, data: bytes) -> None:
        if self.state != _BODY:
            return
        decoder = self.decoder
        if decoder is not None:
            try:
                data = decoder.decompress(data)
            except zlib.error as exc:
                self._fail(PayloadError(f"Can not decode content-encoding: {exc}"))
                self._close()
                return
            if not data:
                return
        sink = self.sink
        if sink is not None:
            sink(data)
            return
        self.body.append(data)
        self.size += len(data)
        waiter = self.body_waiter
        if waiter is not None:
            self.body_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if self.size > HIGH_WATER and not self.paused:
            self.paused = True
            if not self.relay_paused:
                self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            self.head_lines = b""
            self._headers = None
            self.delimited = self.chunked = False
            self.decoder = None
            return
        if self.state != _BODY:
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._complete()

    # ------------------------------------------------------------------ the exchange
    def _complete(self) -> None:
        if self.state != _BODY:
            return
        decoder = self.decoder
        if decoder is not None:
            try:
                rest = decoder.flush()
            except zlib.error as exc:
                self._fail(PayloadError(f"Can not decode content-encoding: {exc}"))
                return
            if rest:
                self.on_body(rest)
        self.state = _DONE  # (the timer stays armed for the connection's next exchange: arm())
        self._wake()
        end = self.on_end
        if end is not None:
            end()

    def _fail(self, exc: BaseException) -> None:
        """End the exchange with ``exc`` (raised by the next wait for the head or the body)."""
        if self.exc is None:
            self.exc = exc
        self.state = _BROKEN
        self.keep_alive = False
        self._cancel_timer()
        waiter = self.head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
            waiter.exception()  # retrieved by send() unless its task is gone
        self._wake()
        end = self.on_end
        if end is not None:
            end()

    def _wake(self) -> None:
        waiter = self.body_waiter
        if waiter is not None:
            self.body_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _close(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def abort(self) -> None:
        """Drop the connection (the exchange is abandoned)."""
        self.sink = self.on_end = None
        if self.state != _DONE:
            self.state = _BROKEN
        self._cancel_timer()
        transport = self.transport
        if transport is not None:
            transport.abort()

    close = abort  # what the response's close() calls

    def release(self) -> None:
        """The exchange is over: back to the pool if the response was complete and reusable."""
        self.sink = self.on_end = None
        if self.state == _DONE and self.keep_alive and not self.body and self.transport is not None \
                and not self.transport.is_closing():
            if self.paused or self.relay_paused:
                self.paused = self.relay_paused = False
                self.transport.resume_reading()
            self.pool.put(self)
        else:
            self.abort()

    # ------------------------------------------------------------------ timers
    def arm(self, timeout: float | None) -> None:
        """Bound the wait for the next bytes by ``timeout`` seconds from now (None: no bound).

        The connection keeps one timer across its exchanges and re-arms it only when it would
        fire too late: when it fires early, :meth:`_check` re-arms it for what is due then (or
        drops it, between exchanges). So a kept-alive connection arms no timer per request (it
        was two ``call_at``/``cancel`` pairs, ≈ 4 k instructions each with uvloop)."""
        self.timeout = timeout
        now = self.last_read = self.loop.time()
        if timeout:
            due = now + timeout
            timer = self.timer
            if timer is None or self.timer_at > due:
                if timer is not None:
                    timer.cancel()
                self.timer_at = due
                self.timer = self.loop.call_at(due, self._check)

    def _cancel_timer(self) -> None:
        timer = self.timer
        if timer is not None:
            self.timer = None
            timer.cancel()

    def _check(self) -> None:
        self.timer = None
        timeout = self.timeout
        if timeout is None or (self.state != _HEAD and self.state != _BODY):
            return
        now = self.loop.time()
        transport = self.transport
        if self.paused or self.relay_paused or (transport is not None and transport.get_write_buffer_size()):
            due = now + timeout  # not waiting for the upstream: its reads are paused, or we still write
        else:
            due = self.last_read + timeout
        if now < due:
            self.timer_at = due
            self.timer = self.loop.call_at(due, self._check)
            return
        self._fail(ReadTimeout("Timeout on reading data from socket"))
        self._close()

    # ------------------------------------------------------------------ reading the body
    async def read_some(self) -> bytes:
        while not self.body:
            if self.state == _DONE:
                return b""
            if self.exc is not None:
                raise self.exc
            if self.state != _BODY:
                raise PayloadError("Response payload is not completed")
            waiter = self.body_waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self.body_waiter = None
        body = self.body
        if len(body) == 1 and len(body[0]) <= READ_MAX:
            data = body.pop()
        else:
            data = b"".join(body)
            body.clear()
            if len(data) > READ_MAX:
                body.append(data[READ_MAX:])
                data = data[:READ_MAX]
        self.size -= len(data)
        if self.paused and self.size <= HIGH_WATER // 4:
            self.paused = False
            if not self.relay_paused and self.transport is not None:
                self.transport.resume_reading()
        return data

    # ------------------------------------------------------------------ a sink's hooks
    def aligned(self) -> bool:
        """Whether the parser stands between two chunks of a chunked body (every chunk begun has
        ended, and the last read ended with a line feed: not inside a chunk-size line, whose end
        would have begun a chunk), so that a read of whole chunks may be handled without it."""
        return (self.state == _BODY and self.chunked and self.decoder is None and not self.informational
                and self.chunk_starts.__length_hint__() == self.chunk_ends.__length_hint__()
                and self.last_data[-1:] == b"\n")

    def take_body(self) -> bytes:
        """The buffered body bytes (for a sink taking the body over)."""
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        self.size = 0
        if self.paused:
            self.paused = False
            if not self.relay_paused and self.transport is not None:
                self.transport.resume_reading()
        return data

    def pause_reading(self) -> None:
        if not self.relay_paused:
            self.relay_paused = True
            if not self.paused and self.transport is not None:
                self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.relay_paused:
            self.relay_paused = False
            if not self.paused and self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()


#: Header lines seen → ``(name, value)``, for :func:`head_headers`: lines of at most
#: :data:`_LINE_MAX` characters, at most :data:`_PER_NAME` a name (a name whose value changes
#: on every response — request ids, dates, remaining limits — is soon no longer kept), at most
#: :data:`_LINES_MAX` in all (then emptied, and :data:`_NAME_LINES` with it).
_LINES: dict[str, tuple[str, str]] = {}
_NAME_LINES: dict[str, int] = {}  # name → how many of its lines _LINES got
_LINES_MAX = 2048
_LINE_MAX = 512
_PER_NAME = 4
_KINDS = {"content-length": 1, "transfer-encoding": 2, "content-encoding": 3}


#: ``(kind, CRLF + name + ":")`` of each framing header (:data:`_KINDS`), for :meth:`_Conn._take_head`.
_FRAMING_MARKS = tuple((kind, b"\r\n" + name.encode() + b":") for name, kind in _KINDS.items())


def head_headers(head: bytes) -> dict[str, str]:
    """The headers of the response head ``head`` (status line and header lines, checked by the
    parser; none when empty): each name as sent with its first value (its leading blanks
    dropped, as the parser drops them), decoded as UTF-8 with surrogate escapes, in order.

    An upstream sends most of its header lines the same on every response (OpenAI 14 of its
    24), so a line's name and value are kept by line (:data:`_LINES`): a line seen before costs
    a lookup, not a split, a strip and their strings."""
    if not head:
        return {}
    lines = head.decode("utf-8", "surrogateescape").split("\r\n")
    del lines[0]  # the status line
    if len(_LINES) > _LINES_MAX:
        _LINES.clear()
        _NAME_LINES.clear()
    headers: dict[str, str] = {}
    add = headers.setdefault
    get = _LINES.get
    for line in lines:
        entry = get(line)
        if entry is None:
            entry = _line(line)
        add(*entry)
    return headers


def _line(line: str) -> tuple[str, str]:
    """A header line's entry of :data:`_LINES` (kept there, unless too long or its name has
    had :data:`_PER_NAME` lines kept)."""
    name, _, value = line.partition(":")
    entry = (name, value.lstrip(" \t"))
    if len(line) <= _LINE_MAX:
        kept = _NAME_LINES.get(name, 0)
        if kept < _PER_NAME:
            _NAME_LINES[name] = kept + 1
            _LINES[line] = entry
    return entry


class _Deflate:
    """``Content-Encoding: deflate``: zlib-wrapped as the RFC says, or raw deflate as some send."""

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: Any = None

    def decompress(self, data: bytes) -> bytes:
        if self._d is None:
            self._d = zlib.decompressobj(zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS)
        return self._d.decompress(data)

    def flush(self) -> bytes:
        return self._d.flush() if self._d is not None else b""


# ====================================================================== pools
class _Pool:
    """The idle connections of one event loop, per (scheme, host, port, TLS context)."""

    __slots__ = ("loop", "idle", "open")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: dict[Any, list[_Conn]] = {}
        self.open: set[_Conn] = set()

    def get(self, key: Any) -> "_Conn | None":
        conns = self.idle.get(key)
        if not conns:
            return None
        now = self.loop.time()
        while conns:
            conn = conns.pop()
            transport = conn.transport
            if transport is None or transport.is_closing():
                continue
            if now - conn.idle_since > KEEPALIVE:
                transport.close()
                continue
            return conn
        return None

    def put(self, conn: _Conn) -> None:
        conn._reset()
        conn.state = _IDLE
        conn.idle_since = self.loop.time()
        self.idle.setdefault(conn.key, []).append(conn)

    def forget(self, conn: _Conn) -> None:
        conns = self.idle.get(conn.key)
        if conns and conn in conns:
            conns.remove(conn)

    def close(self) -> None:
        self.idle.clear()
        for conn in list(self.open):
            if conn.transport is not None:
                conn.transport.close()
        self.open.clear()


_pools: dict[asyncio.AbstractEventLoop, _Pool] = {}


def _drop_closed_loops() -> None:
    """Forget the pools of closed event loops (``asyncio.run`` per call), closing their sockets."""
    for loop in [loop for loop in _pools if loop.is_closed()]:
        pool = _pools.pop(loop)
        for conn in list(pool.open):
            sock = getattr(conn.transport, "_sock", None)  # asyncio's transports; the loop cannot close them now
            try:
                if sock is not None:
                    sock.close()
            except Exception:  # noqa: BLE001
                pass
        pool.open.clear()
        pool.idle.clear()


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        _drop_closed_loops()
        pool = _pools[loop] = _Pool(loop)
    return pool


async def close_pools() -> None:
    """Close this event loop's connections."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        pool.close()


# ====================================================================== sending
#: Request heads by what decides them but the body's length: ``(method, target, body kind,
#: headers)`` → ``(before, after, names)``, the head being ``before + Content-Length line +
#: after`` (``after`` alone when no length is sent), ``names`` the headers' lowercase names. A
#: gateway sends the same headers to a deployment on every request: building the lines (four
#: checks and an f-string per header) is done once.
_heads: dict[Any, tuple[bytes, bytes | None, frozenset[str]]] = {}
_extra_headers = upstream_headers.get


def _head(method: str, where: _Target, request: HttpRequest) -> bytes:
    """The request head (request line, headers, blank line) as bytes, with the task's
    :data:`~.base.upstream_headers`."""
    body = request.body
    try:
        key = (method, where, 0 if body is None else 1 if body else 2, *request.headers.items())
        parts = _heads.get(key)
    except TypeError:  # an unhashable header value: built as it is, not kept
        key, parts = None, None
    if parts is None:
        parts = _head_parts(method, where, request)
        if key is not None:
            if len(_heads) > 256:
                _heads.clear()
            _heads[key] = parts
    before, after, names = parts
    extra = _extra_headers()
    if extra:
        if not names.isdisjoint(extra):  # the call has its own: replaced (the head made anew)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in extra}
            before, after, _ = _head_parts(method, where,
                                           HttpRequest(request.method, request.url, {**headers, **extra}, body))
        elif type(extra) is HeaderLines:  # (their lines written already)
            before += extra.lines
        else:
            before += _extra_lines(extra)
    if after is None:
        return before
    return b"%sContent-Length: %d\r\n%s" % (before, len(body) if body is not None else 0, after)


_valid_names: set[str] = set()  # (names of upstream_headers found valid)


def _extra_lines(extra: dict[str, str]) -> bytes:
    """The lines of the task's :data:`~.base.upstream_headers` (as :func:`_lines` checks them:
    the names once each, the values every time)."""
    if len(extra) == 1:  # (the gateway's traceparent alone)
        for name, value in extra.items():
            if name in _valid_names and "\n" not in value and "\r" not in value:
                return f"{name}: {value}\r\n".encode("utf-8")
    if not _valid_names.issuperset(extra):
        _lines([(name, "") for name in extra])  # (raises on an invalid one)
        if len(_valid_names) < 256:
            _valid_names.update(extra)
    text = ""
    for name, value in extra.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"invalid HTTP header {name!r}: newline or carriage return")
        text += f"{name}: {value}\r\n"
    return text.encode("utf-8")


def _lines(headers: Any) -> bytes:
    """Header lines of ``(name, value)`` pairs (checked: no line breaks, no colon in a name)."""
    lines = []
    for name, value in headers:
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise ValueError(f"invalid HTTP header {name!r}: newline, carriage return or colon")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("utf-8")


def _head_parts(method: str, where: _Target, request: HttpRequest) -> tuple[bytes, bytes | None, frozenset[str]]:
    """:func:`_head`'s ``(before, after, names)`` (``after`` None: the head is ``before``)."""
    headers = request.headers
    have = frozenset([name.lower() for name in headers])
    body = request.body
    lines = [_lines(headers.items())]
    if "accept" not in have:
        lines.append(b"Accept: */*\r\n")
    if "accept-encoding" not in have:
        lines.append(b"Accept-Encoding: gzip, deflate\r\n")
    start = method.encode("ascii") + where.line_end
    if "host" not in have:
        start += where.host_line
    length = False
    tail = []
    if body is not None or method in ("POST", "PUT", "PATCH"):
        length = "content-length" not in have and "transfer-encoding" not in have
        if body and "content-type" not in have:
            tail.append(b"Content-Type: application/octet-stream\r\n")
    tail.append(b"\r\n")
    before = start + b"".join(lines)
    after = b"".join(tail)
    return (before, after, have) if length else (before + after, None, have)


async def _connect(pool: _Pool, where: _Target, key: Any, tls: Any, connect_timeout: float | None) -> _Conn:
    loop = pool.loop
    conn_box: list[_Conn] = []

    def factory() -> _Conn:
        conn = _Conn(pool, key)
        conn_box.append(conn)
        return conn

    coro = loop.create_connection(factory, where.host, where.port, ssl=tls,
                                  server_hostname=where.host if tls is not None else None)
    try:
        if connect_timeout:
            await asyncio.wait_for(coro, connect_timeout)
        else:
            await coro
    except asyncio.CancelledError:
        for conn in conn_box:
            conn.abort()
        raise
    except (asyncio.TimeoutError, TimeoutError) as exc:
        for conn in conn_box:
            conn.abort()
        raise TimeoutError(f"Connection timeout to host {where.scheme}://{where.host}:{where.port}") from exc
    except OSError as exc:
        raise ConnectError(f"Cannot connect to host {where.host}:{where.port} ssl:{'default' if tls else False} "
                           f"[{exc.strerror or exc}]") from exc
    return conn_box[0]


_default_tls: Any = None


def _tls(ssl_verify: bool | str) -> Any:
    global _default_tls
    if ssl_verify is True:
        if _default_tls is None:
            import ssl

            _default_tls = ssl.create_default_context()
        return _default_tls
    return ssl_context(ssl_verify)


async def send(
    where: _Target,
    request: HttpRequest,
    timeout: float | None,
    provider: str | None = None,
    model: str | None = None,
    connect_timeout: float | None = None,
    ssl_verify: bool | str = True,
) -> "LeanResponse":
    """Send ``request`` to ``where`` (:func:`target` of its URL); return once the status line and
    headers have arrived. Errors are ours (:func:`~.base.transport_error`)."""
    pool = _pool()
    try:
        tls = _tls(ssl_verify) if where.tls else None
        key = (where.scheme, where.host, where.port, id(tls))
        method = request.method.upper()
        head = _head(method, where, request)
        body = request.body
        conn = pool.get(key)
        reused = conn is not None
        while True:
            if conn is None:
                conn = await _connect(pool, where, key, tls, connect_timeout or timeout)
            conn.state = _HEAD
            conn.reused = reused
            transport = conn.transport
            if body and len(body) < 65536:
                transport.write(head + body)
            else:
                transport.write(head)
                if body:
                    transport.write(body)
            if reused and transport.is_closing() and not conn.received:
                # the write failed at once on a connection the upstream had closed: once more on a new one
                conn.abort()
                conn, reused = None, False
                continue
            break
        conn.arm(timeout)
        waiter = conn.head_waiter = pool.loop.create_future()
        try:
            if conn.state == _HEAD:
                await waiter
            elif conn.exc is not None:
                raise conn.exc
        except BaseException:
            conn.abort()
            raise
        finally:
            conn.head_waiter = None
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001
        raise transport_error(exc, request, provider, model, _timed_out(exc)) from exc
    return LeanResponse(conn, request, provider, model)


class LeanResponse(ResponseBase):
    """A response read from a :class:`_Conn` (the interface of :class:`.aio.AsyncResponse`)."""

    __slots__ = ("_head", "_headers")
    _timed_out = staticmethod(_timed_out)

    def __init__(self, raw: _Conn, request: HttpRequest, provider: str | None, model: str | None) -> None:
        self._raw = raw
        self.status = raw.status
        # (the exchange's: the connection's next one has its own)
        self._head = raw.head_lines
        self._headers = raw._headers
        self._request = request
        self._provider = provider
        self._model = model

    @property
    def headers(self) -> dict[str, str]:  # type: ignore[override]
        """The response's headers, split from its head when first asked for."""
        headers = self._headers
        if headers is None:
            headers = self._headers = head_headers(self._head)
        return headers

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        self._headers = value

    async def read(self) -> bytes:
        conn = self._raw
        parts = []
        try:
            while True:
                data = await conn.read_some()
                if not data:
                    break
                parts.append(data)
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise self._error(exc) from exc
        self.release()
        return b"".join(parts)

    async def readany(self) -> bytes:
        try:
            return await self._raw.read_some()
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from exc

    def set_read_timeout(self, seconds: float | None) -> None:
        """Bound every further wait for bytes of this body by ``seconds`` (None: no bound), from now."""
        conn = self._raw
        if conn is not None and (conn.state == _HEAD or conn.state == _BODY):
            conn.arm(seconds)

    @property
    def conn(self) -> "_Conn | None":
        """The connection (None once released or closed): a body sink's hooks."""
        return self._raw

    def __del__(self) -> None:
        # Abandoned without close() or release() (a stream left unfinished): drop the connection
        # rather than keep it open, half read, until the upstream gives up.
        conn = getattr(self, "_raw", None)
        if conn is not None:
            try:
                conn.abort()
            except Exception:  # noqa: BLE001 - the loop may be closed already
                pass
