"""general_settings.global_max_parallel_requests (the whole gateway) and max_parallel_requests
(each deployment's default), through the gateway with the openai SDK against a slow fake upstream."""

from __future__ import annotations

import asyncio

import openai
import pytest

from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer, slow_headers_reply

MESSAGES = [{"role": "user", "content": "hi"}]


def _config(upstream: FakeOpenAIServer, general: str) -> str:
    return f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{upstream.url}/v1", api_key: sk-up}}
  - model_name: own
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{upstream.url}/v1", api_key: sk-up,
                      max_parallel_requests: 5}}
router_settings:
  num_retries: 0
general_settings:
{general}
"""


async def _burst(gw: Gateway, model: str, n: int) -> list:
    async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0, timeout=30) as client:
        calls = [client.chat.completions.create(model=model, messages=MESSAGES) for _ in range(n)]
        return await asyncio.gather(*calls, return_exceptions=True)


@pytest.fixture
def slow_upstream():
    with FakeOpenAIServer() as srv:
        yield srv


async def test_global_cap_refuses_what_exceeds_it(tmp_path, slow_upstream):
    upstream = slow_upstream
    path = tmp_path / "config.yaml"
    path.write_text(_config(upstream, "  global_max_parallel_requests: 2"))
    with Gateway(str(path)) as gw:
        upstream.enqueue(*[slow_headers_reply(1.0, stream=False) for _ in range(3)])
        results = await _burst(gw, "gpt", 3)
        refused = [r for r in results if isinstance(r, openai.RateLimitError)]
        assert len(refused) == 1 and sum(not isinstance(r, Exception) for r in results) == 2
        assert refused[0].response.headers["retry-after"] == "1"
        assert "global_max_parallel_requests" in str(refused[0])
        assert len(upstream.chat_requests) == 2
        results = await _burst(gw, "gpt", 2)  # the slots were given back
        assert not [r for r in results if isinstance(r, Exception)]


async def test_deployment_default_cap(tmp_path, slow_upstream):
    upstream = slow_upstream
    path = tmp_path / "config.yaml"
    path.write_text(_config(upstream, "  max_parallel_requests: 1"))
    with Gateway(str(path)) as gw:
        upstream.enqueue(*[slow_headers_reply(1.0, stream=False) for _ in range(4)])
        results = await _burst(gw, "gpt", 2)  # the default: one at a time on this deployment
        assert sum(isinstance(r, openai.RateLimitError) for r in results) == 1
        results = await _burst(gw, "own", 2)  # its own max_parallel_requests wins
        assert not [r for r in results if isinstance(r, Exception)]


def test_caps_are_checked():
    from llmrelay.proxy.config import ConfigError, parse_config

    for value in ("0", "two", "true"):
        with pytest.raises(ConfigError, match="must be a positive integer"):
            parse_config("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: k}\n"
                         f"general_settings:\n  global_max_parallel_requests: {value}\n", "conf.yaml")
