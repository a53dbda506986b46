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


class _Protocol:
    """What ``DirectBody.start`` reads of the server's protocol."""

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self.cycle = cycle
        self.transport = cycle.transport
        self.flow = cycle.flow


@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize("headers, parts", [
    (SSE, [b"data: {\"a\":1}\n\n", b"data: {\"b\":2}\n\n", b"data: [DONE]\n\n"]),
    (JSON, [b'{"id":"x1"}', b""]),
    ([(b"content-type", b"application/json"), (b"content-length", b"11")], [b'{"id":', b'"x1"}']),
])
async def test_start_with_the_first_part_is_one_write_of_the_same_bytes(headers, parts, keep_alive):
    """``DirectBody.start(status, headers, first)``: the head and the first body part in one
    write, the same bytes uvicorn's ``send`` writes for start + body, and the rest of the body
    through ``send`` as before."""
    plain = Recorder()
    cycle = _cycle(plain, keep_alive=keep_alive)
    await cycle.send({"type": "http.response.start", "status": 200, "headers": headers})
    for i, part in enumerate(parts):
        await cycle.send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})
    assert cycle.response_complete

    direct = Recorder()
    cycle = _cycle(direct, keep_alive=keep_alive)
    assert DirectBody(_Protocol(cycle), cycle).start(200, headers, parts[0])
    assert len(direct.writes) == 1 and direct.writes[0].endswith(parts[0] + (b"\r\n" if headers is SSE else b""))
    for i, part in enumerate(parts[1:], 1):
        await cycle.send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})
    assert cycle.response_complete
    assert b"".join(direct.writes) == b"".join(plain.writes)
    assert direct.closed == plain.closed == (not keep_alive)


async def test_start_leaves_a_body_longer_than_its_length_to_send():
    cycle = _cycle(Recorder())
    assert not DirectBody(_Protocol(cycle), cycle).start(200, JSON, b'{"id":"x1"} and more')
    assert not cycle.response_started and cycle.transport.writes == []
def test_a_served_request_is_freed_without_the_cycle_collector():
    """The request's scope offers its ``DirectBody``, which must not hold the request's cycle
    strongly: a reference cycle would keep every finished request (~4 KB) until a full
    garbage collection, which the gateway makes rare (proxy/runtime.py)."""
    import gc
    import weakref

    from llmrelay.proxy.server import DIRECT

    class Protocol:
        cycle = None

    cycle = _cycle(Recorder())
    direct = DirectBody(Protocol(), cycle)
    cycle.scope["extensions"] = {DIRECT: direct}
    assert direct._cycle is cycle
    gone = weakref.ref(cycle)
    enabled = gc.isenabled()
    gc.disable()
    try:
        del cycle, direct
        assert gone() is None, "a request's cycle was kept alive by a reference cycle"
    finally:
        if enabled:
            gc.enable()
