"""Summarise what ``bench/loopprobe`` recorded: ``python bench/loopprobe/report.py DIR``.

Per gateway process: the garbage collections by generation (CPU time of each: median, max,
total, how many over 2 ms), the heartbeat's late ticks by cause, and the optional background-job,
garbage and tracemalloc records.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys


def _ms(values: list[float]) -> str:
    values = sorted(v * 1e3 for v in values)
    if not values:
        return "none"
    return (f"n={len(values)} median {values[len(values) // 2]:.2f} ms, max {values[-1]:.2f} ms, "
            f"total {sum(values):.0f} ms, over 2 ms: {sum(v > 2 for v in values)}")


def _cause(stall: dict) -> str:
    late = stall["late"]
    if stall["gc"] > late / 2:
        return "collection"
    if stall["runq"] > late / 2:
        return "not scheduled (run queue)"
    if stall["cpu"] > stall["wall"] / 2:
        return "loop busy (CPU)"
    return "asleep (blocking call or GIL)"


def main(directory: str) -> None:
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        d = json.load(open(path))
        config = next((a for a in d["argv"] if a.endswith(".yaml")), "?")
        print(f"== {os.path.basename(config)} (pid {os.path.basename(path)[:-5]}): thresholds {d['threshold']}, "
              f"{d['frozen']} frozen objects, {d['ticks']} heartbeat ticks")
        for gen in (0, 1, 2):
            print(f"  generation {gen}: " + _ms([g[5] for g in d["gcs"] if g[2] == gen]))
        causes = collections.Counter(_cause(s) for s in d["stalls"])
        late_ms = collections.defaultdict(float)
        for s in d["stalls"]:
            late_ms[_cause(s)] += s["late"] * 1e3
        print(f"  ticks > 2 ms late: {len(d['stalls'])} — " + ", ".join(
            f"{k}: {v} ({late_ms[k]:.0f} ms)" for k, v in causes.most_common()))
        jobs = collections.defaultdict(list)
        for name, cpu in d.get("bg") or []:
            jobs[name if not name.startswith("otlp") else "otlp export"].append(cpu)
        for name, cpus in sorted(jobs.items(), key=lambda kv: -sum(kv[1])):
            print(f"  background {name}: " + _ms(cpus))
        if d.get("garbage"):
            print(f"  garbage freed by the collector (shallow {d['garbage_bytes'] / 1024:.0f} KiB): {d['garbage'][:12]}")
        if d.get("trace"):
            print(f"  tracemalloc growth {d['trace']['growth'] / 2**20:.1f} MiB; largest:")
            for where, size, count in d["trace"]["top"][:12]:
                print(f"    {size / 1024:8.0f} KiB {count:7d}  {where}")


if __name__ == "__main__":
    main(sys.argv[1])
