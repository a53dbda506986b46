"""Shared mode benchmark: what Redis-backed limits and the response cache cost and save.

Processes: a fake OpenAI upstream (asyncio, own process), gateways (``python -m llmrelay.proxy``,
one worker each) and this script as a C=1 client (aiohttp), all on this machine, plus the Redis
at ``--redis`` (default 127.0.0.1:6379, DB 12, a fresh key prefix).

1. **Shared limits on vs off** — the same deployment with ``rpm`` and ``tpm``
   (never reached), once counted per instance and once through Redis (one Lua script per
   request plus a background release). Non-streamed requests, interleaved rounds; the report
   is the p50/p99 latency of each and the difference (target: ≤ 0.3 ms added at p50).
2. **Cache hit vs the upstream** — time until ``[DONE]`` of a 200-chunk stream: straight from the
   fake upstream (which pauses ``--gap`` ms between chunks, as a fast model does; and once with
   no pause at all), and from the gateway answering from the Redis cache (target ≥ 5× faster).
3. **Redis capacity** — ``redis-benchmark`` running the limiter's script (3 scopes: key, team,
   deployment), the admission and spend scripts, the routing counters' exchange and the cache's
   GET, pipelined, from 50 clients: the operations per second one
   Redis core carries here, for the capacity model of docs/scaling.md.

    PYTHONPATH=src python bench/bench_shared.py [--requests 1500] [--gap 1.0] [--redis redis://127.0.0.1:6379/12]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import free_port, start_gateway, stop  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


# ============================================================ the fake upstream (own process)
def run_upstream(port: int, chunks: int, gap_ms: float) -> None:
    import json

    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "m"}

    def frame(obj: object) -> bytes:
        data = f"data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()
        return b"%x\r\n%s\r\n" % (len(data), data)

    frames = [frame({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    words = ["Hello", " world", ",", " this", " is", " a", " token", " stream", "."]
    frames += [frame({**base, "choices": [{"index": 0, "delta": {"content": words[i % 9]}}]}) for i in range(chunks - 2)]
    frames.append(frame({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 9, "completion_tokens": chunks, "total_tokens": chunks + 9}}))
    done = b"data: [DONE]\n\n"
    frames.append(b"%x\r\n%s\r\n" % (len(done), done))
    from _openai_head import head_maker  # OpenAI's ~24 response headers

    head = head_maker("text/event-stream; charset=utf-8", "Transfer-Encoding: chunked\r\n")
    body = json.dumps({"id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello world."},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}).encode()
    plain_head = head_maker("application/json", f"Content-Length: {len(body)}\r\n")
    gap = gap_ms / 1000.0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                headers = await reader.readuntil(b"\r\n\r\n")
                m = re.search(rb"content-length:\s*(\d+)", headers, re.I)
                data = await reader.readexactly(int(m.group(1))) if m else b""
                if b'"stream":true' not in data.replace(b" ", b""):
                    writer.write(plain_head() + body)
                    continue
                writer.write(head())
                for f in frames:
                    writer.write(f)
                    if gap and b"[DONE]" not in f:
                        await writer.drain()
                        await asyncio.sleep(gap)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ============================================================ orchestration


def wait_port(port: int) -> None:
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.025)
    raise RuntimeError(f"nothing listens on {port}")


#: Command prefix for every benchmark process (``--nice``): a session of its own at that autogroup nice.
PREFIX: list[str] = []


def use_nice(nice: int) -> None:
    """With autogroup scheduling each session shares the CPUs fairly with the others and a
    process's own nice value only counts inside its session (see docs/proxy.md): give each
    benchmark process a session of its own at ``nice``, and this client's session too."""
    if not os.path.exists("/proc/self/autogroup") or (nice < 0 and os.geteuid() != 0):
        print("--nice: needs /proc/<pid>/autogroup (and root below 0); not changing priorities", file=sys.stderr)
        return
    PREFIX[:] = [PY, "-c", "import os, sys; os.setsid(); open('/proc/self/autogroup', 'w').write(sys.argv[1]); "
                 "os.execvp(sys.argv[2], sys.argv[2:])", str(nice)]
    with open("/proc/self/autogroup", "w") as f:
        f.write(str(nice))


def gateway_config(up: int, *, redis: str | None = None, prefix: str = "", cache: bool = False,
                   database: str | None = None) -> str:
    shared = f'router_settings:\n  redis_url: "{redis}"\n  redis_prefix: "{prefix}:"\n' if redis and not cache else ""
    caching = (f'litellm_settings:\n  cache: true\n  cache_params: {{type: redis, url: "{redis}", '
               f'namespace: "{prefix}"}}\n') if cache else ""
    # with a database: the virtual keys' path (the key's limits and budget), no deployment limits
    limits = "" if database else "      rpm: 100000000\n      tpm: 100000000000\n"
    db = f'  database_url: "{database}"\n' if database else ""
    return (
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
        f"      api_base: http://127.0.0.1:{up}/v1\n      api_key: sk-up\n"
        "      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n"
        f"{limits}general_settings:\n  master_key: sk-bench\n{db}{shared}{caching}"
    )


def virtual_key(base: str) -> str:
    """A key with rpm, tpm and a budget that are never reached (every check runs in full)."""
    import json
    import urllib.request

    body = json.dumps({"rpm_limit": 100000000, "tpm_limit": 100000000000, "max_budget": 1e9}).encode()
    req = urllib.request.Request(base + "/key/generate", data=body, headers={
        "authorization": "Bearer sk-bench", "content-type": "application/json"})
    for attempt in range(100):  # the gateway may still be opening its database
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())["key"]
        except OSError:
            if attempt == 99:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


async def timed(session, url: str, body: bytes, n: int, stream: bool, hit: bool = False,
                key: str = "sk-bench") -> list[float]:
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as resp:
            data = await resp.read()
            if resp.status != 200 or (stream and b"[DONE]" not in data):
                raise RuntimeError(f"bad answer {resp.status}: {data[:200]!r}")
            if hit and resp.headers.get("x-llmrelay-cache") != "hit":
                raise RuntimeError("expected a cache hit")
        out.append(time.perf_counter() - t0)
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] * 1000.0


async def limits_cell(off_url: str, on_url: str, n: int, off_key: str = "sk-bench",
                      on_key: str = "sk-bench") -> tuple[list[float], list[float]]:
    import aiohttp
    import orjson

    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "Hello"}]})
    off: list[float] = []
    on: list[float] = []
    async with aiohttp.ClientSession() as s:
        await timed(s, off_url, body, 50, False, key=off_key)  # warm up both
        await timed(s, on_url, body, 50, False, key=on_key)
        rounds = 10
        for _ in range(rounds):
            off += await timed(s, off_url, body, n // rounds, False, key=off_key)
            on += await timed(s, on_url, body, n // rounds, False, key=on_key)
    return off, on


async def cache_cell(direct_url: str, gw_url: str, n: int) -> tuple[list[float], list[float]]:
    import aiohttp
    import orjson

    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "cache me " + uuid.uuid4().hex}],
                         "stream": True})
    async with aiohttp.ClientSession() as s:
        await timed(s, gw_url, body, 1, True)  # the miss that fills the cache (stored once it ended)
        for _ in range(100):  # its store lands in the background: wait for the first hit
            await asyncio.sleep(0.05)
            try:
                await timed(s, gw_url, body, 1, True, hit=True)
                break
            except RuntimeError:
                pass
        hits = await timed(s, gw_url, body, n, True, hit=True)
        direct = await timed(s, direct_url, body, n, True)
    return direct, hits


def redis_capacity(url: str, prefix: str) -> list[tuple[str, float]]:
    """redis-benchmark: the limiter script and the cache GET, requests/s at 50 clients, pipelined."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return []
    from urllib.parse import urlsplit

    import redis

    from llmrelay.proxy.shared_limits import _SPEND
    from llmrelay.ratelimit import _ACQUIRE
    from llmrelay.routing.shared_usage import _EXCHANGE

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", str(parts.port or 6379)
    db = (parts.path or "/0").strip("/") or "0"
    client = redis.Redis.from_url(url)
    sha = client.script_load(_ACQUIRE)
    spend_sha = client.script_load(_SPEND)
    exchange_sha = client.script_load(_EXCHANGE)
    client.set(f"{prefix}:cache:probe", b"x" * 2000)
    client.close()
    keys = [f"{prefix}:rl:key:k", f"{prefix}:rl:team:t", f"{prefix}:rl:deployment:d"]
    # unlimited numbers: every call takes the full check-and-increment path
    script = ["EVALSHA", sha, "3", *keys, "0", "slot", "600", "3", "0", "0", "1000000000", "0", "0",
              "1000000000", "0", "0", "1000000000", "0", "0"]
    # what a virtual key's request sends: rpm + tpm of the key and its team, 2 budgets, the cache entry
    budgets = [f"{prefix}:sp:key:k:0", f"{prefix}:sp:team:t:0"]
    admission = ["EVALSHA", sha, "5", *keys[:2], *budgets, f"{prefix}:cache:probe", "0", "", "600", "2", "2", "1",
                 "1000000000", "1000000000", "0", "1000000000", "1000000000", "0", "1e12", "1e12"]
    spend = ["EVALSHA", spend_sha, "2", *budgets, "+", "0.00042", "604800", "+", "0.00042", "604800"]
    # the routing counters' exchange (one per instance every 0.5 s): usage + in flight; the
    # shared hashes hold 50 deployments; ``changed`` of them have new counts and requests in
    # flight here, and the in-flight slot is written every time (at most once a second really)
    def exchange(changed: int) -> list[str]:
        deps = [a for i in range(changed) for a in (f"group{i % 3}:{i:016x}", "3", "1500", "2")]
        return ["EVALSHA", exchange_sha, "0", f"{prefix}:router:", "1", "1", "1000", "-1", str(changed), *deps]

    fill = redis.Redis.from_url(url)
    fill.execute_command(*exchange(50))  # every deployment in the hashes read back
    fill.close()

    out = []
    for name, cmd in (("limiter script (3 scopes)", script),
                      ("routing counters' exchange (50 deployments, 4 changed)", exchange(4)),
                      ("routing counters' exchange (50 deployments, all changed)", exchange(50)),
                      ("admission script (2 scopes rpm+tpm, 2 budgets, 2 kB cache entry)", admission),
                      ("spend script (2 counters)", spend),
                      ("cache GET (2 kB entry)", ["GET", f"{prefix}:cache:probe"])):
        n = "20000" if cmd[1] == exchange_sha else "200000"
        proc = subprocess.run([binary, "-h", host, "-p", port, "--dbnum", db, "-n", n, "-c", "50", "-P", "16",
                               "-q", *cmd], capture_output=True, text=True, timeout=120)
        m = re.search(r"([\d.]+) requests per second", proc.stdout)
        if m:
            out.append((name, float(m.group(1))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--hits", type=int, default=100)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--gap", type=float, default=1.0, help="ms between upstream chunks (cache cell)")
    parser.add_argument("--redis", default=os.environ.get("LLMRELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument("--only", choices=("limits", "keys", "cache", "capacity"), action="append",
                        help="run only these parts (repeatable; default: all)")
    parser.add_argument("--nice", type=int, default=0,
                        help="each benchmark process in a session of its own at this autogroup nice "
                             "(e.g. -10 as root: the machine's other work waits instead; Redis is not changed)")
    parser.add_argument("--upstream", nargs=3, metavar=("PORT", "CHUNKS", "GAP_MS"))
    args = parser.parse_args()
    if args.upstream:
        return run_upstream(int(args.upstream[0]), int(args.upstream[1]), float(args.upstream[2]))
    if args.nice:
        use_nice(args.nice)

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    prefix = f"llmrelay-bench:{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="bench_shared_"))
    procs: list[subprocess.Popen] = []

    def start_upstream(gap: float) -> int:
        port = free_port()
        procs.append(subprocess.Popen([*PREFIX, PY, __file__, "--upstream", str(port), str(args.chunks), str(gap)],
                                      env=env, stdout=subprocess.DEVNULL))
        wait_port(port)
        return port

    def start_bench_gateway(text: str, name: str) -> str:
        path = tmp / f"{name}.yaml"
        path.write_text(text)
        proc, url = start_gateway(path, env, log_level=None, pin=PREFIX)
        procs.append(proc)
        return url

    try:
        flat = start_upstream(0.0)
        paced = start_upstream(args.gap)
        off = start_bench_gateway(gateway_config(flat), "off") + "/v1/chat/completions"
        on = start_bench_gateway(gateway_config(flat, redis=args.redis, prefix=prefix), "on") + "/v1/chat/completions"
        cached_flat = start_bench_gateway(gateway_config(flat, redis=args.redis, prefix=prefix, cache=True), "cf")
        cached_paced = start_bench_gateway(gateway_config(paced, redis=args.redis, prefix=prefix + "p", cache=True),
                                           "cp")
        time.sleep(0.5)
        import uvloop

        parts = set(args.only or ("limits", "keys", "cache", "capacity"))
        lat_off, lat_on = uvloop.run(limits_cell(off, on, args.requests)) if "limits" in parts else ([], [])
        key_off = key_on = ([], [])
        if "keys" in parts:
            koff = start_bench_gateway(gateway_config(flat, database=f"sqlite:///{tmp}/off.db"), "koff")
            kon = start_bench_gateway(gateway_config(flat, redis=args.redis, prefix=prefix + "k",
                                               database=f"sqlite:///{tmp}/on.db"), "kon")
            key_off, key_on = uvloop.run(limits_cell(koff + "/v1/chat/completions", kon + "/v1/chat/completions",
                                                     args.requests, virtual_key(koff), virtual_key(kon)))
        rows = []
        for label, up, gw in (("no pause", flat, cached_flat), (f"{args.gap:g} ms between chunks", paced, cached_paced)):
            if "cache" not in parts:
                break
            direct, hits = uvloop.run(cache_cell(f"http://127.0.0.1:{up}/v1/chat/completions",
                                                 gw + "/v1/chat/completions", args.hits))
            rows.append((label, direct, hits))
        capacity = redis_capacity(args.redis, prefix) if "capacity" in parts else []
    finally:
        stop(procs)
        try:
            import redis

            client = redis.Redis.from_url(args.redis)
            for pattern in (prefix + "*", f"llmrelay:cache:{prefix}*"):  # (the cache's entries: its own prefix)
                for name in client.scan_iter(match=pattern, count=1000):
                    client.delete(name)
            client.close()
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass

    print(f"\nllmrelay shared-mode benchmark (Redis {args.redis.rsplit('@', 1)[-1]}, 1 worker per gateway, C=1; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
          f"{f'; autogroup nice {args.nice} per process' if PREFIX else ''})\n")
    if not lat_off:
        lat_off = lat_on = [0.0]
    print("Shared limits (rpm + tpm on the deployment), non-streamed, "
          f"{len(lat_off)} requests each:\n")
    print("| limits | p50 ms | p99 ms |\n|---|---|---|")
    print(f"| per instance (no Redis) | {pct(lat_off, .5):.3f} | {pct(lat_off, .99):.3f} |")
    print(f"| shared (Redis script) | {pct(lat_on, .5):.3f} | {pct(lat_on, .99):.3f} |")
    added = pct(lat_on, .5) - pct(lat_off, .5)
    print(f"\nadded by shared limits: p50 {added:+.3f} ms (target ≤ 0.3 ms), "
          f"p99 {pct(lat_on, .99) - pct(lat_off, .99):+.3f} ms\n")
    if key_off[0]:
        print("Virtual key with rpm_limit + tpm_limit + max_budget (one admission script; spend added "
              f"after the request), non-streamed, {len(key_off)} requests each:\n")
        print("| key limits and budget | p50 ms | p99 ms |\n|---|---|---|")
        print(f"| per instance (no Redis) | {pct(key_off, .5):.3f} | {pct(key_off, .99):.3f} |")
        print(f"| shared (Redis) | {pct(key_on, .5):.3f} | {pct(key_on, .99):.3f} |")
        print(f"\nadded by shared key limits and budget: p50 {pct(key_on, .5) - pct(key_off, .5):+.3f} ms, "
              f"p99 {pct(key_on, .99) - pct(key_off, .99):+.3f} ms\n")
    print(f"Cache hit vs upstream, {args.chunks}-chunk stream, time to [DONE], {args.hits} requests each:\n")
    print("| upstream | upstream p50 ms | cache hit p50 ms | hit is × faster |\n|---|---|---|---|")
    for label, direct, hits in rows:
        print(f"| {label} | {pct(direct, .5):.3f} | {pct(hits, .5):.3f} | {pct(direct, .5) / pct(hits, .5):.1f} |")
    if capacity:
        print("\nRedis capacity (redis-benchmark, 50 clients, pipeline 16, this machine):\n")
        print("| operation | per second |\n|---|---|")
        for name, rate in capacity:
            print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
