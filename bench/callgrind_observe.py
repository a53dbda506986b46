"""User-space instructions per gateway request with Prometheus + OpenTelemetry on and off, counted
by valgrind's callgrind (deterministic where CPU time on a shared machine is not).

    python bench/callgrind_observe.py [--requests 600] [--chunks 200] [--mode nonstream|stream|both]

Each gateway runs under ``valgrind --tool=callgrind --instr-atstart=no``; after a warm-up (64
requests) the instrumentation is switched on around ``--requests`` sequential requests (streams:
half as many). The span exporter sends only full batches (``OTEL_BSP_SCHEDULE_DELAY`` is made
long): 512 spans each, so the window holds the export of its own spans (two a request) to ±1
batch; the exporter thread's instructions count, as they do in the gateway's CPU. Reported: instructions per
request, on and off, and their ratio. Garbage collections are counted apart too: a
full one (every few thousand requests) falls inside a window or not. ``--keep DIR`` keeps the
callgrind files (for ``callgrind_annotate``). ``--conc N``: the requests come over N connections at
once (a loop turn finds several, as under load; the window's count is the same). ``CG_THREADS=1``
in the environment: ``--separate-threads=yes``, a file per thread (``…out-01`` the event loop's,
the others the span export thread's and idle ones), summed for the report.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_proxy as bp  # noqa: E402
from _common import start_gateway, start_otlp_sink  # noqa: E402


def _requests(url: str, stream: bool, n: int, conc: int = 1) -> None:
    if conc > 1:  # conc connections at once, n requests in all
        import threading

        threads = [threading.Thread(target=_requests, args=(url, stream, n // conc + (i < n % conc)))
                   for i in range(conc)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return
    host, port = url.split("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    body = (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":'
            + (b"true}" if stream else b"false}"))
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    failures = 0
    for _ in range(n):
        conn.request("POST", "/v1/chat/completions", body, headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:  # (under valgrind a pooled upstream connection may have timed out)
            failures += 1
            assert failures <= 3, data[:300]
            print(f"warning: a request failed: {data[:200]!r}", flush=True)
    conn.close()


def _gc(path: Path) -> int:
    """Instructions in garbage collections (inclusive: gc_collect_main and what it calls)."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(path)], capture_output=True, text=True).stdout
    match = re.search(r"^\s*([\d,]+) .*gcmodule\.c:gc_collect_main ", out, re.M)
    return int(match.group(1).replace(",", "")) if match else 0


def _total(path: Path) -> int:
    """The file's total (with ``CG_THREADS=1``, ``--separate-threads=yes``: all threads' files)."""
    files = sorted(path.parent.glob(path.name + "-*")) or [path]
    total = 0
    for file in files:
        for line in file.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
                break
        else:
            raise RuntimeError(f"no totals in {file}")
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--mode", default="nonstream", choices=["nonstream", "stream", "both"])
    parser.add_argument("--keep", default=None)
    parser.add_argument("--conc", type=int, default=1,
                        help="connections at once (1: sequential; more: requests a loop turn finds, as under load)")
    parser.add_argument("--callbacks", default="prometheus,otel", help="the observed gateway's callbacks")
    args = parser.parse_args()

    sink, sink_url = start_otlp_sink()
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="callgrind_observe_"))
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(bp.ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
    env["OTEL_BSP_SCHEDULE_DELAY"] = "600000"  # exports only of full batches (512 spans): 2 a window
    env["PYTHONHASHSEED"] = "0"
    port_file = tmp / "port"
    port_file.unlink(missing_ok=True)
    upstream = subprocess.Popen([sys.executable, bp.__file__, "--upstream", str(port_file), str(args.chunks)], env=env)
    modes = ["nonstream", "stream"] if args.mode == "both" else [args.mode]
    results: dict[tuple[str, str], float] = {}
    gcs: dict[tuple[str, str], float] = {}
    try:
        port = bp._wait_port(port_file, upstream)
        while True:  # (the port is written before the upstream listens)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        base = ("model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
                f"      api_base: http://127.0.0.1:{port}/v1\n      api_key: sk-upstream\n")
        names = (("off", ""), ("on", f"litellm_settings:\n  callbacks: [{args.callbacks}]\n"))
        for mode in modes:
            n = args.requests if mode == "nonstream" else max(args.requests // 2, 20)
            for name, extra in names:
                config = tmp / f"{name}.yaml"
                config.write_text(base + extra)
                out = tmp / f"callgrind.{mode}.{name}.{args.callbacks.replace(',', '_')}.out"
                pin = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                       *(["--separate-threads=yes"] if os.environ.get("CG_THREADS") else [])]
                proc, url = start_gateway(config, env, pin=pin)
                try:
                    _requests(url, mode == "stream", 64)  # warm up: imports, pools, caches
                    time.sleep(1.0)
                    subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True,
                                   stdout=subprocess.DEVNULL)
                    _requests(url, mode == "stream", n, args.conc)
                    subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True,
                                   stdout=subprocess.DEVNULL)
                finally:
                    proc.terminate()
                    proc.wait(120)
                results[(mode, name)] = _total(out) / n
                gcs[(mode, name)] = sum(map(_gc, sorted(out.parent.glob(out.name + "-*")) or [out])) / n
                print(f"{mode} {name}: {results[(mode, name)]:,.0f} instructions/request "
                      f"({gcs[(mode, name)]:,.0f} in garbage collections)", flush=True)
    finally:
        upstream.terminate()
        sink.shutdown()
    # a full collection (every few thousand requests) falls in a window or not: the counts
    # without garbage collection are the steady part, the collections are reported apart
    print(f"\n| mode | off | {args.callbacks} | added | ratio | without GC: off | on | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for mode in modes:
        if (mode, "off") in results and (mode, "on") in results:
            off, on = results[(mode, "off")], results[(mode, "on")]
            off_gc, on_gc = off - gcs[(mode, "off")], on - gcs[(mode, "on")]
            print(f"| {mode} | {off:,.0f} | {on:,.0f} | {on - off:+,.0f} | {on / off:.3f} | {off_gc:,.0f} | "
                  f"{on_gc:,.0f} | {on_gc / off_gc:.3f} |")


if __name__ == "__main__":
    main()
