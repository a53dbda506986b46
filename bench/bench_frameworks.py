"""A framework's streamed call on llmrelay (``install_as_litellm``) vs on LiteLLM, side by side.

    python bench/bench_frameworks.py --litellm-python /tmp/litellm-venv/bin/python \
        [--chunks 500] [--streams 10] [--rounds 5]

The framework is smolagents (``LiteLLMModel.generate_stream``). Each side runs in its own
interpreter: llmrelay from this interpreter (``src/`` on the path, ``install_as_litellm()``
before smolagents is imported), LiteLLM from ``--litellm-python``, a separate virtualenv with
``litellm`` and ``smolagents`` installed (never install litellm next to llmrelay's tests).
The fake upstream (bench/fake_upstream.py) runs in a third process, so each side's CPU
(time.process_time) is the client's alone. Reported per side, median over rounds:

* import: wall time of ``import litellm`` + ``from smolagents import LiteLLMModel`` in a fresh
  interpreter (median of --imports runs), and the same without smolagents' own imports;
* CPU per streamed chunk through ``generate_stream`` (framework + library), µs.

Without --litellm-python, only the llmrelay side runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from _common import start_upstream  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")

# Run in the child interpreter: {SETUP} installs llmrelay as litellm (or nothing for LiteLLM).
CHILD_IMPORT = """
import time
t0 = time.perf_counter()
{setup}
import litellm
t1 = time.perf_counter()
from smolagents import LiteLLMModel
t2 = time.perf_counter()
print(t1 - t0, t2 - t0)
"""

CHILD_STREAM = """
import gc, json, sys, time, logging
{setup}
import litellm
litellm.suppress_debug_info = True
from smolagents import LiteLLMModel
base, streams, rounds, chunks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = LiteLLMModel(model_id="openai/gpt-4o-mini", api_base=base, api_key="sk-bench")
messages = [{{"role": "user", "content": [{{"type": "text", "text": "Say hello."}}]}}]
def one():
    n = 0
    for delta in model.generate_stream(messages):
        n += 1
    return n
one()  # warm up: connections, lazy imports
per_round = []
for _ in range(rounds):
    gc.collect()
    c0 = time.process_time()
    seen = sum(one() for _ in range(streams))
    per_round.append((time.process_time() - c0) / (streams * chunks))
print(json.dumps({{"per_chunk": per_round, "deltas_per_stream": seen // streams}}))
"""

SETUP = {
    "llmrelay": "import llmrelay; llmrelay.install_as_litellm()",
    "litellm": "",
}


def child_env(side: str) -> dict[str, str]:
    env = dict(os.environ)
    if side == "llmrelay":
        env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    else:
        env.pop("PYTHONPATH", None)
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no network fetch of the price map at import
    return env


def run(python: str, side: str, code: str, *args: str) -> str:
    out = subprocess.run([python, "-c", code.format(setup=SETUP[side]), *args], env=child_env(side),
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{side} child failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def measure(python: str, side: str, base: str, args: argparse.Namespace) -> dict[str, float]:
    imports = [tuple(map(float, run(python, side, CHILD_IMPORT).split())) for _ in range(args.imports)]
    stream = json.loads(run(python, side, CHILD_STREAM, base, str(args.streams), str(args.rounds), str(args.chunks)))
    return {
        "import_litellm_s": statistics.median(i[0] for i in imports),
        "import_with_framework_s": statistics.median(i[1] for i in imports),
        "cpu_per_chunk_us": statistics.median(stream["per_chunk"]) * 1e6,
        "deltas_per_stream": stream["deltas_per_stream"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--litellm-python", help="python of a separate venv with litellm + smolagents")
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--imports", type=int, default=3)
    args = parser.parse_args()
    upstream, base = start_upstream(args.chunks)
    try:
        sides = {"llmrelay": measure(sys.executable, "llmrelay", base, args)}
        if args.litellm_python:
            sides["litellm"] = measure(args.litellm_python, "litellm", base, args)
    finally:
        upstream.terminate()
        upstream.wait()
    print(f"smolagents LiteLLMModel.generate_stream, {args.chunks} chunks x {args.streams} streams x {args.rounds} rounds")
    rows = [
        ("import litellm (s)", "import_litellm_s", "{:.3f}"),
        ("import litellm + smolagents (s)", "import_with_framework_s", "{:.3f}"),
        ("CPU per streamed chunk (µs)", "cpu_per_chunk_us", "{:.1f}"),
        ("deltas per stream", "deltas_per_stream", "{:.0f}"),
    ]
    print(f"{'':34}{'llmrelay':>12}{'LiteLLM':>12}{'LiteLLM/llmrelay':>18}")
    for label, key, fmt in rows:
        ours = sides["llmrelay"][key]
        theirs = sides.get("litellm", {}).get(key)
        ratio = f"{theirs / ours:.1f}x" if theirs is not None and ours and key != "deltas_per_stream" else ""
        print(f"{label:34}{fmt.format(ours):>12}{(fmt.format(theirs) if theirs is not None else '-'):>12}{ratio:>18}")


if __name__ == "__main__":
    main()
