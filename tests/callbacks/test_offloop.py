"""The callback threads' queue (llmrelay.integrations.offloop): flush() waits without polling."""

from __future__ import annotations

import asyncio
import threading

from llmrelay.integrations import offloop


async def test_flush_is_woken_by_the_last_job_not_by_polling():
    """While a job runs, flush() sleeps: the loop is not woken every millisecond to look again
    (the thread that finishes the last job wakes it)."""
    loop = asyncio.get_running_loop()
    selector = loop._selector  # the default event loop of the tests
    wakeups = [0]
    select = selector.select

    def counting_select(timeout=None):
        wakeups[0] += 1
        return select(timeout)

    release = threading.Event()
    ran: list[str] = []
    offloop.submit(lambda: (release.wait(10), ran.append("job")), ())
    selector.select = counting_select
    try:
        flushing = asyncio.ensure_future(offloop.flush())
        await asyncio.sleep(0.2)  # the job is still blocked: flush is waiting
        during = wakeups[0]
        assert not flushing.done()
        release.set()
        await asyncio.wait_for(flushing, 5)
    finally:
        selector.select = select
        release.set()
    assert ran == ["job"] and not offloop.busy()
    assert during < 10, f"the loop woke {during} times in 0.2 s while flush() waited"


async def test_flush_returns_at_once_when_nothing_is_queued():
    await asyncio.wait_for(offloop.flush(), 1)
    assert not offloop._waiters


async def test_concurrent_flushes_all_return():
    release = threading.Event()
    offloop.submit(release.wait, (10,))
    flushes = [asyncio.ensure_future(offloop.flush()) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert not any(f.done() for f in flushes)
    release.set()
    await asyncio.wait_for(asyncio.gather(*flushes), 5)
    assert not offloop.busy() and not offloop._waiters
