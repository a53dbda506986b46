"""Gateway soak: many requests, a disconnect storm and stalled readers; RSS and open file
descriptors must come back to a plateau, and other clients must keep being served.

Loopback only, bounded in time and size. Processes: two fake upstreams (``fake_upstream.py``:
short streams, and long ones for the stalled readers), the gateway (one worker), and this
script as the load generator. Phases:

1. warm-up (``--warmup`` requests, mixed stream / non-stream, C=32): the baseline;
2. soak (``--requests``, same mix), RSS and fds sampled every 5,000;
3. disconnect storm (``--storm`` streams closed after their first bytes, C=64);
4. stalled readers, twice (``--stalled`` connections asking for a long stream and never
   reading) while normal requests continue: their latency is compared with the warm-up's; the
   gateway cuts the stalled ones after ``--write-timeout``;
5. cool-down: the warm-up's mix again, then RSS and fds are compared with the baseline.

    PYTHONPATH=src python bench/bench_soak.py [--requests 30000] [--storm 2000] [--stalled 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from _common import rss_mib, start_gateway, start_upstream  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-soak"
LOG_LEVEL = os.environ.get("SOAK_LOG_LEVEL", "warning")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def start_soak_gateway(config: Path, write_timeout: float, log: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return start_gateway(config, env, ["--write-timeout", str(write_timeout)], log_level=LOG_LEVEL, log=log)


def request_bytes(model: str, stream: bool) -> bytes:
    body = ('{"model": "%s", "messages": [{"role": "user", "content": "Hi"}], "stream": %s}'
            % (model, "true" if stream else "false")).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


# ============================================================ load
async def mixed(url: str, count: int, conc: int, latencies: list[float] | None = None) -> int:
    """``count`` requests (every other one a stream), ``conc`` at a time; returns the errors."""
    import aiohttp

    errors = 0
    queue = iter(range(count))
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"},
                                     connector=aiohttp.TCPConnector(limit=conc)) as session:
        async def worker() -> None:
            nonlocal errors
            for i in queue:
                t0 = time.perf_counter()
                try:
                    async with session.post(url + "/v1/chat/completions", json={
                            "model": "short", "messages": [{"role": "user", "content": "Hi"}],
                            "stream": i % 2 == 0}, timeout=aiohttp.ClientTimeout(total=30)) as r:
                        body = await r.read()
                        if r.status != 200 or (i % 2 == 0 and not body.endswith(b"data: [DONE]\n\n")):
                            errors += 1
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    errors += 1
                if latencies is not None:
                    latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(conc)))
    return errors


async def storm(url: str, count: int, conc: int) -> None:
    """Streams whose client goes away after the first bytes of the answer."""
    host, port = url.removeprefix("http://").split(":")
    queue = iter(range(count))
    payload = request_bytes("short", True)

    async def worker() -> None:
        for _ in queue:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(payload)
            try:
                await asyncio.wait_for(reader.read(200), 10)
            except asyncio.TimeoutError:
                pass
            writer.transport.abort()

    await asyncio.gather(*(worker() for _ in range(conc)))


def stalled_readers(url: str, count: int) -> list[socket.socket]:
    """Connections that ask for a long stream and never read."""
    host, port = url.removeprefix("http://").split(":")
    socks = []
    payload = request_bytes("long", True)
    for _ in range(count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, int(port)))
        s.sendall(payload)
        socks.append(s)
    return socks


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--warmup", type=int, default=3_000)
    parser.add_argument("--storm", type=int, default=2_000)
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--long-chunks", type=int, default=20_000)
    parser.add_argument("--write-timeout", type=float, default=3.0)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_soak_"))
    short, short_base = start_upstream(20)
    long, long_base = start_upstream(args.long_chunks)
    config = tmp / "config.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: short\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{short_base}', api_key: sk-up}}\n"
        f"  - model_name: long\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{long_base}', api_key: sk-up}}\n"
        f"general_settings:\n  master_key: {KEY}\n"
    )
    gateway, url = start_soak_gateway(config, args.write_timeout, tmp / "gateway.log")
    pid = gateway.pid
    rows: list[tuple[str, float, int, str]] = []

    def sample(label: str, note: str = "") -> None:
        rows.append((label, rss_mib(pid), open_fds(pid), note))

    try:
        sample("idle")
        base_lat: list[float] = []
        t0 = time.perf_counter()
        errors = asyncio.run(mixed(url, args.warmup, 32, base_lat))
        sample("after warm-up", f"{args.warmup} req, {errors} errors, p50 {pct(base_lat, .5) * 1e3:.1f} ms, "
                                f"p99 {pct(base_lat, .99) * 1e3:.1f} ms")
        done = 0
        while done < args.requests:
            n = min(5_000, args.requests - done)
            t1 = time.perf_counter()
            errors = asyncio.run(mixed(url, n, 32))
            done += n
            sample(f"soak {done}", f"{n / (time.perf_counter() - t1):.0f} req/s, {errors} errors")
        asyncio.run(storm(url, args.storm, 64))
        time.sleep(0.5)
        sample("after disconnect storm", f"{args.storm} streams cut by their clients")
        for burst in (1, 2):  # twice: the second burst must not grow memory further
            socks = stalled_readers(url, args.stalled)
            time.sleep(0.5)
            sample(f"stalled burst {burst}", f"{args.stalled} clients not reading")
            during: list[float] = []
            errors = asyncio.run(mixed(url, 500, 8, during))
            sample("  normal traffic meanwhile", f"500 req, {errors} errors, p50 {pct(during, .5) * 1e3:.1f} ms, "
                                                 f"p99 {pct(during, .99) * 1e3:.1f} ms "
                                                 f"(p50 ratio vs warm-up {pct(during, .5) / pct(base_lat, .5):.2f})")
            time.sleep(args.write_timeout + 2)
            sample("  after write_timeout", "stalled clients cut by the gateway")
            for s in socks:
                s.close()
        cool: list[float] = []
        errors = asyncio.run(mixed(url, args.warmup, 32, cool))
        time.sleep(0.5)
        sample("after cool-down", f"{args.warmup} req, {errors} errors")
        total = time.perf_counter() - t0
    finally:
        gateway.terminate()
        gateway.wait(30)
        short.terminate()
        long.terminate()

    print(f"\nllmrelay gateway soak: 1 worker, {args.requests + 2 * args.warmup + 1000} requests, "
          f"{args.storm} client disconnects, 2 x {args.stalled} stalled readers; {total:.0f} s; "
          f"gateway exit status {gateway.returncode}\n")
    print("| phase | RSS MiB | open fds | notes |")
    print("|---|---|---|---|")
    for label, rss, fds, note in rows:
        print(f"| {label} | {rss:.1f} | {fds} | {note} |")
    base = next(r for r in rows if r[0] == "after warm-up")
    end = rows[-1]
    print(f"\nRSS after cool-down / after warm-up: {end[1] / base[1]:.2f}; open fds after cool-down - "
          f"after warm-up: {end[2] - base[2]:+d}")
    cut = sum("write_timeout" in line for line in open(tmp / "gateway.log"))
    print(f"stalled connections cut by the gateway (log lines): {cut}")


if __name__ == "__main__":
    main()
