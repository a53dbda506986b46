"""CPU per streamed chunk of each provider's decoding + translation (not a test).

    /path/to/python bench/bench_providers.py

For each provider, a realistic pre-recorded byte stream (shapes as each API sends them) is fed
to the provider's stream decoder one network read per event, and every chunk dict goes through
``StreamState.process``: the whole per-chunk path of a real stream minus the socket. Prints
microseconds per upstream chunk (best of several repeats) and the ratio to the OpenAI path
(target: at most 1.5x).
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from llmrelay.providers.anthropic import AnthropicStreamDecoder  # noqa: E402
from llmrelay.providers.gemini import GeminiStreamDecoder  # noqa: E402
from llmrelay.providers.openai import OpenAIStreamDecoder  # noqa: E402
from llmrelay.streaming import StreamState  # noqa: E402

N = 2_000
REPEATS = 7
WORDS = [" the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog."]


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def openai_reads() -> list[bytes]:
    base = {"id": "chatcmpl-BkzQ1x2y3z4a5b6c7d8e9f0", "object": "chat.completion.chunk", "created": 1750000000,
            "model": "gpt-4o-mini-2024-07-18", "service_tier": "default", "system_fingerprint": "fp_34a54ae93c"}
    reads = [f"data: {_dumps({**base, 'choices': [{'index': 0, 'delta': {'role': 'assistant', 'content': '', 'refusal': None}, 'logprobs': None, 'finish_reason': None}]})}\n\n"]
    for i in range(N):
        chunk = {**base, "choices": [{"index": 0, "delta": {"content": WORDS[i % len(WORDS)]}, "logprobs": None,
                                      "finish_reason": None}]}
        reads.append(f"data: {_dumps(chunk)}\n\n")
    reads.append(f"data: {_dumps({**base, 'choices': [{'index': 0, 'delta': {}, 'logprobs': None, 'finish_reason': 'stop'}]})}\n\n")
    reads.append("data: [DONE]\n\n")
    return [r.encode() for r in reads]


def anthropic_reads() -> list[bytes]:
    def ev(data: dict) -> str:
        return f"event: {data['type']}\ndata: {_dumps(data)}\n\n"

    start = {"type": "message_start", "message": {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "content": [],
        "model": "claude-sonnet-4-5-20250929", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": 1, "service_tier": "standard"}}}
    reads = [ev(start), ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
             ev({"type": "ping"})]
    for i in range(N):
        reads.append(ev({"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": WORDS[i % len(WORDS)]}}))
    reads += [ev({"type": "content_block_stop", "index": 0}),
              ev({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                  "usage": {"output_tokens": N}}),
              ev({"type": "message_stop"})]
    return [r.encode() for r in reads]


def gemini_reads() -> list[bytes]:
    reads = []
    for i in range(N):
        cand: dict = {"content": {"parts": [{"text": WORDS[i % len(WORDS)]}], "role": "model"}, "index": 0}
        if i == N - 1:
            cand["finishReason"] = "STOP"
        event = {"candidates": [cand], "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9,
                                                         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9}]},
                 "modelVersion": "gemini-2.5-flash", "responseId": "Nx9UaKqWJ4GF7M8P1aX1kAQ"}
        reads.append(f"data: {_dumps(event)}\r\n\r\n")
    return [r.encode() for r in reads]


def run(make_decoder, reads: list[bytes]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        decoder = make_decoder()
        state = StreamState("m", "p", include_usage=True)
        process = state.process
        t0 = time.perf_counter()
        for data in reads:
            for raw in decoder.feed(data):
                process(raw)
        decoder.close()
        state.finish(decoder.done)
        best = min(best, time.perf_counter() - t0)
    return best / N * 1e6


def main() -> None:
    rows = [
        ("openai", lambda: OpenAIStreamDecoder("openai", "m"), openai_reads()),
        ("anthropic", lambda: AnthropicStreamDecoder("anthropic", "m"), anthropic_reads()),
        ("gemini", lambda: GeminiStreamDecoder("gemini", "m"), gemini_reads()),
    ]
    results = [(name, run(make, reads)) for name, make, reads in rows]
    floor = results[0][1]
    print(f"{'provider':<10} {'us/chunk':>9} {'ratio':>6}")
    for name, us in results:
        flag = "" if us / floor <= 1.5 else "  (over 1.5x target)"
        print(f"{name:<10} {us:>9.2f} {us / floor:>5.2f}x{flag}")


if __name__ == "__main__":
    main()
