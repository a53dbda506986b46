"""Budget routing: LiteLLM's provider_budget_config and a deployment's max_budget/budget_duration,
against fake OpenAI upstreams (which report usage, so calls are priced from the table)."""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay import Router

from .conftest import MODES, STREAM, call, counts, deployment

TINY = 0.000000000001  # LiteLLM's docs' example: the first call crosses it


@MODES
@STREAM
async def test_a_provider_over_its_budget_is_skipped(upstreams, mode, stream):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, weight=1000), deployment(b, model="hosted_vllm/local-llama")],
                    provider_budget_config={"openai": {"budget_limit": TINY, "time_period": "1d"}})
    text, _ = await call(router, mode, stream)
    assert text == "from A"  # within budget: spent nothing yet
    for _ in range(3):
        text, _ = await call(router, mode, stream)
        assert text == "from B"  # openai crossed its budget; hosted_vllm has none
    assert counts(upstreams)[:2] == [1, 3]


async def test_every_deployment_over_budget_fails_at_once(upstreams):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], provider_budget_config={"openai": {"budget_limit": TINY,
                                                                                   "time_period": "1d"}})
    await call(router, "async", False)
    with pytest.raises(llmrelay.RateLimitError, match="crossed budget") as info:
        await call(router, "async", False)
    assert "provider openai spent" in str(info.value)
    assert 86000 < info.value.retry_after <= 86400
    assert counts(upstreams)[0] == 1


async def test_a_deployments_own_budget(upstreams):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, weight=1000, max_budget=TINY, budget_duration="1h"),
                                deployment(b, weight=1)])
    assert (await call(router, "async", False))[0] == "from A"
    for _ in range(2):
        assert (await call(router, "async", False))[0] == "from B"
    assert router.budgets.windows[router.get_model_list()[0]["model_info"]["id"]][0].period == "1h"


async def test_spend_within_budget_keeps_the_deployment(upstreams):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], provider_budget_config={"openai": {"budget_limit": 100,
                                                                                   "time_period": "1mo"}})
    for _ in range(3):
        assert (await call(router, "async", False))[0] == "from A"
    window = router.provider_budgets["openai"]
    assert 0 < window.spent < 100


def test_windows_reset_when_their_period_ends():
    from llmrelay.routing.budget_limits import SpendWindow

    window = SpendWindow("test", 1.0, "1h")
    window.charge(2.0, 1000.0)
    assert window.over(1000.0) and window.over(1000.0 + 3599)
    assert not window.over(1000.0 + 3600)
    window.charge(0.5, 1000.0 + 3600)
    assert window.spent == 0.5 and not window.over(1000.0 + 3601)


@pytest.mark.parametrize("config,message", [
    ({"openai": {"budget_limit": 1, "time_period": "1 fortnight"}}, "time_period"),
    ({"openai": {"budget_limit": -1, "time_period": "1d"}}, "budget_limit"),
    ({"openai": 5}, "budget_limit and time_period"),
    (["openai"], "must be a mapping"),
])
def test_budget_config_is_checked(config, message):
    with pytest.raises(ValueError, match=message):
        Router(model_list=[], provider_budget_config=config)


LITELLM_DOCS = """
model_list:
    - model_name: gpt-3.5-turbo
      litellm_params:
        model: openai/gpt-3.5-turbo
        api_key: os.environ/OPENAI_API_KEY
        api_base: {url}/v1

router_settings:
  provider_budget_config:
    openai:
      budget_limit: 0.000000000001 # float of $ value budget for time period
      time_period: 1d # can be 1d, 2d, 30d, 1mo, 2mo
    azure:
      budget_limit: 100
      time_period: 1d
    anthropic:
      budget_limit: 100
      time_period: 10d

general_settings:
  master_key: sk-1234
"""


def test_litellms_documented_example_through_the_gateway(tmp_path, upstreams):
    """LiteLLM's docs: "We expect the first request to succeed, and the second request to fail
    since we cross the budget for openai"."""
    import openai

    from proxy.harness import Gateway

    path = tmp_path / "config.yaml"
    path.write_text(LITELLM_DOCS.format(url=upstreams[0].url))
    with Gateway(str(path), env={"OPENAI_API_KEY": "sk-test"}) as gw:
        assert not [line for line in gw.lines if "provider_budget_config" in line]
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-1234", max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        assert client.chat.completions.create(model="gpt-3.5-turbo", messages=messages).choices[0].message.content
        with pytest.raises(openai.RateLimitError, match="crossed budget"):
            client.chat.completions.create(model="gpt-3.5-turbo", messages=messages)


# ------------------------------------------------------------------ shared through Redis
async def _wait(condition, what: str, timeout: float = 30.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
def shared_redis():
    from servers.redis_server import SKIP_REASON, delete_matching, redis_url, unique_prefix

    url = redis_url()
    if url is None:
        pytest.skip(SKIP_REASON)
    prefix = unique_prefix("budgets") + ":"
    yield url, prefix
    delete_matching(url, prefix + "*")


def _shared_routers(upstreams, url: str, prefix: str, **budget) -> list[Router]:
    a, b = upstreams[:2]
    return [Router(model_list=[deployment(a, weight=1000, **budget.get("own", {})),
                               deployment(b, model="hosted_vllm/local-llama")],
                   provider_budget_config=budget.get("providers"), redis_url=url, redis_prefix=prefix,
                   redis_timeout=2) for _ in range(2)]


async def test_instances_add_up_a_providers_spend(upstreams, shared_redis):
    ra, rb = _shared_routers(upstreams, *shared_redis, providers={"openai": {"budget_limit": 100, "time_period": "1d"}})
    try:
        assert (await call(ra, "async", False))[0] == "from A"
        spent = ra.provider_budgets["openai"].spent
        assert spent > 0
        await call(rb, "async", False)  # (starts B's exchange)
        window_b = rb.provider_budgets["openai"]
        await _wait(lambda: abs(window_b.spent - 2 * spent) < spent * 1e-6, "B counts A's spend and its own")
        window_a = ra.provider_budgets["openai"]
        await _wait(lambda: abs(window_a.spent - 2 * spent) < spent * 1e-6, "A counts B's spend")
        assert window_a.resets_at == window_b.resets_at  # one period for every instance
    finally:
        await ra.shared.stop()
        await rb.shared.stop()


async def test_a_budget_crossed_on_one_instance_is_skipped_on_the_other(upstreams, shared_redis):
    ra, rb = _shared_routers(upstreams, *shared_redis, providers={"openai": {"budget_limit": TINY, "time_period": "1d"}})
    try:
        assert (await call(rb, "async", False))[0] == "from A"  # B spends, crossing the budget
        ra.shared.start()  # (A has not called yet: its exchange starts here)
        window_a = ra.provider_budgets["openai"]
        assert not window_a.over(__import__("time").time())
        await _wait(lambda: window_a.over(__import__("time").time()), "A learns the provider crossed its budget")
        for _ in range(3):
            assert (await call(ra, "async", False))[0] == "from B"
    finally:
        await ra.shared.stop()
        await rb.shared.stop()


async def test_a_deployments_own_budget_is_shared(upstreams, shared_redis):
    ra, rb = _shared_routers(upstreams, *shared_redis, own={"max_budget": TINY, "budget_duration": "1h",
                                                             "model_info": {"id": "a-dep"}})
    try:
        assert (await call(ra, "async", False))[0] == "from A"
        await call(rb, "async", False)  # (B within budget as far as it knows)
        window_b = rb.budgets.own["a-dep"][1]
        await _wait(lambda: window_b.over(__import__("time").time()), "B learns A's deployment crossed its budget")
        assert (await call(rb, "async", False))[0] == "from B"
    finally:
        await ra.shared.stop()
        await rb.shared.stop()
