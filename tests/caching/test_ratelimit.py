"""The limiter's semantics, the same on both backends: in memory and on a real Redis."""

from __future__ import annotations

import time

import pytest

from llmrelay.ratelimit import Limit, LocalLimiter, RedisLimiter, SharedLimiter
from llmrelay.redis_link import RedisLink, RedisUnavailable
from servers.redis_server import SKIP_REASON, delete_matching, free_port, redis_url, unique_prefix
from timing import eventually


@pytest.fixture(autouse=True)
def fresh_minute():
    """Windows are minutes of the clock (Redis's is this machine's): a test that started in the
    last seconds of one would see its counts start again halfway."""
    into = time.time() % 60
    if into > 55:
        time.sleep(60.05 - into)


@pytest.fixture(params=["local", "redis"])
def limiter(request):
    if request.param == "local":
        yield LocalLimiter()
        return
    url = redis_url()
    if url is None:
        pytest.skip(SKIP_REASON)
    prefix = unique_prefix("rl") + ":"
    yield RedisLimiter(RedisLink(url), prefix)
    delete_matching(url, prefix + "*")


async def test_rpm_all_or_nothing(limiter):
    both = [Limit("key:a", rpm=3), Limit("team:t", rpm=5)]
    grants = [await limiter.acquire(both) for _ in range(4)]
    assert [g.allowed for g in grants] == [True, True, True, False]
    assert grants[0].remaining_requests == 2 and grants[2].remaining_requests == 0
    refused = grants[3]
    assert refused.limit == "key:a" and refused.kind == "rpm" and 0 < refused.retry_after <= 60
    # the refused request took nothing from the team: 2 more fit under its 5
    team = [await limiter.acquire([Limit("team:t", rpm=5)]) for _ in range(3)]
    assert [g.allowed for g in team] == [True, True, False]


async def test_parallel_slots_are_given_back(limiter):
    lim = [Limit("key:p", parallel=2)]
    a, b, c = [await limiter.acquire(lim) for _ in range(3)]
    assert (a.allowed, b.allowed, c.allowed) == (True, True, False)
    assert c.kind == "parallel" and c.retry_after == 1.0
    await limiter.release(a)
    assert (await limiter.acquire(lim)).allowed


async def test_tpm_reserves_then_books_real_usage(limiter):
    lim = [Limit("key:t", tpm=100)]
    first = await limiter.acquire(lim, tokens=60)
    assert first.allowed and first.remaining_tokens == 40
    assert not (await limiter.acquire(lim, tokens=60)).allowed  # 60 reserved + 60 > 100
    await limiter.release(first, tokens_used=20)  # it really used 20
    second = await limiter.acquire(lim, tokens=60)
    assert second.allowed and second.remaining_tokens == 20
    await limiter.release(second, tokens_used=90)  # over the estimate: booked as used
    refused = await limiter.acquire(lim, tokens=1)
    assert not refused.allowed and refused.kind == "tpm"


async def test_shared_limiter_falls_back_to_local_and_back():
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    shared = SharedLimiter(link, unique_prefix("rl") + ":")
    lim = [Limit("key:f", rpm=2)]
    grants = [await shared.acquire(lim) for _ in range(3)]
    assert [g.allowed for g in grants] == [True, True, False]
    assert not any(g.shared for g in grants) and link.up is False
    await shared.release(grants[0])
    with pytest.raises(RedisUnavailable):
        await link.run(lambda r: r.ping())


async def test_redis_limits_speaks_the_keys_pipeline_protocol():
    """The keys pipeline's LimitBackend (rate_limits: acquire(limits) / release(limits, tokens)) on Redis."""
    from llmrelay.proxy.rate_limits import Decision
    from llmrelay.proxy.rate_limits import Limit as KeyLimit
    from llmrelay.proxy.shared_limits import RedisLimits

    url = redis_url()
    if url is None:
        pytest.skip(SKIP_REASON)

    prefix = unique_prefix("keys") + ":"
    backend = RedisLimits(RedisLink(url), Decision, prefix)
    limits = [KeyLimit("key:abc", "key", rpm=5, tpm=100, parallel=1), KeyLimit("team:t", "team", rpm=2)]
    try:
        first = await backend.acquire(limits)
        assert first.allowed and first.limit_requests == 2 and first.remaining_requests == 1
        assert first.limit_tokens == 100 and first.remaining_tokens == 100
        busy = await backend.acquire(limits)
        assert not busy.allowed and busy.reason == "key max_parallel_requests limit (1)"
        await backend.release(limits, 60)  # sent in the background: the slot is free once it is there
        second = await eventually(lambda: backend.acquire(limits), lambda d: d.allowed, what="the slot given back")
        assert second.remaining_tokens == 40
        await backend.release(limits, 30)
        third = await eventually(lambda: backend.acquire(limits), lambda d: "parallel" not in d.reason,
                                 what="the slot given back")
        assert not third.allowed and third.reason == "team rpm limit (2/min)" and 0 < third.retry_after <= 60
        await backend.release(limits, 0)  # nothing held: a no-op
    finally:
        delete_matching(url, prefix + "*")


async def test_release_soon_sends_token_corrections_together():
    url = redis_url()
    if url is None:
        pytest.skip(SKIP_REASON)
    prefix = unique_prefix("rl") + ":"
    shared = SharedLimiter(RedisLink(url), prefix)
    lim = [Limit("key:b", tpm=100)]
    try:
        grants = [await shared.acquire(lim, tokens=30) for _ in range(3)]
        assert [g.allowed for g in grants] == [True, True, True] and all(g.shared for g in grants)
        for grant in grants:
            shared.release_soon(grant, 10)  # each really used 10
        assert len(shared._pending) == 3  # waiting to go out in one round trip
        # 90 reserved + 60 > 100 until the corrections are in (a refusal takes nothing)
        after = await eventually(lambda: shared.acquire(lim, tokens=60), lambda g: g.allowed,
                                 what="the token corrections")
        assert after.remaining_tokens == 10
    finally:
        delete_matching(url, prefix + "*")
