"""CPU per chunk: Bedrock ConverseStream (binary eventstream) vs the OpenAI SSE path (not a test).

    PYTHONPATH=src /path/to/python bench/bench_bedrock.py

Both paths carry the same content (N text deltas of a realistic size, then the finish and the
usage) and both end in ``StreamState.process``, so the numbers compare everything a streamed
chunk costs before the caller sees it:

* Bedrock: ``BedrockStreamDecoder.feed`` (``EventStreamDecoder``: prelude + CRCs + headers,
  JSON payload, translation to an OpenAI chunk dict) + ``StreamState.process``;
* OpenAI: ``OpenAIStreamDecoder.feed`` (``SSEDecoder`` + JSON) + ``StreamState.process``.

Two read patterns: one frame per read (a token-by-token stream as it arrives) and 4 KiB reads
(a burst). Best of several repeats, time.perf_counter. Target: Bedrock ≤ 1.5× OpenAI.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from llmrelay.codecs.eventstream import encode_message  # noqa: E402
from llmrelay.providers.bedrock import BedrockStreamDecoder  # noqa: E402
from llmrelay.providers.openai import OpenAIStreamDecoder  # noqa: E402
from llmrelay.streaming import StreamState  # noqa: E402

from _common import best_seconds, reads_of  # noqa: E402

N = 2000
REPEATS = 7
WORDS = [" the", " quick", " brown", " fox", " jumps", " over", " lazy", " dogs", "!"]
PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"


def _frame(event_type: str, payload: dict) -> bytes:
    return encode_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(payload, separators=(",", ":")).encode(),
    )


def bedrock_recording() -> list[bytes]:
    """A recorded-shape ConverseStream: messageStart, N text deltas, stop, messageStop, metadata."""
    frames = [_frame("messageStart", {"p": PAD[:20], "role": "assistant"})]
    for i in range(N):
        frames.append(_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": WORDS[i % len(WORDS)]}, "p": PAD[: 10 + i % 40]}))
    frames.append(_frame("contentBlockStop", {"contentBlockIndex": 0, "p": PAD[:30]}))
    frames.append(_frame("messageStop", {"p": PAD[:12], "stopReason": "end_turn"}))
    frames.append(_frame("metadata", {"metrics": {"latencyMs": 2345}, "p": PAD[:5], "usage": {"inputTokens": 25, "outputTokens": N, "totalTokens": N + 25}}))
    return frames


def openai_recording() -> list[bytes]:
    """The same content as OpenAI chat.completion.chunk SSE frames."""
    base = {"id": "chatcmpl-AbCdEfGh0123456789", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0ba0d124f1"}

    def sse(obj: dict) -> bytes:
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    frames = [sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None}, "logprobs": None, "finish_reason": None}]})]
    for i in range(N):
        frames.append(sse({**base, "choices": [{"index": 0, "delta": {"content": WORDS[i % len(WORDS)]}, "logprobs": None, "finish_reason": None}]}))
    frames.append(sse({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}))
    frames.append(sse({**base, "choices": [], "usage": {"prompt_tokens": 25, "completion_tokens": N, "total_tokens": N + 25}}))
    frames.append(b"data: [DONE]\n\n")
    return frames


def run(make_decoder, reads: list[bytes]) -> int:
    decoder = make_decoder()
    state = StreamState("m", "bench", include_usage=True)
    process = state.process
    feed = decoder.feed
    n = 0
    for data in reads:
        for chunk in feed(data):
            process(chunk)
            n += 1
    decoder.close()
    state.finish(decoder.done)
    return n


def best_us_per_chunk(make_decoder, reads: list[bytes]) -> float:
    n = run(make_decoder, reads)  # warm up, and count
    return best_seconds(lambda: run(make_decoder, reads), REPEATS) / n * 1e6


def rechunk(frames: list[bytes], size: int) -> list[bytes]:
    return reads_of(b"".join(frames), size)


def main() -> None:
    bedrock_frames, openai_frames = bedrock_recording(), openai_recording()
    print(f"{N} text deltas; bytes on the wire: bedrock {sum(map(len, bedrock_frames))}, openai {sum(map(len, openai_frames))}")
    print(f"{'read pattern':<18}{'bedrock µs/chunk':>18}{'openai µs/chunk':>18}{'ratio':>8}")
    for label, b_reads, o_reads in (
        ("one frame / read", bedrock_frames, openai_frames),
        ("4 KiB reads", rechunk(bedrock_frames, 4096), rechunk(openai_frames, 4096)),
    ):
        b = best_us_per_chunk(lambda: BedrockStreamDecoder("bedrock", "m"), b_reads)
        o = best_us_per_chunk(lambda: OpenAIStreamDecoder("openai", "m"), o_reads)
        print(f"{label:<18}{b:>18.2f}{o:>18.2f}{b / o:>7.2f}x")


if __name__ == "__main__":
    main()
