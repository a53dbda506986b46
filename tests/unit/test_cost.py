"""Prices and model facts (llmrelay.cost): the table against the providers' published prices,
the pricing rules (cache reads and writes, reasoning tokens, long-context tiers), lookups,
register_model and per-deployment overrides. Pure: no network."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import llmrelay
from llmrelay import cost
from llmrelay.types import Usage

M = 1e-6  # the pages publish USD per million tokens

#: One model per provider and its published price (USD per 1M tokens: input, output, cached
#: input or None) as read on the provider's pricing page (sources in the data file's _meta).
PUBLISHED = [
    ("openai/gpt-4o", 2.50, 10.00, 1.25),
    ("gpt-4o-mini", 0.15, 0.60, 0.075),
    ("openai/gpt-4.1", 2.00, 8.00, 0.50),
    ("openai/o3", 2.00, 8.00, 0.50),
    ("gpt-5", 1.25, 10.00, 0.125),
    ("azure/gpt-4o", 2.50, 10.00, 1.25),
    ("anthropic/claude-sonnet-4-5-20250929", 3.00, 15.00, 0.30),
    ("claude-3-5-haiku-20241022", 0.80, 4.00, 0.08),
    ("anthropic/claude-opus-4-1", 15.00, 75.00, 1.50),
    ("gemini/gemini-2.5-flash", 0.30, 2.50, 0.03),
    ("gemini/gemini-2.5-pro", 1.25, 10.00, 0.125),
    ("vertex_ai/gemini-2.0-flash", 0.10, 0.40, 0.025),
    ("bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", 3.00, 15.00, 0.30),
    ("bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0", 0.80, 4.00, 0.08),
    ("bedrock/amazon.nova-pro-v1:0", 0.80, 3.20, 0.20),
    ("cohere/command-a-03-2025", 2.50, 10.00, None),
    ("cohere_chat/command-r", 0.15, 0.60, None),
    ("groq/llama-3.3-70b-versatile", 0.59, 0.79, None),
    ("groq/llama-3.1-8b-instant", 0.05, 0.08, None),
    ("deepseek/deepseek-chat", 0.28, 0.42, 0.028),
    ("mistral/mistral-large-latest", 2.00, 6.00, None),
    ("mistral/mistral-small-latest", 0.10, 0.30, None),
    ("xai/grok-4", 3.00, 15.00, 0.75),
    ("xai/grok-3-mini", 0.30, 0.50, 0.075),
    ("perplexity/sonar-pro", 3.00, 15.00, None),
    ("cerebras/llama-3.3-70b", 0.85, 1.20, None),
    ("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", 0.88, 0.88, None),
    ("fireworks_ai/accounts/fireworks/models/llama-v3p3-70b-instruct", 0.90, 0.90, None),
    ("deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct", 0.03, 0.05, None),
    ("openrouter/anthropic/claude-3-5-haiku-20241022", 0.80, 4.00, 0.08),
    ("gpt-5.6-terra", 2.00, 12.00, 0.20),
    ("openai/gpt-5.4-mini", 0.75, 4.50, 0.075),
    ("anthropic/claude-opus-5-5", 4.00, 20.00, 0.20),
    ("claude-sonnet-5", 2.00, 10.00, 0.20),
    ("claude-sonnet-4-6", 3.00, 15.00, 0.30),
    ("gemini/gemini-3.5-flash", 1.50, 9.00, 0.15),
    ("vertex_ai/gemini-3.1-pro-preview", 2.00, 12.00, 0.20),
    ("moonshot/kimi-k2.5", 0.60, 3.00, 0.10),
]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


@pytest.mark.parametrize("model, inp, out, cached", PUBLISHED)
def test_cost_matches_published_prices(model, inp, out, cached):
    prompt, completion = 12_345, 678
    prompt_cost, completion_cost = llmrelay.cost_per_token(model=model, prompt_tokens=prompt,
                                                           completion_tokens=completion)
    assert close(prompt_cost, prompt * inp * M) and close(completion_cost, completion * out * M)
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion,
                  prompt_tokens_details={"cached_tokens": 10_000})
    expected_cached = (cached if cached is not None else inp) * M
    assert close(cost.usage_cost(model, usage), 2_345 * inp * M + 10_000 * expected_cached + completion * out * M)


def test_every_provider_of_the_registry_is_priced_or_self_hosted():
    from llmrelay.providers.registry import PROVIDERS

    owners = {entry["litellm_provider"] for entry in llmrelay.model_cost.values()}
    meta = cost.model_cost_meta
    data = json.loads(cost._DATA.read_text())
    # openrouter routes to other providers' models (priced as those); unpriced ones say why
    covered = (owners | set(data["provider_families"]) | set(data["self_hosted_providers"])
               | set(data["unpriced_providers"]) | set(data["router_providers"]))
    assert set(PROVIDERS) <= covered, set(PROVIDERS) - covered
    assert all(data["unpriced_providers"].values())
    assert meta["taken"] and set(meta["sources"]) >= owners - {"openai"} | {"openai"}
    for key, entry in llmrelay.model_cost.items():
        assert entry["source"] in meta["sources"], key
        assert entry["mode"] in ("chat", "embedding", "completion"), key  # completion: *-instruct, as LiteLLM's
        assert entry["input_cost_per_token"] >= 0 and entry["output_cost_per_token"] >= 0, key
        assert entry["input_cost_per_token"] < 1e-3, key  # per token, not per million


def test_anthropic_cache_reads_and_writes():
    # what llmrelay's Anthropic translation returns for input 100, cache read 1000, write 2000
    usage = {"prompt_tokens": 3100, "completion_tokens": 50, "cache_read_input_tokens": 1000,
             "cache_creation_input_tokens": 2000, "prompt_tokens_details": {"cached_tokens": 1000}}
    expected = 100 * 3 * M + 1000 * 0.30 * M + 2000 * 3.75 * M + 50 * 15 * M
    assert close(cost.usage_cost("anthropic/claude-sonnet-4-20250514", usage), expected)
    p, c = llmrelay.cost_per_token(model="claude-sonnet-4-20250514", prompt_tokens=3100, completion_tokens=50,
                                   cache_read_input_tokens=1000, cache_creation_input_tokens=2000)
    assert close(p + c, expected)


def test_reasoning_tokens_are_output_unless_priced_apart():
    usage = Usage(prompt_tokens=10, completion_tokens=1000, completion_tokens_details={"reasoning_tokens": 900})
    assert close(cost.usage_cost("o3-mini", usage), 10 * 1.10 * M + 1000 * 4.40 * M)
    # a model with a reasoning-token price bills those apart
    assert close(cost.usage_cost("perplexity/sonar-deep-research", usage), 10 * 2 * M + 100 * 8 * M + 900 * 3 * M)


def test_long_context_tier():
    short = Usage(prompt_tokens=200_000, completion_tokens=1000)
    long = Usage(prompt_tokens=300_000, completion_tokens=1000)
    assert close(cost.usage_cost("gemini/gemini-2.5-pro", short), 200_000 * 1.25 * M + 1000 * 10 * M)
    assert close(cost.usage_cost("gemini/gemini-2.5-pro", long), 300_000 * 2.50 * M + 1000 * 15 * M)
    assert close(cost.usage_cost("gemini/gemini-1.5-flash", Usage(prompt_tokens=130_000)), 130_000 * 0.15 * M)
    # OpenAI's 272k tier, cached tokens at the tier's cache price
    usage = Usage(prompt_tokens=300_000, completion_tokens=1000, prompt_tokens_details={"cached_tokens": 100_000})
    assert close(cost.usage_cost("gpt-5.4", usage), 200_000 * 5 * M + 100_000 * 0.50 * M + 1000 * 22.50 * M)
    assert close(cost.usage_cost("gpt-5.4", Usage(prompt_tokens=272_000)), 272_000 * 2.50 * M)
    # Anthropic Haiku 5.5 above 100k
    assert close(cost.usage_cost("claude-haiku-5-5", Usage(prompt_tokens=150_000, completion_tokens=10)),
                 150_000 * 0.50 * M + 10 * 2.50 * M)
    assert close(cost.usage_cost("claude-haiku-5-5", Usage(prompt_tokens=50_000, completion_tokens=10)),
                 50_000 * 0.10 * M + 10 * 0.50 * M)


def test_self_hosted_is_free_and_unknown_is_unpriced():
    usage = Usage(prompt_tokens=100, completion_tokens=100)
    for model in ("ollama/llama3.1", "ollama_chat/qwen3", "hosted_vllm/my-model", "lm_studio/x", "llamacpp/x",
                  "vllm/x", "openai_like/x"):
        assert cost.usage_cost(model, usage) == 0.0
        assert llmrelay.completion_cost(model=model, prompt="hi", completion="there") == 0.0
    assert cost.usage_cost("openai/no-such-model", usage) == 0.0
    assert cost.usage_cost("openai/no-such-model", usage, default=None) is None
    assert cost.usage_cost("github/openai/gpt-4.1", usage, default=None) is None  # no per-token list price
    with pytest.raises(cost.ModelNotMappedError, match="register_model"):
        llmrelay.completion_cost(model="groq/no-such-model", prompt="hi", completion="there")
    with pytest.raises(ValueError):  # LiteLLM callers catch Exception / ValueError
        llmrelay.get_model_info("no-such-provider/model")


def test_per_deployment_prices_and_base_model():
    usage = Usage(prompt_tokens=1000, completion_tokens=100)
    prices = cost.deployment_prices({"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "rpm": 5})
    assert prices == {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    assert close(cost.usage_cost("openai/gpt-4o", usage, prices=prices), 1000 * 1e-6 + 100 * 2e-6)
    assert close(cost.usage_cost("hosted_vllm/llama", usage, prices=prices), 1000 * 1e-6 + 100 * 2e-6)
    # an Azure deployment name priced as its base model
    prices = cost.deployment_prices({}, {"base_model": "azure/gpt-4o-mini"})
    assert close(cost.usage_cost("my-deployment", usage, "azure", prices), 1000 * 0.15 * M + 100 * 0.60 * M)
    # only some keys overridden: the rest from the table
    prices = cost.deployment_prices({"output_cost_per_token": 0})
    assert close(cost.usage_cost("gpt-4o", usage, prices=prices), 1000 * 2.5 * M)
    assert cost.deployment_prices({"model": "x"}, None) is None


def test_register_model_adds_and_overrides():
    before = dict(llmrelay.model_cost["gpt-4o-mini"])
    try:
        table = llmrelay.register_model({
            "gpt-4o-mini": {"input_cost_per_token": 1e-6},
            "my-org/finetune-7b": {"input_cost_per_token": 2e-7, "output_cost_per_token": 4e-7,
                                   "max_input_tokens": 32768, "supports_function_calling": True},
        })
        assert table is llmrelay.model_cost
        p, c = llmrelay.cost_per_token(model="gpt-4o-mini", prompt_tokens=1000, completion_tokens=10)
        assert close(p, 1000 * 1e-6) and close(c, 10 * 0.60 * M)  # output price kept
        p, c = llmrelay.cost_per_token(model="my-org/finetune-7b", prompt_tokens=1000, completion_tokens=10)
        assert close(p + c, 1000 * 2e-7 + 10 * 4e-7)
        info = llmrelay.get_model_info("my-org/finetune-7b")
        assert info["max_input_tokens"] == 32768 and info["litellm_provider"] == "my-org"
        assert llmrelay.supports_function_calling("my-org/finetune-7b")
        assert not llmrelay.supports_vision("my-org/finetune-7b")
    finally:
        llmrelay.model_cost["gpt-4o-mini"].clear()
        llmrelay.model_cost["gpt-4o-mini"].update(before)
        llmrelay.model_cost.pop("my-org/finetune-7b", None)
        cost._resolved.clear()


def test_register_model_from_a_json_file(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"openai/house-model": {"input_cost_per_token": 3e-6, "output_cost_per_token": 0}}))
    try:
        llmrelay.register_model(str(path))
        assert close(sum(llmrelay.cost_per_token(model="openai/house-model", prompt_tokens=10)), 3e-5)
    finally:
        llmrelay.model_cost.pop("openai/house-model", None)
        cost._resolved.clear()


@pytest.mark.parametrize("model, provider, key", [
    ("gpt-4o-2024-08-06", None, "gpt-4o-2024-08-06"),
    ("gpt-4o-2099-01-01", None, "gpt-4o"),  # an unknown release priced as its model
    ("claude-3-7-sonnet-latest", None, "claude-3-7-sonnet-latest"),
    ("gemini-2.5-flash", None, "gemini/gemini-2.5-flash"),  # a bare name from a response body
    ("gemini-2.5-flash", "vertex_ai", "gemini/gemini-2.5-flash"),
    ("vertex_ai/gemini-2.5-pro", None, "gemini/gemini-2.5-pro"),
    ("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "bedrock", "anthropic.claude-3-7-sonnet-20250219-v1:0"),
    ("accounts/fireworks/models/deepseek-v3", "fireworks_ai", "fireworks_ai/deepseek-v3"),
    ("openrouter/openai/gpt-4o-mini", None, "gpt-4o-mini"),
    ("command-r", "cohere_chat", "cohere/command-r"),
])
def test_lookup(model, provider, key):
    assert llmrelay.get_model_info(model, custom_llm_provider=provider)["key"] == key


def test_get_model_info_and_supports():
    info = llmrelay.get_model_info("gpt-4o")
    assert info["max_input_tokens"] == 128000 and info["max_output_tokens"] == 16384 == info["max_tokens"]
    assert info["litellm_provider"] == "openai" and info["mode"] == "chat"
    assert info["input_cost_per_token"] == 2.5e-6 and info["cache_read_input_token_cost"] == 1.25e-6
    assert info["supports_function_calling"] and info["supports_vision"] and not info["supports_reasoning"]
    assert llmrelay.get_model_info("text-embedding-3-small")["mode"] == "embedding"
    assert llmrelay.get_model_info("gemini-2.0-flash", custom_llm_provider="vertex_ai")["litellm_provider"] == "vertex_ai"

    assert llmrelay.supports_reasoning("o3-mini") and llmrelay.supports_reasoning("anthropic/claude-sonnet-4-5")
    assert llmrelay.supports_reasoning("deepseek/deepseek-reasoner")
    assert not llmrelay.supports_reasoning("deepseek/deepseek-chat")
    assert llmrelay.supports_vision("gemini/gemini-2.5-flash") and llmrelay.supports_vision(
        model="claude-3-haiku-20240307", custom_llm_provider="anthropic")
    assert not llmrelay.supports_vision("groq/llama-3.3-70b-versatile")
    assert llmrelay.supports_function_calling("bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0")
    assert llmrelay.supports_function_calling("mistral/mistral-small-latest")
    assert not llmrelay.supports_function_calling("o1-mini")
    assert llmrelay.supports_response_schema("gpt-4o-mini") and llmrelay.supports_response_schema("xai/grok-4")
    assert not llmrelay.supports_response_schema("gpt-3.5-turbo")
    assert llmrelay.supports_prompt_caching("claude-3-5-haiku-latest")
    # unknown models: False, never an exception (frameworks ask about any model)
    assert llmrelay.supports_function_calling("hosted_vllm/whatever") is False
    assert llmrelay.supports_vision("") is False

    assert llmrelay.get_max_tokens("claude-3-5-sonnet-20241022") == 8192
    assert llmrelay.get_max_tokens("gemini/gemini-2.5-pro") == 65536
    with pytest.raises(cost.ModelNotMappedError):
        llmrelay.get_max_tokens("nope/nope")


def test_completion_cost_from_text_and_from_response():
    from llmrelay.tokens import token_counter

    prompt, completion = "Hey, how's it going?", "Hi, I'm fine"
    expected = (token_counter(model="gpt-4o-mini", text=prompt) * 0.15 * M
                + token_counter(model="gpt-4o-mini", text=completion) * 0.60 * M)
    assert close(llmrelay.completion_cost(model="gpt-4o-mini", prompt=prompt, completion=completion), expected)
    messages = [{"role": "user", "content": prompt}]
    assert llmrelay.completion_cost(model="gpt-4o-mini", messages=messages, completion=completion) > expected
    response = llmrelay.ModelResponse(model="gpt-4o-mini", choices=[{"message": {"content": "hi"}}],
                                      usage={"prompt_tokens": 100, "completion_tokens": 20})
    assert close(llmrelay.completion_cost(completion_response=response), 100 * 0.15 * M + 20 * 0.60 * M)
    assert close(llmrelay.completion_cost(response, model="gpt-4o"), 100 * 2.5 * M + 20 * 10 * M)
    assert close(llmrelay.completion_cost(response.model_dump()), 100 * 0.15 * M + 20 * 0.60 * M)
    custom = {"input_cost_per_token": 1.0, "output_cost_per_token": 2.0}
    assert llmrelay.completion_cost(response, custom_cost_per_token=custom) == 140.0


def test_mock_response_has_a_response_cost():
    response = llmrelay.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                   mock_response="Hello world")
    u = response.usage
    assert close(response._hidden_params["response_cost"], u.prompt_tokens * 0.15 * M + u.completion_tokens * 0.60 * M)
    priced = llmrelay.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                 mock_response="Hello world", input_cost_per_token=1.0, output_cost_per_token=0)
    assert priced._hidden_params["response_cost"] == u.prompt_tokens


def test_mock_stream_cost_is_lazy_and_equals_the_builder():
    messages = [{"role": "user", "content": "hi"}]
    stream = llmrelay.completion(model="gpt-4o-mini", messages=messages, mock_response="Hello world", stream=True)
    assert stream._hidden_params.get("response_cost") is None and "response_cost" not in stream._hidden_params
    chunks = list(stream)
    assert "response_cost" in stream._hidden_params
    built = llmrelay.stream_chunk_builder(chunks, messages=messages)
    assert stream._hidden_params["response_cost"] == built._hidden_params["response_cost"] > 0
    # a copy of the mapping taken after the end carries the cost (callbacks copy hidden params)
    assert dict(stream._hidden_params)["response_cost"] == {**stream._hidden_params}["response_cost"] > 0
    assert "response_cost" in list(stream._hidden_params) and len(stream._hidden_params) == 3


def test_mock_stream_uses_per_call_prices():
    messages = [{"role": "user", "content": "hi"}]
    stream = llmrelay.completion(model="gpt-4o-mini", messages=messages, mock_response="Hello world", stream=True,
                                 input_cost_per_token=1.0, output_cost_per_token=0)
    list(stream)
    assert stream._hidden_params["response_cost"] == stream.usage.prompt_tokens


def test_import_llmrelay_does_not_load_the_table():
    code = ("import sys, llmrelay; assert 'llmrelay.cost' not in sys.modules; "
            "llmrelay.supports_vision('gpt-4o'); import llmrelay.cost as c; assert c._table is not None")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": ":".join(sys.path)})


def test_get_supported_openai_params():
    anthropic = llmrelay.get_supported_openai_params("anthropic/claude-sonnet-4-5")
    assert {"tools", "tool_choice", "response_format", "max_tokens", "reasoning_effort"} <= set(anthropic)
    assert "logit_bias" not in anthropic and "n" not in anthropic
    assert "tools" not in llmrelay.get_supported_openai_params("perplexity/sonar")
    assert "logit_bias" not in llmrelay.get_supported_openai_params("groq/llama-3.3-70b-versatile")
    assert {"logit_bias", "n", "tools", "seed"} <= set(llmrelay.get_supported_openai_params("gpt-4o"))
    assert llmrelay.get_supported_openai_params(model="claude-3-5-haiku-latest", custom_llm_provider="anthropic")
    assert llmrelay.get_supported_openai_params("nope/model") is None
    assert llmrelay.get_supported_openai_params("gpt-4o", request_type="embeddings") is None


@pytest.mark.parametrize("model, provider, prices, seconds", [
    ("gpt-4o-mini", "openai", None, None),
    ("gpt-4o-mini", "openai", {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}, 1.5),
    ("my-model", "openai", {"input_cost_per_second": 0.01, "output_cost_per_second": 0.02}, 2.0),
    ("gpt-4o-mini", "openai", {"base_model": "gpt-4o"}, None),
    ("not-a-priced-model", "openai", None, None),
])
def test_tokens_cost_is_response_cost_of_a_plain_usage(model, provider, prices, seconds):
    """A stream's usage counted offline is priced from its two counts (StreamHiddenParams)."""
    for prompt, completion in ((0, 0), (12, 345), (300_000, 10)):
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
        assert cost.tokens_cost(model, provider, prompt, completion, prices, seconds) == \
            cost.response_cost(model, provider, usage, prices, seconds)
