"""Per-second pricing, as LiteLLM's: ``completion_cost(..., custom_cost_per_second=)`` and
``cost_per_token(..., response_time_ms=, custom_cost_per_second=)``, and a deployment's
``input_cost_per_second``/``output_cost_per_second`` (``model_info`` or ``litellm_params``):
the cost is the call's duration (``response._response_ms``) times the rate."""

from __future__ import annotations

import time

import pytest

import llmrelay
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer, slow_headers_reply

MESSAGES = [{"role": "user", "content": "Hi"}]
UNPRICED = "openai/my-endpoint-model"  # not in the price table: only the deployment's prices apply


@pytest.fixture
def upstream():
    with FakeOpenAIServer() as srv:
        yield srv


def kw(srv) -> dict:
    return {"api_base": srv.url + "/v1", "api_key": "sk-up"}


def test_cost_per_token_and_completion_cost_without_a_response():
    assert llmrelay.cost_per_token(model="anything", response_time_ms=2000, custom_cost_per_second=0.01) == (0.0, 0.02)
    assert llmrelay.completion_cost(model="gpt-4o-mini", messages=MESSAGES, completion="Hello",
                                    total_time=1500, custom_cost_per_second=0.002) == pytest.approx(0.003)


def test_completion_cost_of_a_response_with_custom_cost_per_second(upstream):
    upstream.enqueue(slow_headers_reply(0.3, stream=False))
    before = time.perf_counter()
    response = llmrelay.completion("openai/gpt-4o-mini", MESSAGES, **kw(upstream))
    took = (time.perf_counter() - before) * 1000
    assert 300 <= response._response_ms <= took
    cost = llmrelay.completion_cost(response, custom_cost_per_second=0.5)
    assert cost == pytest.approx(0.5 * response._response_ms / 1000)
    # (without it: the table's token prices, as priced when the response was made)
    assert llmrelay.completion_cost(response) == response._hidden_params["response_cost"] > 0
    assert "_response_ms" not in response.model_dump()


@pytest.mark.parametrize("where", ["model_info", "litellm_params"])
async def test_a_deployments_input_cost_per_second(upstream, where):
    prices = {"input_cost_per_second": 0.01}
    deployment = {"model_name": "m", "litellm_params": {"model": UNPRICED, **kw(upstream)}}
    if where == "model_info":
        deployment["model_info"] = prices
    else:
        deployment["litellm_params"].update(prices)
    router = llmrelay.Router(model_list=[deployment])

    upstream.enqueue(slow_headers_reply(0.2, stream=False))
    response = await router.acompletion(model="m", messages=MESSAGES)
    assert response._response_ms >= 200
    assert response._hidden_params["response_cost"] == pytest.approx(0.01 * response._response_ms / 1000)

    upstream.enqueue(slow_headers_reply(0.2))
    before = time.perf_counter()
    stream = await router.acompletion(model="m", messages=MESSAGES, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == DEFAULT_TEXT
    took = time.perf_counter() - before
    assert 0.01 * 0.2 <= stream._hidden_params["response_cost"] <= 0.01 * took


def test_per_call_input_cost_per_second(upstream):
    upstream.enqueue(slow_headers_reply(0.2, stream=False))
    response = llmrelay.completion(UNPRICED, MESSAGES, input_cost_per_second=0.01, output_cost_per_second=0.02,
                                   **kw(upstream))
    assert response._hidden_params["response_cost"] == pytest.approx(0.03 * response._response_ms / 1000)
    # token prices, where given, win over the per-second ones (LiteLLM's order)
    upstream.enqueue(slow_headers_reply(0.2, stream=False))
    response = llmrelay.completion(UNPRICED, MESSAGES, input_cost_per_second=0.01, input_cost_per_token=1e-6,
                                   **kw(upstream))
    assert response._hidden_params["response_cost"] == pytest.approx(response.usage.prompt_tokens * 1e-6)


def test_a_gateway_deployments_cost_per_second_is_its_spend(tmp_path):
    """Through the gateway (as LiteLLM's proxy prices a deployment with ``input_cost_per_second`` /
    ``output_cost_per_second`` in its ``litellm_params``): the access log's ``cost`` of a response
    and of a stream is the call's duration times the rates."""
    import openai

    from proxy.harness import Gateway

    with FakeOpenAIServer() as up:
        path = tmp_path / "config.yaml"
        path.write_text(f"model_list:\n  - model_name: m\n    litellm_params: {{model: {UNPRICED}, "
                        f"api_base: {up.url}/v1, api_key: sk-up, input_cost_per_second: 0.01, "
                        f"output_cost_per_second: 0.02}}\n")
        with Gateway(str(path)) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0, timeout=20)
            for i, stream in enumerate((False, True)):
                up.enqueue(slow_headers_reply(0.2, stream=stream))
                before = time.perf_counter()
                answer = client.chat.completions.create(model="m", messages=MESSAGES, stream=stream,
                                                        extra_headers={"x-request-id": f"per-second-{i}"})
                if stream:
                    assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices) == DEFAULT_TEXT
                took = time.perf_counter() - before
                cost = gw.wait_log(lambda r: r.get("request_id") == f"per-second-{i}")["cost"]
                assert 0.03 * 0.2 <= cost <= 0.03 * took, (stream, cost, took)
