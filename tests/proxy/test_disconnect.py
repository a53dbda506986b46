"""A client that goes away cancels the upstream call: the upstream sees its connection closed
by the gateway, mid-stream and before the first chunk, while its reply would still last an hour."""

from __future__ import annotations

import socket
import time

import orjson
import pytest

from proxy.conftest import MASTER_KEY
from timing import DEADLINE
from servers.openai_server import Hang, hanging_stream, slow_headers_reply, slow_stream_reply, stream_reply


#: How long every upstream reply here would last if nobody left (s): far beyond the deadline of
#: a test, so an upstream connection the client closes within that deadline was closed because
#: the gateway passed the client's disconnect on (nothing is timed).
FOREVER = 3600.0


def _open_stream(url: str, model: str = "gpt-4o-mini", stream: bool = True) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": stream})
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    return sock


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        part = sock.recv(65536)
        assert part, f"connection closed before {marker!r}: {data!r}"
        data += part
    return data


def _wait_upstream_request(upstream, before: int, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while len(upstream.requests) <= before:
        assert time.monotonic() < deadline, "the gateway never called the upstream"
        time.sleep(0.002)
    return upstream.requests[before]


def _close(sock: socket.socket) -> None:
    sock.close()


def test_disconnect_mid_stream_closes_upstream(gateway, upstream):
    upstream.enqueue(hanging_stream(after_chunks=3))
    before = len(upstream.requests)
    sock = _open_stream(gateway.url)
    _read_until(sock, b"data: ")  # the first chunk reached us
    request = _wait_upstream_request(upstream, before)
    _close(sock)
    upstream.assert_closed_by_peer(request.connection_id, DEADLINE)
    gateway.wait_log(lambda r: r.get("status") == 499 and r.get("error") == "client disconnected")


def test_disconnect_during_slow_stream_closes_upstream(gateway, upstream):
    upstream.enqueue(slow_stream_reply(1.0, text="word " * int(FOREVER)))
    before = len(upstream.requests)
    sock = _open_stream(gateway.url)
    _read_until(sock, b"word")
    request = _wait_upstream_request(upstream, before)
    _close(sock)
    upstream.assert_closed_by_peer(request.connection_id, DEADLINE)


@pytest.mark.parametrize("reply", [lambda: stream_reply([Hang()]), lambda: slow_headers_reply(FOREVER)],
                         ids=["no-first-chunk", "no-headers"])
def test_disconnect_before_first_chunk_closes_upstream(gateway, upstream, reply):
    upstream.enqueue(reply())
    before = len(upstream.requests)
    sock = _open_stream(gateway.url)
    request = _wait_upstream_request(upstream, before)
    time.sleep(0.05)  # the gateway is now waiting for the upstream
    _close(sock)
    upstream.assert_closed_by_peer(request.connection_id, DEADLINE)


def test_disconnect_non_streaming_closes_upstream(gateway, upstream):
    upstream.enqueue(slow_headers_reply(FOREVER, stream=False))
    before = len(upstream.requests)
    sock = _open_stream(gateway.url, stream=False)
    request = _wait_upstream_request(upstream, before)
    time.sleep(0.05)
    _close(sock)
    upstream.assert_closed_by_peer(request.connection_id, DEADLINE)


def test_gateway_still_serves_after_disconnects(gateway):
    import openai

    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        assert c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]).choices
