"""Side-by-side CPU cost of the core library against a floor and the official openai SDK.

    python bench/bench_core.py [--chunks 500] [--streams 10] [--rounds 5]

A fake upstream runs in its own process (bench/fake_upstream.py), so the CPU measured here
(time.process_time of this process) is the client's alone. Variants run interleaved, round
after round, and the median per variant is reported, with its ratio to the floor: the
machine is shared and noisy, ratios measured in one run are what count.

* floor: httpx streaming + splitting lines + orjson per chunk, nothing else
* openai SDK: the official client (sync / async)
* llmrelay: completion / acompletion
Plus: non-streaming calls (µs per call), stream_chunk_builder on 10,000 chunks, and the cost of
``import llmrelay`` in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import time

import orjson

from _common import start_upstream  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MESSAGES = [{"role": "user", "content": "Say hello."}]


# ------------------------------------------------------------------ stream variants (sync)
def floor_sync(base: str, streams: int) -> int:
    import httpx

    n = 0
    with httpx.Client() as client:
        for _ in range(streams):
            body = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True})
            with client.stream("POST", base + "/chat/completions", content=body,
                               headers={"content-type": "application/json"}) as r:
                for line in r.iter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        orjson.loads(line[6:])
                        n += 1
    return n


def openai_sync(base: str, streams: int) -> int:
    import openai

    client = openai.OpenAI(base_url=base, api_key="k", max_retries=0)
    n = 0
    for _ in range(streams):
        for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            n += 1
    client.close()
    return n


def llmrelay_sync(base: str, streams: int) -> int:
    import llmrelay

    n = 0
    for _ in range(streams):
        for chunk in llmrelay.completion(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True,
                                         api_base=base, api_key="k"):
            n += 1
    return n


# ------------------------------------------------------------------ stream variants (async)
async def floor_async(base: str, streams: int) -> int:
    import httpx

    n = 0
    async with httpx.AsyncClient() as client:
        for _ in range(streams):
            body = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True})
            async with client.stream("POST", base + "/chat/completions", content=body,
                                     headers={"content-type": "application/json"}) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        orjson.loads(line[6:])
                        n += 1
    return n


async def openai_async(base: str, streams: int) -> int:
    import openai

    client = openai.AsyncOpenAI(base_url=base, api_key="k", max_retries=0)
    n = 0
    for _ in range(streams):
        async for chunk in await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            n += 1
    await client.close()
    return n


async def llmrelay_async(base: str, streams: int) -> int:
    import llmrelay

    n = 0
    for _ in range(streams):
        async for chunk in await llmrelay.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True,
                                                      api_base=base, api_key="k"):
            n += 1
    return n


# ------------------------------------------------------------------ non-streaming variants
def floor_call(base: str, calls: int) -> int:
    import httpx

    with httpx.Client() as client:
        for _ in range(calls):
            r = client.post(base + "/chat/completions", content=orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}),
                            headers={"content-type": "application/json"})
            orjson.loads(r.content)
    return calls


def openai_call(base: str, calls: int) -> int:
    import openai

    client = openai.OpenAI(base_url=base, api_key="k", max_retries=0)
    for _ in range(calls):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    return calls


def llmrelay_call(base: str, calls: int) -> int:
    import llmrelay

    for _ in range(calls):
        llmrelay.completion(model="openai/gpt-4o-mini", messages=MESSAGES, api_base=base, api_key="k")
    return calls


async def floor_acall(base: str, calls: int) -> int:
    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(calls):
            r = await client.post(base + "/chat/completions", content=orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}),
                                  headers={"content-type": "application/json"})
            orjson.loads(r.content)
    return calls


async def llmrelay_acall(base: str, calls: int) -> int:
    import llmrelay

    for _ in range(calls):
        await llmrelay.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES, api_base=base, api_key="k")
    return calls


def cpu_per_item(fn, *args) -> float:
    gc.collect()
    start = time.process_time()
    if asyncio.iscoroutinefunction(fn):
        items = asyncio.run(fn(*args))
    else:
        items = fn(*args)
    return (time.process_time() - start) / items * 1e6


def compare(title: str, unit: str, variants: dict, base: str, count: int, rounds: int, floor: str) -> dict:
    results: dict[str, list[float]] = {name: [] for name in variants}
    for name, fn in variants.items():  # warm-up: imports, pools
        cpu_per_item(fn, base, max(1, count // 5))
    for _ in range(rounds):
        for name, fn in variants.items():
            results[name].append(cpu_per_item(fn, base, count))
    med = {name: statistics.median(v) for name, v in results.items()}
    print(f"\n{title}")
    print(f"  {'variant':<22}{unit:>14}{'× floor':>10}")
    for name, value in med.items():
        print(f"  {name:<22}{value:>14.2f}{value / med[floor]:>10.2f}")
    return med


def bench_builder(chunks: int = 10_000) -> None:
    import llmrelay
    from llmrelay.streaming import CustomStreamWrapper

    raw = [{"id": "x", "choices": [{"index": 0, "delta": {"content": f"tok{i % 7} "}}]} for i in range(chunks)]
    raw.append({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": chunks, "total_tokens": chunks + 5}})
    objs = list(CustomStreamWrapper(raw, model="m"))
    print("\nstream_chunk_builder (µs per chunk; linear if the two sizes match)")
    for n in (chunks // 10, chunks):
        part = objs[:n] + objs[-1:]
        times = []
        for _ in range(5):
            start = time.perf_counter()
            llmrelay.stream_chunk_builder(part)
            times.append((time.perf_counter() - start) / len(part) * 1e6)
        print(f"  {n:>6} chunks: {statistics.median(times):.2f} µs/chunk")


def bench_import() -> None:
    # VmRSS from /proc (ru_maxrss survives exec on Linux and would report the parent's peak).
    rss = "float(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) / 1024"
    code = f"import time; t = time.perf_counter(); import llmrelay; print((time.perf_counter() - t) * 1000, {rss})"
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
            for _ in range(5)]
    bare = subprocess.run([sys.executable, "-c", f"print(0, {rss})"], capture_output=True, text=True, check=True)
    ms = statistics.median(float(r[0]) for r in runs)
    mib = statistics.median(float(r[1]) for r in runs)
    print(f"\nimport llmrelay: {ms:.1f} ms, RSS {mib:.1f} MiB (bare interpreter {float(bare.stdout.split()[1]):.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    proc, base = start_upstream(args.chunks)
    try:
        compare(f"streaming, sync ({args.chunks} chunks × {args.streams} streams)", "CPU µs/chunk",
                {"floor (httpx+orjson)": floor_sync, "openai SDK": openai_sync, "llmrelay": llmrelay_sync},
                base, args.streams, args.rounds, "floor (httpx+orjson)")
        compare(f"streaming, async ({args.chunks} chunks × {args.streams} streams)", "CPU µs/chunk",
                {"floor (httpx+orjson)": floor_async, "openai SDK": openai_async, "llmrelay": llmrelay_async},
                base, args.streams, args.rounds, "floor (httpx+orjson)")
        compare(f"non-streaming, sync ({args.calls} calls)", "CPU µs/call",
                {"floor (httpx+orjson)": floor_call, "openai SDK": openai_call, "llmrelay": llmrelay_call},
                base, args.calls, args.rounds, "floor (httpx+orjson)")
        compare(f"non-streaming, async ({args.calls} calls)", "CPU µs/call",
                {"floor (httpx+orjson)": floor_acall, "llmrelay": llmrelay_acall},
                base, args.calls, args.rounds, "floor (httpx+orjson)")
    finally:
        proc.terminate()
        proc.wait()
    bench_builder()
    bench_import()


if __name__ == "__main__":
    main()
