"""Gateway benchmark: the llmrelay gateway vs hitting a fast fake upstream directly.

Three kinds of processes, so none measures itself:

* a fast fake OpenAI upstream (uvicorn + httptools, canned answers; streaming answers are
  ``--chunks`` SSE frames written one by one);
* the gateway (``python -m llmrelay.proxy``, one worker) in front of it;
* a load generator (aiohttp, ``C`` concurrent connections for ``--seconds``) pointed at one or
  the other.

A last "paced" cell (C=1) measures TTFT with an upstream that pauses 5 ms after the first
content chunk, as a real model does between tokens. In the burst cells the fake upstream writes
all chunks within ~1 ms, so upstream, gateway and load generator are three busy processes on
this 2-core machine: the load generator waits up to a burst's length for a CPU before it can
read a first chunk the gateway has already written (measured: ~0.8 ms at C=1), which is not
time the gateway adds. The paced cell's added TTFT is the gateway's own.

Reported per (mode, C): req/s and chunks/s for both targets, added TTFT p50/p99 and added latency
p50/p99 (gateway minus direct), gateway CPU per request and per chunk (from /proc utime+stime),
gateway RSS idle and at the end of the run under load.

Translated streams: the same upstream chat stream answered through ``/v1/responses`` and
``/v1/messages`` (C=16, gateway only), reported as gateway CPU per *upstream* chunk and its ratio
to the chat-completions pass-through of the same run (``stream`` C=16); the target is ≤ 1.5.

    PYTHONPATH=src python bench/bench_proxy.py [--seconds 2] [--chunks 200] [--conc 1,16,64]

Paced streams (``--paced``, issue 18): 50-chunk streams, one chunk every 20 ms, at C = 64 / 256 /
512 concurrent streams against the upstream directly, a byte-relay floor (uvloop, no parsing) and
the gateway, all measured in the same run (``bench/_paced.py``). Per cell: chunks/s and its ratio
to direct, TTFT p50/p99 and added TTFT vs direct, CPU per chunk of the relay process over the
measured window and its ratio to the floor's, share of a core, peak RSS. ``--quick``: C = 64, 512
and 2 s cells; ``--repeat 2``: the whole table twice.

    PYTHONPATH=src python bench/bench_proxy.py --paced [--quick] [--repeat 2] [--paced-conc 64,256,512]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CLK = os.sysconf("SC_CLK_TCK")
MESSAGES = [{"role": "user", "content": "Hello"}]
#: Translated modes: gateway path and request body (each streams the same upstream chat stream).
TRANSLATED = {
    "responses": ("/v1/responses", {"model": "gpt-4o-mini", "input": "Hello", "stream": True}),
    "messages": ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 1000, "messages": MESSAGES, "stream": True}),
}
#: Pause after the first content chunk in the "paced" TTFT cell (see ``_load``).
PACE_GAP = 0.005


# ============================================================ the fake upstream (own process)
def run_upstream(port_file: str, chunks: int) -> None:
    import orjson
    import uvicorn

    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_bench"}
    frames = [b"data: " + orjson.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                                "finish_reason": None}]}) + b"\n\n"]
    for i in range(chunks - 2):
        frames.append(b"data: " + orjson.dumps({**base, "choices": [{"index": 0, "delta": {"content": f" tok{i % 10}"},
                                                                     "finish_reason": None}]}) + b"\n\n")
    frames.append(b"data: " + orjson.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                  + b"\n\n")
    # sent before [DONE] when the request asks stream_options.include_usage, as OpenAI does
    usage_frame = b"data: " + orjson.dumps({**base, "choices": [], "usage": {
        "prompt_tokens": 9, "completion_tokens": chunks - 2, "total_tokens": chunks + 7}}) + b"\n\n"
    frames.append(b"data: [DONE]\n\n")
    completion = orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
    })
    sse_headers = [(b"content-type", b"text/event-stream")]
    json_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(completion)).encode())]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while True:
                    m = await receive()
                    if m["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    else:
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            return
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        if b'"stream":true' in body.replace(b" ", b""):
            await send({"type": "http.response.start", "status": 200, "headers": sse_headers})
            paced = b'"user":"bench-paced"' in body
            answer = frames
            if b'"include_usage":true' in body.replace(b" ", b""):
                answer = [*frames[:-1], usage_frame, frames[-1]]
            for i, frame in enumerate(answer):
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                if paced and i == 1:
                    # the first content chunk, then a pause as a real model takes between tokens
                    await asyncio.sleep(PACE_GAP)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": json_headers})
            await send({"type": "http.response.body", "body": completion})

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    Path(port_file).write_text(str(sock.getsockname()[1]))
    config = uvicorn.Config(app, http="httptools", loop="uvloop", log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


# ============================================================ the load generator (own process)
async def _load(url: str, stream: bool, conc: int, seconds: float, paced: bool = False) -> dict:
    import aiohttp
    import orjson

    request = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream}
    for path, translated in TRANSLATED.values():
        if url.endswith(path):
            request = translated
    if paced:
        request["user"] = "bench-paced"
    body = orjson.dumps(request)
    headers = {"content-type": "application/json",
               "authorization": f"Bearer {os.environ.get('BENCH_KEY', 'sk-bench')}"}
    ttfts: list[float] = []
    lats: list[float] = []
    chunks = 0
    errors = 0
    connector = aiohttp.TCPConnector(limit=conc, limit_per_host=conc)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm up the connections
        async def one() -> None:
            nonlocal chunks, errors
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    errors += 1
                    await resp.read()
                    return
                if stream:
                    first = None
                    n = 0
                    buf = b""
                    async for data in resp.content.iter_any():
                        if first is None:
                            first = time.perf_counter()
                        buf += data
                        end = buf.rfind(b"\n\n")
                        if end >= 0:  # count whole frames only
                            n += buf.count(b"\n\n", 0, end + 2)
                            buf = buf[end + 2:]
                    chunks += n
                    ttfts.append(first - t0)
                else:
                    await resp.read()
                    ttfts.append(time.perf_counter() - t0)
            lats.append(time.perf_counter() - t0)

        await asyncio.gather(*(one() for _ in range(conc)))
        ttfts.clear(), lats.clear()
        chunks = 0
        end = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < end:
                await one()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        wall = time.perf_counter() - t0
    return {"n": len(lats), "wall": wall, "chunks": chunks, "errors": errors,
            "ttft": sorted(ttfts), "lat": sorted(lats)}


def run_loadgen(url: str, mode: str, conc: int, seconds: float) -> None:
    import uvloop

    result = uvloop.run(_load(url, mode != "nonstream", conc, seconds, paced=mode == "paced"))
    sys.stdout.write(json.dumps(result))


# ============================================================ orchestration
def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(p * len(values)))]


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _wait_port(port_file: Path, proc: subprocess.Popen) -> int:
    for _ in range(400):
        if port_file.exists() and port_file.read_text():
            return int(port_file.read_text())
        if proc.poll() is not None:
            raise RuntimeError("upstream died")
        time.sleep(0.025)
    raise RuntimeError("upstream did not start")


def _loadgen(url: str, mode: str, conc: int, seconds: float, target_pid: int | None) -> tuple[dict, float, float]:
    env = dict(os.environ)
    cpu0 = _cpu(target_pid) if target_pid else 0.0
    rss = [0.0]
    out_file = tempfile.TemporaryFile()
    proc = subprocess.Popen([PY, __file__, "--loadgen", url, mode, str(conc), str(seconds)],
                            stdout=out_file, env=env)
    # sample the gateway's RSS while it is under load
    while proc.poll() is None:
        if target_pid:
            rss[0] = max(rss[0], _rss_mib(target_pid))
        time.sleep(0.1)
    out_file.seek(0)
    out = out_file.read()
    cpu = (_cpu(target_pid) - cpu0) if target_pid else 0.0
    return json.loads(out), cpu, rss[0]


def stop(procs: list) -> None:
    """Terminate the processes still running, last started first (kill those that hang)."""
    for proc in reversed(procs):
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def _start_gateway(tmp: Path, env: dict, up_port: int) -> tuple[subprocess.Popen, str, float]:
    """Start one gateway process as ``llmrelay proxy --config`` does, in front of ``up_port``."""
    import shutil
    import threading
    import urllib.request

    config = tmp / "config.yaml"
    config.write_text(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: http://127.0.0.1:{up_port}/v1\n      api_key: sk-upstream\n"
        "general_settings:\n  master_key: sk-bench\n"
    )
    t0 = time.perf_counter()
    log = open(tmp / "gateway.log", "w")
    gateway = subprocess.Popen([PY, "-m", "llmrelay.proxy", "--config", str(config), "--port", "0"],
                               env=env, stderr=subprocess.PIPE, text=True)
    gw_url = None
    for line in gateway.stderr:
        if "listening on" in line:
            gw_url = line.split("listening on ")[1].split()[0]
            break
    if gw_url is None:
        raise RuntimeError("gateway did not start")
    while True:
        try:
            urllib.request.urlopen(gw_url + "/health/liveliness", timeout=1).read()
            break
        except OSError:
            time.sleep(0.01)
    startup = time.perf_counter() - t0
    # the rest of the gateway's stderr (one log line per request) goes to a file
    threading.Thread(target=shutil.copyfileobj, args=(gateway.stderr, log), daemon=True).start()
    return gateway, gw_url, startup


# ============================================================ paced streams (issue 18)
def _paced_part(argv: list[str]) -> None:
    """Run one paced-benchmark process (see ``bench/_paced.py``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _paced

    kind, *rest = argv
    if kind == "upstream":
        _paced.run_upstream(rest[0])
    elif kind == "floor":
        _paced.run_floor(rest[0], int(rest[1]))
    else:
        host, port, path, conc, seconds = rest
        _paced.run_loadgen(host, int(port), path, int(conc), float(seconds),
                           os.environ.get("BENCH_KEY", "sk-bench"))


def _paced_cell(port: int, path: str, conc: int, seconds: float, pid: int | None) -> dict:
    """One load-generator run; the target's CPU is read exactly over the measured window."""
    proc = subprocess.Popen([PY, __file__, "--paced-part", "loadgen", "127.0.0.1", str(port), path, str(conc),
                             str(seconds)], stdout=subprocess.PIPE, text=True)
    cpu0 = cpu1 = 0.0
    rss = 0.0
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() == "start":
        cpu0 = _cpu(pid) if pid else 0.0
        import threading

        sampling = True

        def sample() -> None:
            nonlocal rss
            while sampling:
                rss = max(rss, _rss_mib(pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True) if pid else None
        if sampler:
            sampler.start()
        line = proc.stdout.readline()
        cpu1 = _cpu(pid) if pid else 0.0
        sampling = False
    result = json.loads(proc.stdout.readline() or "{}")
    proc.wait()
    result.update(cpu=cpu1 - cpu0, rss=rss)
    return result


def main_paced(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _paced

    concs = [64, 512] if args.quick and args.paced_conc == "64,256,512" else [int(c) for c in args.paced_conc.split(",")]
    seconds = 2.0 if args.quick else 3.0
    tmp = Path(tempfile.mkdtemp(prefix="bench_paced_"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    procs: list[subprocess.Popen] = []
    try:
        upstream = subprocess.Popen([PY, __file__, "--paced-part", "upstream", str(tmp / "up")], env=env)
        procs.append(upstream)
        up_port = _wait_port(tmp / "up", upstream)
        floor = subprocess.Popen([PY, __file__, "--paced-part", "floor", str(tmp / "floor"), str(up_port)], env=env)
        procs.append(floor)
        floor_port = _wait_port(tmp / "floor", floor)
        gateway, gw_url, startup = _start_gateway(tmp, env, up_port)
        procs.append(gateway)
        gw_port = int(gw_url.rsplit(":", 1)[1].split("/")[0])
        time.sleep(0.3)
        idle = {"floor": _rss_mib(floor.pid), "llmrelay": _rss_mib(gateway.pid)}
        path = "/v1/chat/completions"
        targets = [("direct", up_port, None), ("floor", floor_port, floor.pid), ("llmrelay", gw_port, gateway.pid)]
        print(f"\npaced streams: {_paced.FRAMES} chunks/stream, one every {_paced.GAP * 1000:g} ms, "
              f"{seconds:g} s per cell, 1 gateway worker (startup {startup * 1000:.0f} ms); "
              f"idle RSS floor {idle['floor']:.1f} MiB, llmrelay {idle['llmrelay']:.1f} MiB; "
              f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
        head = ("run", "C", "target", "chunks/s", "vs direct", "TTFT p50 ms", "TTFT p99 ms", "+TTFT p50 ms",
                "+TTFT p99 ms", "CPU/chunk µs", "vs floor", "CPU % core", "RSS MiB", "errors")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head), flush=True)
        for run in range(1, args.repeat + 1):
            for conc in concs:
                res = {name: _paced_cell(port, path, conc, seconds, pid) for name, port, pid in targets}
                d = res["direct"]
                d_rate = d["frames"] / d["wall"] if d.get("wall") else float("nan")
                floor_pc = res["floor"]["cpu"] / res["floor"]["frames"] * 1e6 if res["floor"].get("frames") else float("nan")
                for name, _, pid in targets:
                    r = res[name]
                    if not r.get("frames"):
                        print(f"| {run} | {conc} | {name} | 0 | - | - | - | - | - | - | - | - | - | {r.get('errors', '?')} |")
                        continue
                    rate = r["frames"] / r["wall"]
                    per_chunk = r["cpu"] / r["frames"] * 1e6 if pid else float("nan")
                    cells = [run, conc, name, f"{rate:.0f}", f"{rate / d_rate:.2f}",
                             f"{_pct(r['ttft'], .5) * 1000:.2f}", f"{_pct(r['ttft'], .99) * 1000:.2f}",
                             "-" if name == "direct" else f"{(_pct(r['ttft'], .5) - _pct(d['ttft'], .5)) * 1000:.2f}",
                             "-" if name == "direct" else f"{(_pct(r['ttft'], .99) - _pct(d['ttft'], .99)) * 1000:.2f}",
                             "-" if not pid else f"{per_chunk:.1f}",
                             "-" if not pid else f"{per_chunk / floor_pc:.2f}",
                             "-" if not pid else f"{r['cpu'] / r['wall'] * 100:.0f}",
                             "-" if not pid else f"{r['rss']:.1f}", r["errors"]]
                    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        stop(procs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--conc", default="1,16,64")
    parser.add_argument("--upstream", nargs=2, metavar=("PORT_FILE", "CHUNKS"))
    parser.add_argument("--loadgen", nargs=4, metavar=("URL", "MODE", "C", "SECONDS"))
    parser.add_argument("--paced", action="store_true",
                        help="paced streams (50 chunks, one every 20 ms) at --paced-conc, vs a byte-relay floor")
    parser.add_argument("--paced-conc", default="64,256,512")
    parser.add_argument("--quick", action="store_true", help="paced: C=64,512 and 2 s cells")
    parser.add_argument("--repeat", type=int, default=1, help="paced: run the whole table this many times")
    parser.add_argument("--paced-part", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.paced_part:
        return _paced_part(args.paced_part)
    if args.paced:
        return main_paced(args)
    if args.upstream:
        return run_upstream(args.upstream[0], int(args.upstream[1]))
    if args.loadgen:
        url, mode, conc, seconds = args.loadgen
        return run_loadgen(url, mode, int(conc), float(seconds))

    tmp = Path(tempfile.mkdtemp(prefix="bench_proxy_"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    port_file = tmp / "port"
    upstream = subprocess.Popen([PY, __file__, "--upstream", str(port_file), str(args.chunks)], env=env)
    gateway = None
    try:
        up_port = _wait_port(port_file, upstream)
        gateway, gw_url, startup = _start_gateway(tmp, env, up_port)
        time.sleep(0.3)
        idle_rss = _rss_mib(gateway.pid)
        rows = []
        cells = [(mode, int(c)) for mode in ("stream", "nonstream") for c in args.conc.split(",")]
        cells.append(("paced", 1))
        for mode, conc in cells:
            direct, _, _ = _loadgen(f"http://127.0.0.1:{up_port}/v1/chat/completions", mode, conc,
                                    args.seconds, None)
            via, cpu, rss = _loadgen(f"{gw_url}/v1/chat/completions", mode, conc, args.seconds, gateway.pid)
            rows.append((mode, conc, direct, via, cpu, rss))
        translated = []
        for mode, (path, _) in TRANSLATED.items():
            via, cpu, _ = _loadgen(f"{gw_url}{path}", "stream", 16, args.seconds, gateway.pid)
            translated.append((mode, via, cpu))
        print(f"\nllmrelay gateway benchmark: 1 worker, {args.seconds:g}s per cell, streaming = {args.chunks} "
              f"chunks/response; startup {startup * 1000:.0f} ms; idle RSS {idle_rss:.1f} MiB\n")
        head = ("mode", "C", "direct req/s", "gw req/s", "ratio", "direct chunk/s", "gw chunk/s",
                "+TTFT p50 ms", "+TTFT p99 ms", "+lat p50 ms", "+lat p99 ms", "CPU/req µs", "CPU/chunk µs",
                "RSS load MiB", "errors")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for mode, conc, d, g, cpu, rss in rows:
            d_rps, g_rps = d["n"] / d["wall"], g["n"] / g["wall"]
            per_req = cpu / g["n"] * 1e6 if g["n"] else float("nan")
            per_chunk = cpu / g["chunks"] * 1e6 if g["chunks"] else float("nan")
            cells = [
                mode, conc, f"{d_rps:.0f}", f"{g_rps:.0f}", f"{g_rps / d_rps:.2f}",
                f"{d['chunks'] / d['wall']:.0f}" if mode != "nonstream" else "-",
                f"{g['chunks'] / g['wall']:.0f}" if mode != "nonstream" else "-",
                f"{(_pct(g['ttft'], .5) - _pct(d['ttft'], .5)) * 1000:.2f}",
                f"{(_pct(g['ttft'], .99) - _pct(d['ttft'], .99)) * 1000:.2f}",
                f"{(_pct(g['lat'], .5) - _pct(d['lat'], .5)) * 1000:.2f}",
                f"{(_pct(g['lat'], .99) - _pct(d['lat'], .99)) * 1000:.2f}",
                f"{per_req:.0f}", f"{per_chunk:.1f}" if mode != "nonstream" else "-",
                f"{rss:.1f}", d["errors"] + g["errors"],
            ]
            print("| " + " | ".join(str(c) for c in cells) + " |")
        base = next(((g, cpu) for mode, conc, _, g, cpu, _ in rows if mode == "stream" and conc == 16), None)
        if base is not None and base[0]["n"]:
            per_chunk = base[1] / (base[0]["n"] * args.chunks) * 1e6
            print(f"\ntranslated streams (C=16): gateway CPU per upstream chunk vs chat pass-through "
                  f"({per_chunk:.1f} µs)\n")
            print("| API | gw req/s | client frames/req | CPU/upstream chunk µs | ratio to chat | errors |")
            print("|---|---|---|---|---|---|")
            for mode, g, cpu in translated:
                if not g["n"]:
                    print(f"| {mode} | 0 | - | - | - | {g['errors']} |")
                    continue
                mine = cpu / (g["n"] * args.chunks) * 1e6
                print(f"| {mode} | {g['n'] / g['wall']:.0f} | {g['chunks'] / g['n']:.0f} | {mine:.1f} | "
                      f"{mine / per_chunk:.2f} | {g['errors']} |")
    finally:
        stop([upstream, gateway])


if __name__ == "__main__":
    main()
