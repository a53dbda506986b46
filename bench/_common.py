"""Helpers shared by the micro-benchmarks in bench/ (imported as ``_common``: the scripts run as
``python bench/<name>.py``, which puts bench/ on sys.path)."""

from __future__ import annotations

import time
from typing import Callable


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``run`` (time.perf_counter), in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def reads_of(data: bytes, size: int) -> list[bytes]:
    """``data`` as consecutive reads of ``size`` bytes (the last one may be shorter)."""
    return [data[i : i + size] for i in range(0, len(data), size)]
