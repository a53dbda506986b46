"""Two gateways' CPU per request measured against each other, trustworthily on a shared machine
(bench_observe.py and bench_keys.py; imported as ``_pair``, and run as the load generator:
``python bench/_pair.py --loadgen --conc N``).

Why: on this shared 2-core machine the CPU a request takes (caches, the other hyperthread,
preemptions, how many requests a loop turn finds) moves by ±20–30 % between two windows a second
apart, so measuring one gateway and then the other scatters the ratio more than the effects to
measure (two *identical* gateways measured that way read 0.84–1.70 a round). By default:

* **Both gateways under load at once**, ``conc`` connections each, for ``seconds``; the window
  opens 0.2 s after the load started. Both see the same machine at the same moments, and the
  ratio is taken **within each round**: reported are the median of the per-round ratios, their
  quartiles and min–max, and the pooled ratio (the rounds' CPU summed over their requests).
* **CPU counted exactly, by the load generator at the window's two ends**: the sum of the
  gateway's threads' run time from ``/proc/<pid>/task/*/schedstat`` (nanoseconds), with the
  requests each gateway completed in between (the ≤ ``conc`` requests open at either end are the
  same on both sides). User/system time (``/proc/<pid>/stat``, ticks) and each thread's share are
  reported too.
* ``--aa``: the same gateway twice — the method's own noise.
* ``--sequential``: the old way, one gateway then the other (A-B, B-A…), fixed request counts,
  each window between two moments the gateway is idle.
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_proxy as bp  # noqa: E402


def thread_times(pid: int) -> dict[str, int]:
    """Run time (ns) of each of ``pid``'s threads so far, by "tid name" (a thread that just ended
    is left out)."""
    return {k: v[0] for k, v in thread_stats(pid).items()}


def thread_stats(pid: int) -> dict[str, tuple[int, int]]:
    """(run time in ns, times scheduled in) of each of ``pid``'s threads so far, by "tid name"
    (``/proc/<pid>/task/*/schedstat``: a thread's wake-ups and preemptions are its times in)."""
    out = {}
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(task + "/comm") as f:
                name = f.read().strip()
            with open(task + "/schedstat") as f:
                ran, _, slices = f.read().split()[:3]
            out[f"{task.rsplit('/', 1)[1]} {name}"] = (int(ran), int(slices))
        except (OSError, ValueError):
            pass
    return out


def reading(pid: int) -> tuple[dict[str, tuple[int, int]], tuple[float, float]]:
    """(each thread's (run time in ns, times scheduled in)), (user, system) seconds of the process)."""
    return thread_stats(pid), bp._cpu_split(pid)


def used(before: tuple, after: tuple) -> dict:
    """CPU used between two readings: ns over all threads, by thread, times scheduled in by
    thread, user and system seconds."""
    (t0, (u0, s0)), (t1, (u1, s1)) = before, after
    threads = {k: v[0] - t0.get(k, (0, 0))[0] for k, v in t1.items() if v[0] - t0.get(k, (0, 0))[0]}
    slices = {k: v[1] - t0.get(k, (0, 0))[1] for k, v in t1.items() if v[1] - t0.get(k, (0, 0))[1]}
    return {"ns": sum(threads.values()), "threads": threads, "slices": slices, "user": u1 - u0, "system": s1 - s0}


def idle(pid: int, quiet_ns: int = 2_000_000, step: float = 0.05, limit: float = 5.0) -> tuple:
    """Wait until ``pid`` used under ``quiet_ns`` of CPU in ``step`` seconds (its background
    threads done); a reading then."""
    last = reading(pid)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(step)
        now = reading(pid)
        if sum(v[0] for v in now[0].values()) - sum(v[0] for v in last[0].values()) < quiet_ns:
            return now
        last = now
    return last


# ============================================================ the load generator (own process)
async def _serve_loadgen(conc: int) -> None:
    """Answer JSON commands read on stdin with a JSON line each:
    ``{"run": [url, key], "mode": M, "n": N}`` — exactly N requests at concurrency ``conc``;
    ``{"together": [[url, key, pid], [url, key, pid]], "mode": M, "seconds": S}`` — both gateways
    loaded at once, their CPU read at the two ends of a window of S seconds."""
    import aiohttp
    import orjson

    bodies = {mode: orjson.dumps({"model": "gpt-4o-mini", "messages": bp.MESSAGES, "stream": mode == "stream"})
              for mode in ("stream", "nonstream")}
    sessions: dict[str, aiohttp.ClientSession] = {}

    async def one(url: str, key: str, mode: str) -> bool:
        session = sessions.get(url)
        if session is None:
            session = sessions[url] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=conc, limit_per_host=conc))
        headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        async with session.post(url + "/v1/chat/completions", data=bodies[mode], headers=headers) as resp:
            data = await resp.read()
            if resp.status != 200:
                sys.stderr.write(f"bench load generator: {resp.status} {data[:300]!r}\n")
            return resp.status == 200

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        mode = command["mode"]
        if "run" in command:
            url, key = command["run"]
            left = [command["n"]]
            errors = [0]

            async def worker() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    errors[0] += not await one(url, key, mode)

            await asyncio.gather(*(worker() for _ in range(conc)))
            answer = {"n": command["n"], "errors": errors[0]}
        else:
            sides = command["together"]
            done, errors, stop = [0, 0], [0, 0], [False]

            async def loaded(i: int) -> None:
                url, key, _ = sides[i]
                while not stop[0]:
                    errors[i] += not await one(url, key, mode)
                    done[i] += 1

            tasks = [asyncio.ensure_future(loaded(i)) for i in (0, 1) for _ in range(conc)]
            await asyncio.sleep(0.2)  # both under full load before the window opens
            n0, before = list(done), [reading(pid) for _, _, pid in sides]
            await asyncio.sleep(command["seconds"])
            n1, after = list(done), [reading(pid) for _, _, pid in sides]
            stop[0] = True
            await asyncio.gather(*tasks)
            answer = {"n": [b - a for a, b in zip(n0, n1)], "errors": sum(errors),
                      "used": [used(b0, b1) for b0, b1 in zip(before, after)]}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for session in sessions.values():
        await session.close()


class LoadGen:
    """The load generator process (uvloop + aiohttp, kept-alive connections to every gateway),
    told what to run over a pipe."""

    def __init__(self, conc: int, env: dict, pin: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen([*pin, sys.executable, __file__, "--loadgen", "--conc", str(conc)],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, command: dict) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        # (a rare failed request, on a loaded machine, is reported on stderr; more is a broken setup)
        n = answer["n"]
        assert answer["errors"] <= 0.01 * (sum(n) if type(n) is list else n), answer
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


# ============================================================ the measurement
@dataclass
class Gateway:
    """A gateway under test: its process, base URL and the bearer key its requests carry."""

    proc: subprocess.Popen
    url: str
    key: str


def add_arguments(parser: argparse.ArgumentParser, warmup: int = 2048) -> None:
    """The method's options (both scripts): rounds, window, modes, load, --aa, --sequential, --pin."""
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.5, help="a round's window (both gateways at once)")
    parser.add_argument("--mode", default="both", choices=["both", "nonstream", "stream"])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=warmup, help="non-streamed requests first (streams: a quarter)")
    parser.add_argument("--sequential", action="store_true",
                        help="one gateway then the other (A-B, B-A…), fixed counts: --requests / --stream-requests")
    parser.add_argument("--requests", type=int, default=1024, help="--sequential: non-streamed requests a window")
    parser.add_argument("--stream-requests", type=int, default=256, help="--sequential: streams a window")
    parser.add_argument("--pin", action="store_true", help="gateways on CPU 0, upstream and load on CPU 1")


def modes_of(args: argparse.Namespace) -> list[str]:
    return ["nonstream", "stream"] if args.mode == "both" else [args.mode]


@dataclass
class Pair:
    """Two gateways, ``names[0]`` the reference and ``names[1]`` the one measured against it: per
    (mode, gateway) each round's CPU µs per request and the sums; per mode each round's ratio."""

    names: tuple[str, str]
    cpu: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    sums: dict[tuple[str, str], dict] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    load_avg: list[float] = field(default_factory=lambda: [os.getloadavg()[0]])
    t_start: float = field(default_factory=time.time)

    def add(self, mode: str, name: str, n: int, use: dict) -> float:
        per = use["ns"] / n / 1e3
        self.cpu.setdefault((mode, name), []).append(per)
        s = self.sums.setdefault((mode, name), {"ns": 0, "user": 0.0, "system": 0.0, "n": 0, "threads": {},
                                                "slices": {}})
        s["ns"] += use["ns"]
        s["user"] += use["user"]
        s["system"] += use["system"]
        s["n"] += n
        for k, v in use["threads"].items():
            s["threads"][k] = s["threads"].get(k, 0) + v
        for k, v in use.get("slices", {}).items():
            s["slices"][k] = s["slices"].get(k, 0) + v
        return per

    def measure(self, load: LoadGen, gateways: dict[str, Gateway], args: argparse.Namespace,
                count: Callable[[int], int] = lambda n: n) -> None:
        """Warm both gateways up, then ``args.rounds`` rounds of every mode (``count`` rounds a
        request count: bench_observe makes whole export batches of it)."""
        modes = modes_of(args)
        for gw in gateways.values():  # warm up: imports, pools, caches, the first full GC
            for mode in modes:
                n = count(args.warmup if mode == "nonstream" else args.warmup // 4)
                load.ask({"run": [gw.url, gw.key], "mode": mode, "n": n})
        for r in range(args.rounds):
            for mode in modes:
                if not args.sequential:
                    a, b = (gateways[name] for name in self.names)
                    out = load.ask({"together": [[a.url, a.key, a.proc.pid], [b.url, b.key, b.proc.pid]],
                                    "mode": mode, "seconds": args.seconds})
                    if min(out["n"]) < 20:  # a gateway (or the load generator) starved by other work
                        print(f"(round {r} {mode} left out: requests {out['n']})", flush=True)
                        continue
                    per = {name: self.add(mode, name, out["n"][i], out["used"][i])
                           for i, name in enumerate(self.names)}
                else:
                    per = {}
                    n = count(args.requests if mode == "nonstream" else args.stream_requests)
                    for name in (self.names if r % 2 == 0 else self.names[::-1]):
                        gw = gateways[name]
                        before = idle(gw.proc.pid)
                        load.ask({"run": [gw.url, gw.key], "mode": mode, "n": n})
                        per[name] = self.add(mode, name, n, used(before, idle(gw.proc.pid)))
                self.ratios.setdefault(mode, []).append(per[self.names[1]] / per[self.names[0]])
            self.load_avg.append(os.getloadavg()[0])

    def summary(self, mode: str) -> dict:
        """The mode's ratio: median of rounds, quartiles, min, max, pooled; and each gateway's
        median µs per request."""
        values = self.ratios[mode]
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) >= 2 else (values[0],) * 3
        a, b = (self.sums[(mode, name)] for name in self.names)
        return {"median": statistics.median(values), "q1": q1, "q3": q3, "min": min(values), "max": max(values),
                "pooled": (b["ns"] / b["n"]) / (a["ns"] / a["n"]),
                "us": {name: statistics.median(self.cpu[(mode, name)]) for name in self.names}}

    def describe(self, args: argparse.Namespace) -> str:
        """How it was measured: rounds, method, seconds taken, load average, pinning."""
        how = ("one gateway then the other, A-B then B-A" if args.sequential
               else f"both gateways under load at once, windows of {args.seconds:g} s")
        return (f"{args.rounds} rounds, {how}; {time.time() - self.t_start:.0f} s, load average "
                f"{min(self.load_avg):.1f}–{max(self.load_avg):.1f}{', pinned' if args.pin else ''}")

    def print_table(self, modes: Sequence[str], per_chunk: int = 0) -> None:
        """The ratio table (with ``per_chunk``: each gateway's µs per streamed chunk too, a stream's
        CPU over that many chunks; the ratio per chunk is the ratio per stream)."""
        a, b = self.names
        chunk_cols = f" {a} µs/chunk | {b} µs/chunk |" if per_chunk else ""
        print(f"| mode | {a} µs/req (median) | {b} µs/req (median) |{chunk_cols} ratio: median of rounds | "
              "quartiles | min–max | pooled |")
        print("|---|---|---|" + "---|" * (2 if per_chunk else 0) + "---|---|---|---|")
        for mode in modes:
            s = self.summary(mode)
            chunks = ""
            if per_chunk:
                chunks = (" - | - |" if mode != "stream" else
                          f" {s['us'][a] / per_chunk:.2f} | {s['us'][b] / per_chunk:.2f} |")
            print(f"| {mode} | {s['us'][a]:.0f} | {s['us'][b]:.0f} |{chunks} **{s['median']:.3f}** | "
                  f"{s['q1']:.3f}–{s['q3']:.3f} | {s['min']:.3f}–{s['max']:.3f} | {s['pooled']:.3f} |")

    def print_details(self, modes: Sequence[str]) -> None:
        """Each round's ratio; each gateway's user/system time and CPU by thread, per request."""
        for mode in modes:
            print(f"{mode} per-round ratios: " + " ".join(f"{x:.3f}" for x in self.ratios[mode]))
            for name in self.names:
                s = self.sums[(mode, name)]
                threads = ", ".join(f"{k}: {v / s['n'] / 1e3:.1f}" for k, v in sorted(s["threads"].items()))
                slices = ", ".join(f"{k}: {v / s['n']:.3f}" for k, v in sorted(s["slices"].items()))
                print(f"  {name}: user {s['user'] / s['n'] * 1e6:.0f} + system {s['system'] / s['n'] * 1e6:.0f} "
                      f"µs/req (ticks); by thread µs/req: {threads}; times scheduled in per request: {slices}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--loadgen", action="store_true")
    parser.add_argument("--conc", type=int, default=16)
    _args = parser.parse_args()
    import uvloop

    uvloop.run(_serve_loadgen(_args.conc))
