"""The access log's output: one JSON line per request, written once per event-loop turn.

Through ``logging`` a line costs a LogRecord, the handler's lock, a format and a write + flush
(one syscall) each. ``llmrelay proxy`` configures :class:`TurnBatchedHandler` as the
``llmrelay.proxy.access`` logger's only handler: the gateway then hands it the line's bytes
directly (:func:`direct_handler`, :meth:`TurnBatchedHandler.write_line`), and the handler writes
all the lines of one event-loop turn to its stream in one write, at the end of the turn
(``loop.call_soon``), and whatever is left when logging shuts down (``logging.shutdown`` at exit
flushes handlers). If the process is killed, the lines of the current turn are lost.

When the logger is configured otherwise (other or more handlers, filters, a formatter other than
the message alone, propagation to other loggers), the gateway keeps the plain ``logging`` path
and every handler sees its records as before. Used as an ordinary handler (``emit``), it batches
the same way on the event loop's thread and writes at once elsewhere.
"""

from __future__ import annotations

import logging
from asyncio import events
from typing import Any, TextIO

__all__ = ["TurnBatchedHandler", "direct_handler"]

_get_running_loop = events._get_running_loop  # the C helper: no RuntimeError to catch per line
_PLAIN = frozenset({None, "%(message)s"})


class TurnBatchedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` that writes the lines logged during one event-loop turn in one write at
    the end of that turn (outside a running loop: at once)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._pending: list[bytes] = []
        self._loop: Any = None  # the loop whose end-of-turn flush is scheduled

    def write_line(self, line: bytes) -> None:
        """Queue one line (UTF-8, ending with a newline) for the end of the current loop turn.

        Called on the event loop's thread (the gateway's requests); without a running loop the
        line is written at once."""
        loop = _get_running_loop()
        if loop is None:
            self._write(line)
            return
        self._pending.append(line)
        if loop is not self._loop:
            self._loop = loop
            loop.call_soon(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` and queue it like :meth:`write_line` (logging's handler path)."""
        try:
            line = (self.format(record) + self.terminator).encode("utf-8", "backslashreplace")
        except Exception:  # noqa: BLE001 - logging's contract: report, never raise
            self.handleError(record)
            return
        self.write_line(line)

    def flush(self) -> None:
        """Write the queued lines in one write and flush the stream."""
        with self.lock:  # type: ignore[union-attr]
            lines, self._pending = self._pending, []
            self._loop = None
            if lines:
                self._write_unlocked(b"".join(lines))
            elif self.stream is not None and hasattr(self.stream, "flush"):
                self.stream.flush()

    def _write(self, data: bytes) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_unlocked(data)

    def _write_unlocked(self, data: bytes) -> None:
        stream = self.stream
        if stream is None:
            return
        try:
            buffer = getattr(stream, "buffer", None)
            if buffer is not None:
                stream.flush()  # whatever the text layer holds goes first
                buffer.write(data)
                buffer.flush()
            else:
                stream.write(data.decode("utf-8", "backslashreplace"))
                stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream must not fail requests
            pass

    def close(self) -> None:
        """Write what is queued, then close like a ``StreamHandler``."""
        self.flush()
        super().close()


def direct_handler(logger: logging.Logger) -> TurnBatchedHandler | None:
    """``logger``'s handler when its JSON lines can be handed to it directly, else None.

    That is when its only handler is a :class:`TurnBatchedHandler` at INFO or below that formats
    the message alone, and neither the logger nor the handler has filters and the logger does not
    propagate (as ``llmrelay proxy`` configures it); otherwise records go through ``logging``."""
    handlers = logger.handlers
    if len(handlers) != 1 or logger.propagate or logger.filters:
        return None
    handler = handlers[0]
    if type(handler) is not TurnBatchedHandler or handler.filters or handler.level > logging.INFO:
        return None
    formatter = handler.formatter
    if formatter is not None and (type(formatter) is not logging.Formatter or formatter._fmt not in _PLAIN):
        return None
    return handler
