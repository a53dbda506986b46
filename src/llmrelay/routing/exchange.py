"""A router's background exchange with Redis: every ``interval`` seconds, in the event loop,
send what this instance counted and read everyone's (:mod:`.shared_usage`, :mod:`.shared_budgets`).

A failed exchange is never raised: while Redis is unreachable (logged by the link, one line per
state change) or an exchange fails otherwise (one warning), :meth:`PeriodicExchange.lost` puts
the instance back on its own counts until an exchange succeeds again.
"""

from __future__ import annotations

import asyncio
import logging

from ..broadcast import _cancelling
from ..redis_link import RedisUnavailable
from ..tasks import stop_task

__all__ = ["PeriodicExchange", "INTERVAL"]

log = logging.getLogger("llmrelay.router")

#: Seconds between two exchanges with Redis.
INTERVAL = 0.5


class PeriodicExchange:
    """The task around :meth:`exchange` (subclasses define it, and :meth:`lost`)."""

    #: The warning logged once when an exchange fails other than by Redis being unreachable.
    failure_message = "exchanging with Redis failed; this instance counts on its own"

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = float(interval)
        self._task: asyncio.Task | None = None
        self._warned = False
        #: Exchanges that succeeded (for tests and dashboards).
        self.exchanges = 0

    async def exchange(self) -> None:  # pragma: no cover - abstract
        """One exchange (raises RedisUnavailable)."""
        raise NotImplementedError

    def lost(self) -> None:
        """An exchange failed, or the task stopped: go on with this instance's own counts."""

    def start(self) -> asyncio.Task:
        """Run the exchanges in the running event loop (idempotent); the task."""
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._task = asyncio.get_running_loop().create_task(self._run())
        return task

    def cancel(self) -> None:
        """Stop exchanging (without waiting for the task to end: it is cancelled)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            await stop_task(task)
        self.lost()

    async def _run(self) -> None:
        task = asyncio.current_task()
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.exchange()
            except RedisUnavailable:  # logged by the link, once per state change
                self.lost()
            except Exception:  # noqa: BLE001 - routing goes on with this instance's counts
                self.lost()
                if not self._warned:
                    self._warned = True
                    log.warning(self.failure_message, exc_info=True)
            if _cancelling(task):  # a cancellation redis-py took for its own timeout (loop shutdown)
                raise asyncio.CancelledError
