"""Micro-benchmark: CPU the Router adds per call when nothing fails (not a test).

    /path/to/python bench/bench_router.py

Compares, in the same run, ``llmrelay.completion`` called directly with
``Router.completion`` on a two-deployment group, both answering from ``mock_response`` (so
no network: what is left is the library's own work plus the router's). Non-streaming and
streaming (the stream read to its end), sync and async. Uses process CPU time
(``time.process_time``), best of several interleaved repeats, so load from other processes
on the machine does not count.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import llmrelay  # noqa: E402
from llmrelay import Router  # noqa: E402

N = 3000
REPEATS = 7
MESSAGES = [{"role": "user", "content": "hi"}]
PARAMS = {"model": "openai/gpt-4o-mini", "mock_response": "Hello there, how are you?", "api_key": "k"}


def router() -> Router:
    return Router(
        model_list=[
            {"model_name": "g", "litellm_params": dict(PARAMS, api_base="http://127.0.0.1:1/v1")},
            {"model_name": "g", "litellm_params": dict(PARAMS, api_base="http://127.0.0.1:2/v1")},
        ],
        num_retries=2,
        fallbacks=[],
    )


def sync_direct(stream: bool):
    def run() -> None:
        for _ in range(N):
            r = llmrelay.completion(messages=MESSAGES, stream=stream, **PARAMS)
            if stream:
                for _ in r:
                    pass
    return run


def sync_router(rt: Router, stream: bool):
    def run() -> None:
        for _ in range(N):
            r = rt.completion(model="g", messages=MESSAGES, stream=stream)
            if stream:
                for _ in r:
                    pass
    return run


def async_direct(stream: bool):
    async def run() -> None:
        for _ in range(N):
            r = await llmrelay.acompletion(messages=MESSAGES, stream=stream, **PARAMS)
            if stream:
                async for _ in r:
                    pass
    return run


def async_router(rt: Router, stream: bool):
    async def run() -> None:
        for _ in range(N):
            r = await rt.acompletion(model="g", messages=MESSAGES, stream=stream)
            if stream:
                async for _ in r:
                    pass
    return run


def measure(direct, routed, is_async: bool, loop: asyncio.AbstractEventLoop) -> tuple[float, float]:
    best_d = best_r = float("inf")
    for _ in range(REPEATS):
        for fn, which in ((direct, "d"), (routed, "r")):
            t0 = time.process_time()
            if is_async:
                loop.run_until_complete(fn())
            else:
                fn()
            us = (time.process_time() - t0) / N * 1e6
            if which == "d":
                best_d = min(best_d, us)
            else:
                best_r = min(best_r, us)
    return best_d, best_r


def main() -> None:
    rt = router()
    loop = asyncio.new_event_loop()
    print(f"{'case':28} {'direct µs':>10} {'router µs':>10} {'added µs':>9}")
    for name, is_async, stream in (
        ("sync non-stream", False, False),
        ("sync stream (read to end)", False, True),
        ("async non-stream", True, False),
        ("async stream (read to end)", True, True),
    ):
        if is_async:
            d, r = measure(async_direct(stream), async_router(rt, stream), True, loop)
        else:
            d, r = measure(sync_direct(stream), sync_router(rt, stream), False, loop)
        print(f"{name:28} {d:10.1f} {r:10.1f} {r - d:9.1f}")
    loop.close()


if __name__ == "__main__":
    main()
