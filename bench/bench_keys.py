"""Keys, budgets, limits and spend: what they cost the gateway, and how fast spend is written.

Part 1 — the same fast fake upstream behind two gateways (one worker each): the bare gateway
(master key, no database) and the gateway with a virtual key that has a budget (with a period),
rpm/tpm/parallel limits, a priced deployment and spend logging to SQLite. Both are loaded at once
by one load generator and their CPU (all threads, ``/proc/<pid>/task/*/schedstat``) read at the two
ends of each window, the ratio taken within each round: median of ``--rounds`` rounds, quartiles,
min–max, pooled (bench/_pair.py explains why; one gateway after the other scattered the ratio by
±0.2 on this shared machine). Reported: gateway CPU per non-streamed request and per streamed
chunk and their ratios (targets: ≤ 1.2× per request, ≤ 1.05× per chunk), plus the spend rows the
keyed gateway wrote. ``--aa``: two bare gateways (the method's noise); ``--sequential``: the old
way, fixed-count windows one gateway after the other.

Part 2 — spend rows/s written through the store (batches as the spend queue writes them) on
SQLite and on PostgreSQL (``LLMRELAY_TEST_DATABASE_URL`` or 127.0.0.1:5432/test; target ≥ 1,000).

    PYTHONPATH=src:tests python bench/bench_keys.py [--rounds 20] [--seconds 1.5] [--mode both|nonstream|stream]
                                                    [--chunks 200] [--conc 16] [--aa] [--sequential] [--pin]
                                                    [--skip-gateway] [--skip-spend] [--spend-seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_proxy as bp  # noqa: E402  (the fake upstream, load generator and /proc readers)
from _common import start_gateway  # noqa: E402
from _pair import Gateway, LoadGen, Pair, add_arguments, modes_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
MASTER = "sk-bench"


def _post(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _get(url: str, path: str) -> object:
    req = urllib.request.Request(url + path, headers={"authorization": f"Bearer {MASTER}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def model_list(port: int) -> str:
    """The benchmarks' config section: one priced deployment on the fake upstream at ``port``."""
    return ("model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
            f"      api_base: http://127.0.0.1:{port}/v1\n      api_key: sk-upstream\n"
            "      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n")


def overhead(args: argparse.Namespace) -> None:
    """Part 1: the keyed and the bare gateway under load at once (bench/_pair.py's method)."""
    modes = modes_of(args)
    pin_gw = ["taskset", "-c", "0"] if args.pin else []
    pin_load = ["taskset", "-c", "1"] if args.pin else []
    tmp = Path(tempfile.mkdtemp(prefix="bench_keys_"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["LLMRELAY_DATA_DIR"] = str(tmp / "data")  # the bare gateway finds no database there
    port_file = tmp / "port"
    upstream = subprocess.Popen([*pin_load, PY, bp.__file__, "--upstream", str(port_file), str(args.chunks)],
                                env=env)
    load = LoadGen(args.conc, env, pin_load)
    procs = [upstream]
    pair = Pair(("bare", "bare 2") if args.aa else ("bare", "keys"))
    try:
        model = model_list(bp._wait_port(port_file, upstream))
        bare_cfg, keyed_cfg = tmp / "bare.yaml", tmp / "keyed.yaml"
        bare_cfg.write_text(model + f"general_settings:\n  master_key: {MASTER}\n")
        keyed_cfg.write_text(model + f"general_settings:\n  master_key: {MASTER}\n"
                             f"  database_url: sqlite:///{tmp}/keys.db\n" + "".join(
                                 f"  {setting}\n" for setting in args.keyed_setting))
        bare = Gateway(*start_gateway(bare_cfg, env, pin=pin_gw), MASTER)
        procs.append(bare.proc)
        keyed = Gateway(*start_gateway(bare_cfg if args.aa else keyed_cfg, env, pin=pin_gw), MASTER)
        procs.append(keyed.proc)
        if not args.aa:
            keyed.key = _post(keyed.url, "/key/generate", {
                "models": ["gpt-4o-mini"], "max_budget": 1e9, "budget_duration": "1d", "rpm_limit": 10**9,
                "tpm_limit": 10**12, "max_parallel_requests": 10**6, "metadata": {"bench": True}})["key"]
        pair.measure(load, dict(zip(pair.names, (bare, keyed))), args)
        time.sleep(1.0)  # let the last spend batch land
        written = "-" if args.aa else len(_get(keyed.url, "/spend/logs?limit=10000"))
    finally:
        load.close()
        bp.stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    what = "A/A: two bare gateways" if args.aa else "keys + budgets + limits + spend vs bare gateway"
    print(f"\n{what}: gateway CPU (all its threads) per request, 1 worker each, C={args.conc}, "
          f"{args.chunks} chunks per stream; {pair.describe(args)}\n")
    pair.print_table(modes, per_chunk=args.chunks)
    print("\n(targets: ≤ 1.2 per non-streamed request, ≤ 1.05 per streamed chunk; every stream has the same "
          "chunks, so the ratio per chunk is the ratio per stream)\n")
    pair.print_details(modes)
    print(f"\nspend rows written by the keyed gateway (warm-up included; /spend/logs caps at 10000): {written}")


def _rows(n: int, start: float) -> list[dict]:
    return [({
        "request_id": uuid.uuid4().hex, "api_key": "k" * 64, "team_id": "team-1", "user_id": "user-1",
        "end_user": f"end-{i % 50}", "model_group": "gpt-4o-mini", "model": "openai/gpt-4o-mini",
        "model_id": "dep-1", "call_type": "acompletion", "status": "success", "prompt_tokens": 9,
        "completion_tokens": 20, "spend": 0.00005, "start_time": start, "end_time": start + 0.2,
        "tags": ["bench"], "metadata": {"stream": True}}) for i in range(n)]


def spend_rate(store, seconds: float, batch: int) -> float:
    store.migrate()
    store.insert("key", {"token": "k" * 64, "team_id": "team-1", "user_id": "user-1"})
    store.insert("team", {"team_id": "team-1"})
    store.insert("user", {"user_id": "user-1"})
    written = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        store.write_spend(_rows(batch, time.time()))
        written += batch
    return written / (time.perf_counter() - t0)


def spend_rates(seconds: float, batch: int) -> None:
    from llmrelay.storage import open_store

    print(f"\nspend rows/s through the store (batches of {batch}, each one transaction with the owners' spend):")
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/spend.db")
        try:
            print(f"  SQLite:     {spend_rate(store, seconds, batch):,.0f} rows/s  (target ≥ 1,000)")
        finally:
            store.close()
    try:
        from dbs import postgres_schema, postgres_url
    except ImportError:
        print("  PostgreSQL: skipped (run with PYTHONPATH=src:tests)")
        return
    url = postgres_url()
    if url is None:
        print("  PostgreSQL: skipped (no server; see tests/dbs.py)")
        return
    with postgres_schema(url, "llmrelay_bench") as schema_url:
        store = open_store(schema_url)
        try:
            print(f"  PostgreSQL: {spend_rate(store, seconds, batch):,.0f} rows/s  (target ≥ 1,000)")
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, warmup=1024)
    parser.add_argument("--aa", action="store_true", help="two bare gateways: the method's noise (no part 2)")
    parser.add_argument("--keyed-setting", action="append", default=[], metavar="'NAME: VALUE'",
                        help="a general_settings line for the keyed gateway (e.g. 'disable_spend_logs: true')")
    parser.add_argument("--batch", type=int, default=500, help="part 2: spend rows a batch")
    parser.add_argument("--spend-seconds", type=float, default=3.0, help="part 2: seconds per store")
    parser.add_argument("--skip-gateway", action="store_true", help="part 2 only")
    parser.add_argument("--skip-spend", action="store_true", help="part 1 only")
    args = parser.parse_args()
    if not args.skip_gateway:
        overhead(args)
    if not (args.skip_spend or args.aa):
        spend_rates(args.spend_seconds, args.batch)


if __name__ == "__main__":
    main()
