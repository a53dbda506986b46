"""Where a gateway's event loop stalls: a probe loaded into ``python -m llmrelay.proxy`` (issue 18).

For experiments only, never in the product. Put this directory first on ``PYTHONPATH`` and set
``LOOPPROBE=<dir>``; every gateway process started with that environment (for example by
``bench/bench_proxy.py --paced``, which passes its environment on) records, and writes
``<dir>/<pid>.json`` when it exits::

    LOOPPROBE=/tmp/probe PYTHONPATH=bench/loopprobe:src:tests python bench/bench_proxy.py --paced ...
    python bench/loopprobe/report.py /tmp/probe

Recorded:

* a 1 ms heartbeat on the loop: how late each tick was, and for every tick more than 2 ms late
  the main thread's CPU time (``time.thread_time``), its run-queue wait and time on a CPU
  (``/proc/self/task/<tid>/schedstat``) and the collections inside it — so a stall reads as
  "the process was not scheduled" (run queue), "the loop was busy" (CPU), "a collection", or
  "asleep while its timer was due" (a blocking call, or waiting for the GIL);
* every garbage collection: generation, main-thread or not, wall and CPU time of the thread
  that ran it (``gc.callbacks``);
* with ``LOOPPROBE_BG=1``, the CPU time of each background job: executor work items (the
  database thread, ``asyncio.to_thread``) and OTLP span exports;
* with ``LOOPPROBE_SAVEALL=1``, what the cyclic collector frees (``gc.DEBUG_SAVEALL``): counts by
  type and an estimate of the bytes per served request (keeps all garbage: memory grows);
* with ``LOOPPROBE_TRACE=1``, ``tracemalloc`` from the end of start-up: the largest growth by line
  at the moment of the most traced memory (slows the gateway several times).

The heartbeat, the ``/proc`` reads and the callbacks cost a little CPU (~2% of a core).
"""

from __future__ import annotations

import os
import sys

_DIR = os.environ.get("LOOPPROBE")

if _DIR and "llmrelay.proxy" in getattr(sys, "orig_argv", sys.argv):
    import atexit
    import collections
    import gc
    import json
    import threading
    import time

    _perf = time.perf_counter
    _main = threading.get_ident()
    _state: dict = {"ticks": 0, "late": collections.Counter(), "stalls": [], "gcs": [], "bg": []}
    _gc_start = [0.0, 0.0]

    def _on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            _gc_start[0], _gc_start[1] = _perf(), time.thread_time()
        else:
            _state["gcs"].append((_gc_start[0], _perf() - _gc_start[0], info["generation"], info["collected"],
                                  threading.get_ident() == _main, time.thread_time() - _gc_start[1]))

    gc.callbacks.append(_on_gc)
    _schedstat = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)

    def _sched() -> tuple[float, float]:
        on_cpu, waiting = os.pread(_schedstat, 100, 0).split()[:2]
        return int(on_cpu) / 1e9, int(waiting) / 1e9

    async def _heartbeat() -> None:
        import asyncio

        gcs = _state["gcs"]
        last, cpu0, (on0, wait0), seen = _perf(), time.thread_time(), _sched(), 0
        while True:
            await asyncio.sleep(0.001)
            now, cpu, (on, wait) = _perf(), time.thread_time(), _sched()
            late = now - last - 0.001
            _state["ticks"] += 1
            _state["late"][int(late * 1e3)] += 1
            if late > 0.002:
                inside = [g for g in gcs[seen:] if g[0] >= last]
                _state["stalls"].append({"late": late, "wall": now - last, "cpu": cpu - cpu0, "on_cpu": on - on0,
                                         "runq": wait - wait0, "gc": sum(g[5] for g in inside)})
            seen = len(gcs)
            last, cpu0, on0, wait0 = now, cpu, on, wait

    def _dump() -> None:
        out = dict(_state, late=dict(_state["late"]), argv=sys.orig_argv, threshold=gc.get_threshold(),
                   frozen=gc.get_freeze_count(), stats=gc.get_stats())
        if os.environ.get("LOOPPROBE_SAVEALL"):
            gc.collect()
            kinds = collections.Counter(type(o).__qualname__ for o in gc.garbage)
            out["garbage"] = kinds.most_common(30)
            out["garbage_bytes"] = sum(sys.getsizeof(o) for o in gc.garbage)  # shallow: a lower bound
        with open(os.path.join(_DIR, f"{os.getpid()}.json"), "w") as f:
            json.dump(out, f)

    atexit.register(_dump)

    if os.environ.get("LOOPPROBE_BG"):
        import concurrent.futures.thread as _cft

        _run = _cft._WorkItem.run

        def _timed_run(self: object) -> None:
            cpu = time.thread_time()
            try:
                _run(self)
            finally:
                name = getattr(getattr(self, "fn", None), "__qualname__", None) or repr(getattr(self, "fn", "?"))[:40]
                _state["bg"].append((f"executor {name}", time.thread_time() - cpu))

        _cft._WorkItem.run = _timed_run
        import llmrelay.integrations.opentelemetry as _otel

        _make = _otel.otlp_http_exporter

        def _exporter(**kwargs: object) -> object:
            exporter = _make(**kwargs)
            export = exporter.export

            def timed(spans: object) -> object:
                cpu = time.thread_time()
                try:
                    return export(spans)
                finally:
                    _state["bg"].append((f"otlp export of {len(spans)} spans", time.thread_time() - cpu))

            exporter.export = timed
            return exporter

        _otel.otlp_http_exporter = _exporter

    import llmrelay.proxy.app as _app

    _lifespan = _app.ProxyApp._lifespan

    async def _probed_lifespan(self: object, receive: object, send: object) -> None:
        import asyncio

        async def probed_send(message: dict) -> None:
            if message.get("type") == "lifespan.startup.complete":
                self._loopprobe = asyncio.ensure_future(_heartbeat())
                if os.environ.get("LOOPPROBE_SAVEALL"):
                    gc.set_debug(gc.DEBUG_SAVEALL)
                if os.environ.get("LOOPPROBE_TRACE"):
                    _start_trace()
            await send(message)

        await _lifespan(self, receive, probed_send)

    _app.ProxyApp._lifespan = _probed_lifespan

    def _start_trace() -> None:
        import asyncio
        import tracemalloc

        tracemalloc.start(1)
        base = tracemalloc.take_snapshot()
        floor = tracemalloc.get_traced_memory()[0]

        async def sample() -> None:
            best = 0
            while True:
                await asyncio.sleep(1.5)
                now = tracemalloc.get_traced_memory()[0]
                if now > best:
                    best = now
                    top = tracemalloc.take_snapshot().compare_to(base, "lineno")[:30]
                    _state["trace"] = {"growth": now - floor, "top": [(str(s.traceback[0]), s.size_diff, s.count_diff)
                                                                        for s in top]}

        asyncio.ensure_future(sample())
