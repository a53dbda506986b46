"""Newline-delimited JSON (``application/x-ndjson``, Ollama's streams), sans-I/O.

Lines are split on ``b"\\n"`` only, so a UTF-8 character split across feeds is
reassembled before decoding; a trailing ``\\r`` (CRLF) is JSON whitespace and
is ignored, as are blank lines.
"""

from __future__ import annotations

import orjson

from llmrelay.codecs.errors import CodecError

__all__ = ["NDJSONDecoder"]

_SNIPPET = 80  # bytes of a bad line shown in the error message
MAX_LINE_BYTES = 16 * 1024 * 1024


class NDJSONDecoder:
    """Incremental decoder: ``feed(bytes) -> [object, ...]``, then ``close() -> [object, ...]``.

    A line that is not JSON raises :class:`CodecError`; the lines before it in
    the same feed are returned first, and the error is raised by the next call.
    After that the decoder is finished: every later ``feed``/``close`` raises it.
    """

    __slots__ = ("_buf", "_line", "_offset", "_error", "_max_line")

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max_line = max_line_bytes  # an unterminated line longer than this fails
        self._buf = bytearray()  # the current incomplete line
        self._line = 1  # 1-based number of the line starting at _buf[0]
        self._offset = 0  # stream offset of _buf[0]
        self._error: CodecError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> list[object]:
        if self._error is not None:
            raise self._error
        if data.__class__ is memoryview:
            data = bytes(data)  # a memoryview has no find()
        # find(), not ``in``: on CPython 3.11 ``b"\n" in data`` first tries b"\n" as an int and
        # raises (and discards) a TypeError, ~1,850 instructions per read.
        if data.find(b"\n") < 0:  # only the new bytes need scanning
            self._buf += data
            if len(self._buf) > self._max_line:
                self._too_long()
            return []
        buf = self._buf
        if buf:
            buf += data
            lines = buf.split(b"\n")
        else:
            lines = bytes(data).split(b"\n")
        tail = lines.pop()
        out = self._parse_lines(lines)
        self._buf = bytearray(tail)
        if len(tail) > self._max_line and self._error is None:
            if out:
                self._too_long(raise_=False)  # raised by the next call
            else:
                self._too_long()
        return out

    def close(self) -> list[object]:
        """Signal end of stream and parse a final line that had no newline."""
        if self._error is not None:
            raise self._error
        if not self._buf:
            return []
        out = self._parse_lines([bytes(self._buf)])
        self._buf = bytearray()
        return out

    @property
    def pending(self) -> int:
        """Number of buffered bytes of an unterminated line."""
        return len(self._buf)

    def _parse_lines(self, lines: list) -> list[object]:
        out = []
        append = out.append
        loads = orjson.loads
        for line in lines:
            try:
                append(loads(line))
            except orjson.JSONDecodeError as exc:
                if line.strip():  # blank lines (incl. a lone "\r") are skipped
                    self._fail(line, exc)
                    if out:  # deliver the good lines; the next call raises
                        return out
                    raise self._error from exc  # type: ignore[misc]
            self._line += 1
            self._offset += len(line) + 1
        return out

    def _too_long(self, raise_: bool = True) -> None:
        self._error = CodecError(
            f"NDJSON line {self._line} (offset {self._offset}) exceeds {self._max_line} bytes "
            f"without a newline: {bytes(self._buf[:_SNIPPET])!r} ...",
            self._offset,
        )
        if raise_:
            raise self._error

    def _fail(self, line: bytes, exc: Exception) -> None:
        shown = bytes(line[:_SNIPPET])
        more = f" ... ({len(line)} bytes)" if len(line) > _SNIPPET else ""
        self._error = CodecError(
            f"invalid JSON on NDJSON line {self._line} (offset {self._offset}): "
            f"{shown!r}{more}: {getattr(exc, 'msg', exc)} at column {getattr(exc, 'pos', 0) + 1}",
            self._offset,
        )
