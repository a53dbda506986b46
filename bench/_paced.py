"""Paced-stream benchmark pieces for ``bench_proxy.py --paced`` (issue 18), each run as its own process.

Real models pace their tokens, so in production every chunk is its own upstream read, its own
trip through the gateway's event loop and its own client write. These three small uvloop
programs measure that without measuring themselves much:

* ``upstream``: a fake OpenAI chat endpoint (raw protocol + httptools, keep-alive, chunked SSE,
  OpenAI's ~24 response headers: ``bench/_openai_head.py``) whose streams are ``FRAMES`` frames,
  the first at once, then one every ``GAP`` seconds. Streams are kept in 1 ms time slots and one
  ticker writes every due frame, so the upstream costs one timer wake-up per millisecond rather
  than one per chunk. A request whose body names the
  ``BURST_USER`` is answered with ``BURST_FRAMES`` frames in one write instead (the burst cell);
  one that asks ``stream_options.include_usage`` gets a usage frame before ``[DONE]``, as OpenAI
  sends it;
* ``floor``: a byte relay (accept, connect upstream, copy bytes both ways, no parsing), the
  lowest CPU per chunk any relay in Python on uvloop can reach here;
* ``loadgen``: ``C`` keep-alive connections each streaming one request after the other, their
  start phases spread over one stream's duration; reports per-request TTFT (request written ->
  first body byte), frames and errors over a steady-state window. It prints ``start``/``stop``
  lines around that window so the orchestrator can read the target's CPU exactly over it.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import sys
import time
from pathlib import Path

#: Frames per stream (role chunk, content chunks, finish chunk, ``[DONE]``) and the gap between them.
FRAMES = 50
GAP = 0.020
SLOT = 0.001
#: The burst cell: this many frames in one upstream write, asked for with ``"user": BURST_USER``.
BURST_FRAMES = 200
BURST_USER = "bench-burst"


def _frames(count: int = FRAMES, usage: bool = False) -> list[bytes]:
    """``count`` HTTP chunks of SSE frames (role, content…, finish, [usage], ``[DONE]``), the last
    one with the chunked body's terminator."""
    import orjson

    base = {"id": "chatcmpl-paced", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_bench"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None, "finish_reason": None}]}]
    words = ["Hello", " world", ",", " this", " is", " a", " token", " stream", "."]
    for i in range(count - 3):
        events.append({**base, "choices": [{"index": 0, "delta": {"content": words[i % len(words)]},
                                            "logprobs": None, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
    if usage:  # one more frame, as OpenAI sends when stream_options.include_usage is asked
        events.append({**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": count - 3,
                                                       "total_tokens": count + 6}})
    datas = [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
    out = [b"%x\r\n%s\r\n" % (len(d), d) for d in datas]
    out[-1] += b"0\r\n\r\n"
    return out


async def _serve(protocol: type, port_file: str) -> None:
    """Serve ``protocol`` on a free loopback port, written to ``port_file``."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = await asyncio.get_running_loop().create_server(protocol, sock=sock, backlog=4096)
    Path(port_file).write_text(str(sock.getsockname()[1]))
    await server.serve_forever()


# ============================================================ fake upstream
def run_upstream(port_file: str, count: int = FRAMES, gap: float = GAP) -> None:
    """The fake upstream (see the module docstring): streams of ``count`` frames, ``gap`` apart."""
    import httptools
    import uvloop

    frames = _frames(count)
    usage_frames = _frames(count, usage=True)
    burst = b"".join(_frames(BURST_FRAMES))
    burst_marker = f'"{BURST_USER}"'.encode()
    from _openai_head import head_maker

    head = head_maker("text/event-stream; charset=utf-8", "Transfer-Encoding: chunked\r\n")
    nslots = max(1, round(gap / SLOT))
    slots: list[list[list]] = [[] for _ in range(nslots)]

    class Upstream(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.p = httptools.HttpRequestParser(self)
            self.body = b""

        def data_received(self, data):
            try:
                self.p.feed_data(data)
            except httptools.HttpParserError:
                self.t.close()

        def on_body(self, data):
            self.body += data

        def on_message_complete(self):
            body, self.body = self.body, b""
            if burst_marker in body:
                self.t.write(head() + burst)
                return
            answer = usage_frames if b'"include_usage":true' in body.replace(b" ", b"") else frames
            self.t.write(head() + answer[0])
            # the slot just behind the ticker: its next frame one GAP from now, whether or not
            # the ticker has handled the current millisecond yet
            slots[(int(time.monotonic() / SLOT) - 1) % nslots].append([self.t, 1, answer])

    async def ticker():
        last = int(time.monotonic() / SLOT)
        while True:
            await asyncio.sleep(SLOT)
            now = int(time.monotonic() / SLOT)
            for tick in range(last + 1, now + 1):
                slot = slots[tick % nslots]
                if not slot:
                    continue
                keep = []
                for stream in slot:
                    t, i, answer = stream
                    if t.is_closing():
                        continue
                    t.write(answer[i])
                    if i + 1 < len(answer):
                        stream[1] = i + 1
                        keep.append(stream)
                slot[:] = keep
            last = now

    async def main():
        asyncio.ensure_future(ticker())
        await _serve(Upstream, port_file)

    uvloop.run(main())


# ============================================================ byte-relay floor
def run_floor(port_file: str, up_port: int) -> None:
    import uvloop

    class Side(asyncio.Protocol):
        peer: "Side | None" = None
        t: asyncio.Transport

        def connection_made(self, transport):
            self.t = transport

        def data_received(self, data):
            self.peer.t.write(data)

        def pause_writing(self):
            self.peer.t.pause_reading()

        def resume_writing(self):
            self.peer.t.resume_reading()

        def connection_lost(self, exc):
            if self.peer is not None and not self.peer.t.is_closing():
                self.peer.t.close()

    class Client(Side):
        def connection_made(self, transport):
            self.t = transport
            self.pending: list[bytes] = []
            asyncio.ensure_future(self._connect())

        def data_received(self, data):
            if self.peer is None:
                self.pending.append(data)
            else:
                self.peer.t.write(data)

        async def _connect(self):
            loop = asyncio.get_running_loop()
            try:
                _, up = await loop.create_connection(Side, "127.0.0.1", up_port)
            except OSError:
                self.t.close()
                return
            up.peer, self.peer = self, up
            if self.pending:
                up.t.write(b"".join(self.pending))
                self.pending.clear()

    uvloop.run(_serve(Client, port_file))


# ============================================================ load generator
def run_loadgen(host: str, port: int, path: str, conc: int, seconds: float, key: str,
                burst: bool = False, usage: bool = False, herd: bool = False) -> None:
    """``conc`` keep-alive connections, each streaming one request after the other.

    Every connection first makes one warm-up request; then each starts at a random point of one
    stream's duration (``FRAMES * GAP``; ``herd``: of one ``GAP``, so the streams end and the
    next requests arrive together, once a stream's duration) and the measured window of
    ``seconds`` starts one stream's duration later, when every connection is busy: request
    arrivals are then spread evenly, as independent clients' are. Counted in the window: frames
    received, TTFT (request written -> first body byte) of the requests that got their first
    byte in it, finished requests, errors. ``burst``: ask the upstream for its one-write
    answer; ``usage``: ask ``stream_options.include_usage``."""
    import httptools
    import uvloop

    request: dict = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "stream": True}
    if burst:
        request["user"] = BURST_USER
    if usage:
        request["stream_options"] = {"include_usage": True}
    body = json.dumps(request).encode()
    request_bytes = (f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
                     f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
    spread = 0.0 if burst else GAP if herd else FRAMES * GAP
    stats = {"ttft": [], "frames": 0, "all_frames": 0, "requests": 0, "errors": 0, "failures": []}
    state = {"measuring": False, "stopping": False}

    class Client(asyncio.Protocol):
        def __init__(self, closed: asyncio.Future):
            self.closed = closed
            self.p = httptools.HttpResponseParser(self)
            self.status = 0
            self.finished: asyncio.Future | None = None

        def connection_made(self, transport):
            self.t = transport

        def send(self, finished: asyncio.Future):
            self.finished = finished
            self.first = None
            self.tail = b""
            self.error_body = b""
            self.t0 = time.perf_counter()
            self.t.write(request_bytes)

        def data_received(self, data):
            try:
                self.p.feed_data(data)
            except httptools.HttpParserError:
                self.t.close()

        def on_status(self, _status):
            self.status = self.p.get_status_code()

        def on_body(self, data):
            if self.status != 200 and len(self.error_body) < 500:
                self.error_body += data
            if self.first is None:
                self.first = time.perf_counter()
                if state["measuring"] and self.status == 200:
                    stats["ttft"].append(self.first - self.t0)
            data = self.tail + data
            end = data.rfind(b"\n\n")
            if end >= 0:  # whole frames only
                n = data.count(b"\n\n", 0, end + 2)
                stats["all_frames"] += n
                if state["measuring"]:
                    stats["frames"] += n
                self.tail = data[end + 2:]
            else:
                self.tail = data

        def on_message_complete(self):
            if state["measuring"]:
                stats["requests" if self.status == 200 else "errors"] += 1
                if self.status != 200:
                    _failure(self.status, self.error_body.decode(errors="replace")[:300])
            if self.finished is not None and not self.finished.done():
                self.finished.set_result(True)

        def connection_lost(self, exc):
            if state["measuring"]:
                stats["errors"] += 1
                _failure(self.status, f"connection lost ({exc!r}) after "
                                      f"{time.perf_counter() - getattr(self, 't0', 0.0):.3f} s, "
                                      f"{getattr(self, 'tail', b'')[-200:]!r}")
            if self.finished is not None and not self.finished.done():
                self.finished.set_result(False)
            if not self.closed.done():
                self.closed.set_result(None)

    clients: list[Client] = []

    def _failure(status: int, detail: str) -> None:
        """Keep what a failed request got (status, error body or how the connection ended), for
        the orchestrator to print: a failure's cause is otherwise lost with the run."""
        if len(stats["failures"]) < 50:
            stats["failures"].append({"status": status, "detail": detail, "at": time.time()})

    async def worker(warm: asyncio.Event, warmed: list[int]) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.random() * GAP)  # connect and warm up over one gap
        _, c = await loop.create_connection(lambda: Client(loop.create_future()), host, port)
        c.t.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        clients.append(c)
        first = True
        while not state["stopping"]:
            finished = loop.create_future()
            c.send(finished)
            if not await finished:
                return
            if first:
                first = False
                warmed[0] += 1
                if warmed[0] == conc:
                    warm.set()
                await warm.wait()
                await asyncio.sleep(random.random() * spread)

    async def main():
        warm = asyncio.Event()
        warmed = [0]
        tasks = [asyncio.ensure_future(worker(warm, warmed)) for _ in range(conc)]
        await warm.wait()
        await asyncio.sleep(spread + 2 * GAP)  # every connection is streaming again
        state["measuring"] = True
        sys.stdout.write("start\n")
        sys.stdout.flush()
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        state["measuring"] = False
        wall = time.perf_counter() - t0
        sys.stdout.write("stop\n")
        sys.stdout.flush()
        state["stopping"] = True
        for c in clients:
            c.t.abort()
        await asyncio.gather(*tasks, return_exceptions=True)
        stats["wall"] = wall
        stats["ttft"].sort()
        sys.stdout.write(json.dumps(stats) + "\n")
        sys.stdout.flush()

    uvloop.run(main())
