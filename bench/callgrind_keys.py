"""Instructions per request (valgrind's callgrind) of the bare and the keyed gateway of
``bench_keys.py``: deterministic where CPU time on this shared machine is not.

Each gateway runs under ``valgrind --tool=callgrind --instr-atstart=no``; after a warm-up the
instrumentation is switched on (``callgrind_control -i on``) around exactly ``--n`` requests
(C=``--conc``) plus one spend flush interval (``--batch-write-at``), so the keyed gateway's background spend writes
(its own thread) are counted too; the total is divided by ``--n``.

    PYTHONPATH=src:tests python bench/callgrind_keys.py [--mode nonstream|stream] [--n 500] [--which bare,keys]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_keys as bk  # noqa: E402
import bench_proxy as bp  # noqa: E402
from _common import start_gateway, stop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


async def _requests(url: str, key: str, stream: bool, n: int, conc: int) -> int:
    import aiohttp
    import orjson

    body = orjson.dumps({"model": "gpt-4o-mini", "messages": bp.MESSAGES, "stream": stream})
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    left = n
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as session:
        async def worker() -> None:
            nonlocal left, errors
            while left > 0:
                left -= 1
                async with session.post(url + "/v1/chat/completions", data=body, headers=headers) as resp:
                    await resp.read()
                    errors += resp.status != 200
        await asyncio.gather(*(worker() for _ in range(conc)))
    return errors


def _total(path: Path) -> int:
    text = path.read_text(errors="replace")
    return max((int(n) for n in re.findall(r"^(?:summary|totals): (\d+)", text, re.M)), default=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="nonstream", choices=("nonstream", "stream"))
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--which", default="bare,keys")
    parser.add_argument("--out", default=None, help="keep the callgrind files in this directory")
    parser.add_argument("--keyed-setting", action="append", default=[], metavar="'NAME: VALUE'",
                        help="a general_settings line for the keyed gateway (e.g. 'disable_spend_logs: true')")
    parser.add_argument("--batch-write-at", type=float, default=5.0,
                        help="the keyed gateway's proxy_batch_write_at: callgrind runs it ~50x slower, so "
                             "the default 0.5 s would write batches of ~25 rows instead of the thousands of a real run")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cg_keys_"))
    out = Path(args.out) if args.out else tmp
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["LLMRELAY_DATA_DIR"] = str(tmp / "data")
    # The keyed gateway's upkeep runs per second of wall time (the change feed polled 4x/s, the
    # budget-reset sweep every 2 s), not per request: ~1 ms of CPU a second in a real run, but
    # under callgrind a second holds ~50x fewer requests, so it would weigh ~50x more per
    # request. It is switched off here (the spend writer is not: it is per request).
    env["LLMRELAY_KEYS_POLL_INTERVAL"] = "3600"
    port_file = tmp / "port"
    upstream = subprocess.Popen([sys.executable, bp.__file__, "--upstream", str(port_file), str(args.chunks)], env=env)
    procs = [upstream]
    try:
        up = bp._wait_port(port_file, upstream)
        model = bk.model_list(up)
        results = {}
        for name in args.which.split(","):
            cfg = tmp / f"{name}.yaml"
            extra = (f"  database_url: sqlite:///{tmp}/keys.db\n  proxy_batch_write_at: {args.batch_write_at}\n"
                     + "".join(f"  {setting}\n" for setting in args.keyed_setting) if name == "keys" else "")
            cfg.write_text(model + f"general_settings:\n  master_key: {bk.MASTER}\n" + extra)
            cg = out / f"callgrind.{name}.{args.mode}"
            gw, url = start_gateway(cfg, env, pin=["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                                   f"--callgrind-out-file={cg}"])
            procs.append(gw)
            key = bk.MASTER
            if name == "keys":
                key = bk._post(url, "/key/generate", {
                    "models": ["gpt-4o-mini"], "max_budget": 1e9, "budget_duration": "1d", "rpm_limit": 10**9,
                    "tpm_limit": 10**12, "max_parallel_requests": 10**6, "metadata": {"bench": True}})["key"]
            stream = args.mode == "stream"
            asyncio.run(_requests(url, key, stream, args.warm, args.conc))
            settle = args.batch_write_at + 1.0  # (a spend batch written; the bare gateway idles as long)
            time.sleep(settle)  # the warm-up's spend rows written before, the measured ones within
            subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, capture_output=True)
            errors = asyncio.run(_requests(url, key, stream, args.n, args.conc))
            time.sleep(settle)
            subprocess.run(["callgrind_control", "-i", "off", str(gw.pid)], check=True, capture_output=True)
            gw.terminate()  # (callgrind writes its file at exit: give it time)
            gw.wait(120)
            procs.remove(gw)
            total = _total(cg)
            results[name] = total / args.n
            print(f"{name} {args.mode}: {total / args.n / 1000:.1f} k instructions per request "
                  f"({args.n} requests, {errors} errors) -> {cg}", flush=True)
        if "bare" in results and "keys" in results:
            print(f"ratio keys/bare: {results['keys'] / results['bare']:.3f}  "
                  f"(keys - bare = {(results['keys'] - results['bare']) / 1000:.1f} k)")
    finally:
        stop(procs)


if __name__ == "__main__":
    main()
