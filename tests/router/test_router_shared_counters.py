"""Routers sharing one Redis share the counters ``usage-based-routing`` and ``least-busy`` read.

Two library Routers with the same model list and one Redis prefix stand for two instances: one
router's traffic steers the other's choices. Deployment X is tagged ``x`` so that router A can
send its traffic to X alone (``tags=["x"]``); untagged calls may use X or Y.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from llmrelay import Router
from llmrelay.routing.deployment import Deployment
from scaling.test_shared_gateways import wait_for_fresh_window
from servers.redis_server import SKIP_REASON, delete_matching, free_port, redis_url, unique_prefix

from .conftest import MESSAGES, counts, deployment


@pytest.fixture
def shared_redis():
    """(Redis URL, a key prefix of this test's own), its keys deleted afterwards."""
    url = redis_url()
    if url is None:
        pytest.skip(SKIP_REASON)
    prefix = unique_prefix("counters")
    yield url, prefix + ":"
    delete_matching(url, prefix + "*")


def two_routers(upstreams, url: str, prefix: str, strategy: str) -> list[Router]:
    a, b = upstreams[:2]

    def model_list() -> list[dict[str, Any]]:
        return [deployment(a, tags=["x"], model_info={"id": "x"}),
                deployment(b, tags=["y"], model_info={"id": "y"})]

    # redis_timeout: a machine busy with other suites can starve this process for 0.5 s
    return [Router(model_list=model_list(), routing_strategy=strategy, redis_url=url, redis_prefix=prefix,
                   redis_timeout=2) for _ in range(2)]


def state(router: Router) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in router.deployment_state()}


async def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


async def text_of(router: Router, **kwargs: Any) -> str:
    response = await router.acompletion(model="g", messages=MESSAGES, **kwargs)
    return response.choices[0].message.content


async def stop(*routers: Router) -> None:
    for router in routers:
        await router.shared.stop()


async def test_usage_based_routing_counts_the_other_routers_traffic(upstreams, shared_redis):
    # the shared usage counts per minute of the Redis clock, a router's own window from its first
    # call: the comparisons below must not see that minute roll over
    wait_for_fresh_window(shared_redis[0], need=30)
    ra, rb = two_routers(upstreams, *shared_redis, "usage-based-routing")
    rb.shared.start()  # (a router starts exchanging on its first async call; B makes none yet)
    try:
        for _ in range(10):  # A sends 10 calls to X only
            assert await text_of(ra, tags=["x"]) == "from A"
        tokens = state(ra)["x"]["tpm_used"]
        assert tokens > 0
        await wait_until(lambda: state(rb)["x"]["remote_tpm_used"] == tokens, "B sees A's tokens on X")
        assert state(rb)["x"]["remote_rpm_used"] == 10
        # X carries A's 10 calls: B sends its next 8 to Y (on its own counts it would alternate)
        texts = [await text_of(rb) for _ in range(8)]
        assert texts == ["from B"] * 8
        assert counts(upstreams)[:2] == [10, 8]
        # and A learns of B's calls in turn (its own are not counted twice)
        await wait_until(lambda: state(ra)["y"]["remote_rpm_used"] == 8, "A sees B's calls on Y")
        assert state(ra)["x"]["remote_rpm_used"] == 0 and state(rb)["y"]["remote_rpm_used"] == 0
    finally:
        await stop(ra, rb)


async def test_least_busy_counts_the_other_routers_streams(upstreams, shared_redis):
    ra, rb = two_routers(upstreams, *shared_redis, "least-busy")
    rb.shared.start()
    try:
        # A holds three streams open on X (first chunk read, the rest not)
        streams = [await ra.acompletion(model="g", messages=MESSAGES, stream=True, tags=["x"]) for _ in range(3)]
        assert state(ra)["x"]["in_flight"] == 3
        await wait_until(lambda: state(rb)["x"]["remote_in_flight"] == 3, "B sees A's streams on X")
        # B is idle on both; X is busy elsewhere: B sends everything to Y (a tie would be random)
        texts = [await text_of(rb) for _ in range(10)]
        assert texts == ["from B"] * 10
        for s in streams:
            async for _ in s:
                pass
        assert state(ra)["x"]["in_flight"] == 0
        await wait_until(lambda: state(rb)["x"]["remote_in_flight"] == 0, "B sees A's streams end")
    finally:
        await stop(ra, rb)


async def test_routing_works_on_local_counts_when_redis_is_unreachable(upstreams, caplog):
    port = free_port()  # nothing listens there
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a), deployment(b)], routing_strategy="usage-based-routing",
                    redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout=0.2)
    caplog.set_level(logging.DEBUG, logger="llmrelay")
    try:
        texts = [await text_of(router) for _ in range(6)]
        assert sorted(texts) == ["from A"] * 3 + ["from B"] * 3  # balanced on this router's counts
        link = router.shared.link
        await wait_until(lambda: link.failures >= 2, "the exchange retried Redis")
        texts = [await text_of(router) for _ in range(4)]
        assert sorted(texts) == ["from A"] * 2 + ["from B"] * 2
        assert all(s["remote_tpm_used"] == 0 for s in router.deployment_state())
        down = [r for r in caplog.records if "is unreachable" in r.getMessage()]
        assert len(down) == 1, [r.getMessage() for r in caplog.records]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r not in down]
    finally:
        await stop(router)


def test_a_window_filled_by_a_shared_limit_is_not_usage():
    dep = Deployment({"model_name": "g", "litellm_params": {"model": "openai/x", "rpm": 50, "tpm": 900}}, 0)
    now = time.monotonic()
    dep.start(now)
    dep.add_tokens(30)
    dep.fill_window(now, "rpm", 20.0)
    dep.fill_window(now, "tpm", 20.0)
    assert dep.over_limit(now)
    assert dep.usage() == (1, 30)
    dep.start(now + 41)  # the window rolled over
    assert (dep.window_requests, dep.window_tokens) == (1, 0)
    assert dep.usage() == (2, 30)
