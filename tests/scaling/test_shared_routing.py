"""Two real gateway processes sharing one Redis route on each other's traffic
(``routing_strategy: usage-based-routing``): what instance A sent to deployment X makes instance
B send its requests to Y."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer

from .test_shared_gateways import wait_for_fresh_window

pytestmark = pytest.mark.slow

KEY = "sk-routing-master"
UP_KEY = "sk-routing-upstream-0123456789"


@pytest.fixture(scope="module")
def xy():
    with FakeOpenAIServer(text="from X", api_key=UP_KEY) as x, FakeOpenAIServer(text="from Y", api_key=UP_KEY) as y:
        yield x, y


@pytest.fixture(scope="module")
def two(xy, redis_conf, tmp_path_factory):
    url, prefix = redis_conf
    params = 'model: openai/gpt-4o-mini, api_base: "{}/v1", api_key: ' + UP_KEY
    path = tmp_path_factory.mktemp("routing") / "config.yaml"
    path.write_text(f"""
model_list:
  - model_name: pair
    litellm_params: {{{params.format(xy[0].url)}, tags: [x]}}
  - model_name: pair
    litellm_params: {{{params.format(xy[1].url)}, tags: [y]}}
router_settings:
  routing_strategy: usage-based-routing
  redis_url: "{url}"
  redis_prefix: "{prefix}:"
  redis_timeout: 2
general_settings:
  master_key: {KEY}
""")
    gateways = [Gateway(str(path)) for _ in range(2)]
    try:
        yield gateways
    finally:
        for gw in gateways:
            gw.stop()


def shared_requests(url: str, prefix: str) -> int:
    """Requests in the shared usage counters (every deployment, every minute)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return sum(int(value) for key in client.scan_iter(match=f"{prefix}:router:usage:*")
                   for field, value in client.hgetall(key).items() if field.endswith(b"|r"))
    finally:
        client.close()


async def wait_for_total(url: str, prefix: str, total: int) -> None:
    deadline = time.monotonic() + 30
    while shared_requests(url, prefix) < total:
        assert time.monotonic() < deadline, f"the shared counters never reached {total} requests"
        await asyncio.sleep(0.05)


async def test_usage_based_routing_counts_the_other_instances_traffic(two, xy, redis_conf):
    a, b = two
    url, prefix = redis_conf
    ca, cb = (openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=20) for gw in two)
    messages = [{"role": "user", "content": "Hi"}]
    wait_for_fresh_window(url)  # the counters are per minute of the Redis clock: stay in one
    try:
        for _ in range(12):  # A sends 12 requests to X only
            resp = await ca.chat.completions.create(model="pair", messages=messages, extra_body={"tags": ["x"]})
            assert resp.choices[0].message.content == "from X"
        await wait_for_total(url, prefix, 12)  # A has sent its counts
        # one request through B; once Redis counts it, B's exchange has also read A's counts
        await cb.chat.completions.create(model="pair", messages=messages)
        await wait_for_total(url, prefix, 13)
        before = len(xy[1].chat_requests)
        texts = [(await cb.chat.completions.create(model="pair", messages=messages)).choices[0].message.content
                 for _ in range(8)]
        # X carries A's 12: B sends its 8 to Y (on B's own counts they would alternate)
        assert texts == ["from Y"] * 8
        assert len(xy[1].chat_requests) - before == 8
    finally:
        await ca.close()
        await cb.close()
