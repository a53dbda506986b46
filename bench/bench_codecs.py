"""Micro-benchmark of the wire decoders (not a test).

    /path/to/python bench/bench_codecs.py

Prints microseconds per decoded frame / line. Uses plain time.perf_counter,
best of several repeats.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from llmrelay.codecs.eventstream import EventStreamDecoder, encode_message  # noqa: E402
from llmrelay.codecs.ndjson import NDJSONDecoder  # noqa: E402

from _common import best_seconds, reads_of  # noqa: E402

# A realistic Bedrock ConverseStream contentBlockDelta frame (Bedrock pads with "p").
FRAME = encode_message(
    {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    },
    b'{"contentBlockIndex":0,"delta":{"text":" the quick brown"},'
    b'"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"}',
)
N = 20_000
REPEATS = 7


def best_us_per_item(run, n: int) -> float:
    return best_seconds(run, REPEATS) / n * 1e6


def bench_eventstream() -> None:
    stream = FRAME * N
    reads_4k = reads_of(stream, 4096)

    def one_frame_per_feed() -> None:
        d = EventStreamDecoder()
        feed = d.feed
        for _ in range(N):
            feed(FRAME)
        d.close()

    def four_kib_reads() -> None:
        d = EventStreamDecoder()
        feed = d.feed
        n = 0
        for chunk in reads_4k:
            n += len(feed(chunk))
        d.close()
        assert n == N

    print(f"eventstream frame: {len(FRAME)} bytes, {N} frames")
    print(f"  1 frame per feed : {best_us_per_item(one_frame_per_feed, N):6.2f} us/frame")
    print(f"  4 KiB reads      : {best_us_per_item(four_kib_reads, N):6.2f} us/frame")


def bench_ndjson() -> None:
    line = (
        b'{"model":"llama3.1","created_at":"2024-07-23T12:00:00.000000Z",'
        b'"message":{"role":"assistant","content":" the quick"},"done":false}\n'
    )
    stream = line * N
    reads_4k = reads_of(stream, 4096)

    def one_line_per_feed() -> None:
        d = NDJSONDecoder()
        feed = d.feed
        for _ in range(N):
            feed(line)
        d.close()

    def four_kib_reads() -> None:
        d = NDJSONDecoder()
        feed = d.feed
        for chunk in reads_4k:
            feed(chunk)
        d.close()

    print(f"ndjson line: {len(line)} bytes, {N} lines")
    print(f"  1 line per feed  : {best_us_per_item(one_line_per_feed, N):6.2f} us/line")
    print(f"  4 KiB reads      : {best_us_per_item(four_kib_reads, N):6.2f} us/line")


if __name__ == "__main__":
    print(f"Python {sys.version.split()[0]}")
    bench_eventstream()
    bench_ndjson()
