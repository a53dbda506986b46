"""Instructions per streamed SDK response with and without callbacks, counted by valgrind's
callgrind (deterministic where ``bench_callbacks.py``'s CPU time on a shared machine is not).

    python bench/callgrind_callbacks.py [--chunks 200] [--streams 20] [--kinds none,fn,afn,logger]
                                        [--modes sync,async] [--keep DIR]

The worker is ``bench_callbacks.py``'s (the same calls over the same loopback fake upstream),
run under ``valgrind --tool=callgrind --instr-atstart=no``: after a warm-up round the
instrumentation is switched on (``callgrind_control -i on``) around exactly ``--streams``
streams read to their end (and, for async calls, the wait for the callbacks still running), so
the callback threads' and tasks' work counts too. Kinds: ``none`` (no callback), ``fn`` (a plain
``success_callback`` function), ``afn`` (an ``async def`` one; async calls only), ``logger`` (a
``CustomLogger``). Reported: instructions per stream and the ratio to ``none``. ``--keep DIR``
keeps the callgrind files (``callgrind_annotate --inclusive=yes FILE`` lists where they go).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import CALLBACK_SETUP  # noqa: E402

WORKER = r"""
import asyncio, sys
import llmrelay

base, streams, mode, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
""" + CALLBACK_SETUP + r"""
def run_sync(n):
    for _ in range(n):
        for _chunk in llmrelay.completion(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True,
                                          api_base=base, api_key="k"):
            pass

async def run_async(n):
    for _ in range(n):
        async for _chunk in await llmrelay.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES,
                                                       stream=True, api_base=base, api_key="k"):
            pass
    if kind != "none":
        from llmrelay.integrations.dispatch import wait_pending
        await wait_pending()

async def main_async():
    await run_async(streams)  # warm up: imports, connection pool, token tables
    print("ready", flush=True)
    sys.stdin.readline()
    await run_async(streams)
    print("done", flush=True)
    sys.stdin.readline()

if mode == "sync":
    run_sync(streams)
    print("ready", flush=True)
    sys.stdin.readline()
    run_sync(streams)
    print("done", flush=True)
    sys.stdin.readline()
else:
    asyncio.run(main_async())
assert kind == "none" or len(seen) == 2 * streams, (kind, len(seen))
"""


def _total(path: Path) -> int:
    text = path.read_text(errors="replace")
    return max((int(n) for n in re.findall(r"^(?:summary|totals): (\d+)", text, re.M)), default=0)


def _gc(path: Path) -> int:
    """Instructions in garbage collections (inclusive: gc_collect_main and what it calls)."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(path)], capture_output=True, text=True).stdout
    match = re.search(r"^\s*([\d,]+) .*gcmodule\.c:gc_collect_main ", out, re.M)
    return int(match.group(1).replace(",", "")) if match else 0


def measure(worker: Path, base: str, streams: int, mode: str, kind: str, out: Path, src: Path) -> tuple[float, float]:
    """Instructions per stream of one variant, and those of them in garbage collections."""
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONHASHSEED="0")
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           sys.executable, str(worker), base, str(streams), mode, kind]
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, stdout=subprocess.DEVNULL)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, stdout=subprocess.DEVNULL)
        proc.stdin.write("exit\n")
        proc.stdin.flush()
        assert proc.wait(600) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    return _total(out) / streams, _gc(out) / streams


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--kinds", default="none,fn,afn,logger")
    parser.add_argument("--modes", default="sync,async")
    parser.add_argument("--src", default=str(ROOT / "src"), help="the tree's src/ to measure")
    parser.add_argument("--keep", default=None)
    args = parser.parse_args()
    from _common import start_upstream

    tmp = Path(args.keep or tempfile.mkdtemp(prefix="callgrind_callbacks_"))
    tmp.mkdir(parents=True, exist_ok=True)
    worker = tmp / "worker.py"
    worker.write_text(WORKER)
    upstream, base = start_upstream(args.chunks)
    results: dict[tuple[str, str], tuple[float, float]] = {}
    try:
        for mode in args.modes.split(","):
            for kind in args.kinds.split(","):
                if kind == "afn" and mode == "sync":
                    continue
                out = tmp / f"callgrind.{mode}.{kind}.out"
                results[(mode, kind)] = measure(worker, base, args.streams, mode, kind, out, Path(args.src))
                total, gc = results[(mode, kind)]
                print(f"{mode} {kind}: {total:,.0f} instructions/stream ({gc:,.0f} in garbage collections)",
                      flush=True)
    finally:
        upstream.terminate()
    # Garbage collections come in steps (a full one every few thousand allocations falls in a
    # window or not): the counts without them are the steady part, reported next to the totals.
    print(f"\n| {args.chunks}-chunk stream | instructions | added | ratio to none | without GC | added | ratio |")
    print("|---|---|---|---|---|---|---|")
    for (mode, kind), (value, gc) in results.items():
        none, none_gc = results.get((mode, "none"), (None, None))
        extra = (f"{value - none:+,.0f} | {value / none:.3f} | {value - gc:,.0f} | "
                 f"{(value - gc) - (none - none_gc):+,.0f} | {(value - gc) / (none - none_gc):.3f}") if none else "- | - | - | - | -"
        print(f"| {mode} {kind} | {value:,.0f} | {extra} |")


if __name__ == "__main__":
    main()
