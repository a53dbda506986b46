"""The stream fast path (issue 18, ``llmrelay/proxy/fastpath.py``) against the general path.

Two real gateways in front of one fake OpenAI upstream on 127.0.0.1: the default one (fast path
on) and one started with ``LLMRELAY_STREAM_FAST_PATH=0``. Every test runs twice: with the
default gateway's upstream requests sent by the lean HTTP client (the relay reads its
connection's body pieces) and by aiohttp (``LLMRELAY_LEAN_HTTP=0``: the relay hooks aiohttp's
reader). Each test sends the same upstream
stream through both and expects the same client stream (frame by frame), and checks from the
access log how many chunks the fast path rewrote: all the plain content frames of a normal
stream, and a fallback to the general path's decoder for every unusual frame (unexpected
shapes, errors mid-stream, frames split across reads, CRLF line ends, comments, multi-line
data).
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from proxy.conftest import MASTER_KEY, UPSTREAM_KEY, gateway_config
from proxy.harness import Gateway
from servers.loopback import Drop, Reply, Sleep
from servers.openai_server import (
    ChunkFactory,
    Reply,
    error_body,
    in_band_error_stream,
    stream_reply,
    text_stream_events,
)

TEXT = "The quick brown fox jumps over the lazy dog and keeps running far away from here"


@pytest.fixture(scope="module", params=["lean", "aiohttp"])
def gateway(request: pytest.FixtureRequest, upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The default gateway (fast path on), with either upstream HTTP client."""
    path = tmp_path_factory.mktemp(f"gw-{request.param}") / "config.yaml"
    path.write_text(gateway_config(upstream.url))
    env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY}
    if request.param == "aiohttp":
        env["LLMRELAY_LEAN_HTTP"] = "0"
    with Gateway(str(path), env=env) as gw:
        yield gw


@pytest.fixture(scope="module")
def general(upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The same gateway with the fast path switched off."""
    path = tmp_path_factory.mktemp("gw-general") / "config.yaml"
    path.write_text(gateway_config(upstream.url))
    env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "LLMRELAY_STREAM_FAST_PATH": "0"}
    with Gateway(str(path), env=env) as gw:
        yield gw


def _post(url: str, body: dict[str, Any]) -> tuple[int, bytes, str]:
    """(status, body, request id) of one chat request."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v1/chat/completions", orjson.dumps(body),
                 {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data, response.getheader("x-request-id") or ""


def _frames(body: bytes, request_id: str) -> list[Any]:
    """The client stream as a list of frames (JSON decoded; the request id blanked)."""
    assert body.endswith(b"\n\n"), body[-200:]
    out: list[Any] = []
    for frame in body.decode().split("\n\n")[:-1]:
        assert frame.startswith("data: "), frame
        data = frame[6:]
        out.append(data if data == "[DONE]" else orjson.loads(data.replace(request_id, "REQ")))
    return out


def _compare(gateway: Gateway, general: Gateway, upstream, reply: Any, body: dict[str, Any] | None = None) -> tuple[list, dict]:
    """Send ``reply`` through both gateways; the client frames must be equal. Returns the fast
    gateway's frames and its access-log record."""
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True, **(body or {})}
    results = []
    for gw in (gateway, general):
        upstream.enqueue(reply() if callable(reply) else reply)
        status, data, request_id = _post(gw.url, request)
        assert status == 200, data
        record = gw.wait_log(lambda r, rid=request_id: r.get("request_id") == rid)
        results.append((_frames(data, request_id), record))
    (fast, record), (slow, slow_record) = results
    assert fast == slow
    assert "fast_chunks" not in slow_record
    assert record["chunks"] == slow_record["chunks"]
    assert record.get("cost") == slow_record.get("cost")
    return fast, record


def _texts(frames: list[Any]) -> str:
    return "".join(
        c["delta"].get("content") or "" for f in frames if isinstance(f, dict) for c in f.get("choices", ())
    )


def test_plain_stream_rewrites_every_content_frame(gateway, general, upstream):
    events = text_stream_events(TEXT, factory=ChunkFactory(model="gpt-4o-mini-2024-07-18", include_usage=True))
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(events, interval=0.002),
                              {"stream_options": {"include_usage": True}})
    assert _texts(frames) == TEXT
    assert all(f["model"] == "gpt-4o-mini" for f in frames if isinstance(f, dict))
    assert frames[-2]["usage"]["completion_tokens"] > 0 and frames[-1] == "[DONE]"
    # role chunk (and the first content piece: it teaches the shape) on the general path
    pieces = sum(1 for e in events if isinstance(e, dict) and e["choices"] and e["choices"][0]["delta"].get("content"))
    assert record["fast_chunks"] >= pieces - 2
    assert record["cost"] is not None  # spend charged from the stream's usage


def _pieces(events: list[Any]) -> int:
    return sum(1 for e in events if isinstance(e, dict) and e["choices"] and e["choices"][0]["delta"].get("content"))


def test_first_content_frame_is_relayed_from_the_guessed_shape(gateway, general, upstream):
    """OpenAI's role frame tells the content frames' shape: the first content frame is relayed
    without being decoded, like the others (none is decoded to learn the shape from)."""
    events = text_stream_events(TEXT)
    frames, record = _compare(gateway, general, upstream,
                              lambda: stream_reply([events[0], Sleep(0.05), *events[1:]], interval=0.002))
    assert _texts(frames) == TEXT
    assert record["fast_chunks"] == _pieces(events)


def test_content_frames_of_another_shape_than_the_guess(gateway, general, upstream):
    """A server whose content frames are not the role frame's bytes with a content delta: the
    guess matches nothing, the shape is learned from the first content frame as before."""
    events = text_stream_events(TEXT)
    events = [{**e, "choices": [{**e["choices"][0], "delta": {**e["choices"][0]["delta"], "refusal": None}}]}
              if isinstance(e, dict) and e["choices"][0]["delta"].get("content") else e for e in events]
    frames, record = _compare(gateway, general, upstream,
                              lambda: stream_reply([events[0], Sleep(0.05), *events[1:]], interval=0.002))
    assert _texts(frames) == TEXT
    assert record["fast_chunks"] == _pieces(events) - 1


def test_burst_in_one_read(gateway, general, upstream):
    """All frames in one upstream write: order and content kept, the rest coalesced."""
    events = text_stream_events(TEXT * 3)
    body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" if isinstance(e, dict) else b"data: [DONE]\n\n"
                    for e in events)
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply([events[0], Sleep(0.02), body[len(b"data: " + orjson.dumps(events[0]) + b"\n\n"):]]))
    assert _texts(frames) == TEXT * 3
    assert record["fast_chunks"] > 10


def test_frames_split_across_reads(gateway, general, upstream):
    """Reads that end inside a frame, inside the JSON, between the two newlines."""
    events = text_stream_events(TEXT)
    data = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" if isinstance(e, dict) else b"data: [DONE]\n\n"
                    for e in events)
    first = len(b"data: " + orjson.dumps(events[0]) + b"\n\n")
    parts: list[Any] = [data[:first]]
    cuts = [first + 7, first + 90, first + 200, first + 201, first + 330, len(data) - 5]
    for a, b in zip([first, *cuts], [*cuts, len(data)]):
        parts += [Sleep(0.01), data[a:b]]
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(parts))
    assert _texts(frames) == TEXT
    assert record["fast_chunks"] > 5


def test_chunk_framing_split_across_reads(gateway, general, upstream):
    """HTTP chunks (one frame each) whose framing is cut across reads — inside a chunk-size line,
    inside a chunk's data, between its data and its CRLF, inside that CRLF — with whole chunks
    before and after: the relay reads whole chunks itself only where the parser stands between
    two chunks, so the client stream is the general path's, and whole chunks after a cut are
    relayed on the fast path again."""
    events = text_stream_events(TEXT * 2)
    chunks = [b"%x\r\n%s\r\n" % (len(f), f) for f in
              (b"data: " + orjson.dumps(e) + b"\n\n" if isinstance(e, dict) else b"data: [DONE]\n\n" for e in events)]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    parts: list[Any] = [head + chunks[0]]
    for i, chunk in enumerate(chunks[1:-1], 1):
        cut = [None, 1, 20, len(chunk) - 2, len(chunk) - 1][i % 5]  # whole, size line, data, before/in CRLF
        if cut is None or i < 3:
            parts += [Sleep(0.005), chunk]
        else:
            parts += [Sleep(0.005), chunk[:cut], Sleep(0.005), chunk[cut:]]
    parts += [Sleep(0.005), chunks[-1] + b"0\r\n\r\n"]
    frames, record = _compare(gateway, general, upstream, lambda: Reply.raw_bytes(*parts))
    assert _texts(frames) == TEXT * 2
    assert record["fast_chunks"] > 10


def test_many_chunks_in_one_read(gateway, general, upstream):
    """Many HTTP chunks (one frame each) in one upstream write, as a paced upstream's chunks pile
    up behind a busy relay: whole chunks are de-chunked by the relay, up to the last chunk and
    whatever is not a whole chunk, which the parser takes."""
    events = text_stream_events(TEXT * 3)
    chunks = [b"%x\r\n%s\r\n" % (len(f), f) for f in
              (b"data: " + orjson.dumps(e) + b"\n\n" if isinstance(e, dict) else b"data: [DONE]\n\n" for e in events)]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    middle = chunks[3:-1]
    parts: list[Any] = [head + chunks[0], Sleep(0.01), chunks[1], Sleep(0.01), chunks[2], Sleep(0.01),
                        b"".join(middle[:10]), Sleep(0.01), b"".join(middle[10:]) + chunks[-1][:7], Sleep(0.01),
                        chunks[-1][7:] + b"0\r\n\r\n"]
    frames, record = _compare(gateway, general, upstream, lambda: Reply.raw_bytes(*parts))
    assert _texts(frames) == TEXT * 3
    assert record["fast_chunks"] > 20


def test_crlf_line_ends_fall_back(gateway, general, upstream):
    events = text_stream_events(TEXT)
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(events, newline="\r\n", interval=0.002))
    assert _texts(frames) == TEXT
    assert "fast_chunks" not in record  # every frame decoded by the general path


def test_comments_keepalives_and_fields(gateway, general, upstream):
    events = text_stream_events(TEXT)
    mixed: list[Any] = [events[0], events[1], events[2]]
    for i, e in enumerate(events[3:]):
        mixed.append([b": keep-alive\n\n", b"event: message\n", b"id: 7\n", b"retry: 100\n", b":ping\n\n"][i % 5])
        mixed.append(e)
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(mixed, interval=0.002))
    assert _texts(frames) == TEXT
    assert record.get("fast_chunks", 0) > 0


def test_multiline_data_falls_back(gateway, general, upstream):
    events = text_stream_events(TEXT)
    split = []
    for e in events:
        if isinstance(e, dict) and e["choices"] and e["choices"][0]["delta"].get("content") == "fox":
            text = orjson.dumps(e).decode()
            half = text.index('"choices"')
            split.append(f"data: {text[:half]}\ndata: {text[half:]}\n\n".encode())
        else:
            split.append(e)
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(split, interval=0.002))
    assert _texts(frames) == TEXT


def test_unexpected_shapes_fall_back(gateway, general, upstream):
    f = ChunkFactory()
    events: list[Any] = [f.role(), f.content("Hello"), f.content(" there")]
    odd = [
        f.delta({"content": " quote \" and \\ back\nslash é ✓"}),  # escapes
        f.chunk([{"index": 0, "delta": {"content": " lp"}, "logprobs": {"content": []}, "finish_reason": None}]),
        f.delta({"role": "assistant", "content": " role-again"}),
        f.delta({"content": " second"}, index=1),  # another choice
        {**f.content(" other-id"), "id": "chatcmpl-other"},
        {**f.content(" obfuscated"), "obfuscation": "xYz12"},
        {**f.content(" obfuscated2"), "obfuscation": "q"},
        {**f.content(" with-usage"), "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
        f.delta({"content": " tool", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                     "function": {"name": "f", "arguments": "{}"}}]}),
        f.delta({"content": ""}),
        f.delta({"reasoning_content": "think"}),
        f.content(" plain"),
        f.content(" plain again"),
        f.content(" \u2028sep"),
    ]
    events += odd + [f.finish(), f.finish(index=1), "[DONE]"]
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(events, interval=0.002))
    assert "second" in orjson.dumps(frames).decode()
    assert record["fast_chunks"] >= 3


def test_content_lengths_and_obfuscation_values(gateway, general, upstream):
    """Paced reads of every size class the relay lays out by length (2- and 3-digit HTTP chunk
    size lines, one over 4 KiB), each length seen more than once, with OpenAI's ``obfuscation``
    field of varying length (the learned tail then differs in every frame)."""
    f = ChunkFactory()
    events: list[Any] = [f.role()]
    sizes = [1, 5, 5, 90, 90, 170, 171, 172, 173, 200, 200, 900, 900, 3900, 5000, 5000, 2, 1]
    for i, size in enumerate(sizes):
        text = ("word%d " % i * 1000)[:size]
        events.append({**f.content(text), "obfuscation": "o" * (1 + i % 4)})
    events += [f.finish(), "[DONE]"]
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(events, interval=0.002))
    assert _texts(frames) == "".join(("word%d " % i * 1000)[:size] for i, size in enumerate(sizes))
    assert record["fast_chunks"] >= len(sizes) - 4


def test_error_frame_mid_stream(gateway, general, upstream):
    events = [*text_stream_events(TEXT)[:8], error_body("upstream broke", "server_error", None, None)]
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(events, interval=0.002))
    assert frames[-2]["error"]["message"].endswith("upstream broke") or "upstream broke" in frames[-2]["error"]["message"]
    assert frames[-1] == "[DONE]"
    assert record["error"] and record["fast_chunks"] > 0


def test_error_frame_in_a_burst(gateway, general, upstream):
    frames, record = _compare(gateway, general, upstream, lambda: in_band_error_stream("upstream broke", after_chunks=8))
    assert "upstream broke" in frames[-2]["error"]["message"] and frames[-1] == "[DONE]"


def test_malformed_frame_mid_stream(gateway, general, upstream):
    events = [*text_stream_events(TEXT)[:6], b'data: {"id": "chatcmpl-broken", "choices": [{\n\n',
              *text_stream_events(TEXT)[6:]]
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(events, interval=0.002))
    assert "error" in frames[-2] and frames[-1] == "[DONE]"
    assert record["fast_chunks"] > 0


def test_repeat_guard_on_the_fast_path(gateway, general, upstream):
    """The gateways' config sets REPEATED_STREAMING_CHUNK_LIMIT: 3."""
    f = ChunkFactory()
    events = [f.role(), f.content("Hello"), f.content(" there"), f.content(" my"), f.content(" friend"),
              *[f.content(" again") for _ in range(6)], f.finish(), "[DONE]"]
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(events, interval=0.002))
    assert "repeated the same chunk" in frames[-2]["error"]["message"]
    assert record["fast_chunks"] > 0


def test_short_chunks_end_a_repeat_run_on_the_fast_path(gateway, general, upstream):
    """A short non-blank chunk (2 characters or fewer) ends a run of repeats (StreamState._guard):
    the fast path's inlined guard must not go on counting across it, nor across a blank one's
    absence of effect (a blank chunk neither counts nor ends a run)."""
    f = ChunkFactory()
    events = [f.role(), f.content("Hello"), f.content(" there")]
    for _ in range(5):
        events += [f.content(" again"), f.content(",")]
    events += [f.content(" more"), f.content(" "), f.content(" more"), f.content(" "), f.content(" more"),
               f.content("."), f.finish(), "[DONE]"]
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(events, interval=0.002))
    assert not any(isinstance(x, dict) and "error" in x for x in frames)
    assert _texts(frames) == "Hello there" + " again," * 5 + " more  more  more."
    assert record["fast_chunks"] > 0


def test_blank_chunks_do_not_end_a_repeat_run_on_the_fast_path(gateway, general, upstream):
    f = ChunkFactory()
    events = [f.role(), f.content("Hello"), f.content(" there")]
    for _ in range(5):
        events += [f.content(" again"), f.content("  ")]
    events += [f.finish(), "[DONE]"]
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(events, interval=0.002))
    assert "repeated the same chunk" in frames[-2]["error"]["message"]
    assert record["fast_chunks"] > 0


def test_dropped_upstream_mid_stream(gateway, general, upstream):
    events = text_stream_events(TEXT)[:10]
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply([*events, Sleep(0.01), Drop()], interval=0.002))
    assert "error" in frames[-2] and frames[-1] == "[DONE]"
    assert record["fast_chunks"] > 0


def test_no_done_marker(gateway, general, upstream):
    events = text_stream_events(TEXT, done=False)
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(events, interval=0.002))
    assert _texts(frames) == TEXT and frames[-1] == "[DONE]"


def test_unterminated_last_frame(gateway, general, upstream):
    events = text_stream_events(TEXT)[:-1]  # no [DONE]
    last = b"data: " + orjson.dumps(events[-1])  # the finish frame, without its blank line
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply([*events[:-1], last], interval=0.002))
    assert frames[-2]["choices"][0]["finish_reason"] == "stop"


def test_gzip_upstream_body(gateway, general, upstream):
    """A compressed body (aiohttp decompresses it before the relay sees it)."""
    import gzip

    events = text_stream_events(TEXT)
    data = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" if isinstance(e, dict) else b"data: [DONE]\n\n"
                    for e in events)
    reply = lambda: Reply(status=200, headers={"Content-Type": "text/event-stream", "Content-Encoding": "gzip"},  # noqa: E731
                          body=[gzip.compress(data)], chunked=True)
    frames, _ = _compare(gateway, general, upstream, reply)
    assert _texts(frames) == TEXT


def test_request_id_not_reused_as_chunk_id(gateway, upstream):
    """The chunk id stays the upstream's first id on every fast frame (not the request id)."""
    upstream.enqueue(stream_reply(text_stream_events(TEXT), interval=0.002))
    status, data, request_id = _post(gateway.url, {"model": "alias", "messages": [{"role": "user", "content": "x"}],
                                                   "stream": True})
    frames = _frames(data, request_id)
    ids = {f["id"] for f in frames if isinstance(f, dict)}
    models = {f["model"] for f in frames if isinstance(f, dict)}
    assert ids == {"chatcmpl-fake0000"} and models == {"alias"}
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)


def _arrives_before_end(gateway: Gateway, upstream, events: list[Any], expect: bytes, newline: str = "\n") -> None:
    """The client gets ``expect`` while the upstream stream is still open (it then hangs)."""
    import socket
    import time

    from servers.loopback import Hang

    upstream.enqueue(stream_reply([*events, Hang()], interval=0.002, newline=newline))
    host, port = gateway.url.removeprefix("http://").split(":")
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    sock = socket.create_connection((host, int(port)), timeout=5)
    try:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        data = b""
        deadline = time.monotonic() + 5
        while expect not in data:
            assert time.monotonic() < deadline, f"{expect!r} not relayed while the stream is open: {data[-300:]!r}"
            part = sock.recv(65536)
            assert part, data[-300:]
            data += part
    finally:
        sock.close()


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_chunks_are_relayed_as_they_come(gateway, upstream, newline):
    f = ChunkFactory()
    events = [f.role(), f.content("Hello"), f.content(" there"), f.content(" my"), f.content(" friend"),
              f.content(" LAST-PIECE")]
    _arrives_before_end(gateway, upstream, events, b"LAST-PIECE", newline)


def test_idle_timeout_between_chunks(gateway, general, upstream):
    """Model "slow" has timeout 0.5 s: a stream that goes silent after some chunks ends with the
    timeout's error frame (the fast path keeps the read timeout with its own timer)."""
    from servers.loopback import Hang

    events = text_stream_events(TEXT)[:12]
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply([*events, Hang()], interval=0.05),
                              {"model": "slow"})
    assert "error" in frames[-2] and frames[-1] == "[DONE]"
    assert record["fast_chunks"] > 0
    assert record["latency_ms"] / 1000 > 0.5  # (not before the timeout; a Hang ends only by it)


def test_whole_body_in_one_write(gateway, general, upstream):
    """Every frame in one upstream write (the first read also carries the first chunk): the
    first chunk is decoded and sent alone, the rest of that read goes through the fast path."""
    events = text_stream_events(TEXT * 4)
    data = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" if isinstance(e, dict) else b"data: [DONE]\n\n"
                    for e in events)
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply([data]))
    assert _texts(frames) == TEXT * 4
    assert record["fast_chunks"] > 20


@pytest.mark.parametrize("where", ["same_read", "later_read", "same_frame_group", "burst"])
def test_nothing_after_done_is_relayed(gateway, general, upstream, where):
    """Frames after ``data: [DONE]`` in the same body count for nothing on the general path (the
    decoder drops them): the fast path must not relay them either, whether they come in the
    read that carried ``[DONE]``, in a later read, or after a ``[DONE]`` the general path's
    decoder took (an ``event:`` line before it)."""
    f = ChunkFactory()
    events: list[Any] = [f.role(), f.content("Hello"), f.content(" there"), f.content(" my"), f.content(" friend"),
                         f.finish()]
    after = [f.content(" AFTER-DONE"), f.content(" AFTER-DONE2"), f.finish("length")]
    late = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in after)
    if where == "same_read":
        body: list[Any] = [*events, b"data: [DONE]\n\n" + late]
    elif where == "later_read":
        body = [*events, "[DONE]", Sleep(0.02), *after, Sleep(0.02), *after]
    elif where == "same_frame_group":
        body = [*events, b"event: end\ndata: [DONE]\n\n" + late, Sleep(0.02), *after]
    else:  # the first frame, then the rest of the body in one read
        body = [events[0], Sleep(0.02), b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events[1:])
                + b"data: [DONE]\n\n" + late]
    frames, record = _compare(gateway, general, upstream, lambda: stream_reply(body, interval=0.002))
    assert _texts(frames) == "Hello there my friend"
    assert b"AFTER" not in orjson.dumps(frames)
    assert frames[-2]["choices"][0]["finish_reason"] == "stop" and frames[-1] == "[DONE]"
