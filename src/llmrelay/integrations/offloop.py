"""Where sync callbacks of async calls run: a few long-lived threads fed by one queue.

``loop.run_in_executor`` per call costs a future, a hand-off to the executor and a hand-back to
the loop (a write to its self-pipe, an extra loop iteration) for a result nobody needs. Here a
call costs one ``SimpleQueue.put``: the threads never report back. :func:`flush` waits (from a
loop, without blocking it or polling) until nothing is queued or running: the thread that finishes
the last job wakes the loops waiting in it, once.

Threads start on first use, one more whenever a job arrives while all are busy (up to
:data:`MAX_THREADS`, so a slow callback does not hold up the others), and live for the process
(as an executor's do). A thread that ran a job takes what arrives within :data:`BATCH_WAIT`
without being woken per job, so calls close together share one wake-up. At interpreter exit
the queued jobs are run before the threads stop; a forked child starts its own threads.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from typing import Any, Callable

__all__ = ["submit", "flush", "busy", "MAX_THREADS"]

log = logging.getLogger("llmrelay.callbacks")

#: Most threads running callbacks at once.
MAX_THREADS = 8
#: Seconds the interpreter's exit waits for queued callbacks at most.
EXIT_WAIT = 10.0
#: After a job, a thread takes what arrived within this many seconds without being woken for
#: each (a callback runs at most this much later; calls close together share one wake-up).
BATCH_WAIT = 0.02

_queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
_threads: list[threading.Thread] = []
_idle: list[int] = []  # one entry per thread waiting for a job (list append/pop are atomic)
_inflight: deque = deque()  # one entry per job queued or running
_lock = threading.Lock()
_stopping = False
#: (loop, future) of each flush() waiting for the last job to finish (resolved by that job's thread)
_waiters: list[tuple[Any, Any]] = []
#: Longest a flush() waits for its wake-up before looking again (a safety net: it is woken).
FLUSH_RECHECK = 0.25


def submit(fn: Callable[..., Any], args: tuple) -> None:
    """Run ``fn(*args)`` in a callback thread (its exceptions are the caller's ``fn``'s to catch)."""
    _inflight.append(None)
    _queue.put((fn, args))
    if not _idle and len(_threads) < MAX_THREADS:
        _start()


def busy() -> bool:
    """Whether a job is queued or running."""
    return bool(_inflight)


async def flush() -> None:
    """Wait (without blocking the loop) until no job is queued or running. The thread that
    finishes the last job wakes the waiting loop (one hand-off, not a poll per millisecond)."""
    import asyncio

    loop = asyncio.get_running_loop()
    while _inflight:
        future = loop.create_future()
        waiter = (loop, future)
        with _lock:
            _waiters.append(waiter)
        # a job that ended between the check above and the append did not see this waiter
        if _inflight:
            await asyncio.wait((future,), timeout=FLUSH_RECHECK)
        with _lock:
            if waiter in _waiters:
                _waiters.remove(waiter)


def _start() -> None:
    with _lock:
        if _stopping or len(_threads) >= MAX_THREADS:
            return
        thread = threading.Thread(target=_run, name=f"llmrelay-callbacks-{len(_threads)}", daemon=True)
        _threads.append(thread)
        thread.start()


def _run() -> None:
    get, get_nowait, idle = _queue.get, _queue.get_nowait, _idle
    while True:
        idle.append(1)
        job = get()
        idle.pop()
        while True:
            if job is None:
                return
            _one(job)
            try:  # what is already queued
                job = get_nowait()
                continue
            except queue.Empty:
                pass
            # What arrives in the next moment is taken without a wake-up per job: the thread
            # counts as idle meanwhile (no thread is started for it), and a put while nobody
            # waits on the queue makes no system call.
            idle.append(1)
            time.sleep(BATCH_WAIT)
            idle.pop()
            try:
                job = get_nowait()
            except queue.Empty:
                break  # quiet: wait to be woken


def _one(job: tuple) -> None:
    fn, args = job
    try:
        fn(*args)
    except BaseException:  # noqa: BLE001 - a thread that dies would strand the queue
        log.warning("callback job %r failed", fn, exc_info=True)
    finally:
        _inflight.pop()
        if not _inflight and _waiters:
            _wake_flushers()


def _wake_flushers() -> None:
    """Nothing is queued or running: wake the loops waiting in :func:`flush`."""
    with _lock:
        waiters = list(_waiters)
        _waiters.clear()
    for loop, future in waiters:
        try:
            loop.call_soon_threadsafe(_resolve, future)
        except RuntimeError:  # its loop is closed: nobody waits any more
            pass


def _resolve(future: Any) -> None:
    if not future.done():
        future.set_result(None)


def _drain_at_exit() -> None:
    """Run what is queued, then stop the threads (before the interpreter tears down)."""
    global _stopping
    with _lock:
        _stopping = True
        threads = list(_threads)
    for _ in threads:
        _queue.put(None)
    deadline = time.monotonic() + EXIT_WAIT
    for thread in threads:  # a callback that hangs delays the exit by EXIT_WAIT at most
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _after_fork() -> None:
    global _queue, _lock, _stopping
    _queue = queue.SimpleQueue()
    _lock = threading.Lock()
    _threads.clear()
    _idle.clear()
    _inflight.clear()
    _waiters.clear()
    _stopping = False


try:  # as concurrent.futures does: before threads are joined and modules torn down
    threading._register_atexit(_drain_at_exit)  # type: ignore[attr-defined]
except (AttributeError, RuntimeError):  # pragma: no cover - other interpreters
    import atexit

    atexit.register(_drain_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
