"""``_hidden_params["response_cost"]`` on real calls through the loopback servers of each
provider: a stream and a non-stream call of the same text cost the same (the stream's final
state and its stream_chunk_builder result alike), and equal the usage times the table's prices."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

import llmrelay
from llmrelay import cost
from servers.anthropic_server import FakeAnthropicServer
from servers.bedrock_server import DEFAULT_BEDROCK_MODEL, TEST_CREDENTIALS, FakeBedrockServer
from servers.cohere_server import DEFAULT_COHERE_MODEL, FakeCohereServer
from servers.gemini_server import FakeGeminiServer
from servers.openai_server import FakeOpenAIServer

MESSAGES = [{"role": "user", "content": "Hey, how's it going?"}]
AK, SK, REGION = TEST_CREDENTIALS


def _openai(srv: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "api_base": srv.url + "/v1", "api_key": "sk-test",
            "stream_options": {"include_usage": True}}


def _groq(srv: Any) -> dict[str, Any]:
    return {"model": "groq/llama-3.3-70b-versatile", "api_base": srv.url + "/v1", "api_key": "sk-test",
            "stream_options": {"include_usage": True}}


def _anthropic(srv: Any) -> dict[str, Any]:
    return {"model": "anthropic/claude-sonnet-4-5-20250929", "api_base": srv.url, "api_key": "sk-ant-test"}


def _gemini(srv: Any) -> dict[str, Any]:
    return {"model": "gemini/gemini-2.5-flash", "api_base": srv.url, "api_key": "gemini-key"}


def _vertex(srv: Any) -> dict[str, Any]:
    return {"model": "vertex_ai/gemini-2.5-pro", "api_base": srv.url, "vertex_access_token": "vertex-token",
            "vertex_project": "proj", "vertex_location": "us-east5"}


def _cohere(srv: Any) -> dict[str, Any]:
    return {"model": f"cohere/{DEFAULT_COHERE_MODEL}", "api_base": srv.url, "api_key": "co-test-key"}


def _bedrock(srv: Any) -> dict[str, Any]:
    return {"model": f"bedrock/{DEFAULT_BEDROCK_MODEL}", "api_base": srv.url, "aws_access_key_id": AK,
            "aws_secret_access_key": SK, "aws_region_name": REGION}


CASES = {
    "openai": (FakeOpenAIServer, _openai),
    "groq": (FakeOpenAIServer, _groq),
    "anthropic": (FakeAnthropicServer, _anthropic),
    "gemini": (FakeGeminiServer, _gemini),
    "vertex_ai": (FakeGeminiServer, _vertex),
    "cohere": (FakeCohereServer, _cohere),
    "bedrock": (FakeBedrockServer, _bedrock),
}


def _expected(model: str, usage: Any) -> float:
    info = llmrelay.get_model_info(model)
    return usage.prompt_tokens * info["input_cost_per_token"] + usage.completion_tokens * info["output_cost_per_token"]


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_and_non_stream_cost_the_same(name, mode):
    server_class, kwargs_for = CASES[name]
    with server_class() as srv:
        # include_usage: the chunks carry the upstream's usage, so the builder sees it too
        kw = {"stream_options": {"include_usage": True}, **kwargs_for(srv)}
        model = kw["model"]

        async def run() -> tuple[Any, Any, list[Any]]:
            response = await llmrelay.acompletion(messages=MESSAGES, **kw)
            stream = await llmrelay.acompletion(messages=MESSAGES, stream=True, **kw)
            return response, stream, [chunk async for chunk in stream]

        if mode == "sync":
            response = llmrelay.completion(messages=MESSAGES, **kw)
            stream = llmrelay.completion(messages=MESSAGES, stream=True, **kw)
            chunks = list(stream)
        else:
            response, stream, chunks = asyncio.run(run())

    paid = response._hidden_params["response_cost"]
    assert paid > 0
    assert math.isclose(paid, _expected(model, response.usage), rel_tol=1e-9)
    assert stream.usage.prompt_tokens == response.usage.prompt_tokens
    assert stream.usage.completion_tokens == response.usage.completion_tokens
    assert math.isclose(stream._hidden_params["response_cost"], paid, rel_tol=1e-9)
    built = llmrelay.stream_chunk_builder(chunks, messages=MESSAGES)
    assert math.isclose(built._hidden_params["response_cost"], paid, rel_tol=1e-9)
    assert math.isclose(llmrelay.completion_cost(completion_response=built), paid, rel_tol=1e-9)
    assert math.isclose(llmrelay.completion_cost(completion_response=response), paid, rel_tol=1e-9)


def test_anthropic_cached_prompt_is_billed_at_the_cache_price():
    """The fake reports cache reads; the cost uses cache_read_input_token_cost for them."""
    from servers.anthropic_server import message_dict
    from servers.loopback import Reply

    with FakeAnthropicServer() as srv:
        srv.enqueue(Reply.json(message_dict([{"type": "text", "text": "ok"}], model="claude-3-5-haiku-20241022",
                                            input_tokens=100, output_tokens=10, cache_read=2000)))
        response = llmrelay.completion("anthropic/claude-3-5-haiku-20241022", MESSAGES, api_base=srv.url,
                                       api_key="sk-ant-test")
    assert response.usage.prompt_tokens == 2100
    expected = 100 * 0.80e-6 + 2000 * 0.08e-6 + 10 * 4e-6
    assert math.isclose(response._hidden_params["response_cost"], expected, rel_tol=1e-9)


def test_per_call_prices_apply_to_both_shapes():
    prices = {"input_cost_per_token": 1e-3, "output_cost_per_token": 2e-3}
    with FakeOpenAIServer() as srv:
        kw = {**_openai(srv), "model": "hosted_vllm/my-llama", **prices}
        response = llmrelay.completion(messages=MESSAGES, **kw)
        stream = llmrelay.completion(messages=MESSAGES, stream=True, **kw)
        list(stream)
        assert "input_cost_per_token" not in srv.last_request.json()  # consumed, not forwarded
    u = response.usage
    assert math.isclose(response._hidden_params["response_cost"], u.prompt_tokens * 1e-3 + u.completion_tokens * 2e-3)
    assert math.isclose(stream._hidden_params["response_cost"], response._hidden_params["response_cost"])


def test_router_deployment_prices_from_model_info():
    with FakeOpenAIServer() as srv:
        router = llmrelay.Router(model_list=[{
            "model_name": "house",
            "litellm_params": {"model": "hosted_vllm/my-llama", "api_base": srv.url + "/v1", "api_key": "k"},
            "model_info": {"id": "h1", "input_cost_per_token": 1e-4, "output_cost_per_token": 3e-4},
        }, {
            "model_name": "azure-like",
            "litellm_params": {"model": "openai/prod-deployment-7", "api_base": srv.url + "/v1", "api_key": "k"},
            "model_info": {"id": "a1", "base_model": "gpt-4o-mini"},
        }])
        response = router.completion(model="house", messages=MESSAGES)
        stream = router.completion(model="house", messages=MESSAGES, stream=True,
                                   stream_options={"include_usage": True})
        list(stream)
        base = router.completion(model="azure-like", messages=MESSAGES)
    u = response.usage
    assert math.isclose(response._hidden_params["response_cost"], u.prompt_tokens * 1e-4 + u.completion_tokens * 3e-4)
    assert math.isclose(stream._hidden_params["response_cost"], response._hidden_params["response_cost"])
    # a copy of the stream's hidden params (as callbacks take) keeps the deployment's price
    assert math.isclose(dict(stream._hidden_params)["response_cost"], response._hidden_params["response_cost"])
    assert math.isclose(base._hidden_params["response_cost"], cost.usage_cost("gpt-4o-mini", base.usage))
    # completion_cost of a priced response is its price (the deployment's), as callbacks report it
    assert llmrelay.completion_cost(completion_response=response) == response._hidden_params["response_cost"]


def test_router_deployment_prices_from_litellm_params_are_not_forwarded():
    with FakeOpenAIServer() as srv:
        router = llmrelay.Router(model_list=[{
            "model_name": "house",
            "litellm_params": {"model": "hosted_vllm/my-llama", "api_base": srv.url + "/v1", "api_key": "k",
                               "input_cost_per_token": 2e-4, "output_cost_per_token": 5e-4,
                               "cache_read_input_token_cost": 1e-5},
        }])
        response = router.completion(model="house", messages=MESSAGES)
        body = srv.last_request.json()
    assert not {"input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost"} & set(body)
    u = response.usage
    assert math.isclose(response._hidden_params["response_cost"], u.prompt_tokens * 2e-4 + u.completion_tokens * 5e-4)


def test_embedding_response_cost():
    from servers.embedding_servers import KEY, FakeEmbeddingServer

    with FakeEmbeddingServer() as srv:
        response = llmrelay.embedding("openai/text-embedding-3-small", ["hello there", "general kenobi"],
                                      api_base=srv.url + "/v1", api_key=KEY)
    tokens = response.usage.prompt_tokens
    assert tokens > 0
    assert math.isclose(response._hidden_params["response_cost"], tokens * 0.02e-6)
    assert math.isclose(llmrelay.completion_cost(completion_response=response), tokens * 0.02e-6)
