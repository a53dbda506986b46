"""router._within: wait_for's contract (a timeout, the caller's own cancel, the result) without a task."""

from __future__ import annotations

import asyncio

import pytest

from llmrelay.router import _within


def test_result_and_no_cancel_left_behind():
    async def main():
        async def quick():
            await asyncio.sleep(0)
            return 42

        assert await _within(quick(), 5) == 42
        task = asyncio.current_task()
        assert getattr(task, "cancelling", lambda: 0)() == 0
        await asyncio.sleep(0.01)  # nothing cancels us later
        return True

    assert asyncio.run(main())


def test_timeout_raises_timeout_error_and_the_task_goes_on():
    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await _within(asyncio.sleep(10), 0.01)
        await asyncio.sleep(0.02)  # the task is not cancelled again
        assert getattr(asyncio.current_task(), "cancelling", lambda: 0)() == 0
        return True

    assert asyncio.run(main())


def test_the_callers_cancel_stays_a_cancel():
    async def main():
        started = asyncio.Event()

        async def waiting():
            started.set()
            return await _within(asyncio.sleep(10), 5)

        task = asyncio.ensure_future(waiting())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return True

    assert asyncio.run(main())
