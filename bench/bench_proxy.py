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
512 concurrent streams against four targets measured in the same run (``bench/_paced.py``): the
upstream directly, a byte-relay floor (uvloop, no parsing), the bare gateway and the governed
gateway (a generated virtual key with budget and rpm/tpm/parallel limits, spend logged to the
default SQLite database, ``callbacks: [prometheus, otel]`` exporting to a loopback OTLP/HTTP
sink). Each cell is run in ``--repeat`` interleaved rounds (the targets' order rotates) and the
medians are reported: chunks/s and its ratio to direct, TTFT p50/p99 and added TTFT vs direct,
relay CPU per chunk over the measured window and its ratio to the floor's (and governed / bare),
share of a core, event-loop sleeps (main-thread voluntary context switches) and preemptions per
chunk, peak sampled RSS; then the peak RSS over the run (VmHWM), a C=1 burst cell (the upstream
writes all 200 chunks in one write: added TTFT p50/p99) and, with ``--syscalls``, syscalls per
chunk of each relay under ``strace -c -f`` and ``perf stat``. ``--quick``: C = 64, 512, 2 s
cells, one round; ``--pin``: relays on CPU 0, upstream and load generator on CPU 1.

    PYTHONPATH=src python bench/bench_proxy.py --paced [--quick] [--repeat 3] [--paced-conc 64,256,512]
        [--pin] [--syscalls] [--include-usage] [--no-governed] [--split-governed] [--no-burst]
        [--herd] [--baseline-src TREE] [--nice -10]
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

from _common import rss_mib, start_gateway, stop  # bench/ is on sys.path when run as a script

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


def _cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far, all threads (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK, int(fields[12]) / CLK


def _cpu(pid: int) -> float:
    return sum(_cpu_split(pid))


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
            rss[0] = max(rss[0], rss_mib(target_pid))
        time.sleep(0.1)
    out_file.seek(0)
    out = out_file.read()
    cpu = (_cpu(target_pid) - cpu0) if target_pid else 0.0
    return json.loads(out), cpu, rss[0]


def _start_gateway(tmp: Path, env: dict, up_port: int, name: str = "gateway", model_extra: str = "",
                   extra: str = "", pin: list[str] | None = None) -> tuple[subprocess.Popen, str, float]:
    """Start one gateway process as ``llmrelay proxy --config`` does, in front of ``up_port``;
    ``model_extra`` is added to the deployment's ``litellm_params``, ``extra`` to the config,
    ``pin`` prefixes the command (``taskset -c N``)."""
    config = tmp / f"{name}.yaml"
    config.write_text(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: http://127.0.0.1:{up_port}/v1\n      api_key: sk-upstream\n" + model_extra
        + "general_settings:\n  master_key: sk-bench\n" + extra
    )
    t0 = time.perf_counter()
    # the rest of the gateway's stderr (one log line per request) goes to a file
    gateway, gw_url = start_gateway(config, env, log_level=None, log=tmp / f"{name}.log", pin=pin or ())
    startup = time.perf_counter() - t0
    return gateway, gw_url, startup


# ============================================================ paced streams (issue 18)
MASTER = "sk-bench"
#: Prices on the governed gateways' deployment, so they compute spend (the bare one, as the issue's
#: default command, has none: the price is part of what spend tracking costs).
PRICED = "      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n"
#: What the governed gateway adds to the bare one's config: Prometheus + OpenTelemetry callbacks
#: (its keys, limits and spend come from the default SQLite database and a generated key).
GOVERNED = "litellm_settings:\n  callbacks: [prometheus, otel]\n"


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
        host, port, path, conc, seconds, flags = rest
        _paced.run_loadgen(host, int(port), path, int(conc), float(seconds),
                           os.environ.get("BENCH_KEY", MASTER), burst="burst" in flags, usage="usage" in flags,
                           herd="herd" in flags)


def _main_thread_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of ``pid``'s main thread: the event loop's.

    A voluntary switch is the loop blocking in ``epoll_wait`` with nothing ready (a wake-up that
    slept); loop turns that find events ready at once are not counted. Involuntary ones are
    preemptions (the machine's other work)."""
    vol = invol = 0
    with open(f"/proc/{pid}/task/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                vol = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                invol = int(line.split()[1])
    return vol, invol


def _vm_hwm_mib(pid: int) -> float:
    """Peak resident set size of ``pid`` so far (``VmHWM``), MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _Probe:
    """Counts a relay's syscalls while a load generator runs: ``strace -c -f`` (per syscall name;
    slows the traced process a lot, so its cell is not a CPU/latency figure) or ``perf stat``
    (totals only, from kernel tracepoints: far cheaper)."""

    def __init__(self, tool: str, out: Path) -> None:
        self.tool, self.out = tool, out
        self.proc: subprocess.Popen | None = None

    def attach(self, pid: int) -> None:
        if self.tool == "strace":
            cmd = ["strace", "-c", "-f", "-q", "-o", str(self.out), "-p", str(pid)]
        else:
            cmd = ["perf", "stat", "-x", ",", "-o", str(self.out), "-e", "raw_syscalls:sys_enter,context-switches",
                   "-p", str(pid)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached (all threads) before the load generator connects

    def detach(self) -> dict[str, int]:
        import signal

        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)
        counts: dict[str, int] = {}
        text = self.out.read_text() if self.out.exists() else ""
        for line in text.splitlines():
            parts = line.split(",") if self.tool == "perf" else line.split()
            if self.tool == "perf" and len(parts) > 2 and parts[0].strip().isdigit():
                counts[parts[2]] = int(parts[0])
            elif self.tool == "strace" and len(parts) >= 5 and parts[3].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3])
        return counts


def _paced_cell(port: int, path: str, conc: int, seconds: float, pid: int | None, *, key: str = MASTER,
                flags: str = "paced", pin: list[str] | None = None, probe: _Probe | None = None) -> dict:
    """One load-generator run; the target's CPU, main-thread context switches and RSS are read
    exactly over the measured window (a ``probe`` spans the whole run, warm-up included)."""
    import threading

    if probe is not None and pid:
        probe.attach(pid)
    load = os.getloadavg()[0]
    proc = subprocess.Popen([*(pin or []), PY, __file__, "--paced-part", "loadgen", "127.0.0.1", str(port), path,
                             str(conc), str(seconds), flags], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, BENCH_KEY=key))
    cpu = rss = user = system = 0.0
    vol = invol = 0
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() == "start":
        if pid:
            (user0, system0), (vol0, invol0) = _cpu_split(pid), _main_thread_switches(pid)
            sampling = True

            def sample() -> None:
                nonlocal rss
                while sampling:
                    rss = max(rss, rss_mib(pid))
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
        line = proc.stdout.readline()
        if pid:
            (user, system), (vol, invol) = _cpu_split(pid), _main_thread_switches(pid)
            user, system, vol, invol = user - user0, system - system0, vol - vol0, invol - invol0
            cpu = user + system
            sampling = False
    result = json.loads(proc.stdout.readline() or "{}")
    if proc.wait() != 0 or not result:
        print(f"load generator failed (exit status {proc.returncode}) against port {port}", file=sys.stderr)
        result = {"errors": 1}
    result.update(cpu=cpu, user=user, system=system, rss=rss, sleeps=vol, preempted=invol, load=load)
    if probe is not None and pid:
        result["syscalls"] = probe.detach()
    return result


def _median(values: list[float]) -> float:
    import statistics

    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def _post_json(url: str, body: dict) -> dict:
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _get_text(url: str) -> str:
    import urllib.request

    req = urllib.request.Request(url, headers={"authorization": f"Bearer {MASTER}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def _start_paced(tmp: Path, env: dict, pin_relay: list[str], pin_load: list[str], governed: bool,
                 split: bool = False, baseline: str | None = None
                 ) -> tuple[list[subprocess.Popen], list[dict], dict]:
    """Upstream, floor, bare gateway, (``baseline``) the bare gateway from that source tree,
    (``governed``) the governed gateway with its key and (``split``) one with keys, limits and
    spend but no callbacks; the processes, the targets (name, port, pid, bearer) and facts for
    the report."""
    procs: list[subprocess.Popen] = []
    facts: dict = {}
    upstream = subprocess.Popen([*pin_load, PY, __file__, "--paced-part", "upstream", str(tmp / "up")], env=env)
    procs.append(upstream)
    up_port = _wait_port(tmp / "up", upstream)
    floor = subprocess.Popen([*pin_relay, PY, __file__, "--paced-part", "floor", str(tmp / "floor"), str(up_port)],
                             env=env)
    procs.append(floor)
    floor_port = _wait_port(tmp / "floor", floor)
    targets = [{"name": "direct", "port": up_port, "pid": None, "key": MASTER},
               {"name": "floor", "port": floor_port, "pid": floor.pid, "key": MASTER}]
    # Each gateway has its own data directory: the bare one finds no database there.
    bare_env = dict(env, LLMRELAY_DATA_DIR=str(tmp / "bare-data"))
    gateway, url, facts["startup"] = _start_gateway(tmp, bare_env, up_port, name="llmrelay", pin=pin_relay)
    procs.append(gateway)
    targets.append({"name": "llmrelay", "port": int(url.rsplit(":", 1)[1].split("/")[0]), "pid": gateway.pid,
                    "key": MASTER, "url": url})
    if baseline:
        # the same bare gateway from another source tree (an older commit): before/after in one run
        base_env = dict(env, LLMRELAY_DATA_DIR=str(tmp / "base-data"),
                        PYTHONPATH=str(Path(baseline) / "src") + os.pathsep + env.get("PYTHONPATH", ""))
        base, base_url, _ = _start_gateway(tmp, base_env, up_port, name="llmrelay@base", pin=pin_relay)
        procs.append(base)
        targets.append({"name": "llmrelay@base", "port": int(base_url.rsplit(":", 1)[1].split("/")[0]),
                        "pid": base.pid, "key": MASTER, "url": base_url})
    variants = ([("llmrelay+keys", "")] if split else []) + ([("llmrelay+gov", GOVERNED)] if governed else [])
    if governed:
        from _common import start_otlp_sink

        facts["sink"], sink_url = start_otlp_sink()
    for name, extra in variants:
        gov_env = dict(env, LLMRELAY_DATA_DIR=str(tmp / f"{name}-data"))
        if extra:
            gov_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
        gov, gov_url, _ = _start_gateway(tmp, gov_env, up_port, name=name, model_extra=PRICED, extra=extra,
                                         pin=pin_relay)
        procs.append(gov)
        # The first key creates the default SQLite database: keys, budgets, limits, spend log.
        key = _post_json(gov_url + "/key/generate", {
            "models": ["gpt-4o-mini"], "max_budget": 1e9, "budget_duration": "1d", "rpm_limit": 10**9,
            "tpm_limit": 10**12, "max_parallel_requests": 10**6, "metadata": {"bench": "paced"}})["key"]
        targets.append({"name": name, "port": int(gov_url.rsplit(":", 1)[1].split("/")[0]),
                        "pid": gov.pid, "key": key, "url": gov_url})
    return procs, targets, facts


def _cell_metrics(r: dict, d: dict, floor: dict | None, bare: dict | None, pid: int | None) -> dict:
    """One target's figures of one round, with the ratios to the same round's direct/floor/bare."""
    def rate(x: dict) -> float:
        return x["frames"] / x["wall"] if x.get("frames") and x.get("wall") else float("nan")

    def per_chunk(x: dict | None) -> float:
        return x["cpu"] / x["frames"] * 1e6 if x and x.get("frames") and x.get("cpu") else float("nan")

    m = {"rate": rate(r), "vs_direct": rate(r) / rate(d), "errors": r.get("errors", 0),
         "p50": _pct(r.get("ttft", []), .5) * 1e3, "p99": _pct(r.get("ttft", []), .99) * 1e3,
         "add50": (_pct(r.get("ttft", []), .5) - _pct(d.get("ttft", []), .5)) * 1e3,
         "add99": (_pct(r.get("ttft", []), .99) - _pct(d.get("ttft", []), .99)) * 1e3,
         "cpu": float("nan"), "vs_floor": float("nan"), "vs_bare": float("nan"), "core": float("nan"),
         "rss": float("nan"), "sleeps": float("nan"), "preempted": float("nan"), "user": float("nan"),
         "system": float("nan"), "load": r.get("load", float("nan"))}
    if pid and r.get("frames"):
        m.update(cpu=per_chunk(r), vs_floor=per_chunk(r) / per_chunk(floor), vs_bare=per_chunk(r) / per_chunk(bare),
                 core=r["cpu"] / r["wall"] * 100, rss=r["rss"], user=r.get("user", 0.0) / r["frames"] * 1e6,
                 system=r.get("system", 0.0) / r["frames"] * 1e6, sleeps=r["sleeps"] / r["frames"],
                 preempted=r["preempted"] / r["frames"])
    return m


#: Cells with failed requests (their gateway logs are then kept, whatever --keep-logs says).
_FAILED: list[str] = []


def _run_table(cells: list[int], rounds: int, targets: list[dict], seconds: float, flags: str,
               pin_load: list[str], label: str) -> dict[tuple[int, str], list[dict]]:
    """``rounds`` interleaved rounds per concurrency (the targets' order rotates each round);
    every cell's figures, printed as they come."""
    path = "/v1/chat/completions"
    out: dict[tuple[int, str], list[dict]] = {}
    for conc in cells:
        for rnd in range(rounds):
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            res = {t["name"]: _paced_cell(t["port"], path, conc, seconds, t["pid"], key=t["key"], flags=flags,
                                          pin=pin_load) for t in order}
            for t in targets:
                m = _cell_metrics(res[t["name"]], res["direct"], res.get("floor"), res.get("llmrelay"), t["pid"])
                out.setdefault((conc, t["name"]), []).append(m)
                print(f"  {label} C={conc} round {rnd + 1} {t['name']:>12}: {_fmt(m['rate'], 0)} chunks/s "
                      f"({_fmt(m['vs_direct'], 2)}× direct), TTFT p50/p99 {_fmt(m['p50'], 2)}/{_fmt(m['p99'], 2)} ms, "
                      f"CPU/chunk {_fmt(m['cpu'])} µs (user {_fmt(m['user'])}, sys {_fmt(m['system'])}), load {m['load']:.1f}, errors {m['errors']}",
                      file=sys.stderr, flush=True)
                if m["errors"]:
                    _FAILED.append(f"{label} C={conc} round {rnd + 1} {t['name']}")
                for f in res[t["name"]].get("failures", []):
                    print(f"    failed request: status {f['status']} at {f['at']:.3f}: {f['detail']}",
                          file=sys.stderr, flush=True)
    return out


def _print_table(table: dict[tuple[int, str], list[dict]], cells: list[int], targets: list[dict]) -> None:
    head = ("C", "target", "chunks/s", "vs direct", "TTFT p50 ms", "TTFT p99 ms", "+TTFT p50 ms", "+TTFT p99 ms",
            "CPU/chunk µs", "user / sys µs", "vs floor", "vs bare", "% core", "loop sleeps/chunk", "preempted/chunk", "RSS MiB",
            "errors")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for conc in cells:
        for t in targets:
            ms = table[(conc, t["name"])]
            med = {k: _median([m[k] for m in ms]) for k in ms[0]}
            relay = t["pid"] is not None
            row = [conc, t["name"], _fmt(med["rate"], 0), _fmt(med["vs_direct"], 2), _fmt(med["p50"], 2),
                   _fmt(med["p99"], 2),
                   "-" if t["name"] == "direct" else _fmt(med["add50"], 2),
                   "-" if t["name"] == "direct" else _fmt(med["add99"], 2),
                   _fmt(med["cpu"]) if relay else "-",
                   f"{_fmt(med['user'])} / {_fmt(med['system'])}" if relay else "-",
                   _fmt(med["vs_floor"], 2) if relay else "-",
                   _fmt(med["vs_bare"], 3) if t["name"].startswith(("llmrelay+", "llmrelay@")) else "-",
                   _fmt(med["core"], 0) if relay else "-", _fmt(med["sleeps"], 2) if relay else "-",
                   _fmt(med["preempted"], 3) if relay else "-",
                   _fmt(max((m["rss"] for m in ms if m["rss"] == m["rss"]), default=float("nan"))) if relay else "-", sum(m["errors"] for m in ms)]
            print("| " + " | ".join(str(c) for c in row) + " |", flush=True)


def _print_governance_cost(table: dict[tuple[int, str], list[dict]], cells: list[int], targets: list[dict],
                           chunks: int) -> None:
    """What the keyed/governed gateways spend more than the bare one, per request: the per-round
    difference in CPU per chunk times the chunks of a stream (median over rounds). Work done once
    per request shows the same here in the paced and the burst cells; work per chunk would not."""
    parts = []
    for conc in cells:
        for t in targets:
            if not t["name"].startswith("llmrelay+"):
                continue
            deltas = [(m["cpu"] - m["cpu"] / m["vs_bare"]) * chunks for m in table[(conc, t["name"])]]
            parts.append(f"{t['name']} C={conc}: {_fmt(_median(deltas), 0)} µs")
    if parts:
        print(f"CPU per request over the bare gateway (Δ CPU/chunk × {chunks} chunks): " + ", ".join(parts))


def _syscall_cells(targets: list[dict], conc: int, seconds: float, flags: str, pin_load: list[str], tmp: Path
                   ) -> None:
    """Syscalls per relayed chunk for each relay: ``strace -c -f`` (by name) and, if ``perf`` is
    here, ``perf stat`` (total syscalls and context switches, all threads)."""
    import shutil

    tools = [t for t in ("strace", "perf") if shutil.which(t)]
    if not tools:
        print("\nsyscalls: neither strace nor perf on this machine; see the loop sleeps/chunk column "
              "(main-thread voluntary context switches) for loop wake-ups")
        return
    print(f"\nsyscalls per relayed chunk, C={conc}, {seconds:g} s, the probe attached over the whole load-generator "
          f"run (warm-up included: per-connection and per-request syscalls are amortised as in the table); "
          f"strace slows the traced process, so only its counts are figures, not its CPU\n")
    rows = []
    for t in targets:
        if t["pid"] is None:
            continue
        row = {"name": t["name"]}
        for tool in tools:
            r = _paced_cell(t["port"], "/v1/chat/completions", conc, seconds, t["pid"], key=t["key"], flags=flags,
                            pin=pin_load, probe=_Probe(tool, tmp / f"{tool}-{t['name']}.txt"))
            row[tool] = (r.get("syscalls", {}), r.get("all_frames", 0), r.get("errors", 0))
        rows.append(row)
    if "strace" in tools:
        print("| relay | syscalls/chunk | read/recv | write/send | epoll waits (loop wake-ups) | other | "
              "top others (per chunk) | chunks | errors |")
        print("|---|---|---|---|---|---|---|---|---|")
        for row in rows:
            counts, frames, errors = row["strace"]
            if not frames:
                print(f"| {row['name']} | - | - | - | - | - | - | 0 | {errors} |")
                continue
            groups = {"read": ("read", "recvfrom", "recvmsg", "readv"),
                      "write": ("write", "sendto", "sendmsg", "writev"),
                      "epoll": ("epoll_wait", "epoll_pwait", "epoll_pwait2")}
            grouped = {g: sum(counts.get(n, 0) for n in names) for g, names in groups.items()}
            total = sum(counts.values())
            others = sorted(((c, n) for n, c in counts.items()
                             if not any(n in names for names in groups.values())), reverse=True)[:4]
            print(f"| {row['name']} | {total / frames:.2f} | {grouped['read'] / frames:.2f} | "
                  f"{grouped['write'] / frames:.2f} | {grouped['epoll'] / frames:.2f} | "
                  f"{(total - sum(grouped.values())) / frames:.2f} | "
                  + ", ".join(f"{n} {c / frames:.3f}" for c, n in others) + f" | {frames} | {errors} |")
    if "perf" in tools:
        print("\n| relay | syscalls/chunk (perf) | context switches/chunk (all threads) | chunks |")
        print("|---|---|---|---|")
        for row in rows:
            counts, frames, _ = row["perf"]
            sys_n = counts.get("raw_syscalls:sys_enter")
            cs = counts.get("context-switches")
            print(f"| {row['name']} | {_fmt(sys_n / frames if sys_n and frames else float('nan'), 2)} | "
                  f"{_fmt(cs / frames if cs and frames else float('nan'), 2)} | {frames} |")


def main_paced(args: argparse.Namespace) -> None:
    import shutil

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _paced

    quick_default = args.quick and args.paced_conc == "64,256,512"
    concs = [64, 512] if quick_default else [int(c) for c in args.paced_conc.split(",")]
    seconds = 2.0 if args.quick else 3.0
    rounds = args.repeat or (1 if args.quick else 3)
    pin_relay = pin_load = []
    if args.pin:
        if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
            print("--pin: needs taskset and 2 CPUs; not pinning", file=sys.stderr)
        else:
            pin_relay, pin_load = ["taskset", "-c", "0"], ["taskset", "-c", "1"]
    if args.nice:
        if not os.path.exists("/proc/self/autogroup") or (args.nice < 0 and os.geteuid() != 0):
            print("--nice: needs /proc/<pid>/autogroup (and root below 0); not changing priorities", file=sys.stderr)
        else:
            # With autogroup scheduling (CONFIG_SCHED_AUTOGROUP) each session shares the CPUs
            # fairly with the others and a process's own nice value only counts inside its
            # session, so each benchmark process gets a session of its own at this nice value.
            prio = [PY, "-c", "import os, sys; os.setsid(); open('/proc/self/autogroup', 'w').write(sys.argv[1]); "
                    "os.execvp(sys.argv[2], sys.argv[2:])", str(args.nice)]
            pin_relay, pin_load = prio + pin_relay, prio + pin_load
    tmp = Path(tempfile.mkdtemp(prefix="bench_paced_"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    flags = ",".join(["paced"] + ["usage"] * args.include_usage + ["herd"] * args.herd)
    procs: list[subprocess.Popen] = []
    facts: dict = {}
    try:
        procs, targets, facts = _start_paced(tmp, env, pin_relay, pin_load, governed=not args.no_governed,
                                             split=args.split_governed, baseline=args.baseline_src)
        if args.paced_only:
            # "direct" stays: every cell's ratios are to it
            only = set(args.paced_only.split(",")) | {"direct"}
            targets = [t for t in targets if t["name"] in only]
        time.sleep(0.3)
        idle = {t["name"]: rss_mib(t["pid"]) for t in targets if t["pid"]}
        # warm-up: imports, tokenizers, connection pools, the key's cache entry
        for t in targets:
            if t["pid"]:
                _paced_cell(t["port"], "/v1/chat/completions", min(concs), 0.5, None, key=t["key"], flags=flags,
                            pin=pin_load)
        load0 = os.getloadavg()
        print(f"\npaced streams: {_paced.FRAMES} chunks/stream, one every {_paced.GAP * 1000:g} ms, {seconds:g} s "
              f"per cell, {rounds} interleaved round(s) (medians below), 1 gateway worker each (startup "
              f"{facts['startup'] * 1000:.0f} ms), include_usage {'asked' if args.include_usage else 'not asked'}, "
              f"stream starts spread over {'one gap (herd)' if args.herd else 'one stream duration'}"
              f"{', pinned: relays on CPU 0, upstream + load generator on CPU 1' if 'taskset' in pin_relay else ''}"
              f"{f', each of its processes in its own session at autogroup nice {args.nice}' if args.nice and PY in pin_relay else ''}; idle RSS "
              + ", ".join(f"{n} {v:.1f} MiB" for n, v in idle.items())
              + f"; load average {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} on {os.cpu_count()} CPUs\n",
              flush=True)
        table = _run_table(concs, rounds, targets, seconds, flags, pin_load, "paced")
        loads = [m["load"] for ms in table.values() for m in ms]
        _print_table(table, concs, targets)
        _print_governance_cost(table, concs, targets, _paced.FRAMES)
        print(f"\nload average (1 min) at the cells' starts: median {_median(loads):.1f}, "
              f"{min(loads):.1f}–{max(loads):.1f} (this benchmark's own processes add up to ~2)")
        print("peak RSS over the run (VmHWM, at most " + str(max(concs)) + " open streams): "
              + ", ".join(f"{t['name']} {_vm_hwm_mib(t['pid']):.1f} MiB" for t in targets if t["pid"])
              + "  (target ≤ 150 MiB at 512)", flush=True)

        if not args.no_burst:
            burst = _run_table([1], rounds, targets, seconds, "burst", pin_load, "burst")
            print(f"\nburst cell, C=1: the upstream writes all {_paced.BURST_FRAMES} chunks of a stream in one write; "
                  f"added TTFT vs direct (target ≤ 1 ms), medians of {rounds} round(s)\n")
            _print_table(burst, [1], targets)
            _print_governance_cost(burst, [1], targets, _paced.BURST_FRAMES)

        if args.syscalls:
            _syscall_cells(targets, args.syscalls_conc, seconds, flags, pin_load, tmp)

        governed = [t for t in targets if t["name"].startswith("llmrelay+")]
        if governed:
            time.sleep(1.0)  # the last spend batch
            print("\nllmrelay+gov: a generated key with budget + rpm/tpm/parallel limits, spend logged to the default "
                  "SQLite database, callbacks: [prometheus, otel] (spans exported over OTLP/HTTP to a loopback "
                  "sink); llmrelay+keys (--split-governed): the same without the callbacks. Sanity, warm-up "
                  "included:")
        for t in governed:
            spend = json.loads(_get_text(t["url"] + "/spend/logs?limit=10000"))
            line = f"  {t['name']}: {'≥ ' if len(spend) >= 10000 else ''}{len(spend)} spend rows"
            if t["name"] == "llmrelay+gov":
                metrics = _get_text(t["url"] + "/metrics")
                counted = sum(float(m.rsplit(" ", 1)[1]) for m in metrics.splitlines()
                              if m.startswith("litellm_proxy_total_requests_metric_total"))
                line += f", {counted:.0f} requests counted by Prometheus"
            print(line)
        la = os.getloadavg()
        print(f"load average at the end: {la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f}")
    finally:
        stop(procs)
        if facts.get("sink") is not None:
            facts["sink"].shutdown()
        if args.keep_logs or _FAILED:
            print(f"gateway logs and data kept in {tmp}"
                  + (f" (failed requests in: {', '.join(_FAILED)})" if _FAILED else ""), file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


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
    parser.add_argument("--quick", action="store_true", help="paced: C=64,512, 2 s cells, one round")
    parser.add_argument("--repeat", type=int, default=0,
                        help="paced: interleaved rounds per cell, medians reported (default 3, --quick 1)")
    parser.add_argument("--pin", action="store_true",
                        help="paced: relays on CPU 0, upstream and load generator on CPU 1 (taskset)")
    parser.add_argument("--nice", type=int, default=0,
                        help="paced: run upstream, relays and load generator each in its own session at this "
                             "autogroup nice value (e.g. -10 as root: the machine's other work then waits instead of "
                             "the benchmark; it slows everything else down while it runs)")
    parser.add_argument("--no-governed", action="store_true",
                        help="paced: without the governed gateway (keys, limits, spend, Prometheus + OTel)")
    parser.add_argument("--split-governed", action="store_true",
                        help="paced: also a gateway with keys, limits and spend but no callbacks (llmrelay+keys)")
    parser.add_argument("--baseline-src", metavar="TREE",
                        help="paced: also the bare gateway from TREE/src (e.g. `git archive OLD src | tar -x -C TREE`), "
                             "as llmrelay@base: before/after in one run")
    parser.add_argument("--no-burst", action="store_true", help="paced: without the C=1 burst cell")
    parser.add_argument("--include-usage", action="store_true",
                        help="paced: clients ask stream_options.include_usage (the upstream then sends usage)")
    parser.add_argument("--herd", action="store_true",
                        help="paced: stream starts spread over one 20 ms gap instead of a stream's duration, "
                             "so each connection's next request arrives with all the others' (a herd per second)")
    parser.add_argument("--syscalls", action="store_true",
                        help="paced: one more cell per relay under strace -c -f / perf stat: syscalls per chunk")
    parser.add_argument("--syscalls-conc", type=int, default=64)
    parser.add_argument("--paced-only", metavar="NAMES",
                        help="paced: measure only these targets (comma-separated, e.g. llmrelay+gov; direct always)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="paced: keep the temporary directory (gateway stderr logs, SQLite databases); "
                             "kept anyway when a request failed")
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
        idle_rss = rss_mib(gateway.pid)
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
