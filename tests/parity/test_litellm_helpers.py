"""LiteLLM's small module-level helpers (litellm/utils.py, litellm/main.py): tokenizer access,
environment checks, key checks, response text, logging helpers, mock calls, provider names,
the ``supports_*`` flags, JSONSchemaValidationError and the ``litellm.utils`` import path."""

from __future__ import annotations

import logging

import pytest

import llmrelay as litellm
from servers.openai_server import FakeOpenAIServer

MESSAGES = [{"role": "user", "content": "Hey, how's it going?"}]


def test_encode_decode_round_trip_with_the_models_tokenizer():
    tokens = litellm.encode(model="gpt-4o", text="hello world")
    assert tokens == [24912, 2375]  # o200k_base
    assert litellm.encode(model="gpt-3.5-turbo", text="hello world") == [15339, 1917]  # cl100k_base
    assert litellm.decode(model="gpt-4o", tokens=tokens) == "hello world"


def test_validate_environment_lists_the_missing_variables(monkeypatch):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT", "AZURE_API_VERSION",
                 "OPENAI_API_VERSION", "AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "GROQ_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert litellm.validate_environment("gpt-4o") == {"keys_in_environment": False, "missing_keys": ["OPENAI_API_KEY"]}
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert litellm.validate_environment("openai/gpt-4o") == {"keys_in_environment": True, "missing_keys": []}
    assert litellm.validate_environment("azure/my-deployment")["missing_keys"] == [
        "AZURE_API_BASE", "AZURE_API_VERSION", "AZURE_API_KEY"]
    # a given key / base stands for the variables of that kind
    assert litellm.validate_environment("azure/d", api_key="k", api_base="https://x")["missing_keys"] == ["AZURE_API_VERSION"]
    assert litellm.validate_environment("anthropic/claude-3-5-haiku-latest", api_key="k")["keys_in_environment"] is True
    assert litellm.validate_environment("groq/llama3-8b-8192")["missing_keys"] == ["GROQ_API_KEY"]
    assert litellm.validate_environment("ollama/llama3")["keys_in_environment"] is True
    assert litellm.validate_environment(None) == {"keys_in_environment": False, "missing_keys": []}
    assert litellm.validate_environment("no-such-model") == {"keys_in_environment": False, "missing_keys": []}


def test_check_valid_key_makes_a_short_call_and_never_raises(monkeypatch):
    with FakeOpenAIServer(api_key="sk-good") as server:
        monkeypatch.setenv("OPENAI_API_BASE", server.url + "/v1")
        monkeypatch.setattr(litellm, "num_retries", 0)
        assert litellm.check_valid_key(model="gpt-4o-mini", api_key="sk-good") is True
        assert litellm.check_valid_key(model="gpt-4o-mini", api_key="sk-bad") is False
        assert [r["max_tokens"] for r in server.chat_requests] == [10, 10]
    assert litellm.check_valid_key(model="no-such-model", api_key="k") is False


def test_get_response_string_of_responses_and_chunks():
    response = litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="Hello there", n=1)
    assert litellm.get_response_string(response) == "Hello there"
    chunks = list(litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="Hello there", stream=True))
    assert "".join(litellm.get_response_string(c) for c in chunks) == "Hello there"


def test_print_verbose_logs_and_never_prints(caplog, capsys):
    with caplog.at_level(logging.DEBUG, logger="llmrelay"):
        litellm.print_verbose("checking the thing")
    assert "checking the thing" in caplog.text
    assert capsys.readouterr() == ("", "")
    assert litellm.get_first_chars_messages({"messages": [{"role": "user", "content": "x" * 500}]}) == \
        str([{"role": "user", "content": "x" * 500}])[:100]
    assert litellm.get_first_chars_messages({}) == "None"


def test_mock_completion_answers_without_a_call():
    response = litellm.mock_completion(model="my-own-model", messages=MESSAGES, mock_response="It's simple to use")
    assert response.choices[0].message.content == "It's simple to use"
    assert response.model == "my-own-model"
    stream = litellm.mock_completion(model="gpt-4o", messages=MESSAGES, stream=True, mock_response="a b c")
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "a b c"
    with pytest.raises(litellm.RateLimitError):
        litellm.mock_completion(model="gpt-4o", messages=MESSAGES, mock_response="litellm.RateLimitError")


def test_provider_list_and_capability_flags():
    assert {"openai", "anthropic", "azure", "bedrock", "vertex_ai", "ollama", "groq"} <= set(litellm.provider_list)
    assert litellm.supports_pdf_input("anthropic/claude-3-5-sonnet-20241022") is True
    assert litellm.supports_pdf_input("gpt-3.5-turbo") is False
    assert litellm.supports_audio_input("gpt-3.5-turbo") is False
    # (the table flags no model yet; a registered one, a full entry so the table stays valid)
    litellm.register_model({"parity-audio-model": {**litellm.model_cost["gpt-4o"], "supports_audio_input": True}})
    try:
        assert litellm.supports_audio_input("parity-audio-model") is True
    finally:
        del litellm.model_cost["parity-audio-model"]
    assert litellm.supports_web_search("perplexity/sonar") is True
    assert litellm.supports_web_search("gpt-3.5-turbo") is False
    assert litellm.supports_web_search("no-such-model") is False


def test_json_schema_validation_error_is_an_api_response_validation_error():
    err = litellm.JSONSchemaValidationError(model="gpt-4o", llm_provider="openai", raw_response="{}",
                                            schema='{"type": "object"}')
    assert isinstance(err, litellm.APIResponseValidationError) and isinstance(err, litellm.APIError)
    assert err.raw_response == "{}" and err.schema == '{"type": "object"}' and err.model == "gpt-4o"
    assert "returned an invalid response={}" in str(err)
    from llmrelay.exceptions import JSONSchemaValidationError

    assert JSONSchemaValidationError is litellm.JSONSchemaValidationError


def test_litellm_utils_import_path():
    from llmrelay.utils import (  # the imports the brief's callers write against litellm.utils
        ModelResponse,
        completion_cost,
        get_llm_provider,
        get_max_tokens,
        get_model_info,
        get_secret,
        get_supported_openai_params,
        supports_function_calling,
        token_counter,
        trim_messages,
    )

    assert ModelResponse is litellm.ModelResponse and token_counter is litellm.token_counter
    assert trim_messages is litellm.trim_messages and get_secret is litellm.get_secret
    assert completion_cost is litellm.completion_cost and get_model_info is litellm.get_model_info
    assert get_max_tokens is litellm.get_max_tokens and get_llm_provider is litellm.get_llm_provider
    assert supports_function_calling is litellm.supports_function_calling
    assert get_supported_openai_params is litellm.get_supported_openai_params
    assert litellm.utils.Usage is litellm.Usage  # other names come from the package
    with pytest.raises(ImportError):
        from llmrelay.utils import no_such_name  # noqa: F401
