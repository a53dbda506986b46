"""User-space instructions per paced chunk of a relay, counted by valgrind's callgrind (issue 18).

CPU time per chunk on a shared 2-core machine moves by ±10–25 % between identical runs; the
instructions a relay executes per chunk do not. This runs the paced benchmark's pieces
(``bench/_paced.py``: the fake upstream, the load generator) around one relay — the floor, or
a gateway started as ``llmrelay proxy --config`` does — under
``valgrind --tool=callgrind --instr-atstart=no``, switches the instrumentation on for exactly
the load generator's measuring window (``callgrind_control -i on/off``) and prints the relay's
instructions per frame the clients received. Run it with two stream lengths (``--frames``) to
split per-request from per-chunk work (Ir = a × frames + b × requests, solved over the two
windows' own counts of frames received and requests finished).

    PYTHONPATH=src python bench/relay_instructions.py --target llmrelay --frames 50,200
    PYTHONPATH=src python bench/relay_instructions.py --target floor --frames 50
    PYTHONPATH=/tmp/base/src python bench/relay_instructions.py --target llmrelay   # another tree

Kernel work (the syscalls themselves) is not counted: this is the Python and C user-space part
of a relay's cost, the part a code change moves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(HERE)!r}); import _paced; {code}"]


def _wait_file(path: Path, proc: subprocess.Popen, timeout: float = 600) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("timed out")


def _total_ir(out: Path) -> int:
    total = 0
    for line in out.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            total = max(total, int(line.split()[1]))
    return total


def measure(target: str, frames: int, conc: int, seconds: float, extra_config: str, usage: bool,
            env_extra: dict[str, str], gap: float = 0.1) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="relay-cg-"))
    env = dict(os.environ, **env_extra)
    procs: list[subprocess.Popen] = []
    try:
        up_file = tmp / "up.port"
        procs.append(subprocess.Popen(_python(
            f"_paced.GAP = {gap}; _paced.run_upstream({str(up_file)!r}, {frames}, {gap})"),
            env=env))
        up_port = int(_wait_file(up_file, procs[-1]))
        cg_out = tmp / "cg.out"
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={cg_out}"]
        if target == "floor":
            relay_file = tmp / "relay.port"
            relay = subprocess.Popen(valgrind + _python(f"_paced.run_floor({str(relay_file)!r}, {up_port})"),
                                     env=env, stderr=subprocess.DEVNULL)
            procs.append(relay)
            port = int(_wait_file(relay_file, relay))
            path = "/v1/chat/completions"
        else:
            config = tmp / "gw.yaml"
            config.write_text(
                "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
                f"      api_base: http://127.0.0.1:{up_port}/v1\n      api_key: sk-upstream\n"
                "general_settings:\n  master_key: sk-bench\n" + extra_config)
            log = open(tmp / "gw.log", "w")
            relay = subprocess.Popen(valgrind + [sys.executable, "-m", "llmrelay.proxy", "--config", str(config),
                                                 "--port", "0"], env=env, stderr=subprocess.PIPE, text=True)
            procs.append(relay)
            for line in relay.stderr:
                if "listening on" in line:
                    port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1].strip("/"))
                    break
            else:
                raise RuntimeError("gateway did not start")
            import shutil
            import threading

            threading.Thread(target=shutil.copyfileobj, args=(relay.stderr, log), daemon=True).start()
            import urllib.request

            while True:  # "listening on" may come before the socket accepts (start_gateway waits too)
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=30).read()
                    break
                except OSError:
                    time.sleep(0.1)
            path = "/v1/chat/completions"
        if frames == 0:  # no load: what the idle relay executes in such a window (timers, ticks)
            subprocess.run(["callgrind_control", "-i", "on", str(relay.pid)], capture_output=True, check=True)
            time.sleep(seconds)
            subprocess.run(["callgrind_control", "-i", "off", str(relay.pid)], capture_output=True, check=True)
            relay.terminate()
            relay.wait(120)
            return {"target": target, "frames_per_stream": 0, "conc": 0, "Ir": _total_ir(cg_out), "frames": 0,
                    "requests": 0, "errors": 0, "Ir_per_frame": 0, "cg_out": str(cg_out)}
        load = subprocess.Popen(_python(
            f"_paced.GAP = {gap}; _paced.run_loadgen('127.0.0.1', {port}, {path!r}, {conc}, {seconds}, 'sk-bench', usage={usage})"),
            env=env, stdout=subprocess.PIPE, text=True)
        procs.append(load)
        stats = None
        for line in load.stdout:
            line = line.strip()
            if line == "start":
                subprocess.run(["callgrind_control", "-i", "on", str(relay.pid)], capture_output=True, check=True)
            elif line == "stop":
                subprocess.run(["callgrind_control", "-i", "off", str(relay.pid)], capture_output=True, check=True)
            elif line.startswith("{"):
                stats = json.loads(line)
        load.wait()
        relay.terminate()
        relay.wait(120)
        ir = _total_ir(cg_out)
        return {"target": target, "frames_per_stream": frames, "conc": conc, "Ir": ir,
                "frames": stats["frames"], "requests": stats["requests"], "errors": stats["errors"],
                "Ir_per_frame": ir / max(1, stats["frames"]), "cg_out": str(cg_out)}
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="llmrelay", choices=["llmrelay", "floor"])
    parser.add_argument("--frames", default="50", help="frames per stream, comma-separated (e.g. 50,200; 0: an idle window, taken off the others)")
    parser.add_argument("--conc", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--gap", type=float, default=0.1,
                        help="seconds between an upstream's frames (slow enough that every frame is its own read)")
    parser.add_argument("--include-usage", action="store_true")
    parser.add_argument("--config-extra", default="", help="YAML appended to the gateway's config")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the relay's environment")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    results = []
    for frames in [int(f) for f in args.frames.split(",")]:
        r = measure(args.target, frames, args.conc, args.seconds, args.config_extra, args.include_usage, env, args.gap)
        results.append(r)
        print(json.dumps(r), flush=True)
    idle = [r for r in results if r["frames_per_stream"] == 0]
    if idle:  # take the idle window's instructions off the others (same window length)
        for r in results:
            if r["frames_per_stream"]:
                r["Ir"] -= idle[0]["Ir"]
                print(json.dumps({"frames_per_stream": r["frames_per_stream"], "Ir_minus_idle": r["Ir"],
                                  "per_frame": round(r["Ir"] / max(1, r["frames"]))}))
        results = [r for r in results if r["frames_per_stream"]]
    if len(results) == 2:
        # Ir = per_chunk × frames + per_request × requests, over the two windows' own counts
        (i1, f1, r1), (i2, f2, r2) = [(r["Ir"], r["frames"], r["requests"]) for r in results]
        det = f1 * r2 - f2 * r1
        per_chunk = (i1 * r2 - i2 * r1) / det
        per_request = (f1 * i2 - f2 * i1) / det
        print(json.dumps({"per_chunk_Ir": round(per_chunk), "per_request_Ir": round(per_request)}))


if __name__ == "__main__":
    main()
