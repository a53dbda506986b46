"""Run ``python -m llmrelay.proxy ARGS`` with an opcode tracer (for ``bench_request_cost.py
--opcodes``): SIGUSR1 switches it on, SIGUSR2 off and writes, as a pickle to ``$OPTRACE_OUT``,
the bytecodes executed per function (its own and with what it called) and its calls (a
coroutine's resumptions count as calls). Deterministic, and ~50× slower than the gateway."""

from __future__ import annotations

import collections
import os
import pickle
import runpy
import signal
import sys

own: collections.Counter = collections.Counter()
inclusive: collections.Counter = collections.Counter()
calls: collections.Counter = collections.Counter()


def _name(code) -> str:
    return f"{code.co_qualname} ({code.co_filename.rsplit('/', 2)[-2:][-1]}:{code.co_firstlineno})"


def _local(frame, event, arg):
    if event == "opcode":
        own[frame.f_code] += 1
        seen = set()
        while frame is not None:
            code = frame.f_code
            if code not in seen:
                seen.add(code)
                inclusive[code] += 1
            frame = frame.f_back
    return _local


def _tracer(frame, event, arg):
    if event == "call":
        calls[frame.f_code] += 1
    frame.f_trace_opcodes = True
    return _local


def _on(*_args) -> None:
    sys.settrace(_tracer)


def _off(*_args) -> None:
    sys.settrace(None)
    out = {key: {_name(c): n for c, n in counter.items()}
           for key, counter in (("self", own), ("incl", inclusive), ("calls", calls))}
    with open(os.environ["OPTRACE_OUT"], "wb") as f:
        pickle.dump(out, f)


def show(path: str, requests: int, top: int = 60) -> None:
    """Print the functions by bytecodes per request (with what they called, their own, calls)."""
    with open(path, "rb") as f:
        d = pickle.load(f)
    print(f"bytecodes per request: {sum(d['self'].values()) / requests:.0f}  (inclusive / own / calls)")
    for name, n in sorted(d["incl"].items(), key=lambda kv: -kv[1])[:top]:
        print(f"{n / requests:8.0f} {d['self'].get(name, 0) / requests:7.0f} "
              f"{d['calls'].get(name, 0) / requests:5.1f}  {name}")


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _on)
    signal.signal(signal.SIGUSR2, _off)
    sys.argv[0] = "llmrelay.proxy"
    runpy.run_module("llmrelay.proxy", run_name="__main__")
