"""A fast fake OpenAI-compatible upstream for benchmarks, run as its own process.

    python bench/fake_upstream.py PORT CHUNKS

Serves POST */chat/completions: a stream of CHUNKS ``chat.completion.chunk`` events (each its
own HTTP chunk, as real servers send them) when the body asks for ``"stream": true``, else one
``chat.completion``. Responses are pre-encoded so the server spends little CPU per request; their
heads are OpenAI's ~24 headers (``bench/_openai_head.py``; ``BENCH_UPSTREAM_HEADERS=minimal``: 4).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _openai_head import head_maker  # noqa: E402


def sse_body(chunks: int) -> bytes:
    """The chunked body of a ``chunks``-chunk stream (without the head)."""
    out = []

    def frame(obj: object) -> None:
        data = f"data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()
        out.append(b"%x\r\n%s\r\n" % (len(data), data))

    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_bench"}
    frame({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]})
    words = ["Hello", " world", ",", " this", " is", " a", " token", " stream", "."]
    for i in range(chunks):
        frame({**base, "choices": [{"index": 0, "delta": {"content": words[i % len(words)]}, "logprobs": None, "finish_reason": None}]})
    frame({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
    data = b"data: [DONE]\n\n"
    out.append(b"%x\r\n%s\r\n" % (len(data), data))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def json_body() -> bytes:
    """A ``chat.completion`` body (without the head)."""
    body = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello world, this is a reply."},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
        "system_fingerprint": "fp_bench"}).encode()
    return body


async def main(port: int, chunks: int) -> None:
    stream, plain = sse_body(chunks), json_body()
    stream_head = head_maker("text/event-stream; charset=utf-8", "Transfer-Encoding: chunked\r\n")
    plain_head = head_maker("application/json", f"Content-Length: {len(plain)}\r\n")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                writer.write(stream_head() + stream if b'"stream":true' in body.replace(b" ", b"") else plain_head() + plain)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
