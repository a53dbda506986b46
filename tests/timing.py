"""Waiting for state changes in tests on a loaded machine (load 6–12 on 2 cores is normal here).

No timing assertions: a test polls for the state it expects with a generous deadline (it returns
as soon as the state is there, so the deadline costs only a failing test), and a test that
needs something to happen *within* a period (a budget period, a cache TTL) runs that part with
:func:`in_one_period`, which gives it a longer period when the machine was too slow to tell.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Sequence, TypeVar

import pytest

T = TypeVar("T")

log = logging.getLogger("tests.timing")

#: Seconds a test waits for a state change before it fails.
DEADLINE = 30.0


def wait_for(predicate: Callable[[], T], timeout: float = DEADLINE, what: str = "condition") -> T:
    """Call ``predicate`` until it returns something true (returned), failing after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


async def eventually(call: Callable[[], Awaitable[T]], accept: Callable[[T], object],
                     timeout: float = DEADLINE, what: str = "condition") -> T:
    """``await call()`` until ``accept`` takes its result (returned), failing after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await call()
        if accept(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}: last {value!r}"
        await asyncio.sleep(0.05)


def in_one_period(first: Callable[[float], T], periods: Sequence[float] = (2.0, 8.0, 30.0)) -> T:
    """``first(period)``: the part of a test that must happen within a period of ``period``
    seconds that it starts (a budget period, a cache entry's TTL…): its result.

    Under heavy load that part may not end before its period does, and then fail for that
    reason alone. So when it fails *after* its period is over, it runs again (with fresh names:
    ``first`` makes its own key, entry…) with the next, longer period; a failure while the
    period lasts, or in the last period, is the test's failure.
    """
    for period in periods:
        start = time.time()
        try:
            return first(period)
        except (Exception, pytest.fail.Exception):
            if period == periods[-1] or time.time() < start + period:
                raise
            log.warning("the first part outlasted its %g s period: again with a longer one", period)
    raise AssertionError("no period given")
