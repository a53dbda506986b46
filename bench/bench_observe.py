"""Gateway CPU per request with Prometheus + OpenTelemetry on, against the same gateway with them
off (target: ≤ 1.15×).

    python bench/bench_observe.py [--seconds 2] [--rounds 5] [--chunks 200] [--conc 16]

One fake upstream (bench/bench_proxy.py's), two gateways (``callbacks: [prometheus, otel]`` and
none), spans exported over OTLP/HTTP to a sink in this process; the load generator (also
bench_proxy's, its own process) runs against each gateway in turn, round after round, streaming
and not; reported: the median gateway CPU per request (from /proc) and the ratio on/off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_proxy as bp  # noqa: E402
from _common import start_gateway, start_otlp_sink  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--conc", type=int, default=16)
    args = parser.parse_args()

    sink, sink_url = start_otlp_sink()
    tmp = Path(tempfile.mkdtemp(prefix="bench_observe_"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(bp.ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
    port_file = tmp / "port"
    upstream = subprocess.Popen([sys.executable, bp.__file__, "--upstream", str(port_file), str(args.chunks)], env=env)
    gateways: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        port = bp._wait_port(port_file, upstream)
        base = ("model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
                f"      api_base: http://127.0.0.1:{port}/v1\n      api_key: sk-upstream\n")
        for name, extra in (("off", ""), ("prometheus+otel", "litellm_settings:\n  callbacks: [prometheus, otel]\n")):
            config = tmp / f"{name}.yaml"
            config.write_text(base + extra)
            gateways[name] = start_gateway(config, env)
        for proc, url in gateways.values():  # warm up: imports, token tables, connection pools
            for mode in ("stream", "nonstream"):
                bp._loadgen(f"{url}/v1/chat/completions", mode, args.conc, 0.5, None)
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for mode in ("stream", "nonstream"):
                for name, (proc, url) in gateways.items():
                    out, cpu, _ = bp._loadgen(f"{url}/v1/chat/completions", mode, args.conc, args.seconds, proc.pid)
                    if out["n"]:
                        results.setdefault((mode, name), []).append(cpu / out["n"] * 1e6)
        scrape = urllib.request.urlopen(gateways["prometheus+otel"][1] + "/metrics").read().decode()
        counted = next((line for line in scrape.splitlines()
                        if line.startswith("litellm_proxy_total_requests_metric_total")), "(none)")
    finally:
        for proc, _ in gateways.values():
            proc.terminate()
        upstream.terminate()
        sink.shutdown()
    print(f"\ngateway CPU per request, C={args.conc}, {args.chunks} chunks per stream, median of {args.rounds} "
          f"rounds of {args.seconds:g}s\n")
    print("| mode | observers | CPU/req µs | ratio to off |")
    print("|---|---|---|---|")
    for mode in ("stream", "nonstream"):
        off = statistics.median(results[(mode, "off")])
        for name in gateways:
            med = statistics.median(results[(mode, name)])
            print(f"| {mode} | {name} | {med:.0f} | {med / off:.3f} |")
    print(f"\n(sanity: {counted})")


if __name__ == "__main__":
    main()
