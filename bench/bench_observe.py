"""Gateway CPU per request with Prometheus + OpenTelemetry on, against the same gateway with them
off (target: ≤ 1.15×).

    python bench/bench_observe.py [--rounds 20] [--seconds 1.5] [--mode both|nonstream|stream]
                                  [--chunks 200] [--conc 16] [--callbacks "prometheus, otel"]
                                  [--aa] [--sequential] [--pin]

One fake upstream (bench/bench_proxy.py's), two gateways (``callbacks: [prometheus, otel]`` and
none), spans exported over OTLP/HTTP to a sink in this process, and one load generator process
(uvloop + aiohttp, kept-alive connections to both gateways) told what to run over a pipe. The
method (load generator, CPU readings, rounds, report) is bench/_pair.py's, shared with
bench_keys.py.

How the ratio is made trustworthy on a shared 2-core machine. The earlier version (2 s windows on
one gateway then the other, each gateway's median taken apart, CPU in /proc's 10 ms ticks)
scattered 1.04–1.37 between runs, and two *identical* gateways measured that way (``--aa
--sequential``, this version's fixed-count A-B-B-A windows) still read 0.84–1.70 a round and 1.195
as a median: on a machine that other work loads from second to second, the CPU a request takes
(caches, the other hyperthread, preemptions, how many requests a loop turn finds) moves by ±30 %
between two windows a second apart. So, by default:

* **Both gateways under load at once**, ``--conc`` connections each, for ``--seconds``; the window
  opens 0.2 s after the load started. Both see the same machine at the same moments, and the
  ratio is taken **within each round**: reported are the median of the per-round ratios, their
  quartiles and min–max, and the pooled ratio (the rounds' CPU summed over their requests).
  Two identical gateways read 0.97–1.02 as a median this way (``--aa``).
* **CPU counted exactly, by the load generator at the window's two ends**: the sum of the
  gateway's threads' run time from ``/proc/<pid>/task/*/schedstat`` (nanoseconds), with the
  requests each gateway completed in between (the ≤ ``conc`` requests open at either end are
  the same on both sides). User/system time (``/proc/<pid>/stat``, ticks) and each thread's share
  are reported too (the export thread apart from the event loop's).
* **The span export where it belongs**: the batch processor exports full 512-span batches
  (``OTEL_BSP_SCHEDULE_DELAY`` made long, as under sustained load where a batch fills long before
  the 5 s timer), one per 256 requests, from the export thread of the gateway — counted.
* **The same warm-up** on both (imports, pools, caches; the first full garbage collection after
  start-up, which walks the observed gateway's larger heap, falls there); a later full
  collection (every several thousand requests) lands in one round, which the median sets aside
  and the pooled ratio keeps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_proxy as bp  # noqa: E402
from _common import start_gateway, start_otlp_sink  # noqa: E402
from _pair import Gateway, LoadGen, Pair, add_arguments, modes_of  # noqa: E402

BATCH = 256  # requests whose spans fill one 512-span export batch


def main() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parser.add_argument("--callbacks", default="prometheus, otel", help="the observed gateway's callbacks")
    parser.add_argument("--aa", action="store_true", help="both gateways without observers: the method's noise")
    args = parser.parse_args()

    def whole(n: int) -> int:  # a multiple of 256 requests: whole export batches
        return max(BATCH, n // BATCH * BATCH)

    modes = modes_of(args)
    pin_gw = ["taskset", "-c", "0"] if args.pin else []
    pin_load = ["taskset", "-c", "1"] if args.pin else []
    sink, sink_url = start_otlp_sink(keep_alive=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_observe_"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(bp.ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
    env["OTEL_BSP_SCHEDULE_DELAY"] = "3600000"  # full 512-span batches only (see the docstring)
    port_file = tmp / "port"
    upstream = subprocess.Popen([*pin_load, sys.executable, bp.__file__, "--upstream", str(port_file),
                                 str(args.chunks)], env=env)
    load = LoadGen(args.conc, env, pin_load)
    gateways: dict[str, Gateway] = {}
    pair = Pair(("off", "on"))
    try:
        port = bp._wait_port(port_file, upstream)
        base = ("model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
                f"      api_base: http://127.0.0.1:{port}/v1\n      api_key: sk-upstream\n")
        observed = "" if args.aa else f"litellm_settings:\n  callbacks: [{args.callbacks}]\n"
        for name, extra in zip(pair.names, ("", observed)):
            config = tmp / f"{name}.yaml"
            config.write_text(base + extra)
            gateways[name] = Gateway(*start_gateway(config, env, pin=pin_gw), "sk-bench")
        pair.measure(load, gateways, args, whole)
        scrape = ("" if args.aa or "prometheus" not in args.callbacks
                  else urllib.request.urlopen(gateways["on"].url + "/metrics").read().decode())
        counted = next((line for line in scrape.splitlines()
                        if line.startswith("litellm_proxy_total_requests_metric_total")), "(none)")
    finally:
        for gw in gateways.values():
            gw.proc.terminate()
        load.close()
        upstream.terminate()
        sink.shutdown()
        for gw in gateways.values():
            gw.proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ngateway CPU per request (all its threads), {'A/A: both without observers' if args.aa else args.callbacks}"
          f" vs off; C={args.conc}, {args.chunks} chunks per stream; {pair.describe(args)}\n")
    pair.print_table(modes)
    print()
    pair.print_details(modes)
    print(f"\n(sanity: {counted})")


if __name__ == "__main__":
    main()
