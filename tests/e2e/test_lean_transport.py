"""The async transport's lean HTTP/1.1 client (``llmrelay/transport/lean.py``, issue 18) against
a byte-level loopback server: framings, compression, pooling, faults and timeouts."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import pytest

import llmrelay
from llmrelay.providers.base import HttpRequest
from llmrelay.transport import aio, lean
from servers.loopback import Drop, Hang, LoopbackServer, Reply, Sleep
from timing import eventually


def _request(srv: LoopbackServer, path: str = "/v1/x", body: bytes | None = b'{"a":1}',
             headers: dict[str, str] | None = None) -> HttpRequest:
    return HttpRequest("POST", srv.url + path, {"Content-Type": "application/json", **(headers or {})}, body)


async def _fetch(srv: LoopbackServer, timeout: float | None = 5.0, **kwargs) -> tuple[int, bytes]:
    response = await aio.send(_request(srv, **kwargs), timeout)
    assert isinstance(response, lean.LeanResponse)
    return response.status, await response.read()


@pytest.fixture
def srv():
    with LoopbackServer() as server:
        yield server


async def test_request_head_and_keep_alive(srv):
    srv.enqueue(Reply.json({"n": 1}, headers={"X-Up": "a"}), Reply.stream([b"ab", b"cd"]))
    response = await aio.send(_request(srv, headers={"Authorization": "Bearer k"}), 5.0)
    assert response.status == 200 and response.headers["X-Up"] == "a"
    assert await response.read() == b'{"n":1}'
    assert await _fetch(srv) == (200, b"abcd")  # chunked, de-chunked
    first = srv.requests[0]
    assert first.method == "POST" and first.path == "/v1/x" and first.body == b'{"a":1}'
    assert first.headers["Host"] == srv.url.split("//")[1]
    assert first.headers["Authorization"] == "Bearer k"
    assert first.headers["Content-Length"] == "7"
    assert len(srv.connections) == 1  # the second request reused the connection


async def test_close_delimited_body_and_connection_close(srv):
    srv.enqueue(Reply.raw_bytes(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ", b"world"))
    assert await _fetch(srv) == (200, b"hello world")
    srv.enqueue(Reply.json({"n": 2}, close=True), Reply.json({"n": 3}))
    assert await _fetch(srv) == (200, b'{"n":2}')
    assert await _fetch(srv) == (200, b'{"n":3}')
    assert len(srv.connections) == 3  # neither a close-delimited body nor Connection: close is reused


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_bodies(srv, coding):
    data = b"data: " + b"x" * 5000 + b"\n\n"
    if coding == "gzip":
        packed = gzip.compress(data)
    elif coding == "deflate":
        packed = zlib.compress(data)
    else:
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        packed = c.compress(data) + c.flush()
    name = "deflate" if "deflate" in coding else "gzip"
    srv.enqueue(Reply.stream([packed[:100], packed[100:]], headers={"Content-Encoding": name}))
    assert await _fetch(srv) == (200, data)
    assert srv.requests[0].headers["Accept-Encoding"] == "gzip, deflate"


async def test_interim_response_is_skipped(srv):
    srv.enqueue(Reply.raw_bytes(b"HTTP/1.1 100 Continue\r\n\r\n"
                                b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"))
    assert await _fetch(srv) == (201, b"ok")


async def test_malformed_response_is_a_connection_error(srv):
    srv.enqueue(Reply.raw_bytes(b"HTTP/1.1 2xx NOPE\r\n\r\n"))
    with pytest.raises(llmrelay.APIConnectionError, match="Invalid HTTP response"):
        await _fetch(srv)


async def test_dropped_before_the_head(srv):
    srv.enqueue(Reply(body=[Drop()], raw=True))
    with pytest.raises(llmrelay.APIConnectionError, match="Server disconnected"):
        await _fetch(srv)


@pytest.mark.parametrize("reset", [False, True])
async def test_dropped_mid_body_delivers_then_fails(srv, reset):
    srv.enqueue(Reply.stream([b"first", Sleep(0.05), Drop(reset=reset)]))
    response = await aio.send(_request(srv), 5.0)
    assert await response.readany() == b"first"
    with pytest.raises(llmrelay.APIConnectionError):
        await response.readany()
    response.close()


async def test_short_content_length_fails_read(srv):
    srv.enqueue(Reply(headers={"Content-Length": "100"}, body=[b"only ten..", Drop()]))
    with pytest.raises(llmrelay.APIConnectionError, match="not completed"):
        await _fetch(srv)


async def test_read_timeout_waiting_for_the_head(srv):
    srv.enqueue(Reply.json({}, delay_headers=2.0))
    with pytest.raises(llmrelay.Timeout):
        await _fetch(srv, timeout=0.2)


async def test_read_timeout_between_body_reads_and_rearm(srv):
    srv.enqueue(Reply.stream([b"a", Sleep(0.3), b"b", Sleep(3.0), b"c"]))
    response = await aio.send(_request(srv), 5.0)
    assert await response.readany() == b"a"
    response.set_read_timeout(1.0)  # longer than the first gap, shorter than the second
    assert await response.readany() == b"b"
    with pytest.raises(llmrelay.Timeout):
        await response.readany()
    response.close()


async def test_read_timeouts_on_a_reused_connection(srv):
    # The connection keeps its timer across requests (arm()): a later, shorter timeout must
    # still fire in time, and an earlier exchange's short one must not fail a later, longer one.
    srv.enqueue(Reply.json({"n": 1}), Reply.json({}, delay_headers=2.0))
    assert await _fetch(srv, timeout=30.0) == (200, b'{"n":1}')
    with pytest.raises(llmrelay.Timeout):
        await _fetch(srv, timeout=0.2)
    srv.enqueue(Reply.json({"n": 2}), Reply.json({"n": 3}, delay_headers=0.6))
    assert await _fetch(srv, timeout=0.3) == (200, b'{"n":2}')
    assert await _fetch(srv, timeout=5.0) == (200, b'{"n":3}')  # its head comes after the first's timeout
    # the timed-out exchange dropped the first connection; the last two shared the second
    assert len(srv.connections) == 2 and srv.connections[1].requests == 2


async def test_connect_error(srv):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    request = HttpRequest("POST", f"http://127.0.0.1:{port}/v1/x", {}, b"{}")
    with pytest.raises(llmrelay.APIConnectionError, match="Cannot connect"):
        await aio.send(request, 5.0)


async def test_stale_pooled_connection_is_not_used(srv):
    # a complete response, then the server closes the idle keep-alive connection
    srv.enqueue(Reply(headers={"Content-Length": "2"}, body=[b"ok", Sleep(0.05), Drop()]), Reply.json({"n": 2}))
    assert await _fetch(srv) == (200, b"ok")
    await srv.await_connection_closed(0)
    await asyncio.sleep(0.05)
    assert await _fetch(srv) == (200, b'{"n":2}')
    assert len(srv.connections) == 2


async def test_cancel_while_waiting_closes_the_connection(srv):
    srv.enqueue(Reply(body=[Hang()], raw=True))
    task = asyncio.ensure_future(aio.send(_request(srv), 30.0))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await srv.await_connection_closed(0, timeout=5)


async def test_unread_body_pauses_reading(srv):
    big = [b"y" * 65536] * 64  # 4 MiB
    srv.enqueue(Reply.stream(big))
    response = await aio.send(_request(srv), 5.0)
    conn = response.conn

    async def paused() -> bool:
        return conn.paused

    # the server writes 4 MiB; nobody reads: reading pauses once the buffer passes the high water
    await eventually(paused, bool, what="the connection's reads to pause")
    await asyncio.sleep(0.1)  # a paused connection buffers no further
    # the read that crossed the high water is parsed to its end: up to one event-loop read (256 KiB) more
    assert conn.paused and conn.size <= lean.HIGH_WATER + 256 * 1024 + 65536
    assert len(await response.read()) == 64 * 65536


async def test_header_injection_is_refused(srv):
    with pytest.raises(llmrelay.APIConnectionError, match="invalid HTTP header"):
        await aio.send(_request(srv, headers={"X-Bad": "a\r\nInjected: 1"}), 5.0)
    assert not srv.requests


async def test_stream_through_acompletion_reuses_the_connection(srv):
    events = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in "abc"]
    for _ in range(2):
        srv.enqueue(Reply.sse([*events, "[DONE]"], interval=0.01))
    for _ in range(2):
        stream = await llmrelay.acompletion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                            api_base=srv.url + "/v1", api_key="k", stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
        assert text == "abc"
    assert len(srv.connections) == 1


async def test_an_abandoned_response_drops_its_connection(srv):
    import gc

    srv.enqueue(Reply.stream([b"a", Hang()]))
    response = await aio.send(_request(srv), 5.0)
    assert await response.readany() == b"a"
    del response
    gc.collect()
    await srv.await_connection_closed(0, timeout=5)


async def test_without_httptools_aiohttp_sends(srv, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "httptools", None)  # the proxy extra not installed
    monkeypatch.setattr(lean, "_parser_class", None)
    srv.enqueue(Reply.json({"n": 1}))
    response = await aio.send(_request(srv), 5.0)
    assert type(response) is aio.AsyncResponse
    assert await response.read() == b'{"n":1}'
    await aio.close_sessions()


@pytest.mark.parametrize("client", ["lean", "aiohttp"])
async def test_the_tasks_upstream_headers_are_sent(srv, client, monkeypatch):
    """``transport.base.upstream_headers`` (the gateway's traceparent): added to the task's
    requests beside their own headers, replacing a header of the same name; not in other tasks."""
    from llmrelay.transport.base import upstream_headers

    if client == "aiohttp":
        monkeypatch.setattr(aio, "LEAN", False)
    for _ in range(4):
        srv.enqueue(Reply.json({"n": 1}))

    async def in_task(headers: dict | None, own: dict | None) -> None:
        if headers is not None:
            upstream_headers.set(headers)
        response = await aio.send(_request(srv, headers=own), 5.0)
        assert await response.read() == b'{"n":1}'

    await asyncio.create_task(in_task({"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}, {"X-Own": "1"}))
    await asyncio.create_task(in_task({"traceparent": "00-" + "c" * 32 + "-" + "d" * 16 + "-01", "tracestate": "k=v"},
                                      {"Traceparent": "theirs", "X-Own": "2"}))
    await asyncio.create_task(in_task(None, {"X-Own": "3"}))
    first, second, third = srv.requests
    assert first.headers["traceparent"] == "00-" + "a" * 32 + "-" + "b" * 16 + "-01" and first.headers["X-Own"] == "1"
    assert first.headers["Content-Length"] == "7" and first.headers["Host"] == srv.url.split("//")[1]
    assert second.headers.get_all("traceparent") == ["00-" + "c" * 32 + "-" + "d" * 16 + "-01"]
    assert second.headers["tracestate"] == "k=v" and second.headers["X-Own"] == "2"
    assert "traceparent" not in third.headers and third.headers["X-Own"] == "3"
    if client == "aiohttp":
        await aio.close_sessions()
