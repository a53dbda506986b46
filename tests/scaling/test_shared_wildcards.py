"""Routing counters of deployments made on the fly for wildcard groups (``openai/*``) are
shared through Redis like the configured ones: two routers on one Redis, what router A sent to
X through the wildcard makes router B send the same model to Y (usage-based-routing), and
least-busy sees the other router's requests in flight."""

from __future__ import annotations

import asyncio

import pytest

from llmrelay import Router
from servers.openai_server import FakeOpenAIServer, slow_headers_reply

from .test_shared_gateways import wait_for_fresh_window

pytestmark = pytest.mark.slow

UP_KEY = "sk-wildcard-upstream-0123456789"
MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def xy():
    with FakeOpenAIServer(text="from X", api_key=UP_KEY) as x, FakeOpenAIServer(text="from Y", api_key=UP_KEY) as y:
        yield x, y


def routers(xy, redis_conf, strategy: str, prefix: str) -> list[Router]:
    url, base = redis_conf
    model_list = [{"model_name": "openai/*",
                   "litellm_params": {"model": "openai/*", "api_base": srv.url + "/v1", "api_key": UP_KEY,
                                      "tags": [tag]}}
                  for srv, tag in zip(xy, "xy")]
    return [Router(model_list=model_list, routing_strategy=strategy, redis_url=url,
                   redis_prefix=f"{base}:{prefix}:") for _ in range(2)]


def made(router: Router, model: str) -> dict[str, object]:
    """The deployments ``router`` made for ``model``, by their upstream's tag."""
    return {next(iter(dep.tags)): dep for dep in router._wildcards.made() if dep.model_name == model}


async def test_usage_based_routing_shares_wildcard_deployments(xy, redis_conf):
    a, b = routers(xy, redis_conf, "usage-based-routing", "usage")
    model = "openai/gpt-4o-mini"
    wait_for_fresh_window(redis_conf[0])  # the counters are per minute of the Redis clock
    for _ in range(12):  # A sends 12 requests to X only
        resp = await a.acompletion(model=model, messages=MESSAGES, tags=["x"])
        assert resp.choices[0].message.content == "from X"
    await b.acompletion(model=model, messages=MESSAGES, tags=["y"])  # B made the model's deployments
    await a.shared.counters.exchange()  # A sends its counts
    await b.shared.counters.exchange()  # B sends its one and reads A's
    deps = made(b, model)
    assert deps["x"].remote_requests == 12 and deps["y"].remote_requests == 0
    before = len(xy[1].chat_requests)
    texts = [(await b.acompletion(model=model, messages=MESSAGES)).choices[0].message.content for _ in range(8)]
    # X carries A's 12: B sends its 8 to Y (on B's own counts, 0 vs 1, they would alternate)
    assert texts == ["from Y"] * 8
    assert len(xy[1].chat_requests) - before == 8


async def test_least_busy_sees_the_other_routers_wildcard_requests_in_flight(xy, redis_conf):
    a, b = routers(xy, redis_conf, "least-busy", "busy")
    model = "openai/gpt-4o"
    await b.acompletion(model=model, messages=MESSAGES)  # B made the model's deployments
    xy[0].enqueue(*[slow_headers_reply(30, stream=False)] * 3)
    slow = [asyncio.ensure_future(a.acompletion(model=model, messages=MESSAGES, tags=["x"])) for _ in range(3)]
    try:
        while made(a, model).get("x") is None or made(a, model)["x"].in_flight < 3:
            await asyncio.sleep(0.01)
        counters_a, counters_b = a.shared.counters, b.shared.counters
        deps = made(b, model)

        async def seen() -> bool:  # in flight is read a slot (1 s of the Redis clock) later
            await counters_a.exchange()
            await counters_b.exchange()
            return deps["x"].remote_in_flight == 3

        deadline = asyncio.get_running_loop().time() + 30
        while not await seen():
            assert asyncio.get_running_loop().time() < deadline, "B never saw A's requests in flight"
            await asyncio.sleep(0.05)
        assert deps["y"].remote_in_flight == 0
    finally:
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)
