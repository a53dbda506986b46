"""Behaviour LiteLLM's own unit tests assert, checked on llmrelay (no network).

Sources (BerriAI/litellm): tests/local_testing/test_mock_request.py, test_exceptions.py
(test_exception_mapping, test_content_policy_exception_azure, test_azure_embedding_exceptions,
test_anthropic_openai_exception), test_stream_chunk_builder.py (empty chunks, complete_response),
test_utils.py (function_to_dict, get_valid_models, get_token_count, is_base64_encoded,
supports_* helpers, get_model_cost_map). Written from what those tests assert, not copied.
"""

from __future__ import annotations

import asyncio
import os

import pytest

import llmrelay as litellm

MESSAGES = [{"role": "user", "content": "Hey, how's it going?"}]


# ------------------------------------------------------------------ mock_response as an error
@pytest.mark.parametrize("provider", ["predibase", "vertex_ai_beta", "anthropic", "databricks", "watsonx",
                                      "fireworks_ai", "openai"])
def test_mock_exception_is_mapped_by_its_status_code(provider):
    """test_exception_mapping: a plain Exception with ``status_code``, ``text`` and
    ``llm_provider`` attributes maps like a real upstream error, for providers llmrelay does
    not serve too (a mocked call sends nothing)."""
    expected = {400: litellm.BadRequestError, 401: litellm.AuthenticationError, 404: litellm.NotFoundError,
                408: litellm.Timeout, 429: litellm.RateLimitError, 500: litellm.InternalServerError,
                503: litellm.ServiceUnavailableError}
    for code, cls in expected.items():
        mock = Exception()
        mock.text = "This is an error message"
        mock.llm_provider = provider
        mock.status_code = code
        with pytest.raises(cls) as info:
            litellm.completion(model=f"{provider}/test-model", messages=MESSAGES, mock_response=mock)
        assert info.value.status_code == code
        assert info.value.llm_provider == provider
        assert info.value.message == "This is an error message"


def test_mock_content_filter_policy_raises_content_policy_violation():
    """test_content_policy_exception_azure: ``"Exception: content_filter_policy"``."""
    with pytest.raises(litellm.ContentPolicyViolationError) as info:
        asyncio.run(litellm.acompletion(model="azure/gpt-4.1-mini", messages=MESSAGES,
                                        mock_response="Exception: content_filter_policy"))
    assert info.value.status_code == 400
    assert info.value.response is not None
    assert isinstance(info.value.litellm_debug_info, str) and info.value.litellm_debug_info

    async def streamed() -> None:  # test_content_policy_violation_error_streaming: never a clean stream
        stream = await litellm.acompletion(model="azure/gpt-4.1-mini", messages=MESSAGES, stream=True,
                                           mock_response="Exception: content_filter_policy")
        async for _ in stream:
            pass

    with pytest.raises(litellm.ContentPolicyViolationError):
        asyncio.run(streamed())


def test_mock_streaming_error_raises_from_the_stream():
    stream = litellm.completion(model="openai/gpt-4o-mini", messages=[], stream=True,
                                mock_response="Exception: mock_streaming_error")
    with pytest.raises(litellm.InternalServerError) as info:
        list(stream)
    assert info.value.status_code == 529
    with pytest.raises(litellm.InternalServerError):
        litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES,
                           mock_response="Exception: mock_streaming_error")


def test_mocked_calls_accept_empty_messages_and_unserved_provider_prefixes():
    # LiteLLM's completion() defaults messages to []; a mock answers whatever the messages
    assert litellm.completion(model="gpt-4o", messages=[], mock_response="hi").choices[0].message.content == "hi"
    response = litellm.completion(model="predibase/llama-3-8b", messages=MESSAGES, mock_response="hi")
    assert response._hidden_params["custom_llm_provider"] == "predibase"
    with pytest.raises(litellm.BadRequestError):  # a real call still needs them
        litellm.completion(model="gpt-4o", messages=[], api_key="k", api_base="http://127.0.0.1:9")
    with pytest.raises(litellm.BadRequestError):  # a bare unknown name is unknown mocked or not
        litellm.completion(model="blah-model", messages=MESSAGES, mock_response="hi")


def test_mock_response_has_response_ms():
    response = litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="hi")
    assert isinstance(response._response_ms, float)


def test_embedding_mock_error():
    """test_azure_embedding_exceptions: ``mock_response="error"`` raises ``Exception("Mock error")``
    whose str is exactly that (LiteLLM's readable-exceptions test)."""
    with pytest.raises(Exception, match="Mock error") as info:
        litellm.embedding(model="azure/text-embedding-ada-002", input="hello", mock_response="error")
    assert str(info.value) == "Mock error"
    with pytest.raises(litellm.RateLimitError):
        litellm.embedding(model="text-embedding-ada-002", input="hello", mock_response="litellm.RateLimitError")


def test_missing_anthropic_key_message(monkeypatch):
    """test_anthropic_openai_exception: LiteLLM's wording is in ``.message``."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(litellm.AuthenticationError) as info:
        litellm.completion(model="anthropic/claude-3-sonnet-20240229", messages=MESSAGES)
    assert ("Missing Anthropic API Key - A call is being made to anthropic but no key is set either in the "
            "environment variables or via params") in info.value.message
    assert "ANTHROPIC_API_KEY" in info.value.message


# ------------------------------------------------------------------ stream_chunk_builder
def test_stream_chunk_builder_empty_and_none():
    """test_stream_chunk_builder_litellm_empty_chunks."""
    with pytest.raises(litellm.APIError):
        litellm.stream_chunk_builder(chunks=None)
    assert litellm.stream_chunk_builder(chunks=[]) is None


def test_complete_response_builds_the_stream():
    """test_stream_chunk_builder_litellm_tool_call_regular_message: ``stream=True,
    complete_response=True`` returns the rebuilt response, usage added up, provider in
    ``_hidden_params``."""
    response = litellm.completion(model="gpt-3.5-turbo", messages=MESSAGES, stream=True, complete_response=True,
                                  mock_response="It is going well")
    assert isinstance(response, litellm.ModelResponse)
    assert response.choices[0].message.content == "It is going well"
    assert response.usage.completion_tokens > 0 and response.usage.prompt_tokens > 0
    assert response.usage.total_tokens == response.usage.completion_tokens + response.usage.prompt_tokens
    assert response._hidden_params["custom_llm_provider"] == "openai"

    async def run() -> litellm.ModelResponse:
        return await litellm.acompletion(model="gpt-3.5-turbo", messages=MESSAGES, stream=True,
                                         complete_response=True, mock_response="fine")

    assert asyncio.run(run()).choices[0].message.content == "fine"


# ------------------------------------------------------------------ litellm.utils helpers
def test_function_to_dict():
    def get_current_weather(location: str, unit: str):
        """Get the current weather in a given location

        Parameters
        ----------
        location : str
            The city and state, e.g. San Francisco, CA
        unit : {'celsius', 'fahrenheit'}
            Temperature unit

        Returns
        -------
        str
            a sentence indicating the weather
        """

    schema = litellm.utils.function_to_dict(get_current_weather)
    assert schema["name"] == "get_current_weather"
    assert schema["description"] == "Get the current weather in a given location"
    assert schema["parameters"]["type"] == "object"
    assert schema["parameters"]["properties"]["location"] == {
        "type": "string", "description": "The city and state, e.g. San Francisco, CA"}
    assert schema["parameters"]["required"] == ["location", "unit"]
    # LiteLLM puts the enum's repr (a string) here; a JSON-schema enum is a list
    assert sorted(schema["parameters"]["properties"]["unit"]["enum"]) == ["celsius", "fahrenheit"]


def test_get_valid_models_follows_the_environment(monkeypatch):
    """test_aget_valid_models: only OPENAI_API_KEY set → OpenAI's chat then text-completion
    models; only GEMINI_API_KEY → the Gemini models."""
    monkeypatch.setattr(os, "environ", {"OPENAI_API_KEY": "temp"})
    models = litellm.get_valid_models()
    assert set(models) == set(litellm.open_ai_chat_completion_models) | set(litellm.open_ai_text_completion_models)
    assert "gpt-4o" in models
    monkeypatch.setattr(os, "environ", {"GEMINI_API_KEY": "temp"})
    assert set(litellm.get_valid_models()) == set(litellm.gemini_models)
    monkeypatch.setattr(os, "environ", {})
    assert litellm.get_valid_models() == []


def test_small_utils():
    from llmrelay.utils import get_token_count, is_base64_encoded

    messages = [{"role": "user", "content": "This is a long message"}]
    assert get_token_count(messages=messages, model="gpt-4") == litellm.token_counter(model="gpt-4", messages=messages)
    assert is_base64_encoded("data:image/png;base64,aGVsbG8=") is True
    assert is_base64_encoded("not base64!") is False
    table = litellm.get_model_cost_map(url="")
    assert table["gpt-4o"]["litellm_provider"] == "openai"
    assert litellm.supports_native_streaming("gpt-4o") is True
    assert litellm.supports_audio_output("gpt-3.5-turbo") is False
    assert callable(litellm._turn_on_debug)


# ------------------------------------------------------------------ capability flags (test_utils.py)
@pytest.mark.parametrize("model, expected", [
    ("gpt-3.5-turbo", True), ("azure/gpt-4-1106-preview", True), ("groq/gemma-7b-it", True),
    ("anthropic.claude-instant-v1", False), ("palm/chat-bison", False), ("gpt-4", True),
    ("command-nightly", False), ("gemini-pro", True),
])
def test_supports_function_calling(model, expected):
    assert litellm.supports_function_calling(model=model) is expected


@pytest.mark.parametrize("model, expected", [
    ("gpt-4-vision-preview", True), ("gpt-3.5-turbo", False), ("claude-3-opus-20240229", True),
    ("gemini-pro-vision", True), ("command-nightly", False),
])
def test_supports_vision(model, expected):
    assert litellm.supports_vision(model=model, custom_llm_provider=None) is expected


def test_supports_audio_and_response_schema():
    assert litellm.supports_audio_input(model="gpt-3.5-turbo") is False
    assert litellm.supports_audio_input(model="gpt-4o-audio-preview") is True
    assert litellm.supports_audio_output(model="gpt-4o-audio-preview") is True
    assert litellm.supports_response_schema(model="vertex_ai/gemini-1.5-pro", custom_llm_provider=None) is True
    assert litellm.supports_response_schema(model="gemini/gemini-1.5-pro", custom_llm_provider=None) is True
    # LiteLLM's old test says False for gpt-4o; OpenAI's structured outputs say True (its current table too)
    assert litellm.supports_response_schema(model="gpt-4o", custom_llm_provider=None) is True


def test_bare_bedrock_ids_resolve_to_bedrock():
    """test_cost_bedrock_pricing_actual_calls: a bare Bedrock id is a bedrock model."""
    response = litellm.completion(model="anthropic.claude-3-5-sonnet-20240620-v1:0", messages=MESSAGES,
                                  mock_response="hello cool one")
    assert response._hidden_params["custom_llm_provider"] == "bedrock"
    cost = litellm.completion_cost(model="bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
                                   completion_response=response, messages=MESSAGES)
    assert cost > 0
    assert litellm.get_llm_provider("anthropic.claude-instant-v1")[1] == "bedrock"
