"""CPU cost of callbacks in the SDK: per streamed response of ``--chunks`` chunks.

    python bench/bench_callbacks.py [--chunks 200] [--streams 20] [--rounds 7] [--baseline-ref REF] [--ref REF]

Variants, each in its own interpreter (so imports and caches don't leak between them), run
interleaved round after round against one fake upstream process (bench/fake_upstream.py); the
median CPU (time.process_time) per stream of each is reported with its ratio to the baseline
and to "none" (also as the median of the per-round ratios, which a change of the machine's
load between rounds does not move):

* baseline: the library as it was before callbacks existed (``--baseline-ref``, extracted
  with ``git archive``), no callback (other changes since then count too: compare with care);
* none: this tree, no callback registered (target: within ±5% of the baseline);
* success fn / CustomLogger: a plain ``success_callback`` function, a ``CustomLogger``
  (target: ≤ 1.05× the baseline per response: the work is per call, not per chunk);
each in sync (``completion``) and async (``acompletion``) form.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import io

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_BASELINE = "23bc778^"  # main just before "Library callbacks with LiteLLM's interface"

sys.path.insert(0, HERE)
from _common import CALLBACK_SETUP  # noqa: E402

WORKER = r"""
import asyncio, sys, time
import llmrelay

base, streams, mode, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
""" + CALLBACK_SETUP + r"""
def run_sync():
    for _ in range(streams):
        for _chunk in llmrelay.completion(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True,
                                          api_base=base, api_key="k"):
            pass

async def run_async():
    for _ in range(streams):
        async for _chunk in await llmrelay.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES,
                                                       stream=True, api_base=base, api_key="k"):
            pass
    if kind != "none":
        from llmrelay.integrations.dispatch import wait_pending
        await wait_pending()

def once():
    if mode == "sync":
        run_sync()
    else:
        asyncio.run(run_async())

once()  # warm up: imports, connection pool, token tables
seen.clear()
t0 = time.process_time()
once()
cpu = time.process_time() - t0
assert kind == "none" or len(seen) == streams, (kind, len(seen))
print(cpu / streams * 1e6)
"""


def extract(ref: str, into: str) -> str:
    data = subprocess.run(["git", "-C", ROOT, "archive", ref, "src"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into)
    return os.path.join(into, "src")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline-ref", default=DEFAULT_BASELINE)
    parser.add_argument("--ref", default=None, help="measure this git ref instead of the working tree "
                        "(before/after comparisons)")
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from _common import start_upstream

    tmp = tempfile.mkdtemp(prefix="bench_callbacks_")
    baseline_src = extract(args.baseline_ref, tmp)
    here_src = os.path.join(ROOT, "src") if args.ref is None else extract(args.ref, os.path.join(tmp, "ref"))
    worker = os.path.join(tmp, "worker.py")
    with open(worker, "w") as f:
        f.write(WORKER)
    upstream, base = start_upstream(args.chunks)
    variants = [(f"{label} {mode}", src, mode, kind)
                for mode in ("sync", "async")
                for label, src, kind in (("baseline", baseline_src, "none"), ("none", here_src, "none"),
                                         ("success fn", here_src, "fn"), ("CustomLogger", here_src, "logger"))]
    results: dict[str, list[float]] = {name: [] for name, *_ in variants}
    try:
        for _ in range(args.rounds):
            for name, src, mode, kind in variants:
                env = dict(os.environ, PYTHONPATH=src)
                out = subprocess.run([sys.executable, worker, base, str(args.streams), mode, kind], env=env,
                                     check=True, capture_output=True, text=True).stdout
                results[name].append(float(out.strip().splitlines()[-1]))
    finally:
        upstream.terminate()
    print(f"\nCPU per streamed response of {args.chunks} chunks (median of {args.rounds} rounds x "
          f"{args.streams} streams; baseline = {args.baseline_ref})\n")
    print("| variant | CPU/stream µs | CPU/chunk µs | ratio to baseline | ratio to none | paired ratio to none |")
    print("|---|---|---|---|---|---|")
    for mode in ("sync", "async"):
        floor = statistics.median(results[f"baseline {mode}"])
        none = statistics.median(results[f"none {mode}"])
        for name, _, m, _ in variants:
            if m != mode:
                continue
            med = statistics.median(results[name])
            # the median of the per-round ratios: each round's variants ran back to back, so a
            # change in the machine's load between rounds cancels out
            paired = statistics.median(v / n for v, n in zip(results[name], results[f"none {mode}"]))
            print(f"| {name} | {med:.0f} | {med / args.chunks:.2f} | {med / floor:.3f} | {med / none:.3f} "
                  f"| {paired:.3f} |")
    print(f"\nload average (1, 5, 15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
