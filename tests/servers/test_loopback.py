"""Self-tests of the generic loopback server: parsing, keep-alive, streaming, faults, shutdown."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import aiohttp
import httpx
import pytest
import urllib3

from servers.loopback import Drop, Gate, Hang, LoopbackServer, Reply, Request, Sleep


def echo(request: Request) -> Reply:
    return Reply.json(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.body.decode(),
            "x": request.headers.get("X-Custom"),
        }
    )


def raw_connect(srv: LoopbackServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    return sock


def recv_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    return data


# --------------------------------------------------------------------------- requests


def test_url_and_parsing(loopback) -> None:
    srv = loopback(echo)
    assert srv.url == f"http://127.0.0.1:{srv.port}"
    resp = urllib3.request("POST", srv.url + "/a/b?x=1&y=two", body=b"hello", headers={"x-cUSTOM": "v"})
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(resp.data))
    assert resp.json() == {"method": "POST", "path": "/a/b", "query": {"x": "1", "y": "two"}, "body": "hello", "x": "v"}
    req = srv.last_request
    assert req.headers["X-CUSTOM"] == req.headers["x-custom"] == "v"
    assert "content-length" in req.headers
    assert req.connection_id == 0 and req.index == 0


def test_json_body(loopback) -> None:
    srv = loopback(echo)
    httpx.post(srv.url + "/j", json={"a": [1, 2]})
    assert srv.requests[0].json() == {"a": [1, 2]}


def test_chunked_request_body(loopback) -> None:
    srv = loopback(echo)

    def gen():
        yield b"abc"
        yield b"defgh"

    resp = httpx.post(srv.url + "/c", content=gen())
    assert resp.json()["body"] == "abcdefgh"
    assert srv.last_request.headers["transfer-encoding"] == "chunked"


def test_chunked_request_with_extensions_and_trailers(loopback) -> None:
    srv = loopback(echo)
    with raw_connect(srv) as sock:
        sock.sendall(
            b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n"
        )
        data = recv_until(sock, b"}")
    assert b'"body":"abcde"' in data


def test_expect_100_continue(loopback) -> None:
    srv = loopback(echo)
    with raw_connect(srv) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert recv_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"ok")
        assert b'"body":"ok"' in recv_until(sock, b"}")


def test_bad_request_line_gets_400(loopback) -> None:
    srv = loopback(echo)
    with raw_connect(srv) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert recv_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert srv.requests == []


def test_keep_alive_reuses_connection(loopback) -> None:
    srv = loopback(echo)
    with httpx.Client() as client:
        for i in range(3):
            assert client.get(f"{srv.url}/{i}").status_code == 200
    assert [r.connection_id for r in srv.requests] == [0, 0, 0]
    assert srv.connection(0).requests == 3
    srv.wait_all_closed()
    assert srv.connection(0).closed_by == "peer"


def test_connection_close_from_client(loopback) -> None:
    srv = loopback(echo)
    with raw_connect(srv) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_until(sock, b"\x00never")
    assert b"Connection: close" in data
    info = srv.wait_connection_closed(0)
    assert info.closed_by == "server"


def test_reply_close_closes_after_response(loopback) -> None:
    srv = loopback(lambda r: Reply.text("bye", close=True))
    with httpx.Client() as client:
        client.get(srv.url)
        client.get(srv.url)
    assert [r.connection_id for r in srv.requests] == [0, 1]
    assert srv.connection(0).closed_by == "server"


def test_http10_closes_by_default(loopback) -> None:
    srv = loopback(echo)
    with raw_connect(srv) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert b'"path":"/"' in recv_until(sock, b"\x00never")


def test_head_and_204_have_no_body(loopback) -> None:
    srv = loopback(lambda r: Reply.text("body") if r.method == "HEAD" else Reply(status=204))
    with httpx.Client() as client:
        head = client.head(srv.url)
        assert head.status_code == 200 and head.content == b""
        assert client.get(srv.url).status_code == 204
    assert [r.connection_id for r in srv.requests] == [0, 0]


# --------------------------------------------------------------------------- scripting


def test_enqueue_then_default(loopback) -> None:
    srv = loopback(lambda r: Reply.text("default"))
    srv.enqueue(Reply.text("one", status=201), lambda r: Reply.text("two " + r.path))
    assert srv.pending == 2
    with httpx.Client() as client:
        first, second, third = (client.get(srv.url + "/p") for _ in range(3))
    assert (first.status_code, first.text) == (201, "one")
    assert second.text == "two /p"
    assert third.text == "default"
    assert srv.pending == 0


def test_default_handler_is_404(loopback) -> None:
    srv = loopback()
    assert httpx.get(srv.url + "/nothing").status_code == 404


def test_handler_exception_is_500_and_recorded(loopback) -> None:
    def boom(request: Request) -> Reply:
        raise ValueError("kaput")

    srv = loopback(boom)
    resp = httpx.get(srv.url)
    assert resp.status_code == 500 and "kaput" in resp.text
    assert isinstance(srv.errors[0], ValueError)


def test_custom_headers_and_reason(loopback) -> None:
    srv = loopback(lambda r: Reply(status=299, reason="Odd", headers=[("X-A", "1"), ("X-A", "2")], body=[b"x"]))
    with raw_connect(srv) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until(sock, b"\r\n\r\nx")
    assert data.startswith(b"HTTP/1.1 299 Odd\r\n")
    assert b"X-A: 1\r\nX-A: 2\r\n" in data


def test_raw_bytes_reply(loopback) -> None:
    srv = loopback(lambda r: Reply.raw_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        urllib3.request("GET", srv.url, retries=False)


def test_lying_content_length_with_drop(loopback) -> None:
    srv = loopback(lambda r: Reply(headers={"Content-Length": "100"}, body=[b"partial", Drop()]))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(srv.url)


# --------------------------------------------------------------------------- streaming and faults


def test_stream_arrives_incrementally(loopback) -> None:
    gate = threading.Event()
    srv = loopback(lambda r: Reply.stream([b"first", Gate(gate), b"second"]))
    with httpx.Client() as client, client.stream("GET", srv.url) as resp:
        it = resp.iter_raw()
        assert next(it) == b"first"  # while the rest is held back
        gate.set()
        assert next(it) == b"second"


def test_sse_helper_frames(loopback) -> None:
    srv = loopback(lambda r: Reply.sse([{"a": 1}, ": ping\n\n", b"data: raw\n\n", "[DONE]"]))
    resp = httpx.get(srv.url)
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["transfer-encoding"] == "chunked"
    assert resp.content == b'data: {"a":1}\n\n: ping\n\ndata: raw\n\ndata: [DONE]\n\n'


def test_sse_interval_and_crlf(loopback) -> None:
    srv = loopback(lambda r: Reply.sse([{"a": 1}, "[DONE]"], interval=0.05, newline="\r\n"))
    assert httpx.get(srv.url).content == b'data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n'


def test_delay_headers(loopback) -> None:
    srv = loopback(lambda r: Reply.text("late", delay_headers=0.3))
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(srv.url, timeout=httpx.Timeout(5, read=0.1))
    start = time.monotonic()
    assert httpx.get(srv.url).text == "late"
    assert time.monotonic() - start >= 0.25


def test_drop_mid_stream(loopback) -> None:
    srv = loopback(lambda r: Reply.stream([b"one", Drop(), b"never"]))
    got: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.Client() as client, client.stream("GET", srv.url) as resp:
            for part in resp.iter_raw():
                got.append(part)
    assert got == [b"one"]
    assert srv.wait_connection_closed(0).closed_by == "server"


def test_drop_with_reset(loopback) -> None:
    srv = loopback(lambda r: Reply.stream([b"one", Sleep(0.05), Drop(reset=True)]))
    with raw_connect(srv) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            while sock.recv(65536):
                pass


def test_drop_with_urllib3(loopback) -> None:
    srv = loopback(lambda r: Reply.stream([b"one", Drop()]))
    resp = urllib3.request("GET", srv.url, preload_content=False, retries=False)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for _ in resp.stream(16):
            pass


def test_hang_can_be_abandoned(loopback) -> None:
    srv = loopback(lambda r: Reply.stream([b"start", Hang()]))
    with pytest.raises(httpx.ReadTimeout):
        with httpx.Client(timeout=httpx.Timeout(5, read=0.2)) as client, client.stream("GET", srv.url) as resp:
            for _ in resp.iter_raw():
                pass
    srv.assert_closed_by_peer(0)  # (a Hang ends only when the peer goes away)


def test_stop_while_hanging_and_client_connected() -> None:
    srv = LoopbackServer(lambda r: Reply.stream([b"start", Hang()])).start()
    sock = raw_connect(srv)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"start" in recv_until(sock, b"start")
    srv.stop()  # (raises if the hanging reply kept its thread alive)
    sock.settimeout(2)
    try:
        assert sock.recv(10) == b""  # the server closed its end
    except ConnectionResetError:
        pass
    sock.close()


def test_stop_with_idle_keepalive_and_long_sleep() -> None:
    srv = LoopbackServer(lambda r: Reply.stream([b"a", Sleep(3600), b"b"])).start()
    idle = raw_connect(srv)
    busy = raw_connect(srv)
    busy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    recv_until(busy, b"a\r\n")
    srv.stop()  # (raises if the sleeping reply kept its thread alive)
    idle.close()
    busy.close()
    srv.stop()  # idempotent


def test_close_detection_and_leak_count(loopback) -> None:
    srv = loopback(echo)
    a, b = raw_connect(srv), raw_connect(srv)
    for sock in (a, b):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        recv_until(sock, b"}")
    assert srv.open_connections == 2
    a.close()
    srv.assert_closed_by_peer(0)
    assert srv.open_connections == 1
    with pytest.raises(TimeoutError):
        srv.wait_all_closed(timeout=0.1)
    b.close()
    srv.wait_all_closed()
    assert srv.open_connections == 0


def test_peer_close_seen_during_sleep(loopback) -> None:
    """A client giving up mid-stream is seen while the server is still sleeping (an hour)."""
    srv = loopback(lambda r: Reply.stream([b"a", Sleep(3600), b"b"]))
    sock = raw_connect(srv)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    recv_until(sock, b"a\r\n")
    sock.close()
    srv.assert_closed_by_peer(0)


def test_assert_closed_by_peer_fails_when_open(loopback) -> None:
    srv = loopback(echo)
    with raw_connect(srv):
        deadline = time.monotonic() + 2
        while not srv.connections and time.monotonic() < deadline:
            time.sleep(0.005)
        with pytest.raises(AssertionError):
            srv.assert_closed_by_peer(0, timeout=0.05)


# --------------------------------------------------------------------------- async clients


async def test_async_httpx_stream_and_close(loopback) -> None:
    srv = loopback(lambda r: Reply.stream([b"x", Sleep(0.1), b"y"]))
    async with httpx.AsyncClient() as client:
        async with client.stream("GET", srv.url) as resp:
            parts = [p async for p in resp.aiter_raw()]
    assert parts == [b"x", b"y"]
    await srv.await_all_closed()


async def test_aiohttp_cancel_mid_stream_closes_connection(loopback) -> None:
    srv = loopback(lambda r: Reply.stream([b"x", Hang()]))
    async with aiohttp.ClientSession() as session:

        async def read_all() -> None:
            async with session.get(srv.url) as resp:
                async for _ in resp.content.iter_any():
                    pass

        task = asyncio.ensure_future(read_all())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        info = await srv.await_connection_closed(0, timeout=30)
    assert info.closed_by == "peer"  # (a Hang ends only when the peer goes away)


async def test_async_context_manager() -> None:
    async with LoopbackServer(echo) as srv:
        async with aiohttp.ClientSession() as session:
            async with session.get(srv.url + "/q?a=b") as resp:
                assert (await resp.json())["query"] == {"a": "b"}
