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
