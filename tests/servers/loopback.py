"""A byte-level HTTP/1.1 test server on 127.0.0.1 with fault injection.

The server runs its own asyncio event loop in a daemon thread, so synchronous tests and
async tests (whatever their loop) can use it the same way::

    def handler(request: Request) -> Reply:
        return Reply.json({"ok": True})

    with LoopbackServer(handler) as srv:
        urllib3.request("GET", srv.url + "/x")
        assert srv.requests[0].path == "/x"

A :class:`Reply` is a *plan*: status, headers and a list of body parts, each either bytes or
an action (:class:`Sleep`, :class:`Drop`, :class:`Hang`). With ``chunked=True`` every bytes
part is one HTTP chunk flushed at once, which is how streaming responses are sent.

Everything is recorded: every parsed :class:`Request` (``srv.requests``) and every connection
(``srv.connections``), with the monotonic time it opened and the time it was seen closed and by
whom. Times come from :func:`time.monotonic`; compare them with :meth:`LoopbackServer.clock`.

Nothing here knows about any LLM provider; provider fakes build on top of it.
"""

from __future__ import annotations

import asyncio
import json as _json
import socket
import struct
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, Union
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "Sleep",
    "Drop",
    "Hang",
    "Gate",
    "Action",
    "Part",
    "Headers",
    "Request",
    "Reply",
    "Handler",
    "ConnectionInfo",
    "LoopbackServer",
    "sse_frame",
]

MAX_LINE = 64 * 1024
MAX_HEADERS = 200


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Sleep:
    """Pause for ``seconds`` before sending the next body part."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Close the socket abruptly, right now, without finishing the response.

    With ``reset=True`` the close sends a TCP RST (``SO_LINGER`` 0) instead of a FIN, so the
    client sees ``ECONNRESET`` rather than an early EOF.
    """

    reset: bool = False


@dataclass(frozen=True)
class Hang:
    """Stop sending and keep the socket open until the peer goes away or the server stops."""


@dataclass(frozen=True)
class Gate:
    """Wait until the test sets ``event`` (a ``threading.Event``), then go on."""

    event: threading.Event


Action = Union[Sleep, Drop, Hang, Gate]
Part = Union[bytes, Action]


# --------------------------------------------------------------------------- headers


class Headers(Mapping[str, str]):
    """Case-insensitive, order-keeping, multi-valued header mapping.

    ``headers["content-type"]`` returns the first value; :meth:`get_all` returns every value.
    """

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] | None = None) -> None:
        if items is None:
            items = ()
        elif isinstance(items, Mapping):
            items = items.items()
        self._items: list[tuple[str, str]] = [(str(k), str(v)) for k, v in items]

    def __getitem__(self, key: str) -> str:
        lower = key.lower()
        for name, value in self._items:
            if name.lower() == lower:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._items:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len({name.lower() for name, _ in self._items})

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and any(n.lower() == key.lower() for n, _ in self._items)

    def get_all(self, key: str) -> list[str]:
        """Every value of header ``key``, in the order received."""
        lower = key.lower()
        return [v for n, v in self._items if n.lower() == lower]

    def raw(self) -> list[tuple[str, str]]:
        """The header pairs exactly as received (original case and order)."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


# --------------------------------------------------------------------------- request


@dataclass
class Request:
    """One parsed HTTP request, as the server received it."""

    method: str
    target: str
    http_version: str
    headers: Headers
    body: bytes
    connection_id: int
    index: int
    received_at: float
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = parts.path or "/"
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))

    def json(self) -> Any:
        """The body decoded as JSON."""
        return _json.loads(self.body)

    @property
    def keep_alive(self) -> bool:
        """Whether the client asked to keep the connection open after this request."""
        tokens = {t.strip().lower() for v in self.headers.get_all("connection") for t in v.split(",")}
        if self.http_version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


# --------------------------------------------------------------------------- reply


def _encode(obj: Any) -> bytes:
    return _json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def sse_frame(event: Any, newline: str = "\n") -> Part:
    """One SSE frame for :meth:`Reply.sse`.

    dict/list → ``data: {json}\\n\\n``; ``"[DONE]"`` → ``data: [DONE]\\n\\n``; other str or bytes
    are sent as they are; actions pass through.
    """
    if isinstance(event, (Sleep, Drop, Hang)):
        return event
    if isinstance(event, (dict, list)):
        return b"data: " + _encode(event) + (newline * 2).encode()
    if event == "[DONE]":
        return ("data: [DONE]" + newline * 2).encode()
    if isinstance(event, str):
        return event.encode()
    if isinstance(event, (bytes, bytearray, memoryview)):
        return bytes(event)
    raise TypeError(f"cannot turn {type(event).__name__} into an SSE frame")


@dataclass
class Reply:
    """A response plan the server executes part by part.

    ``body`` parts are bytes or actions. With ``chunked=True`` each bytes part becomes one HTTP
    chunk, flushed immediately; otherwise ``Content-Length`` is the total of the bytes parts
    (unless ``headers`` sets it, which lets a test lie about the length). ``delay_headers``
    sleeps before the status line. ``close=True`` closes the connection after the reply.
    ``raw=True`` sends the bytes parts verbatim: no status line, no headers, no framing.
    """

    status: int = 200
    headers: list[tuple[str, str]] | Mapping[str, str] | None = None
    body: list[Part] = field(default_factory=list)
    chunked: bool = False
    delay_headers: float = 0.0
    close: bool = False
    reason: str | None = None
    raw: bool = False

    # -- builders -------------------------------------------------------------------------

    @classmethod
    def json(
        cls,
        obj: Any,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Reply:
        """A JSON body with ``Content-Type: application/json``."""
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        return cls(status=status, headers=hdrs, body=[_encode(obj)], **kwargs)

    @classmethod
    def text(
        cls,
        text: str | bytes,
        status: int = 200,
        content_type: str = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Reply:
        """A plain body (``str`` is UTF-8 encoded)."""
        data = text.encode() if isinstance(text, str) else text
        hdrs = {"Content-Type": content_type, **(headers or {})}
        return cls(status=status, headers=hdrs, body=[data], **kwargs)

    @classmethod
    def stream(
        cls,
        parts: Iterable[Part],
        status: int = 200,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | None = None,
        interval: float = 0.0,
        **kwargs: Any,
    ) -> Reply:
        """A chunked body, one chunk per bytes part (``interval`` sleeps between parts)."""
        hdrs = {"Content-Type": content_type, **(headers or {})}
        body = _interleave(list(parts), interval)
        return cls(status=status, headers=hdrs, body=body, chunked=True, **kwargs)

    @classmethod
    def sse(
        cls,
        events: Iterable[Any],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        interval: float = 0.0,
        newline: str = "\n",
        **kwargs: Any,
    ) -> Reply:
        """A ``text/event-stream`` chunked reply; each event is one chunk (see :func:`sse_frame`)."""
        hdrs = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **(headers or {})}
        frames = [sse_frame(e, newline) for e in events]
        return cls(status=status, headers=hdrs, body=_interleave(frames, interval), chunked=True, **kwargs)

    @classmethod
    def raw_bytes(cls, *parts: Part) -> Reply:
        """Send exactly these bytes (and actions) on the socket, nothing else, then close."""
        return cls(body=list(parts), raw=True, close=True)

    # -- helpers --------------------------------------------------------------------------

    def header_pairs(self) -> list[tuple[str, str]]:
        """The configured headers as (name, value) pairs."""
        if self.headers is None:
            return []
        if isinstance(self.headers, Mapping):
            return [(str(k), str(v)) for k, v in self.headers.items()]
        return [(str(k), str(v)) for k, v in self.headers]

    def body_bytes(self) -> bytes:
        """The concatenated bytes parts (actions skipped)."""
        return b"".join(p for p in self.body if isinstance(p, bytes))


def _interleave(parts: list[Part], interval: float) -> list[Part]:
    if interval <= 0:
        return parts
    out: list[Part] = []
    for i, part in enumerate(parts):
        if i:
            out.append(Sleep(interval))
        out.append(part)
    return out


Handler = Callable[[Request], Reply]


# --------------------------------------------------------------------------- connections


@dataclass
class ConnectionInfo:
    """What the server knows about one accepted connection."""

    id: int
    opened_at: float
    peer: tuple[str, int]
    closed_at: float | None = None
    closed_by: Literal["peer", "server"] | None = None
    requests: int = 0

    @property
    def is_open(self) -> bool:
        """True until either side closed the connection."""
        return self.closed_at is None


class _Conn:
    """Per-connection I/O: a pump task buffers incoming bytes so a peer close is seen at once."""

    def __init__(
        self,
        info: ConnectionInfo,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_close: Callable[[ConnectionInfo], None],
    ) -> None:
        self.info = info
        self.reader = reader
        self.writer = writer
        self._on_close = on_close
        self._buf = bytearray()
        self._more = asyncio.Event()
        self.eof = asyncio.Event()
        self.pump = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self._buf += data
                self._more.set()
        except (ConnectionError, OSError):
            pass
        self.mark_closed("peer")
        self.eof.set()
        self._more.set()

    def mark_closed(self, by: Literal["peer", "server"]) -> None:
        """Record the close once (the first side to close wins)."""
        if self.info.closed_at is None:
            self.info.closed_at = time.monotonic()
            self.info.closed_by = by
            self._on_close(self.info)

    async def _fill(self) -> bool:
        """Wait for more bytes; False when the peer has closed and nothing new came."""
        if self.eof.is_set():
            return False
        self._more.clear()
        await self._more.wait()
        return True

    async def readline(self) -> bytes | None:
        """A line including its ``\\n``; None at EOF before a full line."""
        while True:
            idx = self._buf.find(b"\n")
            if idx >= 0:
                line = bytes(self._buf[: idx + 1])
                del self._buf[: idx + 1]
                return line
            if len(self._buf) > MAX_LINE:
                raise _BadRequest("line too long")
            if not await self._fill() and self._buf.find(b"\n") < 0:
                return None

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or :class:`_BadRequest` if the peer closes first."""
        while len(self._buf) < n:
            if not await self._fill() and len(self._buf) < n:
                raise _BadRequest("body truncated")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def send(self, data: bytes) -> None:
        """Write and flush."""
        self.writer.write(data)
        await self.writer.drain()

    def close(self, reset: bool = False) -> None:
        """Close our side; ``reset`` sends an RST instead of a FIN."""
        self.mark_closed("server")
        transport = self.writer.transport
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            transport.abort()
        else:
            transport.close()
        self.pump.cancel()
        self.eof.set()
        self._more.set()


class _BadRequest(Exception):
    pass


class _Dropped(Exception):
    """The reply plan asked to end the connection (Drop, Hang, raw)."""


# --------------------------------------------------------------------------- server


ReplySource = Union[Reply, Handler]


class LoopbackServer:
    """HTTP/1.1 server on 127.0.0.1:<ephemeral>, run in a background thread.

    ``handler(request) -> Reply`` answers requests when the script queue (:meth:`enqueue`) is
    empty; it runs on the server's loop thread, so keep it quick and non-blocking. A handler
    that raises produces a 500 and is recorded in :attr:`errors`.
    """

    def __init__(self, handler: Handler | None = None, *, host: str = "127.0.0.1") -> None:
        self.handler: Handler = handler or _not_found
        self.host = host
        self.port = 0
        self.requests: list[Request] = []
        self.connections: list[ConnectionInfo] = []
        self.errors: list[BaseException] = []
        self._script: deque[ReplySource] = deque()
        self._lock = threading.Lock()
        self._closed_cv = threading.Condition(self._lock)
        self._conns: dict[int, _Conn] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> LoopbackServer:
        """Bind, start the loop thread and return once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(target=self._run, name=f"loopback-{id(self):x}", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._start_error is not None:
            raise self._start_error
        if not self._ready.is_set():
            raise RuntimeError("loopback server did not start")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every socket (even hanging ones), stop the loop and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(self._begin_shutdown)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("loopback server thread did not stop")

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> LoopbackServer:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    # -- scripting ------------------------------------------------------------------------

    def enqueue(self, *replies: ReplySource) -> None:
        """Answer the next requests (any path, in arrival order) with these replies or handlers."""
        with self._lock:
            self._script.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        with self._lock:
            return len(self._script)

    # -- observation ----------------------------------------------------------------------

    @staticmethod
    def clock() -> float:
        """The clock every recorded time uses (:func:`time.monotonic`)."""
        return time.monotonic()

    @property
    def open_connections(self) -> int:
        """Connections neither side has closed yet."""
        with self._lock:
            return sum(1 for c in self.connections if c.is_open)

    @property
    def last_request(self) -> Request:
        """The most recent request (AssertionError if none)."""
        assert self.requests, "no request received"
        return self.requests[-1]

    @property
    def last_json(self) -> Any:
        """The JSON body of the most recent request."""
        return self.last_request.json()

    def connection(self, conn_id: int) -> ConnectionInfo:
        """The record of connection ``conn_id`` (ids start at 0, in accept order)."""
        return self.connections[conn_id]

    def wait_connection_closed(self, conn_id: int, timeout: float = 2.0) -> ConnectionInfo:
        """Block until connection ``conn_id`` is closed; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._closed_cv:
            while True:
                if conn_id < len(self.connections) and not self.connections[conn_id].is_open:
                    return self.connections[conn_id]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"connection {conn_id} still open after {timeout}s")
                self._closed_cv.wait(left)

    def wait_all_closed(self, timeout: float = 2.0) -> None:
        """Block until no connection is open; TimeoutError naming the open ones otherwise."""
        deadline = time.monotonic() + timeout
        with self._closed_cv:
            while True:
                still = [c.id for c in self.connections if c.is_open]
                if not still:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"connections {still} still open after {timeout}s")
                self._closed_cv.wait(left)

    async def await_connection_closed(self, conn_id: int, timeout: float = 2.0) -> ConnectionInfo:
        """Async twin of :meth:`wait_connection_closed` that keeps the caller's loop running."""
        return await self._poll(lambda: self.wait_connection_closed(conn_id, 0), timeout)

    async def await_all_closed(self, timeout: float = 2.0) -> None:
        """Async twin of :meth:`wait_all_closed`."""
        await self._poll(lambda: self.wait_all_closed(0), timeout)

    def assert_closed_by_peer(self, conn_id: int, timeout: float = 30.0) -> ConnectionInfo:
        """Assert the peer closes ``conn_id`` (waiting up to ``timeout``, a deadline for a failing
        test, not a speed). With a reply that :class:`Hang` s until the peer goes away, this
        proves the peer gave up the request (nothing else ends it)."""
        try:
            info = self.wait_connection_closed(conn_id, timeout)
        except TimeoutError:
            raise AssertionError(f"connection {conn_id} was never closed by the client") from None
        assert info.closed_by == "peer", f"connection {conn_id} was closed by the server, not the client"
        return info

    @staticmethod
    async def _poll(check: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return check()
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(0.002)

    # -- loop thread ----------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._start_error = exc
            self._ready.set()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(self._on_connect, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stopping.wait()
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for conn in list(self._conns.values()):
            conn.close()
            conn.writer.transport.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _begin_shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _on_closed(self, info: ConnectionInfo) -> None:
        with self._closed_cv:
            self._closed_cv.notify_all()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            info = ConnectionInfo(
                id=len(self.connections),
                opened_at=time.monotonic(),
                peer=writer.transport.get_extra_info("peername"),
            )
            self.connections.append(info)
        conn = _Conn(info, reader, writer, self._on_closed)
        self._conns[info.id] = conn
        try:
            await self._serve_connection(conn)
        except ConnectionError:
            # A write failed because the peer had gone (reset, broken pipe), maybe before our
            # reader saw its FIN: the peer closed first.
            conn.mark_closed("peer")
        except (_Dropped, OSError, asyncio.CancelledError):
            pass  # CancelledError: stop() in progress; ending quietly keeps asyncio from logging it
        except Exception as exc:  # noqa: BLE001 - a broken reply plan; the test sees it in .errors
            self.errors.append(exc)
        finally:
            conn.close()
            self._conns.pop(info.id, None)

    async def _serve_connection(self, conn: _Conn) -> None:
        while True:
            try:
                request = await self._read_request(conn)
            except _BadRequest as exc:
                if not conn.eof.is_set():
                    await conn.send(_simple_response(400, str(exc)))
                return
            if request is None:
                return
            reply = self._choose_reply(request)
            keep = await self._write_reply(conn, request, reply)
            if not keep:
                return

    async def _read_request(self, conn: _Conn) -> Request | None:
        line = await conn.readline()
        while line is not None and line.strip() == b"":  # tolerate stray CRLFs between requests
            line = await conn.readline()
        if line is None:
            return None
        try:
            method, target, version = line.decode("latin-1").strip().split(" ")
        except ValueError:
            raise _BadRequest(f"bad request line {line!r}") from None
        if not version.startswith("HTTP/1."):
            raise _BadRequest(f"unsupported version {version}")
        headers = Headers(await self._read_header_lines(conn))
        if headers.get("expect", "").lower() == "100-continue":
            await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await self._read_body(conn, headers)
        with self._lock:
            conn.info.requests += 1
            request = Request(
                method=method,
                target=target,
                http_version=version,
                headers=headers,
                body=body,
                connection_id=conn.info.id,
                index=len(self.requests),
                received_at=time.monotonic(),
            )
            self.requests.append(request)
        return request

    @staticmethod
    async def _read_header_lines(conn: _Conn) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        while True:
            line = await conn.readline()
            if line is None:
                raise _BadRequest("headers truncated")
            if line in (b"\r\n", b"\n"):
                return pairs
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or not name.strip():
                raise _BadRequest(f"bad header line {line!r}")
            pairs.append((name.strip(), value.strip()))
            if len(pairs) > MAX_HEADERS:
                raise _BadRequest("too many headers")

    async def _read_body(self, conn: _Conn, headers: Headers) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await self._read_chunked(conn)
        length = headers.get("content-length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise _BadRequest("bad content-length") from None
        return await conn.readexactly(n)

    @staticmethod
    async def _read_chunked(conn: _Conn) -> bytes:
        body = bytearray()
        while True:
            line = await conn.readline()
            if line is None:
                raise _BadRequest("chunked body truncated")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest(f"bad chunk size {line!r}") from None
            if size == 0:
                break
            body += await conn.readexactly(size)
            await conn.readline()  # CRLF after the chunk data
        while True:  # trailers, up to the empty line
            line = await conn.readline()
            if line is None or line in (b"\r\n", b"\n"):
                return bytes(body)

    def _choose_reply(self, request: Request) -> Reply:
        with self._lock:
            source: ReplySource = self._script.popleft() if self._script else self.handler
        if isinstance(source, Reply):
            return source
        try:
            reply = source(request)
            if not isinstance(reply, Reply):
                raise TypeError(f"handler returned {type(reply).__name__}, not Reply")
            return reply
        except Exception as exc:  # noqa: BLE001 - the test sees it in .errors
            self.errors.append(exc)
            return Reply.text("".join(traceback.format_exception(exc)), status=500)

    async def _write_reply(self, conn: _Conn, request: Request, reply: Reply) -> bool:
        """Execute the plan; return whether the connection may serve another request."""
        if reply.delay_headers > 0:
            await asyncio.sleep(reply.delay_headers)
        if reply.raw:
            await self._send_parts(conn, reply.body, chunked=False)
            return False
        keep = request.keep_alive and not reply.close
        no_body = request.method == "HEAD" or reply.status in (204, 304) or 100 <= reply.status < 200
        head = _status_and_headers(reply, keep, no_body)
        await conn.send(head)
        if no_body:
            return keep
        await self._send_parts(conn, reply.body, chunked=reply.chunked)
        if reply.chunked:
            await conn.send(b"0\r\n\r\n")
        return keep

    async def _send_parts(self, conn: _Conn, parts: list[Part], chunked: bool) -> None:
        for part in parts:
            if isinstance(part, Sleep):
                await asyncio.sleep(part.seconds)
            elif isinstance(part, Drop):
                conn.close(reset=part.reset)
                raise _Dropped
            elif isinstance(part, Hang):
                await conn.eof.wait()  # until the peer goes away; stop() cancels us too
                raise _Dropped
            elif isinstance(part, Gate):
                while not part.event.is_set():  # (a thread's event: polled, the loop keeps serving)
                    await asyncio.sleep(0.01)
            elif part:
                data = b"%x\r\n%s\r\n" % (len(part), part) if chunked else part
                await conn.send(data)


def _status_and_headers(reply: Reply, keep_alive: bool, no_body: bool) -> bytes:
    reason = reply.reason
    if reason is None:
        try:
            reason = HTTPStatus(reply.status).phrase
        except ValueError:
            reason = "Unknown"
    pairs = reply.header_pairs()
    names = {name.lower() for name, _ in pairs}
    if not no_body:
        if reply.chunked:
            if "transfer-encoding" not in names:
                pairs.append(("Transfer-Encoding", "chunked"))
        elif "content-length" not in names:
            pairs.append(("Content-Length", str(len(reply.body_bytes()))))
    if "connection" not in names:
        pairs.append(("Connection", "keep-alive" if keep_alive else "close"))
    lines = [f"HTTP/1.1 {reply.status} {reason}"] + [f"{k}: {v}" for k, v in pairs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _simple_response(status: int, message: str) -> bytes:
    body = message.encode()
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _not_found(request: Request) -> Reply:
    return Reply.json({"error": {"message": f"no route for {request.method} {request.path}"}}, status=404)
