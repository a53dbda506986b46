"""Bare model names resolve to a provider the way LiteLLM resolves them (registry.BARE_MODEL_PREFIXES)."""

from __future__ import annotations

import pytest

from llmrelay.exceptions import BadRequestError
from llmrelay.providers import registry


@pytest.mark.parametrize("model, provider", [
    ("gpt-4o-mini", "openai"), ("o3-mini", "openai"), ("chatgpt-4o-latest", "openai"),
    ("claude-3-5-sonnet-latest", "anthropic"), ("gemini-1.5-pro", "vertex_ai"), ("gemini-2.0-flash", "vertex_ai"),
    ("text-embedding-ada-002", "openai"), ("text-embedding-3-small", "openai"),
    ("command-r-plus", "cohere_chat"), ("mistral-large-latest", "mistral"), ("codestral-latest", "mistral"),
    ("open-mistral-nemo", "mistral"), ("deepseek-chat", "deepseek"), ("grok-3", "xai"),
    # Bedrock ids (LiteLLM resolves the names in its bedrock_models to bedrock)
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", "bedrock"), ("anthropic.claude-instant-v1", "bedrock"),
    ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "bedrock"), ("amazon.nova-pro-v1:0", "bedrock"),
    ("meta.llama3-1-8b-instruct-v1:0", "bedrock"), ("cohere.command-r-v1:0", "bedrock"),
])
def test_bare_names(model, provider):
    assert registry.resolve(model) == (provider, model)


def test_prefix_wins_over_the_bare_table():
    assert registry.resolve("gemini/gemini-1.5-pro") == ("gemini", "gemini-1.5-pro")
    assert registry.resolve("openrouter/anthropic/claude-3") == ("openrouter", "anthropic/claude-3")


def test_unknown_bare_name_is_a_clear_error():
    with pytest.raises(BadRequestError, match="provider prefix"):
        registry.resolve("llama-3-8b")


@pytest.mark.parametrize("prefix", ["nvidia_nim", "huggingface", "github", "cloudflare", "minimax", "sambanova",
                                    "nebius", "novita", "dashscope", "moonshot", "vllm", "openai_like",
                                    "custom_openai", "llamafile", "litellm_proxy", "databricks"])
def test_new_hosts_are_registered(prefix):
    assert registry.resolve(f"{prefix}/some/model") == (prefix, "some/model")
    assert registry.get_provider(prefix).name == prefix
