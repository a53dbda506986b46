"""RedisLink's request path (``execute``/``pipeline``) against a real Redis: replies, scripts
loaded again after a ``SCRIPT FLUSH``-like loss, and the up/down state changing once per real
change (a late reply to an old command does not mark a down link up)."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmrelay.redis_link import RedisLink, RedisUnavailable
from servers.redis_server import SKIP_REASON, delete_matching, redis_url, unique_prefix
from timing import DEADLINE


@pytest.fixture
def link_and_prefix():
    url = redis_url()
    if url is None:
        pytest.skip(SKIP_REASON)
    prefix = unique_prefix("link")
    yield RedisLink(url), prefix
    delete_matching(url, prefix + "*")


async def test_execute_and_pipeline(link_and_prefix):
    link, prefix = link_and_prefix
    assert await link.execute("SET", prefix + ":a", "1") == b"OK"
    replies = await link.pipeline([("INCR", prefix + ":a"), ("GET", prefix + ":a"), ("HGET", prefix + ":a", "x")])
    assert replies[:2] == [2, b"2"]
    assert isinstance(replies[2], Exception)  # WRONGTYPE: returned, not raised, in a pipeline
    await link.aclose()


async def test_an_unknown_script_is_loaded_and_sent_again(link_and_prefix):
    link, prefix = link_and_prefix
    source = f"return redis.call('INCR', KEYS[1]) -- {prefix}"  # a script Redis has never seen
    sha = link.script(source)
    assert await link.execute("EVALSHA", sha, 1, prefix + ":n") == 1
    replies = await link.pipeline([("INCR", prefix + ":n"), ("EVALSHA", sha, 1, prefix + ":n")])
    assert replies == [2, 3]  # the other command of the pipeline ran once
    await link.aclose()


async def test_a_late_reply_does_not_mark_a_down_link_up(link_and_prefix):
    link, prefix = link_and_prefix
    changes: list[bool] = []
    link.listeners.append(changes.append)
    await link.execute("PING")
    # a command started while up, answered after the link went down (BLPOP waits 0.3 s)
    slow = asyncio.ensure_future(link.execute("BLPOP", prefix + ":never", "0.3"))
    await asyncio.sleep(0.05)
    link.failed(ConnectionError("another command failed"))
    assert await slow is None
    assert not link.up and changes == [False]
    with pytest.raises(RedisUnavailable):  # no network while down and not due for a probe
        await link.execute("PING")
    deadline = time.monotonic() + DEADLINE
    while not link.available():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert await link.execute("PING") == b"PONG"  # the probe
    assert link.up and changes == [False, True]
    await link.aclose()
