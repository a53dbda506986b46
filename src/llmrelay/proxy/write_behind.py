"""The background writer behind the spend log and the Responses API state: a queue the request
path only appends to, written by a task every ``interval`` seconds (backing off while the
database fails) and flushed at graceful shutdown. An empty queue's task sleeps until something
is queued (:meth:`WriteBehind.wake`), then writes what the interval gathered: an idle gateway
does not wake for it."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from ..storage import StoreError

__all__ = ["WriteBehind"]

log = logging.getLogger("llmrelay.proxy.write_behind")


class WriteBehind:
    """Subclasses implement :meth:`flush` (raise :class:`StoreError`, queue kept, on failure) and
    may override :meth:`after_flush`, :meth:`failed` and :meth:`lost`."""

    #: What is written, for the log.
    what = "queue"
    #: Seconds an empty queue's task sleeps at most (None: until something is queued); for
    #: periodic upkeep in :meth:`after_flush`.
    idle_wake: float | None = None

    def __init__(self, interval: float) -> None:
        self.interval = max(0.01, interval)
        self._task: asyncio.Task | None = None
        self._failing = 0
        #: the empty queue's task waits on it; :meth:`wake` (on enqueue) sets it
        self.waiter: asyncio.Future | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self, timeout: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except (asyncio.TimeoutError, StoreError) as exc:
            self.lost(exc)

    def wake(self) -> None:
        """Something was queued: the writer writes it at the end of the interval (subclasses
        call it on enqueue, inline where it is hot: ``if self.waiter is not None``)."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def has_work(self) -> bool:  # pragma: no cover - abstract
        """Whether anything is queued."""
        raise NotImplementedError

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.has_work():
                waiter = self.waiter = loop.create_future()
                timer = loop.call_later(self.idle_wake, self.wake) if self.idle_wake is not None else None
                try:
                    await waiter
                finally:
                    self.waiter = None
                    if timer is not None:
                        timer.cancel()
            await asyncio.sleep(self.interval if not self._failing else min(5.0, self.interval * 2 ** self._failing))
            try:
                await self.flush()
                await self.after_flush()
            except StoreError as exc:
                self._failing += 1
                self.failed(exc)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the writer must survive anything
                log.exception("writing the %s failed", self.what)

    @staticmethod
    async def write_batch(queue: deque, store: Any, write: Any, size: int) -> list:
        """Write up to ``size`` items from the front of ``queue`` with ``store.run(write, batch)``
        and return them; if the write fails they go back to the front, in order."""
        batch = [queue.popleft() for _ in range(min(size, len(queue)))]
        try:
            await store.run(write, batch)
        except BaseException:
            queue.extendleft(reversed(batch))
            raise
        return batch

    async def flush(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def after_flush(self) -> None:
        """After a successful flush (periodic upkeep)."""

    def failed(self, exc: StoreError) -> None:
        """A flush failed (the queue is kept and retried)."""

    def lost(self, exc: BaseException) -> None:
        """The shutdown flush failed: what was queued is lost."""
