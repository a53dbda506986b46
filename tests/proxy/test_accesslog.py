"""The access log's turn-batched handler: the lines of one event-loop turn go out in one write at
the end of the turn (nothing lost at shutdown), and a user's own logging configuration still gets
every record through ``logging``."""

from __future__ import annotations

import asyncio
import logging
import logging.config
from collections.abc import Iterator

import orjson
import pytest

from llmrelay.proxy.accesslog import TurnBatchedHandler, direct_handler
from llmrelay.proxy.app import ProxyApp, access_log
from llmrelay.proxy.cli import log_config
from llmrelay.proxy.config import parse_config


class _Bytes:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


class _Stream:
    """A text stream over a byte buffer that records each write (like sys.stderr)."""

    def __init__(self) -> None:
        self.buffer = _Bytes()
        self.text: list[str] = []

    def write(self, text: str) -> int:
        self.text.append(text)
        return len(text)

    def flush(self) -> None:
        pass


@pytest.fixture
def access_logger() -> Iterator[logging.Logger]:
    """The access logger as found, restored after the test."""
    saved = (access_log.handlers[:], access_log.propagate, access_log.level, access_log.filters[:])
    yield access_log
    access_log.handlers[:], access_log.propagate, access_log.level, access_log.filters[:] = saved


async def test_lines_of_one_turn_are_written_once_at_its_end() -> None:
    stream = _Stream()
    handler = TurnBatchedHandler(stream)
    handler.write_line(b'{"a":1}\n')
    handler.write_line(b'{"a":2}\n')
    assert stream.buffer.writes == []  # not before the turn ends
    await asyncio.sleep(0)
    assert stream.buffer.writes == [b'{"a":1}\n{"a":2}\n']
    handler.write_line(b'{"a":3}\n')
    await asyncio.sleep(0)
    assert stream.buffer.writes[1:] == [b'{"a":3}\n']


def test_without_a_running_loop_a_line_is_written_at_once() -> None:
    stream = _Stream()
    TurnBatchedHandler(stream).write_line(b"x\n")
    assert stream.buffer.writes == [b"x\n"]


async def test_pending_lines_are_written_on_close_and_shutdown_flush() -> None:
    stream = _Stream()
    handler = TurnBatchedHandler(stream)
    handler.write_line(b"last\n")
    handler.close()  # logging.shutdown() at exit flushes and closes every handler
    assert stream.buffer.writes == [b"last\n"]
    await asyncio.sleep(0)  # the scheduled flush then has nothing left to write
    assert stream.buffer.writes == [b"last\n"]


def test_a_loop_that_stopped_before_its_flush_does_not_stall_the_next_one() -> None:
    stream = _Stream()
    handler = TurnBatchedHandler(stream)

    async def one(line: bytes) -> None:
        handler.write_line(line)

    first = asyncio.new_event_loop()
    first.run_until_complete(one(b"1\n"))  # its end-of-turn flush may not have run
    first.close()
    asyncio.run(one(b"2\n"))
    assert b"".join(stream.buffer.writes) == b"1\n2\n"


async def test_records_through_logging_are_formatted_and_batched() -> None:
    stream = _Stream()
    handler = TurnBatchedHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.Logger("t.accesslog")
    logger.addHandler(handler)
    logger.info("one")
    logger.warning("two")
    await asyncio.sleep(0)
    assert stream.buffer.writes == [b"INFO one\nWARNING two\n"]


def test_direct_only_with_the_gateway_configuration(access_logger: logging.Logger) -> None:
    logging.config.dictConfig(log_config("info"))
    handler = direct_handler(access_logger)
    assert isinstance(handler, TurnBatchedHandler)
    access_logger.addFilter(lambda record: True)
    assert direct_handler(access_logger) is None  # a filter must see the records
    access_logger.filters.clear()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    assert direct_handler(access_logger) is None  # the user's format applies
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_logger.propagate = True
    assert direct_handler(access_logger) is None  # ancestors' handlers get the records
    access_logger.propagate = False
    access_logger.addHandler(logging.NullHandler())
    assert direct_handler(access_logger) is None
    access_logger.handlers[:] = [logging.StreamHandler(_Stream())]
    assert direct_handler(access_logger) is None


async def _get(app: ProxyApp, path: str) -> None:
    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    await app({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send)


def _app() -> ProxyApp:
    return ProxyApp(parse_config("model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/x\n"
                                 "      api_key: sk-x\n"))


async def test_gateway_writes_its_json_line_through_the_batched_handler(access_logger: logging.Logger) -> None:
    stream = _Stream()
    handler = TurnBatchedHandler(stream)

    def no_record(record: logging.LogRecord) -> None:
        raise AssertionError("the line went through a LogRecord")

    handler.emit = no_record  # type: ignore[method-assign]
    access_logger.handlers[:] = [handler]
    access_logger.propagate = False
    access_logger.setLevel(logging.INFO)
    await _get(_app(), "/health/liveliness")
    await asyncio.sleep(0)
    written = b"".join(stream.buffer.writes)
    assert written.endswith(b"\n") and written.count(b"\n") == 1
    record = orjson.loads(written)
    assert record["path"] == "/health/liveliness" and record["status"] == 200


async def test_a_users_own_handler_still_gets_every_record(access_logger: logging.Logger) -> None:
    stream = _Stream()
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    access_logger.handlers[:] = [TurnBatchedHandler(stream), Collect()]
    access_logger.propagate = False
    access_logger.setLevel(logging.INFO)
    await _get(_app(), "/health/liveliness")
    await asyncio.sleep(0)
    assert len(seen) == 1 and orjson.loads(seen[0].getMessage())["path"] == "/health/liveliness"
    assert orjson.loads(b"".join(stream.buffer.writes))["status"] == 200
