"""Paced-stream benchmark pieces for ``bench_proxy.py --paced`` (issue 18), each run as its own process.

Real models pace their tokens, so in production every chunk is its own upstream read, its own
trip through the gateway's event loop and its own client write. These three small uvloop
programs measure that without measuring themselves much:

* ``upstream``: a fake OpenAI chat endpoint (raw protocol + httptools, keep-alive, chunked SSE)
  whose streams are ``FRAMES`` frames, the first at once, then one every ``GAP`` seconds. Streams
  are kept in 1 ms time slots and one ticker writes every due frame, so the upstream costs one
  timer wake-up per millisecond rather than one per chunk;
* ``floor``: a byte relay (accept, connect upstream, copy bytes both ways, no parsing), the
  lowest CPU per chunk any relay in Python on uvloop can reach here;
* ``loadgen``: ``C`` keep-alive connections (random start phase) each streaming one request after
  the other; reports per-request TTFT (request written -> first body byte), frames and errors.
  It prints ``start``/``stop`` lines around the measured window so the orchestrator can read the
  target's CPU exactly over it.
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


def _frames() -> list[bytes]:
    import orjson

    base = {"id": "chatcmpl-paced", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_bench"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None, "finish_reason": None}]}]
    words = ["Hello", " world", ",", " this", " is", " a", " token", " stream", "."]
    for i in range(FRAMES - 3):
        events.append({**base, "choices": [{"index": 0, "delta": {"content": words[i % len(words)]},
                                            "logprobs": None, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
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
def run_upstream(port_file: str) -> None:
    import httptools
    import uvloop

    frames = _frames()
    head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
            b"cache-control: no-cache\r\n\r\n")
    nslots = round(GAP / SLOT)
    slots: list[list[list]] = [[] for _ in range(nslots)]

    class Upstream(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.p = httptools.HttpRequestParser(self)

        def data_received(self, data):
            try:
                self.p.feed_data(data)
            except httptools.HttpParserError:
                self.t.close()

        def on_message_complete(self):
            self.t.write(head + frames[0])
            slots[int(time.monotonic() / SLOT) % nslots].append([self.t, 1])

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
                    t, i = stream
                    if t.is_closing():
                        continue
                    t.write(frames[i])
                    if i + 1 < len(frames):
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
def run_loadgen(host: str, port: int, path: str, conc: int, seconds: float, key: str) -> None:
    import httptools
    import uvloop

    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}],
                       "stream": True}).encode()
    request = (f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
               f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
    stats = {"ttft": [], "frames": 0, "requests": 0, "errors": 0, "measuring": False}

    class Client(asyncio.Protocol):
        def __init__(self, done: asyncio.Future):
            self.done = done
            self.p = httptools.HttpResponseParser(self)
            self.status = 0

        def connection_made(self, transport):
            self.t = transport

        def send(self, finished: asyncio.Future):
            self.finished = finished
            self.first = None
            self.frames = 0
            self.tail = b""
            self.t0 = time.perf_counter()
            self.t.write(request)

        def data_received(self, data):
            try:
                self.p.feed_data(data)
            except httptools.HttpParserError:
                self.t.close()

        def on_status(self, _status):
            self.status = self.p.get_status_code()

        def on_body(self, data):
            if self.first is None:
                self.first = time.perf_counter()
            data = self.tail + data
            end = data.rfind(b"\n\n")
            if end >= 0:  # whole frames only
                self.frames += data.count(b"\n\n", 0, end + 2)
                self.tail = data[end + 2:]
            else:
                self.tail = data

        def on_message_complete(self):
            if not self.finished.done():
                self.finished.set_result(True)

        def connection_lost(self, exc):
            if not self.finished.done():
                self.finished.set_result(False)
            if not self.done.done():
                self.done.set_result(None)

    async def worker(deadline_box: list[float], warm: asyncio.Event, warmed: list[int]) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.random() * GAP)  # spread the streams' phases
        done = loop.create_future()
        _, c = await loop.create_connection(lambda: Client(done), host, port)
        c.t.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first = True
        while first or time.perf_counter() < deadline_box[0]:
            finished = loop.create_future()
            c.send(finished)
            ok = await finished
            measuring = stats["measuring"] and not first
            if measuring:
                if ok and c.status == 200 and c.first is not None:
                    stats["ttft"].append(c.first - c.t0)
                    stats["frames"] += c.frames
                    stats["requests"] += 1
                else:
                    stats["errors"] += 1
            if first:
                first = False
                warmed[0] += 1
                if warmed[0] == conc:
                    warm.set()
                await warm.wait()
                await asyncio.sleep(random.random() * GAP)  # keep the phases spread
            if not ok:
                return
        c.t.close()

    async def main():
        warm = asyncio.Event()
        deadline_box = [float("inf")]
        tasks = [asyncio.ensure_future(worker(deadline_box, warm, warmed)) for _ in range(conc)]
        await warm.wait()
        stats["measuring"] = True
        sys.stdout.write("start\n")
        sys.stdout.flush()
        t0 = time.perf_counter()
        deadline_box[0] = t0 + seconds
        await asyncio.gather(*tasks, return_exceptions=True)
        wall = time.perf_counter() - t0
        sys.stdout.write("stop\n")
        sys.stdout.flush()
        stats["wall"] = wall
        stats.pop("measuring")
        stats["ttft"].sort()
        sys.stdout.write(json.dumps(stats) + "\n")
        sys.stdout.flush()

    warmed = [0]
    uvloop.run(main())
