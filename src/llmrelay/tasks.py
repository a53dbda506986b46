"""Background-task helpers shared by the long-lived workers (broadcast, shared routing counters,
Prometheus state gauges)."""

from __future__ import annotations

import asyncio

__all__ = ["stop_task"]


async def stop_task(task: asyncio.Task | None) -> None:
    """Cancel ``task`` (if any) and wait for it to end, whatever it raises while stopping."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except BaseException:  # noqa: BLE001 - stopping
        pass
