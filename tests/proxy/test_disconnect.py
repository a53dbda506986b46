"""A client that goes away cancels the upstream call: the upstream sees its connection closed
promptly, mid-stream and before the first chunk."""

from __future__ import annotations

import socket
import time

import orjson
import pytest

from proxy.conftest import MASTER_KEY
from servers.openai_server import Hang, hanging_stream, slow_headers_reply, slow_stream_reply, stream_reply


#: How soon after the client leaves the upstream connection must be closed. Not a speed target
#: (tests make none): it only has to be well below every other reason the upstream connection
#: could close here (a reply after 5 s, a 10 s stream, the stream timeout), so that a close within
#: it can only be the gateway passing the disconnect on; generous, because a loaded machine can
#: take a while to schedule the gateway.
PROMPTLY = 2.0


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


def _close(sock: socket.socket) -> float:
    since = time.monotonic()
    sock.close()
    return since


def test_disconnect_mid_stream_closes_upstream(gateway, upstream):
    upstream.enqueue(hanging_stream(after_chunks=3))
    before = len(upstream.requests)
    sock = _open_stream(gateway.url)
    _read_until(sock, b"data: ")  # the first chunk reached us
    request = _wait_upstream_request(upstream, before)
    upstream.assert_closed_within(request.connection_id, PROMPTLY, _close(sock))
    gateway.wait_log(lambda r: r.get("status") == 499 and r.get("error") == "client disconnected")


def test_disconnect_during_slow_stream_closes_upstream(gateway, upstream):
    upstream.enqueue(slow_stream_reply(0.05, text="word " * 200))
    before = len(upstream.requests)
    sock = _open_stream(gateway.url)
    _read_until(sock, b"word")
    request = _wait_upstream_request(upstream, before)
    upstream.assert_closed_within(request.connection_id, PROMPTLY, _close(sock))


@pytest.mark.parametrize("reply", [lambda: stream_reply([Hang()]), lambda: slow_headers_reply(5)],
                         ids=["no-first-chunk", "no-headers"])
def test_disconnect_before_first_chunk_closes_upstream(gateway, upstream, reply):
    upstream.enqueue(reply())
    before = len(upstream.requests)
    sock = _open_stream(gateway.url)
    request = _wait_upstream_request(upstream, before)
    time.sleep(0.05)  # the gateway is now waiting for the upstream
    upstream.assert_closed_within(request.connection_id, PROMPTLY, _close(sock))


def test_disconnect_non_streaming_closes_upstream(gateway, upstream):
    upstream.enqueue(slow_headers_reply(5, stream=False))
    before = len(upstream.requests)
    sock = _open_stream(gateway.url, stream=False)
    request = _wait_upstream_request(upstream, before)
    time.sleep(0.05)
    upstream.assert_closed_within(request.connection_id, PROMPTLY, _close(sock))


def test_gateway_still_serves_after_disconnects(gateway):
    import openai

    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        assert c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]).choices
