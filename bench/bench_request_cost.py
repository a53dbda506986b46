"""Gateway instructions per streamed request, split into per-request and per-chunk work (issue 18).

The gateway (``python -m llmrelay.proxy --config``, master key, no database, the access log on
as the default command has it) runs under valgrind's callgrind with instrumentation off; after
a warm-up it is switched on for ``--requests`` streamed chat requests (``--conc`` keep-alive
connections, each one request after the other) and off again, so the counts are the steady
state's. The fake upstream (``bench/_paced.py``) paces its frames (``--gap``, default 5 ms:
every chunk its own upstream read, as in the paced benchmark) and streams are run at two
lengths (``--frames``, default 4 and 50): the difference over the frames is the per-chunk
cost, what is left the per-request cost. Only the gateway's user-space instructions are
counted (not the kernel's, nor the upstream's or the load generator's), deterministic to about
0.1 % run to run, so before/after comparisons need no quiet machine::

    PYTHONPATH=src python bench/bench_request_cost.py [--baseline-src TREE] [--frames 4,50]
        [--requests 100] [--conc 4] [--out DIR] [--profile | --opcodes]

``--baseline-src TREE`` measures the same with the gateway from another source tree
(``git archive OLD src | tar -x -C TREE``) too. ``--out DIR`` keeps the callgrind files
(``callgrind_annotate`` reads them); ``--profile`` runs the gateway under cProfile instead (no
valgrind; the measured requests only, written to DIR/<name>-<frames>.cg.prof), to see which Python functions the work is in;
``--opcodes`` counts the bytecodes each Python function executes per request instead
(``bench/_optrace.py``: deterministic, not timing).

The gateway's periodic work (uvicorn's tick, the key database poll, the write-behind queues)
runs whether or not requests do, so it is counted per wall-clock second of a measured window:
a 50-frame window lasts ~8× a 4-frame one (the frames are paced), and the per-chunk figure
then carries ~(idle instructions per second × extra seconds) / extra chunks of it. ``--idle
SECONDS`` also counts an idle window of that length in the same gateway (after the warm-up,
no requests) and prints the figures with that rate × each window's wall time taken off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _paced  # noqa: E402

PY = sys.executable
MASTER = "sk-bench"


def _upstream(tmp: Path, frames: int, gap: float) -> tuple[subprocess.Popen, int]:
    port_file = tmp / f"up-{frames}"
    port_file.unlink(missing_ok=True)
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import _paced; " \
           f"_paced.run_upstream({str(port_file)!r}, {frames}, {gap})"
    proc = subprocess.Popen([PY, "-c", code])
    for _ in range(500):
        if port_file.exists() and port_file.read_text():
            return proc, int(port_file.read_text())
        if proc.poll() is not None:
            raise RuntimeError("upstream died")
        time.sleep(0.02)
    raise RuntimeError("upstream did not start")


def _gateway(tmp: Path, name: str, src: Path, up_port: int, out: Path, profile: "bool | str"
             ) -> tuple[subprocess.Popen, int]:
    config = tmp / f"{name}.yaml"
    config.write_text(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: http://127.0.0.1:{up_port}/v1\n      api_key: sk-upstream\n"
        f"general_settings:\n  master_key: {MASTER}\n"
    )
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               LLMRELAY_DATA_DIR=str(tmp / f"{name}-data"))
    if profile == "opcodes":  # bench/_optrace.py, on and off by the same signals
        env["OPTRACE_OUT"] = str(out) + ".ops"
        cmd = [PY, str(HERE / "_optrace.py")]
    elif profile:  # cProfile on between SIGUSR1 and SIGUSR2 (the measured requests), then written
        code = ("import cProfile, runpy, signal, sys; p = cProfile.Profile(); "
                "signal.signal(signal.SIGUSR1, lambda *a: p.enable()); "
                f"signal.signal(signal.SIGUSR2, lambda *a: (p.disable(), p.dump_stats({str(out) + '.prof'!r}))); "
                "sys.argv[0] = 'llmrelay.proxy'; runpy.run_module('llmrelay.proxy', run_name='__main__')")
        cmd = [PY, "-c", code]
    else:
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
               PY, "-m", "llmrelay.proxy"]
    proc = subprocess.Popen([*cmd, "--config", str(config), "--port", "0"], env=env,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "listening on" in line:
            port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1].split("/")[0])
            break
    else:
        raise RuntimeError(f"gateway {name} did not start")
    log = open(tmp / f"{name}.log", "w")
    import shutil
    import threading

    threading.Thread(target=shutil.copyfileobj, args=(proc.stderr, log), daemon=True).start()
    import urllib.request

    for _ in range(3000):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=5).read()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    raise RuntimeError(f"gateway {name} does not answer")


async def _requests(port: int, total: int, conc: int, burst: bool = False) -> int:
    """``total`` streamed requests over ``conc`` keep-alive connections; the frames received.
    ``burst``: the upstream answers each with its burst (``_paced.BURST_FRAMES`` frames and the
    head in one write: the whole body is there before the gateway's first read of it)."""
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":true%s}' % (
        b',"user":"bench-burst"' if burst else b"")
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
               b"authorization: Bearer " + MASTER.encode() + b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
    left = [total]
    frames = [0]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while left[0] > 0:
            left[0] -= 1
            writer.write(request)
            data = b""
            while not data.endswith(b"\r\n0\r\n\r\n"):
                more = await reader.read(65536)
                if not more:
                    raise RuntimeError("connection closed")
                data += more
            if not data.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(data[:300])
            frames[0] += data.count(b"\n\n")
        writer.close()

    await asyncio.gather(*(worker() for _ in range(conc)))
    return frames[0]


def _total(path: Path) -> int:
    text = path.read_text(errors="replace")
    m = re.search(r"^totals:\s*(\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def measure(name: str, src: Path, frames: int, args: argparse.Namespace, tmp: Path, out_dir: Path) -> dict:
    up, up_port = _upstream(tmp, frames, args.gap)
    out = out_dir / f"{name}-{frames}.cg"
    gw = None
    try:
        gw, port = _gateway(tmp, f"{name}-{frames}", src, up_port, out,
                            "opcodes" if args.opcodes else args.profile)
        asyncio.run(_requests(port, args.warmup, args.conc, args.burst))
        idle = 0
        if args.idle and not (args.profile or args.opcodes):
            time.sleep(1.0)  # (the warm-up's last requests' ends)
            subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, capture_output=True)
            time.sleep(args.idle)
            subprocess.run(["callgrind_control", "-i", "off", str(gw.pid)], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-d", "idle", str(gw.pid)], check=True, capture_output=True)
            time.sleep(0.5)
            idle = sum(_total(p) for p in out_dir.glob(f"{name}-{frames}.cg*"))
        if args.profile or args.opcodes:
            gw.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
        else:
            subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, capture_output=True)
        t0 = time.perf_counter()
        got = asyncio.run(_requests(port, args.requests, args.conc, args.burst))
        wall = time.perf_counter() - t0
        if args.profile or args.opcodes:
            gw.send_signal(signal.SIGUSR2)
            time.sleep(1.0)
        else:
            subprocess.run(["callgrind_control", "-i", "off", str(gw.pid)], check=True, capture_output=True)
    except BaseException:
        log = tmp / f"{name}-{frames}.log"
        if log.exists():
            sys.stderr.write(log.read_text()[-3000:])
        raise
    finally:
        if gw is not None:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(60)
            except subprocess.TimeoutExpired:
                gw.kill()
        up.kill()
        up.wait()
    result = {"name": name, "frames": frames, "requests": args.requests, "got": got, "wall": wall}
    if not (args.profile or args.opcodes):
        result["ir"] = sum(_total(p) for p in out_dir.glob(f"{name}-{frames}.cg*")) - idle
        if args.idle:
            result["idle_rate"] = idle / args.idle
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-src", metavar="TREE")
    parser.add_argument("--frames", default="4,50")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--conc", type=int, default=4)
    parser.add_argument("--gap", type=float, default=0.02)
    parser.add_argument("--out", metavar="DIR")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--opcodes", action="store_true")
    parser.add_argument("--burst", action="store_true",
                        help="every stream's whole body (200 frames) in one upstream write, with the head "
                             "(the fully buffered body; --frames then only names the runs)")
    parser.add_argument("--idle", type=float, default=0.0, metavar="SECONDS",
                        help="count an idle window too; print the figures without the idle work per second")
    args = parser.parse_args()
    trees = [("llmrelay", HERE.parent / "src")]
    if args.baseline_src:
        base = Path(args.baseline_src).resolve()
        # TREE (made with ``git archive OLD src | tar -x -C TREE``) or TREE/src itself
        trees.append(("base", base if (base / "llmrelay").is_dir() else base / "src"))
    frames = [int(f) for f in args.frames.split(",")]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        out_dir = Path(args.out) if args.out else tmp
        out_dir.mkdir(parents=True, exist_ok=True)
        results = {}
        for count in frames:
            for name, src in trees:
                r = results[name, count] = measure(name, src, count, args, tmp, out_dir)
                per = r.get("ir", 0) / args.requests
                if args.opcodes:
                    import _optrace

                    _optrace.show(str(out_dir / f"{name}-{count}.cg.ops"), args.requests)
                    continue
                print(f"{name:10} frames={count:3}  {r['got'] / args.requests:.1f} frames/request  "
                      f"{per / 1e6:.3f} M instructions/request  ({r['wall']:.1f} s)", flush=True)
                if args.idle:
                    net = per - r["idle_rate"] * r["wall"] / args.requests
                    print(f"{'':10} without the idle work ({r['idle_rate'] / 1e3:.0f} k instructions/s "
                          f"x {r['wall']:.1f} s): {net / 1e6:.3f} M instructions/request", flush=True)
    if args.profile or args.opcodes or len(frames) < 2:
        return
    lo, hi = min(frames), max(frames)
    print()
    for name, _ in trees:
        a, b = results[name, lo]["ir"] / args.requests, results[name, hi]["ir"] / args.requests
        per_chunk = (b - a) / (hi - lo)
        per_request = a - per_chunk * lo
        print(f"{name:10} per request {per_request / 1e3:8.1f} k instructions, per chunk "
              f"{per_chunk / 1e3:6.2f} k; a {hi}-frame stream {b / hi / 1e3:6.2f} k per frame")
        if args.idle:
            rlo, rhi = results[name, lo], results[name, hi]
            rate = (rlo["idle_rate"] + rhi["idle_rate"]) / 2
            a -= rate * rlo["wall"] / args.requests
            b -= rate * rhi["wall"] / args.requests
            per_chunk = (b - a) / (hi - lo)
            per_request = a - per_chunk * lo
            print(f"{name:10} without the idle work ({rate / 1e3:.0f} k instructions/s): per request "
                  f"{per_request / 1e3:8.1f} k, per chunk {per_chunk / 1e3:6.2f} k")


if __name__ == "__main__":
    main()
