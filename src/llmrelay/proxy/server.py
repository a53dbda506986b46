"""The gateway's HTTP server: uvicorn (httptools) with the I/O limits a public endpoint needs.

:class:`GatewayProtocol` adds to uvicorn's HTTP/1.1 protocol, per connection and without
per-request work in the app:

- a deadline for the request line and headers (``header_timeout``, slowloris) and a size limit
  (``max_header_bytes``: 431); a deadline for the body (``body_timeout``: 408);
- a bounded write buffer (``write_buffer_bytes``): when a client stops reading, the app's next
  write waits, so the upstream is no longer read either (backpressure); after
  ``write_timeout`` the connection is cut, which cancels the upstream request;
- close-delimited response bodies for HTTP/1.0 clients (no chunked encoding);
- OpenAI-shaped error JSON for protocol errors uvicorn would answer in plain text.

Streamed bodies may skip uvicorn's per-``send`` work: ``scope["extensions"]["llmrelay.direct"]``
(a :class:`DirectBody`, for our own app) writes body bytes straight to the transport, framed
as uvicorn frames them, and tells its user when the client's write buffer fills and drains
(the stream fast path, :mod:`.fastpath`); :meth:`DirectBody.respond` sends a whole response in
one write (cache hits); :meth:`DirectBody.start` writes the app's status line and headers with
one check of the whole block (not uvicorn's two regular-expression searches per header).

A cut request is marked in its ASGI scope (:data:`~llmrelay.proxy.cuts.SCOPE_CUT`) so the
app's log line says why.

 On SIGTERM/SIGINT uvicorn stops accepting connections and closes idle ones; in-flight
requests get ``graceful_timeout`` seconds, then the app ends what is left (streams with an error
frame and ``[DONE]``, see ``ProxyApp.start_drain``); :class:`GatewayServer` then exits with
status 0 instead of re-raising the signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import signal
import socket
import threading
import weakref
from typing import Any

from uvicorn import Server
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from .cuts import SCOPE_CUT
from .errors import error_json
from .limits import ServerLimits

__all__ = ["GatewayProtocol", "GatewayServer", "DirectBody", "DIRECT"]

#: The scope extension under which a :class:`DirectBody` is offered.
DIRECT = "llmrelay.direct"

log = logging.getLogger("llmrelay.proxy")


class _HeadersTooLarge(Exception):
    """Raised from a parser callback; httptools turns it into a parser error."""


#: What a connection's deadline is for (GatewayProtocol._set_deadline).
_NONE, _HEADERS, _BODY, _KEEP_ALIVE = 0, 1, 2, 3
#: A deadline's timer may fire this much before it (libuv's clock counts milliseconds).
_EARLY = 0.001


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines and size limits (see the module docstring).

    The limits come from ``config.llmrelay_limits`` (a :class:`ServerLimits`), which survives
    the pickling of the config into ``--workers`` processes.
    """

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits: ServerLimits = getattr(config, "llmrelay_limits", None) or ServerLimits()
        self._header_bytes = 0
        self._status = 0  # the status a parser error is answered with (0: 400)
        # The connection's one deadline at a time (see _set_deadline): which (_HEADERS, _BODY,
        # _KEEP_ALIVE or _NONE), when, and the timer that checks it, armed for _timer_at.
        self._deadline = _NONE
        self._deadline_at = 0.0
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._write_timer: asyncio.TimerHandle | None = None
        self._direct: DirectBody | None = None  # the body being written directly, watching flow
        self._on_lost: Any = None  # the running request's disconnect callback (DirectBody.on_disconnect)

    # ------------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Bound what one client can make us buffer, in the process and in the kernel (a fixed
        # SO_SNDBUF also stops the kernel from growing it to megabytes for a client that does
        # not read, which we would spend CPU filling from the upstream).
        size = self.limits.write_buffer_bytes
        try:
            transport.set_write_buffer_limits(high=size)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except (AttributeError, NotImplementedError, OSError):  # pragma: no cover - platform dependent
            pass
        self._set_deadline(_HEADERS, self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = _NONE
        for timer in (self._deadline_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._deadline_timer = self._write_timer = None
        self._direct = None
        super().connection_lost(exc)
        lost, self._on_lost = self._on_lost, None
        if lost is not None:
            lost()

    # ------------------------------------------------------------------ deadlines
    def _set_deadline(self, kind: int, delay: float) -> None:
        """The connection's deadline is now ``kind`` (the request's headers, its body, or the
        next request on a kept-alive connection), ``delay`` seconds from now.

        One timer per connection checks it, re-armed only when it would fire too late; when it
        fires early (the deadline moved on, or was met) it is re-armed for the current one, or
        dropped. A request whose headers and body come in one read, answered on a kept-alive
        connection, thus arms no timer of its own: three ``call_later``/``cancel`` pairs per
        request (uvicorn's keep-alive timer, the header and body deadlines) were ≈ 4 k
        instructions each with uvloop (a libuv timer allocated, started, closed and freed)."""
        at = self.loop.time() + delay
        self._deadline, self._deadline_at = kind, at
        timer = self._deadline_timer
        if timer is None or self._timer_at > at:
            if timer is not None:
                timer.cancel()
            self._timer_at = at
            self._deadline_timer = self.loop.call_at(at, self._deadline_due)

    def _deadline_due(self) -> None:
        self._deadline_timer = None
        kind = self._deadline
        if kind == _NONE:
            return
        at = self._deadline_at
        if self.loop.time() + _EARLY < at:
            self._timer_at = at
            self._deadline_timer = self.loop.call_at(at, self._deadline_due)
            return
        self._deadline = _NONE
        if kind == _HEADERS:
            self._headers_late()
        elif kind == _BODY:
            self._body_late(self.cycle)
        else:
            self.timeout_keep_alive_handler()

    def _unset_keepalive_if_required(self) -> None:
        super()._unset_keepalive_if_required()
        if self._deadline == _KEEP_ALIVE:
            self._deadline = _NONE

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive deadline on the connection's timer (_set_deadline)
        # instead of a timer of its own per response.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._set_deadline(_KEEP_ALIVE, self.timeout_keep_alive)
        self.flow.resume_writing()

    # ------------------------------------------------------------------ request line and headers
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._deadline != _HEADERS:  # (the first request's runs from the connection's start)
            self._set_deadline(_HEADERS, self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.url += url  # (uvicorn's on_url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's on_header, with the size count inline (a request has ~5-15 headers)
        size = self._header_bytes = self._header_bytes + len(name) + len(value) + 4
        if size > self.limits.max_header_bytes:
            self._status = 431
            raise _HeadersTooLarge
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            self._status = 431
            raise _HeadersTooLarge

    def on_headers_complete(self) -> None:
        if self._deadline == _HEADERS:
            self._deadline = _NONE
        url = self.url
        parser = self.parser
        if (url[:1] != b"/" or url[1:2] == b"/" or url.translate(None, _PLAIN_PATH_BYTES) or self.root_path
                or self.limit_concurrency is not None or parser.should_upgrade()):
            super().on_headers_complete()
        else:
            self._plain_headers_complete(url, parser)
        if self.cycle is not None and self.cycle.more_body and _has_body(self.headers):
            self._set_deadline(_BODY, self.limits.body_timeout)

    def _plain_headers_complete(self, url: bytes, parser: Any) -> None:
        """uvicorn's ``on_headers_complete`` for a request target that is a plain path (no
        query, fragment, percent-escape or anything ``httptools.parse_url`` would change: the
        path is the target's bytes), no ``root_path``, concurrency limit or upgrade: the same
        scope and cycle, without parsing the URL."""
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        scope["path"] = url.decode("ascii")
        scope["raw_path"] = url
        scope["query_string"] = b""
        existing = self.cycle
        app = self.app
        self.cycle = cycle = RequestResponseCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, app)
        else:  # pipelined: queued until the response before it is complete
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, app))

    def on_message_complete(self) -> None:
        if self._deadline == _BODY:
            self._deadline = _NONE
        super().on_message_complete()

    def _headers_late(self) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is in progress (a pipelined request waits for it)
        log.warning("client %s: request headers not complete within header_timeout=%gs; connection closed",
                    _peer(self.client), self.limits.header_timeout)
        self._answer(408, f"The request headers were not received within {self.limits.header_timeout:g} s.")

    def _body_late(self, cycle: Any) -> None:
        if cycle is not self.cycle or self.transport.is_closing() or cycle.response_started:
            return
        cycle.scope[SCOPE_CUT] = (408, f"request body not complete within body_timeout={self.limits.body_timeout:g}s")
        log.warning("client %s: request body not complete within body_timeout=%gs; connection closed",
                    _peer(self.client), self.limits.body_timeout)
        self._answer(408, f"The request body was not received within {self.limits.body_timeout:g} s.")

    # ------------------------------------------------------------------ protocol errors
    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a malformed request, as OpenAI-shaped JSON (431 for large headers)."""
        status = self._status or 400
        if status == 431:
            message = f"Request headers too large: the limit is {self.limits.max_header_bytes} bytes."
        else:
            message = f"Malformed HTTP request: {msg}"
        self._answer(status, message)

    def _answer(self, status: int, message: str) -> None:
        body = error_json(message, status)
        reason = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason.get(status, b"Error"), len(body), body)
        )
        self.transport.close()

    # ------------------------------------------------------------------ clients that do not read
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limits.write_timeout, self._write_stalled)
        direct = self._direct
        if direct is not None and direct.on_pause is not None:
            direct.on_pause()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        direct = self._direct
        if direct is not None and direct.on_resume is not None:
            direct.on_resume()

    def _write_stalled(self) -> None:
        self._write_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None:
            cycle.scope[SCOPE_CUT] = (499, f"client stopped reading for write_timeout={self.limits.write_timeout:g}s")
        log.warning("client %s stopped reading for write_timeout=%gs; connection and upstream request cut",
                    _peer(self.client), self.limits.write_timeout)
        self.transport.abort()

    # ------------------------------------------------------------------ graceful stop
    def shutdown(self) -> None:
        """uvicorn stops: no new requests on this connection; the app ends what is still in
        flight after ``graceful_timeout`` (uvicorn's own, later deadline is the hard stop)."""
        app = _find(self.app, "start_drain")
        if app is not None:
            app.start_drain(self.limits.graceful_timeout)
        super().shutdown()

    # ------------------------------------------------------------------ HTTP/1.0
    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        scope = cycle.scope
        if scope.get("http_version") == "1.0":
            cycle.send = _close_delimited(cycle)
        extensions = scope.get("extensions")
        if extensions is None:
            extensions = scope["extensions"] = {}
        extensions[DIRECT] = DirectBody(self, cycle)
        if getattr(self.config, "reset_contextvars", False):
            super()._start_asgi_task(cycle, app)
            return
        task = self.loop.create_task(cycle.run_asgi(app))  # (uvicorn's, without a super() call)
        tasks = self.tasks
        task.add_done_callback(tasks.discard)
        tasks.add(task)


class DirectBody:
    """Write a started response's body straight to the connection (scope extension
    :data:`DIRECT`), as uvicorn's ``send`` would frame it (chunked, or as-is for a
    close-delimited HTTP/1.0 body), without a task switch or an ASGI message per write.

    The user writes only between the ``http.response.start`` it sent and its final
    ``http.response.body`` (sent through ASGI as usual, which ends the chunked body).
    """

    __slots__ = ("_protocol", "_cycle_ref", "on_pause", "on_resume")

    def __init__(self, protocol: GatewayProtocol, cycle: Any) -> None:
        self._protocol = protocol
        # Weakly: the cycle's scope holds this object, and a reference cycle would keep each
        # request's objects (~4 KB) alive until a full garbage collection (see proxy/runtime.py).
        self._cycle_ref = weakref.ref(cycle)
        self.on_pause: Any = None
        self.on_resume: Any = None

    @property
    def _cycle(self) -> Any:
        """The request's ``RequestResponseCycle`` (alive as long as its request is served)."""
        return self._cycle_ref()

    def start(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> bool:
        """Start the response (status line and ``headers``) as uvicorn's ``send`` of
        ``http.response.start`` would, with one check of the whole header block instead of two
        regular-expression searches per header (a keyed response has ~14 headers); ``body``,
        the body's first bytes (or all of a ``content-length`` body), goes out in the same
        write, framed as ``send`` would frame it (one segment and one syscall, not two). The
        rest of the body, and its end (``more_body`` false, maybe empty), then goes through
        ``send`` (or :meth:`write`) as usual. False, with nothing done, when uvicorn's
        own ``send`` must do it: a name that is not a lower-case token or a value with a control
        character (uvicorn's ``send`` then refuses or lower-cases it, as before), a
        ``connection`` or ``transfer-encoding`` header, HTTP/1.0, HEAD, uvicorn's access log,
        a full write buffer, a started response or a gone client."""
        cycle = self._cycle_ref()
        protocol = self._protocol
        if (cycle is None or cycle.response_started or cycle.disconnected or cycle.access_log or protocol.cycle is not cycle
                or protocol.flow.write_paused or cycle.scope["http_version"] != "1.1"
                or cycle.scope["method"] == "HEAD"):
            return False
        line = STATUS_LINE.get(status)
        if line is None:
            return False
        length = None
        for name, value in headers:
            if name == b"content-length":
                length = value
            elif name == b"connection" or name == b"transfer-encoding":
                return False
        headers = cycle.default_headers + headers
        if not _header_block_ok(headers):
            return False
        block = b"\r\n".join(map(b": ".join, headers))
        if length is not None:
            try:
                expected = int(length)
            except ValueError:
                return False
            if len(body) > expected:
                return False  # (send raises "Response content longer than Content-Length")
            cycle.expected_content_length = expected - len(body)
            cycle.chunked_encoding = False
            tail = b"\r\n\r\n" + body
        elif status == 204 or status == 304:
            if body:
                return False
            tail = b"\r\n\r\n"
        else:
            cycle.chunked_encoding = True
            tail = b"\r\ntransfer-encoding: chunked\r\n\r\n"
            if body:
                tail += b"%x\r\n%s\r\n" % (len(body), body)
        if not cycle.keep_alive:
            tail = b"\r\nconnection: close" + tail
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        protocol.transport.write(line + block + tail)
        return True

    def take_body(self) -> bytes | None:
        """The whole request body when it has all arrived (what ``receive()`` would return in
        one ``http.request`` message, and taken like it), without the ASGI ``receive``
        round trip; None when ``receive()`` must be used (more body to come, a client gone or
        waiting for ``100 Continue``, a response already complete)."""
        cycle = self._cycle_ref()
        if (cycle is None or cycle.more_body or cycle.disconnected or cycle.response_complete
                or cycle.waiting_for_100_continue):
            return None
        self._protocol.flow.resume_reading()
        cycle.message_event.clear()
        body = bytes(cycle.body)
        cycle.body = bytearray()
        return body

    def ready(self) -> bool:
        """Whether body bytes may be written now (the response started and is not complete,
        the client is still there, not a HEAD request)."""
        cycle = self._cycle_ref()
        return (cycle is not None and cycle.response_started and not cycle.response_complete and not cycle.disconnected
                and cycle.scope["method"] != "HEAD" and self._protocol.cycle is cycle
                and not self._protocol.transport.is_closing())

    def write(self, data: bytes) -> None:
        """Write body bytes (nothing once the client is gone)."""
        cycle = self._cycle_ref()
        transport = self._protocol.transport
        if cycle is None or cycle.disconnected or transport.is_closing():
            return
        if cycle.chunked_encoding:
            transport.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            transport.write(data)

    def writer(self) -> Any:
        """A ``write(data)`` function for this body, specialised once (the hot path of a relay):
        the same framing as :meth:`write`, nothing written once the connection is closing."""
        transport = self._protocol.transport
        closing = transport.is_closing
        put = transport.write
        if self._cycle_ref().chunked_encoding:
            def write(data: bytes) -> None:
                if not closing():
                    put(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            def write(data: bytes) -> None:
                if not closing():
                    put(data)
        return write

    def framing(self) -> tuple[Any, Any, bool]:
        """``(write, is_closing, chunked)`` of this body's connection, for a writer that frames
        its bytes itself (one write per piece: ``b"%x\\r\\n%s\\r\\n"`` when ``chunked``, as
        :meth:`writer` does; nothing once ``is_closing()``)."""
        transport = self._protocol.transport
        return transport.write, transport.is_closing, bool(self._cycle_ref().chunked_encoding)

    async def respond(self, start: dict, body: dict) -> None:
        """Send a whole response — its ``http.response.start`` and its last ``http.response.body``
        — through uvicorn's ``send`` (same headers, framing and connection handling), in one
        transport write: one segment, one wake-up of the client instead of two."""
        cycle = self._cycle_ref()
        transport = cycle.transport
        gathered = _Gathered(transport)
        cycle.transport = gathered
        try:
            await cycle.send(start)
            await cycle.send(body)
        finally:
            cycle.transport = transport
            if gathered.parts and not transport.is_closing():
                transport.write(b"".join(gathered.parts))
            if gathered.closed:
                transport.close()

    @property
    def paused(self) -> bool:
        """Whether the client's write buffer is full (writes still work, and buffer)."""
        return bool(self._protocol.flow.write_paused)

    def watch(self, on_pause: Any, on_resume: Any) -> None:
        """Call ``on_pause()`` when the client's write buffer fills, ``on_resume()`` when it
        drains (until :meth:`unwatch`); ``on_pause()`` at once if it is full already."""
        self.on_pause, self.on_resume = on_pause, on_resume
        self._protocol._direct = self
        if self.paused:
            on_pause()

    def unwatch(self) -> None:
        self.on_pause = self.on_resume = None
        if self._protocol._direct is self:
            self._protocol._direct = None

    def on_disconnect(self, callback: Any) -> bool:
        """Call ``callback()`` once when the client's connection is lost (``None``: no longer),
        instead of a task waiting for ASGI's ``http.disconnect``. False, with nothing done, when
        the client is gone already or this is not the connection's running request."""
        protocol = self._protocol
        if callback is None:
            protocol._on_lost = None
            return True
        cycle = self._cycle_ref()
        if cycle is None or cycle.disconnected or cycle.response_complete or protocol.transport.is_closing():
            return False
        protocol._on_lost = callback
        return True


class _Gathered:
    """What uvicorn's ``send`` sees as the transport during :meth:`DirectBody.respond`: its
    writes are collected (and a close deferred) until the response is whole."""

    __slots__ = ("parts", "closed", "_transport")

    def __init__(self, transport: Any) -> None:
        self.parts: list[bytes] = []
        self.closed = False
        self._transport = transport

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed or self._transport.is_closing()


#: What :meth:`DirectBody.start` writes itself: header names that are lower-case tokens (RFC 9110)
#: and values without a control character but tab (which uvicorn's checks let through
#: unchanged); anything else goes through uvicorn's ``send``. Checked with ``bytes.translate``
#: over all names and all values at once (a regular expression reads byte by byte, ~30
#: instructions a byte: as much as uvicorn's checks).
_NAME_BYTES = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
_CONTROL_BYTES = bytes([*range(0, 9), *range(10, 32), 127])
_names = operator.itemgetter(0)
_values = operator.itemgetter(1)


def _header_block_ok(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether ``headers`` may be written as they are (see :data:`_NAME_BYTES`)."""
    names = list(map(_names, headers))
    if not names or b"" in names or b"".join(names).translate(None, _NAME_BYTES):
        return False
    values = b"".join(map(_values, headers))
    return len(values.translate(None, _CONTROL_BYTES)) == len(values)


def _close_delimited(cycle: Any) -> Any:
    """``cycle.send`` for an HTTP/1.0 client: a body without Content-Length ends with the
    connection instead of using chunked encoding (which HTTP/1.0 does not have)."""
    send = cycle.send
    raw = False

    async def send_10(message: dict) -> None:
        nonlocal raw
        if message["type"] == "http.response.start":
            if not any(name.lower() == b"content-length" for name, _ in message.get("headers", ())):
                raw = True
                cycle.keep_alive = False
                cycle.chunked_encoding = False  # uvicorn then writes the body as it is
        elif raw and message["type"] == "http.response.body":
            cycle.expected_content_length = len(message.get("body", b""))
        await send(message)

    return send_10


#: The bytes of a request target :meth:`GatewayProtocol._plain_headers_complete` takes as the
#: path itself (RFC 3986 path characters but ``%``; no ``?`` or ``#``).
_PLAIN_PATH_BYTES = b"/-._~!$&'()*+,;=:@0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


def _peer(client: Any) -> str:
    return "%s:%s" % client if client else "?"


class GatewayServer(Server):
    """uvicorn's server, exiting with status 0 after a graceful stop on SIGTERM/SIGINT, and
    ticking once a second instead of ten times (see :meth:`main_loop`)."""

    _tick: "asyncio.Future | None" = None
    _tick_loop: Any = None

    async def main_loop(self) -> None:
        """uvicorn's loop (the date header once a second, the exit and request-limit checks)
        waking once a second instead of every 0.1 s: each wake-up of an idle gateway costs
        ~30k instructions, and a stop signal (:meth:`handle_exit`) wakes it at once anyway."""
        loop = self._tick_loop = asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000  # uvicorn's count of 0.1 s ticks (on_tick: the date each 10)
            tick = self._tick = loop.create_future()
            timer = loop.call_later(1.0, _wake, tick)
            try:
                await tick
            finally:
                self._tick = None
                timer.cancel()
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        tick, loop = self._tick, self._tick_loop
        if tick is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_wake, tick)  # (a signal handler: not inside the loop's own calls)

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        # Like uvicorn's, without re-raising the signal afterwards: a graceful stop exits 0.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _find(app: Any, attribute: str) -> Any:
    """The app (or the app inside uvicorn's middleware wrappers) that has ``attribute``."""
    for _ in range(8):
        if app is None or hasattr(app, attribute):
            return app
        app = getattr(app, "app", None)
    return None
