"""Gateway CPU per request with Prometheus + OpenTelemetry on, against the same gateway with them
off (target: ≤ 1.15×).

    python bench/bench_observe.py [--rounds 20] [--seconds 1.5] [--mode both|nonstream|stream]
                                  [--chunks 200] [--conc 16] [--callbacks "prometheus, otel"]
                                  [--aa] [--sequential] [--pin]

One fake upstream (bench/bench_proxy.py's), two gateways (``callbacks: [prometheus, otel]`` and
none), spans exported over OTLP/HTTP to a sink in this process, and one load generator process
(uvloop + aiohttp, kept-alive connections to both gateways) told what to run over a pipe.

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
import asyncio
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_proxy as bp  # noqa: E402
from _common import start_gateway  # noqa: E402

BATCH = 256  # requests whose spans fill one 512-span export batch


def _threads(pid: int) -> dict[str, int]:
    """Run time (ns) of each of ``pid``'s threads so far, by "tid name" (a thread that just ended
    is left out)."""
    out = {}
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(task + "/comm") as f:
                name = f.read().strip()
            with open(task + "/schedstat") as f:
                out[f"{task.rsplit('/', 1)[1]} {name}"] = int(f.read().split()[0])
        except (OSError, ValueError):
            pass
    return out


def _reading(pid: int) -> tuple[dict[str, int], tuple[float, float]]:
    """(each thread's run time in ns, (user, system) seconds of the process)."""
    return _threads(pid), bp._cpu_split(pid)


def _used(before: tuple, after: tuple) -> dict:
    """CPU used between two readings: ns over all threads, by thread, user and system seconds."""
    (t0, (u0, s0)), (t1, (u1, s1)) = before, after
    threads = {k: v - t0.get(k, 0) for k, v in t1.items() if v - t0.get(k, 0)}
    return {"ns": sum(threads.values()), "threads": threads, "user": u1 - u0, "system": s1 - s0}


# ============================================================ the load generator (own process)
async def _serve_loadgen(conc: int) -> None:
    """Answer commands read on stdin with a JSON line each:
    ``run URL MODE N`` — exactly N requests at concurrency ``conc``;
    ``together URL PID URL PID MODE SECONDS`` — both gateways loaded at once, their CPU read at
    the two ends of a window of SECONDS."""
    import aiohttp
    import orjson

    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    bodies = {mode: orjson.dumps({"model": "gpt-4o-mini", "messages": bp.MESSAGES, "stream": mode == "stream"})
              for mode in ("stream", "nonstream")}
    sessions: dict[str, aiohttp.ClientSession] = {}

    async def one(url: str, mode: str) -> bool:
        session = sessions.get(url)
        if session is None:
            session = sessions[url] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=conc, limit_per_host=conc))
        async with session.post(url + "/v1/chat/completions", data=bodies[mode], headers=headers) as resp:
            data = await resp.read()
            if resp.status != 200:
                sys.stderr.write(f"bench_observe: {resp.status} {data[:300]!r}\n")
            return resp.status == 200

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command, *argv = line.decode().split()
        if command == "run":
            url, mode, n = argv
            left = [int(n)]
            errors = [0]

            async def worker() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    errors[0] += not await one(url, mode)

            await asyncio.gather(*(worker() for _ in range(conc)))
            answer = {"n": int(n), "errors": errors[0]}
        else:
            url_a, pid_a, url_b, pid_b, mode, seconds = argv
            sides = [(url_a, int(pid_a)), (url_b, int(pid_b))]
            done, errors, stop = [0, 0], [0, 0], [False]

            async def loaded(i: int) -> None:
                while not stop[0]:
                    errors[i] += not await one(sides[i][0], mode)
                    done[i] += 1

            tasks = [asyncio.ensure_future(loaded(i)) for i in (0, 1) for _ in range(conc)]
            await asyncio.sleep(0.2)  # both under full load before the window opens
            n0, before = list(done), [_reading(pid) for _, pid in sides]
            await asyncio.sleep(float(seconds))
            n1, after = list(done), [_reading(pid) for _, pid in sides]
            stop[0] = True
            await asyncio.gather(*tasks)
            answer = {"n": [b - a for a, b in zip(n0, n1)], "errors": sum(errors),
                      "used": [_used(b0, b1) for b0, b1 in zip(before, after)]}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for session in sessions.values():
        await session.close()


# ============================================================ orchestration
def _idle(pid: int, quiet_ns: int = 2_000_000, step: float = 0.05, limit: float = 5.0) -> tuple:
    """Wait until ``pid`` used under ``quiet_ns`` of CPU in ``step`` seconds (its export thread done);
    a reading then."""
    last = _reading(pid)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(step)
        now = _reading(pid)
        if sum(now[0].values()) - sum(last[0].values()) < quiet_ns:
            return now
        last = now
    return last


def _sink() -> tuple[object, str]:
    """An OTLP/HTTP receiver in a thread of this process (kept-alive connections) that reads and
    drops what it is sent; (server, URL)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.5, help="a round's window (both gateways at once)")
    parser.add_argument("--mode", default="both", choices=["both", "nonstream", "stream"])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2048, help="non-streamed requests first (streams: a quarter)")
    parser.add_argument("--callbacks", default="prometheus, otel", help="the observed gateway's callbacks")
    parser.add_argument("--aa", action="store_true", help="both gateways without observers: the method's noise")
    parser.add_argument("--sequential", action="store_true",
                        help="one gateway then the other (A-B, B-A…), fixed counts: --requests / --stream-requests")
    parser.add_argument("--requests", type=int, default=1024, help="--sequential: non-streamed requests a window")
    parser.add_argument("--stream-requests", type=int, default=256, help="--sequential: streams a window")
    parser.add_argument("--pin", action="store_true", help="gateways on CPU 0, upstream and load on CPU 1")
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        import uvloop

        uvloop.run(_serve_loadgen(args.conc))
        return

    def whole(n: int) -> int:  # a multiple of 256 requests: whole export batches
        return max(BATCH, n // BATCH * BATCH)

    modes = ["nonstream", "stream"] if args.mode == "both" else [args.mode]
    pin_gw = ["taskset", "-c", "0"] if args.pin else []
    pin_load = ["taskset", "-c", "1"] if args.pin else []
    sink, sink_url = _sink()
    tmp = Path(tempfile.mkdtemp(prefix="bench_observe_"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(bp.ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
    env["OTEL_BSP_SCHEDULE_DELAY"] = "3600000"  # full 512-span batches only (see the docstring)
    port_file = tmp / "port"
    upstream = subprocess.Popen([*pin_load, sys.executable, bp.__file__, "--upstream", str(port_file),
                                 str(args.chunks)], env=env)
    load = subprocess.Popen([*pin_load, sys.executable, __file__, "--loadgen", "--conc", str(args.conc)],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    gateways: dict[str, tuple[subprocess.Popen, str]] = {}

    def ask(command: str) -> dict:
        load.stdin.write(command + "\n")
        load.stdin.flush()
        answer = json.loads(load.stdout.readline())
        # (a rare failed request, on a loaded machine, is reported on stderr; more is a broken setup)
        assert answer["errors"] <= 0.01 * sum(answer["n"] if type(answer["n"]) is list else [answer["n"]]), answer
        return answer

    names = ("off", "on")
    # per (mode, gateway): a round's CPU µs per request, and the sums (ns, user s, system s,
    # requests, ns by thread); per mode: each round's ratio on/off
    cpu: dict[tuple[str, str], list[float]] = {}
    sums: dict[tuple[str, str], dict] = {}
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    t_start = time.time()
    load_avg = [os.getloadavg()[0]]

    def add(mode: str, name: str, n: int, used: dict) -> float:
        per = used["ns"] / n / 1e3
        cpu.setdefault((mode, name), []).append(per)
        s = sums.setdefault((mode, name), {"ns": 0, "user": 0.0, "system": 0.0, "n": 0, "threads": {}})
        s["ns"] += used["ns"]
        s["user"] += used["user"]
        s["system"] += used["system"]
        s["n"] += n
        for k, v in used["threads"].items():
            s["threads"][k] = s["threads"].get(k, 0) + v
        return per

    try:
        port = bp._wait_port(port_file, upstream)
        base = ("model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
                f"      api_base: http://127.0.0.1:{port}/v1\n      api_key: sk-upstream\n")
        observed = "" if args.aa else f"litellm_settings:\n  callbacks: [{args.callbacks}]\n"
        for name, extra in zip(names, ("", observed)):
            config = tmp / f"{name}.yaml"
            config.write_text(base + extra)
            gateways[name] = start_gateway(config, env, pin=pin_gw)
        for name, (proc, url) in gateways.items():  # warm up: imports, pools, caches, the first full GC
            for mode in modes:
                ask(f"run {url} {mode} {whole(args.warmup if mode == 'nonstream' else args.warmup // 4)}")
        for r in range(args.rounds):
            for mode in modes:
                if not args.sequential:
                    (pa, ua), (pb, ub) = gateways["off"], gateways["on"]
                    out = ask(f"together {ua} {pa.pid} {ub} {pb.pid} {mode} {args.seconds}")
                    if min(out["n"]) < 20:  # a gateway (or the load generator) starved by other work
                        print(f"(round {r} {mode} left out: requests {out['n']})", flush=True)
                        continue
                    per = {name: add(mode, name, out["n"][i], out["used"][i]) for i, name in enumerate(names)}
                else:
                    per = {}
                    n = whole(args.requests if mode == "nonstream" else args.stream_requests)
                    for name in (names if r % 2 == 0 else names[::-1]):
                        proc, url = gateways[name]
                        before = _idle(proc.pid)
                        ask(f"run {url} {mode} {n}")
                        per[name] = add(mode, name, n, _used(before, _idle(proc.pid)))
                ratios[mode].append(per["on"] / per["off"])
            load_avg.append(os.getloadavg()[0])
        scrape = ("" if args.aa or "prometheus" not in args.callbacks
                  else urllib.request.urlopen(gateways["on"][1] + "/metrics").read().decode())
        counted = next((line for line in scrape.splitlines()
                        if line.startswith("litellm_proxy_total_requests_metric_total")), "(none)")
    finally:
        for proc, _ in gateways.values():
            proc.terminate()
        load.stdin.close()
        load.wait(10)
        upstream.terminate()
        sink.shutdown()
    how = ("one gateway then the other, A-B then B-A" if args.sequential
           else f"both gateways under load at once, windows of {args.seconds:g} s")
    print(f"\ngateway CPU per request (all its threads), {'A/A: both without observers' if args.aa else args.callbacks}"
          f" vs off; C={args.conc}, {args.chunks} chunks per stream; {args.rounds} rounds, {how}; "
          f"{time.time() - t_start:.0f} s, load average {min(load_avg):.1f}–{max(load_avg):.1f}"
          f"{', pinned' if args.pin else ''}\n")
    print("| mode | off µs/req (median) | on µs/req (median) | ratio: median of rounds | quartiles | min–max | pooled |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        values = ratios[mode]
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) >= 2 else (values[0],) * 3
        pooled = (sums[(mode, "on")]["ns"] / sums[(mode, "on")]["n"]) / (sums[(mode, "off")]["ns"] / sums[(mode, "off")]["n"])
        print(f"| {mode} | {statistics.median(cpu[(mode, 'off')]):.0f} | {statistics.median(cpu[(mode, 'on')]):.0f} | "
              f"**{statistics.median(values):.3f}** | {q1:.3f}–{q3:.3f} | {min(values):.3f}–{max(values):.3f} | "
              f"{pooled:.3f} |")
    print()
    for mode in modes:
        print(f"{mode} per-round ratios: " + " ".join(f"{x:.3f}" for x in ratios[mode]))
        for name in names:
            s = sums[(mode, name)]
            threads = ", ".join(f"{k}: {v / s['n'] / 1e3:.1f}" for k, v in sorted(s["threads"].items()))
            print(f"  {name}: user {s['user'] / s['n'] * 1e6:.0f} + system {s['system'] / s['n'] * 1e6:.0f} µs/req "
                  f"(ticks); by thread µs/req: {threads}")
    print(f"\n(sanity: {counted})")


if __name__ == "__main__":
    main()
