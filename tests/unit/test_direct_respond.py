"""``DirectBody.respond`` (llmrelay/proxy/server.py): a whole response through uvicorn's own
``send`` — the same bytes as ``http.response.start`` + the last ``http.response.body`` sent one
after the other — in one transport write, the connection closed after it when uvicorn would.

uvicorn's request cycle runs on an asyncio transport that records what is written to it.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from llmrelay.proxy.server import DirectBody, _close_delimited


class Recorder(asyncio.Transport):
    """An asyncio transport keeping each ``write`` (and whether it was closed)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _cycle(transport: Recorder, *, keep_alive: bool = True, http_version: str = "1.1") -> RequestResponseCycle:
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "http_version": http_version,
             "headers": [], "query_string": b""}
    cycle = RequestResponseCycle(
        scope=scope, transport=transport, flow=FlowControl(transport), logger=logging.getLogger("t"),
        access_logger=logging.getLogger("t.access"), access_log=False,
        default_headers=[(b"date", b"Mon, 30 Nov 2026 00:00:00 GMT"), (b"server", b"uvicorn")],
        message_event=asyncio.Event(), expect_100_continue=False, keep_alive=keep_alive, on_response=lambda: None)
    if http_version == "1.0":
        cycle.send = _close_delimited(cycle)
    return cycle


SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"x-llmrelay-cache", b"hit")]
JSON = [(b"content-type", b"application/json"), (b"content-length", b"11")]


@pytest.mark.parametrize("headers, body", [(SSE, b"data: {}\n\ndata: [DONE]\n\n"), (JSON, b'{"id":"x1"}')])
@pytest.mark.parametrize("keep_alive, http_version", [(True, "1.1"), (False, "1.1"), (False, "1.0")])
async def test_one_write_same_bytes(headers, body, keep_alive, http_version):
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    last = {"type": "http.response.body", "body": body, "more_body": False}
    two = Recorder()
    cycle = _cycle(two, keep_alive=keep_alive, http_version=http_version)
    await cycle.send(start)
    await cycle.send(last)
    assert len(two.writes) == 2  # what uvicorn does on its own

    one = Recorder()
    cycle = _cycle(one, keep_alive=keep_alive, http_version=http_version)
    await DirectBody(None, cycle).respond(start, last)
    assert one.writes == [b"".join(two.writes)]
    assert one.closed == two.closed == (not keep_alive or http_version == "1.0")
    assert cycle.response_complete and cycle.transport is one


async def test_a_closed_connection_gets_nothing():
    gone = Recorder()
    gone.closed = True
    cycle = _cycle(gone)
    await DirectBody(None, cycle).respond({"type": "http.response.start", "status": 200, "headers": JSON},
                                          {"type": "http.response.body", "body": b'{"id":"x1"}'})
    assert gone.writes == [] and cycle.transport is gone
