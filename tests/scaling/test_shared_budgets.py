"""Budget routing across gateway instances: LiteLLM's documented provider_budget_config, two
real gateway processes sharing one Redis — a budget crossed through one is refused by the other."""

from __future__ import annotations

import time

import openai

from proxy.harness import Gateway
from timing import DEADLINE

KEY = "sk-budget-master"
UP_KEY = "sk-budget-upstream-0123456789"


def config(upstream: str, url: str, prefix: str) -> str:
    return f"""
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{upstream}/v1", api_key: {UP_KEY}}}
router_settings:
  redis_url: "{url}"
  redis_prefix: "{prefix}:"
  redis_timeout: 2
  provider_budget_config:
    openai:
      budget_limit: 0.000000000001  # (LiteLLM's docs' example: the first call crosses it)
      time_period: 1d
general_settings:
  master_key: {KEY}
"""


def ask(gw) -> str:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=10)
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    return response.choices[0].message.content


def test_a_budget_crossed_through_one_gateway_is_refused_by_the_other(upstream, redis_conf, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(config(upstream.url, *redis_conf))
    import redis

    url, prefix = redis_conf
    window = f"{prefix}:router:budget:provider:openai"
    store = redis.Redis.from_url(url)
    with Gateway(str(path)) as a, Gateway(str(path)) as b:
        assert ask(a)  # A crosses the budget
        deadline = time.monotonic() + DEADLINE
        while float(store.hget(window, "spent") or 0) <= 0:  # A's exchange has sent its spend
            assert time.monotonic() < deadline, "A's spend never reached Redis"
            time.sleep(0.05)
        time.sleep(3 * 0.5 + 1)  # (B's exchange, every 0.5 s since its start, has read it)
        before = len(upstream.chat_requests)
        for _ in range(3):  # B never spent anything itself: it refuses on A's spend alone
            try:
                ask(b)
                raise AssertionError("B served a call over the budget A crossed")
            except openai.RateLimitError as exc:
                assert "crossed budget" in str(exc)
        assert len(upstream.chat_requests) == before
    store.close()
