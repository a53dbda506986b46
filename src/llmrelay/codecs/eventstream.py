"""AWS binary event stream (``application/vnd.amazon.eventstream``), sans-I/O.

Used by Bedrock ``ConverseStream`` / ``InvokeModelWithResponseStream``. Wire
format of one message (all integers big-endian)::

    total length   uint32   whole message, including these 4 bytes and both CRCs
    headers length uint32   bytes of the headers section
    prelude CRC    uint32   CRC32 of the 8 bytes above
    headers        ...      repeated: name length uint8, name (UTF-8),
                            value type uint8, value (see below)
    payload        ...      total - headers - 16 bytes
    message CRC    uint32   CRC32 of every byte of the message before it

CRC32 is the ordinary (gzip / IEEE 802.3) CRC32, i.e. :func:`zlib.crc32`.

Header value types: 0 bool true, 1 bool false (no value bytes), 2 byte (int8),
3 short (int16), 4 integer (int32), 5 long (int64), 6 byte array (uint16 length
+ bytes), 7 string (uint16 length + UTF-8), 8 timestamp (int64 milliseconds
since the Unix epoch), 9 UUID (16 bytes).

Decoded header values are Python ``bool``, ``int`` (types 2-5), ``bytes``,
``str``, ``datetime.datetime`` (UTC, aware; type 8) and ``uuid.UUID`` (type 9).
"""

from __future__ import annotations

import datetime as _dt
import struct
import uuid as _uuid
from collections.abc import Mapping
from typing import Any, NamedTuple
from zlib import crc32

from llmrelay.codecs.errors import CodecError

__all__ = [
    "EventStreamDecoder",
    "EventStreamMessage",
    "TypedHeader",
    "encode_message",
    "MAX_MESSAGE_SIZE",
    "MAX_HEADERS_SIZE",
    "BOOL_TRUE",
    "BOOL_FALSE",
    "BYTE",
    "SHORT",
    "INTEGER",
    "LONG",
    "BYTE_ARRAY",
    "STRING",
    "TIMESTAMP",
    "UUID",
]

# Header value type codes.
BOOL_TRUE = 0
BOOL_FALSE = 1
BYTE = 2
SHORT = 3
INTEGER = 4
LONG = 5
BYTE_ARRAY = 6
STRING = 7
TIMESTAMP = 8
UUID = 9

#: Same limits as AWS's reference implementation (aws-c-event-stream).
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
MAX_HEADERS_SIZE = 128 * 1024
_PRELUDE_LEN = 12  # total length, headers length, prelude CRC
_OVERHEAD = 16  # prelude + message CRC

_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)

# Parsed-headers cache, per decoder: at most this many entries, of sections this big.
_CACHE_ENTRIES = 32
_CACHE_KEY_MAX = 512
# Compact the input buffer once this many consumed bytes sit in front of it.
_COMPACT_AT = 64 * 1024


class EventStreamMessage:
    """One decoded message: ``headers`` (name -> value) and raw ``payload`` bytes."""

    __slots__ = ("headers", "payload")

    def __init__(self, headers: dict[str, object], payload: bytes) -> None:
        self.headers = headers
        self.payload = payload

    @property
    def event_type(self) -> str | None:
        """``:event-type`` (e.g. ``contentBlockDelta``), for ``event`` messages."""
        return self.headers.get(":event-type")  # type: ignore[return-value]

    @property
    def message_type(self) -> str | None:
        """``:message-type``: ``event``, ``exception`` or ``error``."""
        return self.headers.get(":message-type")  # type: ignore[return-value]

    @property
    def exception_type(self) -> str | None:
        """``:exception-type`` (e.g. ``throttlingException``), for ``exception`` messages."""
        return self.headers.get(":exception-type")  # type: ignore[return-value]

    @property
    def content_type(self) -> str | None:
        """``:content-type`` of the payload (e.g. ``application/json``)."""
        return self.headers.get(":content-type")  # type: ignore[return-value]

    @property
    def error_code(self) -> str | None:
        """``:error-code``, for ``error`` messages."""
        return self.headers.get(":error-code")  # type: ignore[return-value]

    @property
    def error_message(self) -> str | None:
        """``:error-message``, for ``error`` messages."""
        return self.headers.get(":error-message")  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventStreamMessage):
            return NotImplemented
        return self.headers == other.headers and self.payload == other.payload

    __hash__ = None  # type: ignore[assignment]  # mutable headers dict

    def __repr__(self) -> str:
        return f"EventStreamMessage(headers={self.headers!r}, payload={self.payload!r})"


class EventStreamDecoder:
    """Incremental decoder: ``feed(bytes) -> [EventStreamMessage, ...]``, then ``close()``.

    A message may be split anywhere across feeds (even inside the prelude) and
    one feed may hold many messages. Both CRCs are verified; lengths are checked
    as soon as the 12-byte prelude has arrived, so a corrupt or hostile length
    fails at once instead of making the decoder wait for (or buffer) megabytes.

    After a :class:`CodecError` the stream cannot be resynchronised: every
    later ``feed``/``close`` raises the same error again.
    """

    __slots__ = ("_buf", "_pos", "_base", "_index", "_error", "_headers_cache")

    def __init__(self) -> None:
        self._buf = bytearray()  # undecoded bytes live in _buf[_pos:]
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        self._index = 0  # index of the next frame
        self._error: CodecError | None = None
        self._headers_cache: dict[bytes, dict[str, object]] = {}

    def feed(self, data: bytes | bytearray | memoryview) -> list[EventStreamMessage]:
        if self._error is not None:
            raise self._error
        buf = self._buf
        if self._pos == len(buf):
            # Nothing pending: decode straight from ``data`` and keep only its tail.
            if buf:
                self._base += len(buf)
                buf.clear()
                self._pos = 0
            out, used = self._decode(data, 0)
            if used < len(data):
                buf += memoryview(data)[used:]
            self._base += used
            return out
        buf += data
        out, self._pos = self._decode(buf, self._pos)
        pos = self._pos
        if pos == len(buf):
            self._base += pos
            buf.clear()
            self._pos = 0
        elif pos >= _COMPACT_AT:
            self._base += pos
            del buf[:pos]
            self._pos = 0
        return out

    def close(self) -> None:
        """Signal end of stream; raise :class:`CodecError` if a partial message is left."""
        if self._error is not None:
            raise self._error
        left = len(self._buf) - self._pos
        if left:
            offset = self._base + self._pos
            if left >= 4:
                want = f"declares {_U32.unpack_from(self._buf, self._pos)[0]} bytes"
            else:
                want = "prelude incomplete"
            self._fail(
                f"truncated event stream: frame {self._index} at offset {offset} "
                f"has only {left} bytes ({want})",
                offset,
            )

    @property
    def pending(self) -> int:
        """Number of buffered bytes of a message not yet complete."""
        return len(self._buf) - self._pos

    # -- internals -------------------------------------------------------------

    def _fail(self, message: str, offset: int) -> None:
        self._error = CodecError(message, offset)
        raise self._error

    def _decode(self, src: Any, pos: int) -> tuple[list[EventStreamMessage], int]:
        """Decode whole messages from ``src[pos:]``; return them and the new position."""
        out: list[EventStreamMessage] = []
        end = len(src)
        if end - pos < _PRELUDE_LEN:
            return out, pos
        base = self._base
        with memoryview(src) as mv:
            try:
                pos = self._decode_loop(src, mv, pos, end, base, out)
            except CodecError:
                if not out:
                    raise
                # Deliver the good messages decoded before the bad one; self._error
                # is set, so the next feed() or close() raises it.
        return out, pos

    def _decode_loop(
        self, src: Any, mv: memoryview, pos: int, end: int, base: int,
        out: list[EventStreamMessage],
    ) -> int:
        cache = self._headers_cache
        while end - pos >= _PRELUDE_LEN:
            total, hlen, pcrc = _PRELUDE.unpack_from(src, pos)
            if crc32(mv[pos : pos + 8]) != pcrc:
                self._fail(
                    f"event stream frame {self._index} at offset {base + pos}: prelude CRC "
                    f"mismatch (declared {pcrc:#010x}, computed "
                    f"{crc32(mv[pos : pos + 8]):#010x}; total length {total}, "
                    f"headers length {hlen})",
                    base + pos,
                )
            if total < _OVERHEAD or total > MAX_MESSAGE_SIZE:
                self._fail(
                    f"event stream frame {self._index} at offset {base + pos}: total length "
                    f"{total} out of range [{_OVERHEAD}, {MAX_MESSAGE_SIZE}]",
                    base + pos,
                )
            if hlen > total - _OVERHEAD or hlen > MAX_HEADERS_SIZE:
                self._fail(
                    f"event stream frame {self._index} at offset {base + pos}: headers length "
                    f"{hlen} does not fit in total length {total}",
                    base + pos,
                )
            if end - pos < total:
                break
            mend = pos + total - 4
            mcrc = crc32(mv[pos + 8 : mend], pcrc)  # continue from the prelude's CRC
            if mcrc != _U32.unpack_from(src, mend)[0]:
                self._fail(
                    f"event stream frame {self._index} at offset {base + pos}: message CRC "
                    f"mismatch (declared {_U32.unpack_from(src, mend)[0]:#010x}, computed "
                    f"{mcrc:#010x})",
                    base + pos,
                )
            hstart = pos + _PRELUDE_LEN
            hend = hstart + hlen
            if hlen:
                # Header sections repeat verbatim across a stream (same event type,
                # content type and message type): parse each distinct one once.
                key = bytes(mv[hstart:hend])
                cached = cache.get(key)
                if cached is not None:
                    headers = cached.copy()
                else:
                    headers = _decode_headers(src, mv, hstart, hend)
                    if headers.__class__ is dict and hlen <= _CACHE_KEY_MAX:
                        if len(cache) >= _CACHE_ENTRIES:
                            cache.clear()
                        cache[key] = headers.copy()
            else:
                headers = {}
            if headers.__class__ is not dict:  # (error description, offset)
                msg, at = headers
                self._fail(
                    f"event stream frame {self._index} at offset {base + pos}: malformed "
                    f"headers: {msg} (at offset {base + at})",
                    base + pos,
                )
            out.append(EventStreamMessage(headers, bytes(mv[hend:mend])))  # type: ignore[arg-type]
            self._index += 1
            pos += total
        return pos


def _decode_headers(src: Any, mv: memoryview, p: int, hend: int) -> Any:
    """Parse ``src[p:hend]`` into a dict, or return ``(error description, offset)``."""
    headers: dict[str, object] = {}
    start = p
    try:
        while p < hend:
            start = p
            nlen = src[p]
            p += 1
            if nlen == 0:
                return ("empty header name", start)
            if p + nlen + 1 > hend:
                return ("header name runs past the headers section", start)
            name = str(mv[p : p + nlen], "utf-8")
            p += nlen
            t = src[p]
            p += 1
            if t == STRING or t == BYTE_ARRAY:
                if p + 2 > hend:
                    return (f"header {name!r}: value length runs past the headers section", start)
                vlen = (src[p] << 8) | src[p + 1]
                p += 2
                if p + vlen > hend:
                    return (f"header {name!r}: value runs past the headers section", start)
                value: object = (
                    str(mv[p : p + vlen], "utf-8") if t == STRING else bytes(mv[p : p + vlen])
                )
                p += vlen
            elif t == BOOL_TRUE:
                value = True
            elif t == BOOL_FALSE:
                value = False
            elif t <= UUID:
                size = _FIXED_SIZE[t]
                if p + size > hend:
                    return (f"header {name!r}: value runs past the headers section", start)
                if t == UUID:
                    value = _uuid.UUID(bytes=bytes(mv[p : p + 16]))
                else:
                    value = _FIXED_STRUCT[t].unpack_from(src, p)[0]
                    if t == TIMESTAMP:
                        try:
                            value = _EPOCH + _dt.timedelta(milliseconds=value)  # type: ignore[arg-type]
                        except OverflowError:
                            return (f"header {name!r}: timestamp {value} ms out of range", start)
                p += size
            else:
                return (f"header {name!r}: unknown value type {t}", start)
            if name in headers:
                return (f"duplicate header {name!r}", start)
            headers[name] = value
    except UnicodeDecodeError as exc:
        return (f"invalid UTF-8 in header ({exc.reason})", start)
    return headers


_FIXED_SIZE = {BYTE: 1, SHORT: 2, INTEGER: 4, LONG: 8, TIMESTAMP: 8, UUID: 16}
_FIXED_STRUCT = {BYTE: _I8, SHORT: _I16, INTEGER: _I32, LONG: _I64, TIMESTAMP: _I64}


# -- encoder -------------------------------------------------------------------


class TypedHeader(NamedTuple):
    """A header value with an explicit wire type, for :func:`encode_message`.

    ``TypedHeader(SHORT, 7)``; ``TypedHeader(TIMESTAMP, 1700000000000)`` (ms or an
    aware ``datetime``); ``TypedHeader(UUID, b"16 raw bytes....")`` (or a ``uuid.UUID``).
    """

    type: int
    value: object


def _infer(value: object) -> tuple[int, object]:
    if isinstance(value, TypedHeader):
        return value.type, value.value
    if isinstance(value, bool):
        return (BOOL_TRUE if value else BOOL_FALSE), value
    if isinstance(value, int):
        return (INTEGER if -(2**31) <= value < 2**31 else LONG), value
    if isinstance(value, str):
        return STRING, value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return BYTE_ARRAY, value
    if isinstance(value, _dt.datetime):
        return TIMESTAMP, value
    if isinstance(value, _uuid.UUID):
        return UUID, value
    raise TypeError(f"cannot infer an event stream header type for {type(value).__name__}")


def _encode_value(t: int, value: object) -> bytes:
    if t == BOOL_TRUE or t == BOOL_FALSE:
        return bytes((t,))
    if t == STRING or t == BYTE_ARRAY:
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]
        if len(raw) > 0xFFFF:
            raise ValueError("header value longer than 65535 bytes")
        return bytes((t,)) + _U16.pack(len(raw)) + raw
    if t == TIMESTAMP:
        if isinstance(value, _dt.datetime):
            if value.tzinfo is None:
                raise ValueError("timestamp header needs an aware datetime")
            value = (value - _EPOCH) // _dt.timedelta(milliseconds=1)
        return bytes((t,)) + _I64.pack(value)  # type: ignore[arg-type]
    if t == UUID:
        raw = value.bytes if isinstance(value, _uuid.UUID) else bytes(value)  # type: ignore[arg-type]
        if len(raw) != 16:
            raise ValueError("uuid header value must be 16 bytes")
        return bytes((t,)) + raw
    if t in _FIXED_STRUCT:
        return bytes((t,)) + _FIXED_STRUCT[t].pack(value)  # struct.error if out of range
    raise ValueError(f"unknown event stream header type {t}")


def encode_headers(headers: Mapping[str, object]) -> bytes:
    """Encode a headers section (value types inferred, or given by :class:`TypedHeader`)."""
    parts = []
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        if not 0 < len(raw_name) <= 255:
            raise ValueError(f"header name must be 1..255 bytes: {name!r}")
        parts.append(bytes((len(raw_name),)) + raw_name + _encode_value(*_infer(value)))
    return b"".join(parts)


def encode_message(headers: Mapping[str, object], payload: bytes = b"") -> bytes:
    """Encode one event stream message.

    Header value types are inferred: ``str`` -> string (7), ``bytes`` -> byte
    array (6), ``bool`` -> 0/1, ``int`` -> int32 (4), or int64 (5) when it does
    not fit, aware ``datetime`` -> timestamp (8), ``uuid.UUID`` -> uuid (9).
    Wrap a value in :class:`TypedHeader` to choose the type explicitly.
    """
    head = encode_headers(headers)
    total = _OVERHEAD + len(head) + len(payload)
    if total > MAX_MESSAGE_SIZE or len(head) > MAX_HEADERS_SIZE:
        raise ValueError(f"event stream message too large ({total} bytes)")
    prelude = struct.pack(">II", total, len(head))
    pcrc = crc32(prelude)
    body = prelude + _U32.pack(pcrc) + head + bytes(payload)
    return body + _U32.pack(crc32(body))
