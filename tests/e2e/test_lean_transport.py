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


# ---------------------------------------------------------------- response heads (issue 18)
#: A response head as OpenAI sends it (24 headers: two Set-Cookie, names in mixed case).
OPENAI_HEAD = (
    b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 23:56:45 GMT\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\nConnection: keep-alive\r\naccess-control-expose-headers: X-Request-ID\r\n"
    b"openai-organization: user-abc\r\nopenai-processing-ms: 241\r\nopenai-project: proj_abc\r\n"
    b"openai-version: 2020-10-01\r\nx-ratelimit-limit-requests: 10000\r\nx-ratelimit-limit-tokens: 30000000\r\n"
    b"x-ratelimit-remaining-requests: 9999\r\nx-ratelimit-remaining-tokens: 29999982\r\n"
    b"x-ratelimit-reset-requests: 6ms\r\nx-ratelimit-reset-tokens: 0s\r\nx-request-id: req_0123\r\n"
    b"strict-transport-security: max-age=31536000; includeSubDomains; preload\r\ncf-cache-status: DYNAMIC\r\n"
    b"set-cookie: __cf_bm=aa; path=/; HttpOnly; Secure; SameSite=None\r\n"
    b"set-cookie: _cfuvid=bb; path=/; HttpOnly; Secure; SameSite=None\r\n"
    b"X-Content-Type-Options: nosniff\r\nServer: cloudflare\r\nCF-RAY: 8e9f3a1b2c3d4e5f-SJC\r\n"
    b"alt-svc: h3=\":443\"; ma=86400\r\n\r\n")


def _expected_headers(head: bytes) -> dict[str, str]:
    """The headers as the client reports them: each name as sent, its first value (leading spaces
    and tabs dropped, trailing kept), decoded as UTF-8 with surrogate escapes, in first-seen order."""
    out: dict[str, str] = {}
    for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        out.setdefault(name.decode("utf-8", "surrogateescape"), value.lstrip(b" \t").decode("utf-8", "surrogateescape"))
    return out


@pytest.mark.parametrize("split", ["whole", "bytewise"])
async def test_response_headers_as_sent(srv, split):
    """Every header of the head (split over reads or not): duplicates of a name keep the first
    value, names differing in case are kept apart, order as sent, values' leading blanks dropped."""
    head = OPENAI_HEAD.replace(b"Content-Length: 2\r\n", b"Content-Length: 2\r\nX-Blank:\t \r\nX-Trail: v \t\r\n"
                               b"x-dup: 1\r\nX-Dup: 2\r\nx-dup: 3\r\nX-Bytes: caf\xc3\xa9 \xff\r\nX-Empty:\r\n")
    parts: list = [head + b"ok"] if split == "whole" else [head[i:i + 1] for i in range(len(head))] + [b"ok"]
    if split == "bytewise":
        parts = [p for b in parts for p in (b, Sleep(0.0005))]
    srv.enqueue(Reply.raw_bytes(*parts))
    response = await aio.send(_request(srv), 5.0)
    expected = _expected_headers(head)
    assert list(response.headers.items()) == list(expected.items())
    assert response.headers["set-cookie"].startswith("__cf_bm=aa")
    assert (response.headers["x-dup"], response.headers["X-Dup"]) == ("1", "2")
    assert (response.headers["X-Blank"], response.headers["X-Trail"], response.headers["X-Empty"]) == ("", "v \t", "")
    assert response.headers["X-Bytes"] == "café \udcff"
    assert len(response.headers) == 29
    assert await response.read() == b"ok"


async def test_interim_response_headers_are_not_the_responses(srv):
    srv.enqueue(Reply.raw_bytes(b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n",
                                b"HTTP/1.1 200 OK\r\nX-Final: 2\r\nContent-Length: 2\r\n\r\nok"))
    response = await aio.send(_request(srv), 5.0)
    assert response.headers == {"X-Final": "2", "Content-Length": "2"}
    assert await response.read() == b"ok"


async def test_additional_headers_of_a_realistic_head(srv):
    """``additional_headers`` from OpenAI's 24 headers: each once, the first Set-Cookie."""
    body = (b'{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
            b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}')
    srv.enqueue(Reply.raw_bytes(OPENAI_HEAD.replace(b"Content-Length: 2", b"Content-Length: %d" % len(body)) + body))
    response = await llmrelay.acompletion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                          api_base=srv.url + "/v1", api_key="k")
    extra = response._hidden_params["additional_headers"]
    assert extra["llm_provider-set-cookie"].startswith("__cf_bm=aa")
    assert extra["llm_provider-cf-ray"] == "8e9f3a1b2c3d4e5f-SJC"
    assert extra["x-ratelimit-remaining-tokens"] == "29999982"
    assert len(extra) == 23 + 4


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: Chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
])
async def test_chunked_in_any_spelling_is_delimited(srv, head):
    """A chunked body is de-chunked, and one cut short is an error, not a complete body, however
    the Transfer-Encoding header is spelled or split."""
    head = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    srv.enqueue(Reply.raw_bytes(head + b"2\r\nab\r\n0\r\n\r\n"))
    status, body = await _fetch(srv)
    assert (status, body) == (200, b"ab")
    srv.enqueue(Reply.raw_bytes(head + b"2\r\nab\r\n", Sleep(0.05), Drop()))
    response = await aio.send(_request(srv), 5.0)
    assert response.conn.chunked and response.conn.delimited
    with pytest.raises(llmrelay.APIConnectionError, match="not completed"):
        await response.read()


async def test_content_encoding_in_any_case(srv):
    data = b"x" * 3000
    srv.enqueue(Reply.raw_bytes(b"HTTP/1.1 200 OK\r\nCONTENT-ENCODING:  GZip \r\nContent-Length: %d\r\n\r\n"
                                % len(gzip.compress(data)) + gzip.compress(data)))
    assert await _fetch(srv) == (200, data)


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",  # obsolete line folding
    b"HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 0\n\n",  # bare line feeds
    b"HTTP/1.1 200 OK\r\nX A: 1\r\nContent-Length: 0\r\n\r\n",  # a space in a name
    b"HTTP/1.1 200 OK\r\nX-A: 1\x00\r\nContent-Length: 0\r\n\r\n",  # a NUL in a value
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\nx",  # two lengths
])
async def test_malformed_heads_are_errors(srv, head):
    srv.enqueue(Reply.raw_bytes(head, Hang()))
    with pytest.raises(llmrelay.APIConnectionError, match="Invalid HTTP response"):
        await _fetch(srv)


async def test_a_head_that_never_ends_is_an_error(srv):
    """An upstream that keeps sending header lines gets an error once its head passes
    lean.HEAD_MAX, not a hang holding ever more memory; a body in the head's read is no head."""
    line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
    srv.enqueue(Reply.raw_bytes(b"HTTP/1.1 200 OK\r\n" + line * (lean.HEAD_MAX // len(line) + 2), Hang()))
    with pytest.raises(llmrelay.APIConnectionError, match="a head of more than"):
        await _fetch(srv)
    body = b"x" * (2 * lean.HEAD_MAX)
    srv.enqueue(Reply.raw_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body))
    assert await _fetch(srv) == (200, body)


async def test_header_lines_kept_or_not_give_the_same_headers(srv, monkeypatch):
    """The lines kept from earlier responses (lean._LINES) give what a first sight gives, also
    when the memory is emptied on the way or a line is too long to keep."""
    monkeypatch.setattr(lean, "_LINES_MAX", 5)
    monkeypatch.setattr(lean, "_PER_NAME", 2)
    long_value = b"v" * (lean._LINE_MAX + 10)
    for i in range(6):
        head = OPENAI_HEAD.replace(b"x-request-id: req_0123", b"x-request-id: req_%d\r\nX-Long: %s" % (i, long_value))
        head = head.replace(b"Connection: keep-alive", b"Connection: close")  # (a raw reply ends its connection)
        if i % 2:
            head = head.replace(b"Content-Length: 2\r\n", b"Transfer-Encoding: chunked\r\n")
        srv.enqueue(Reply.raw_bytes(head + (b"2\r\nok\r\n0\r\n\r\n" if i % 2 else b"ok")))
        response = await aio.send(_request(srv), 5.0)
        assert list(response.headers.items()) == list(_expected_headers(head).items())
        assert response.conn.chunked == bool(i % 2) and response.conn.delimited
        assert await response.read() == b"ok"
    assert len(lean._LINES) <= 5 + 30 and lean._NAME_LINES["x-request-id"] <= lean._PER_NAME
