"""Incremental Server-Sent Events decoder (WHATWG HTML, "Interpreting an event stream").

Pure: bytes in, events out. A read boundary may fall anywhere (inside a line, between CR and
LF, inside a UTF-8 character): lines are split on ASCII line ends only and ``data`` stays
``bytes`` (JSON parsers take UTF-8 bytes directly), so no character is ever cut.
"""

from __future__ import annotations

from .errors import CodecError

__all__ = ["ServerSentEvent", "SSEDecoder"]

_BOM = b"\xef\xbb\xbf"

# Per-read byte tests use ``find() < 0`` rather than ``in``: on CPython 3.11, ``b"x" in data``
# first tries its argument as an int and raises (and discards) a TypeError, ~1,850 instructions.


class ServerSentEvent:
    """One dispatched event: ``event`` (None when the stream named none), ``data`` bytes."""

    __slots__ = ("event", "data", "id", "retry")

    def __init__(
        self, data: bytes, event: str | None = None, id: str | None = None, retry: int | None = None
    ) -> None:
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return (self.event, self.data, self.id, self.retry) == (
            other.event,
            other.data,
            other.id,
            other.retry,
        )

    def __repr__(self) -> str:
        return f"ServerSentEvent(event={self.event!r}, data={self.data!r}, id={self.id!r})"


class SSEDecoder:
    """Feed bytes as they arrive; get complete events back.

    ``max_event_bytes`` bounds a line or an event that never ends, so a broken upstream
    cannot grow memory without limit.
    """

    __slots__ = ("_parts", "_size", "_data", "_event", "_last_id", "_retry", "_started", "_max")

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._parts: list[bytes] = []  # an unfinished line, in pieces
        self._size = 0
        self._data: list[bytes] = []
        self._event: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None
        self._started = False
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode ``chunk``; return the events it completed (often none or one)."""
        if not self._started:
            if self._parts:
                chunk = b"".join(self._parts) + chunk
                self._parts.clear()
                self._size = 0
            if len(chunk) < 3 and _BOM.startswith(chunk):
                if chunk:
                    self._parts.append(chunk)
                    self._size = len(chunk)
                return []
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        if chunk.find(b"\n") < 0 and chunk.find(b"\r") < 0:
            if chunk:
                self._parts.append(chunk)
                self._size += len(chunk)
                if self._size > self._max:
                    raise CodecError(
                        f"server-sent event line longer than {self._max} bytes", offset=None
                    )
            return []
        if self._parts:
            self._parts.append(chunk)
            chunk = b"".join(self._parts)
            self._parts.clear()
            self._size = 0
        if chunk.find(b"\r") >= 0:
            trailing_cr = chunk[-1] == 13
            if trailing_cr:  # may be the first half of a CRLF split across reads
                chunk = chunk[:-1]
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            lines = chunk.split(b"\n")
            rest = lines.pop()
            if trailing_cr:
                rest += b"\r"
        else:
            if not self._data and chunk[-2:] == b"\n\n" and chunk[:6] == b"data: " and chunk.find(b"\n") == len(chunk) - 2:
                # one whole event of one data line (every frame of an OpenAI-shaped stream): what
                # _lines makes of it, without splitting it into lines
                event = ServerSentEvent(chunk[6:-2], self._event, self._last_id, self._retry)
                self._event = None
                return [event]
            lines = chunk.split(b"\n")
            rest = lines.pop()
        if rest:
            self._parts.append(rest)
            self._size = len(rest)
        return self._lines(lines)

    def close(self) -> list[ServerSentEvent]:
        """End of stream: an unterminated last line and event are still delivered."""
        lines = []
        if self._parts:
            last = b"".join(self._parts)
            self._parts.clear()
            if last.endswith(b"\r"):
                last = last[:-1]
            if not self._started and last.startswith(_BOM):
                last = last[3:]
            lines.append(last)
        lines.append(b"")
        return self._lines(lines)

    def _lines(self, lines: list[bytes]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    payload = data[0] if len(data) == 1 else b"\n".join(data)
                    data.clear()
                    events.append(ServerSentEvent(payload, self._event, self._last_id, self._retry))
                self._event = None
                continue
            if line[0] == 58:  # ":" comment (keep-alive pings)
                continue
            if line[:5] == b"data:":
                value = line[5:]
                if value[:1] == b" ":
                    value = value[1:]
                data.append(value)
                if len(data) > 1 and sum(map(len, data)) > self._max:
                    raise CodecError(f"server-sent event larger than {self._max} bytes", offset=None)
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"event":
                self._event = value.decode("utf-8", "replace")
            elif name == b"data":  # "data" with no colon: an empty data line
                data.append(b"")
            elif name == b"id":
                if value.find(b"\x00") < 0:
                    self._last_id = value.decode("utf-8", "replace")
            elif name == b"retry":
                if value.isdigit():
                    self._retry = int(value)
            # any other field is ignored, as the standard says
        return events
