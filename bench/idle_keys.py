"""CPU an idle gateway spends on its own upkeep (issue 13): the bare gateway (master key, no
database) and the keyed one (a virtual key with a budget period and limits, on SQLite or, with
``--db postgres``, PostgreSQL), both started, sent ``--warm`` requests each (the key cached, a
spend batch written), then left alone; each one's CPU (all threads, ``/proc/<pid>/task/*/schedstat``)
is read at the two ends of ``--seconds`` of idle time, ``--rounds`` times. What the keyed
gateway spends there is per second of wall time (the change feed's poll, the budget sweep), and a
loaded gateway spends it too, on top of its requests.

    PYTHONPATH=src:tests python bench/idle_keys.py [--seconds 15] [--rounds 3] [--db sqlite|postgres]
                                                   [--callgrind [--keep DIR]]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_keys as bk  # noqa: E402
import bench_proxy as bp  # noqa: E402
from _common import start_gateway  # noqa: E402
from _pair import thread_times  # noqa: E402
from callgrind_keys import _requests, _total  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _cpu_ns(pid: int) -> int:
    return sum(thread_times(pid).values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--db", default="sqlite", choices=("sqlite", "postgres"))
    parser.add_argument("--callgrind", action="store_true",
                        help="the gateways under callgrind, counting instructions over the idle seconds "
                             "(one round; deterministic where CPU time is not)")
    parser.add_argument("--keep", default=None, help="with --callgrind: copy the callgrind files here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="idle_keys_"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["LLMRELAY_DATA_DIR"] = str(tmp / "data")
    port_file = tmp / "port"
    upstream = subprocess.Popen([sys.executable, bp.__file__, "--upstream", str(port_file), "20"], env=env)
    procs = [upstream]
    schema = None
    try:
        if args.db == "postgres":
            from dbs import postgres_schema, postgres_url

            url = postgres_url()
            if url is None:
                raise SystemExit("no PostgreSQL server (see tests/dbs.py)")
            schema = postgres_schema(url, "llmrelay_idle_bench")
            database = schema.__enter__()
        else:
            database = f"sqlite:///{tmp}/keys.db"
        model = bk.model_list(bp._wait_port(port_file, upstream))
        gateways = {}
        for name in ("bare", "keys"):
            cfg = tmp / f"{name}.yaml"
            extra = f"  database_url: {database}\n" if name == "keys" else ""
            cfg.write_text(model + f"general_settings:\n  master_key: {bk.MASTER}\n" + extra)
            cg = tmp / f"callgrind.{name}"
            pin = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={cg}"]
            gw, url = start_gateway(cfg, env, pin=pin if args.callgrind else ())
            procs.append(gw)
            key = bk.MASTER
            if name == "keys":
                key = bk._post(url, "/key/generate", {
                    "models": ["gpt-4o-mini"], "max_budget": 1e9, "budget_duration": "1d", "rpm_limit": 10**9,
                    "tpm_limit": 10**12, "max_parallel_requests": 10**6})["key"]
            asyncio.run(_requests(url, key, False, args.warm, 8))
            gateways[name] = gw
        time.sleep(2.0)  # the spend batch written, the loop settled
        if args.callgrind:
            for gw in gateways.values():
                subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, capture_output=True)
            t0 = time.monotonic()
            time.sleep(args.seconds)
            wall = time.monotonic() - t0
            for gw in gateways.values():
                subprocess.run(["callgrind_control", "-i", "off", str(gw.pid)], check=True, capture_output=True)
            counts = {}
            for name, gw in gateways.items():
                gw.terminate()
                gw.wait(120)
                procs.remove(gw)
                counts[name] = _total(tmp / f"callgrind.{name}") / wall
            print(f"idle instructions per wall second ({args.db}, {args.seconds:g} s under callgrind): "
                  + ", ".join(f"{name} {n / 1000:.0f} k" for name, n in counts.items()))
            if args.keep:
                for name in gateways:
                    shutil.copy(tmp / f"callgrind.{name}", Path(args.keep) / f"callgrind.idle.{name}")
            return
        per: dict[str, list[float]] = {name: [] for name in gateways}
        for i in range(args.rounds):
            before = {name: _cpu_ns(gw.pid) for name, gw in gateways.items()}
            t0 = time.monotonic()
            time.sleep(args.seconds)
            wall = time.monotonic() - t0
            for name, gw in gateways.items():
                per[name].append((_cpu_ns(gw.pid) - before[name]) / 1e6 / wall)
            print(f"round {i + 1}: " + ", ".join(f"{name} {per[name][-1]:.3f}" for name in gateways)
                  + " ms CPU per second idle", flush=True)
        load = os.getloadavg()[0]
        print(f"\nidle CPU, ms per wall second ({args.db}; median of {args.rounds} × {args.seconds:g} s, "
              f"load {load:.1f}): " + ", ".join(f"{name} {statistics.median(v):.3f} "
                                                f"(min {min(v):.3f}, max {max(v):.3f})" for name, v in per.items()))
    finally:
        bp.stop(procs)
        if schema is not None:
            schema.__exit__(None, None, None)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
