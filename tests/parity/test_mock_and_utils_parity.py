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
    with pytest.raises(litellm.ServiceUnavailableError) as info:
        list(stream)
    assert info.value.status_code == 529
    with pytest.raises(litellm.ServiceUnavailableError):
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


# ------------------------------------------------------------------ response types
def test_usage_keywords_fill_the_details():
    """LiteLLM's Usage: ``reasoning_tokens`` → completion_tokens_details, Anthropic's
    ``cache_read_input_tokens`` → prompt_tokens_details.cached_tokens; None counts are 0
    (test_usage_object_null_tokens)."""
    usage = litellm.Usage(prompt_tokens=1, completion_tokens=5, total_tokens=6, reasoning_tokens=3)
    assert usage.completion_tokens_details.reasoning_tokens == 3
    usage = litellm.Usage(prompt_tokens=10, completion_tokens=2, total_tokens=12, cache_read_input_tokens=5,
                          cache_creation_input_tokens=4)
    assert usage.prompt_tokens_details.cached_tokens == 5
    assert usage.cache_creation_input_tokens == 4
    # the cost counts the cached tokens once
    assert litellm.cost_per_token(model="claude-3-5-sonnet-20240620", usage_object=usage) == litellm.cost_per_token(
        model="claude-3-5-sonnet-20240620", prompt_tokens=10, completion_tokens=2, cache_read_input_tokens=5,
        cache_creation_input_tokens=4)
    assert litellm.Usage(prompt_tokens=2, completion_tokens=None, total_tokens=2).completion_tokens == 0


def test_choices_map_finish_reasons_and_default_to_stop():
    assert litellm.Choices().finish_reason == "stop"
    assert litellm.Choices(finish_reason="end_turn").finish_reason == "stop"
    assert litellm.Choices(finish_reason="max_tokens").finish_reason == "length"
    assert litellm.Choices(finish_reason="tool_use").finish_reason == "tool_calls"
    assert litellm.StreamingChoices().finish_reason is None
    assert litellm.StreamingChoices(finish_reason="eos").finish_reason == "stop"
    assert litellm.ModelResponse().choices[0].finish_reason == "stop"


def test_model_response_takes_hidden_params_and_response_ms():
    response = litellm.ModelResponse(model="m", hidden_params={"custom_llm_provider": "openai"}, response_ms=12.5)
    assert response._hidden_params == {"custom_llm_provider": "openai"}
    assert response._response_ms == 12.5
    assert "hidden_params" not in response.model_dump()


def _in_a_fresh_process(code: str) -> str:
    """Run ``code`` in a new interpreter (install_as_litellm changes the process for good)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_litellm_type_names_resolve_after_install():
    code = """
import llmrelay
llmrelay.install_as_litellm()
import litellm
from litellm.types.llms.openai import AllMessageValues, ChatCompletionToolParam
from litellm.types.utils import (CallTypes, ChoiceLogprobs, CompletionTokensDetailsWrapper, Embedding,
                                 LlmProviders, ModelInfo, PromptTokensDetailsWrapper, StandardLoggingPayload)
assert CallTypes.completion.value == "completion" and CallTypes("acompletion") is CallTypes.acompletion
assert LlmProviders.ANTHROPIC.value == "anthropic"
usage = litellm.Usage(prompt_tokens=3, completion_tokens=1,
                      prompt_tokens_details=PromptTokensDetailsWrapper(cached_tokens=2),
                      completion_tokens_details=CompletionTokensDetailsWrapper(reasoning_tokens=1))
assert usage.prompt_tokens_details.cached_tokens == 2
logprobs = ChoiceLogprobs(content=[{"token": "a", "logprob": -0.5, "top_logprobs": [{"token": "a", "logprob": -0.5}]}])
assert logprobs.content[0].top_logprobs[0].logprob == -0.5
assert Embedding(embedding=[0.1], index=0, object="embedding").embedding == [0.1]
print("ok")
"""
    assert _in_a_fresh_process(code) == "ok"


# ------------------------------------------------------------------ router (test_router_retries.py & co)
def _router(**settings):
    return litellm.Router(model_list=[
        {"model_name": "bad", "litellm_params": {"model": "gpt-3.5-turbo", "api_key": "x",
                                                  "mock_response": "litellm.RateLimitError"}},
        {"model_name": "good", "litellm_params": {"model": "gpt-4o", "api_key": "x", "mock_response": "from good"}},
    ], **settings)


def test_router_error_after_retries_says_how_many(monkeypatch):
    """test_router_retry_num_retries_tracking: num_retries/max_retries on the final error, and
    LiteLLM's "LiteLLM Retried: N times, LiteLLM Max Retries: M" in its str. (The backoff
    between retries is made 0, as LiteLLM's test patches its sleep.)"""
    import llmrelay.routing.policy as policy

    monkeypatch.setattr(policy, "retry_delay", lambda exc, attempt, cap: 0.0)
    with pytest.raises(litellm.RateLimitError) as info:
        asyncio.run(_router(num_retries=3, retry_after=0).acompletion(model="bad", messages=MESSAGES))
    assert info.value.num_retries == 3 and info.value.max_retries == 3
    assert "LiteLLM Retried: 3 times" in str(info.value)
    assert "LiteLLM Max Retries: 3" in str(info.value)
    with pytest.raises(litellm.RateLimitError) as info:
        _router(num_retries=1, retry_after=0).completion(model="bad", messages=MESSAGES)
    assert (info.value.num_retries, info.value.max_retries) == (1, 1)
    with pytest.raises(litellm.RateLimitError) as info:  # no retries configured: nothing added
        _router().completion(model="bad", messages=MESSAGES)
    assert info.value.num_retries is None and "Retried" not in str(info.value)


def test_router_fallbacks_per_call_as_a_plain_list():
    router = _router()
    assert router.completion(model="bad", messages=MESSAGES, fallbacks=["good"]).choices[0].message.content == "from good"
    assert router.completion(model="bad", messages=MESSAGES,
                             fallbacks=[{"bad": ["good"]}]).choices[0].message.content == "from good"


# ------------------------------------------------------------------ test_token_counter.py
@pytest.mark.parametrize("model, input_tokens, user_max_tokens, expected", [
    ("random-model", 1024, 1024, 1024),  # output limit unknown: the user's value
    ("command", 1000000, None, None),  # no max_tokens given: None
    ("command", 4000, 256, 96),  # one 4096 window: what is left after the prompt
    ("command", 4000, 10, 10),
    ("gpt-3.5-turbo", 4000, 5000, 4096),  # at most the model's output limit
])
def test_get_modified_max_tokens(monkeypatch, model, input_tokens, user_max_tokens, expected):
    monkeypatch.setattr(litellm, "token_counter", lambda *args, **kwargs: input_tokens)
    assert litellm.get_modified_max_tokens(model=model, base_model=model, messages=MESSAGES,
                                           user_max_tokens=user_max_tokens, buffer_perc=0, buffer_num=0) == expected


def test_encode_text_with_special_tokens_and_messages_with_null_tool_calls():
    assert litellm.encode(model="gpt-3.5-turbo", text="Hello, world! <|endoftext|>")
    assert litellm.token_counter(messages=[{"role": "user", "content": "hey, how's it going?", "tool_calls": None}]) > 0


# ------------------------------------------------------------------ exception names (litellm/exceptions.py)
def test_more_litellm_exception_names():
    rejected = litellm.RejectedRequestError("blocked", "gpt-4o", "openai", {"messages": []})
    assert (rejected.status_code, rejected.model, rejected.llm_provider, rejected.request_data) == (
        400, "gpt-4o", "openai", {"messages": []})
    assert isinstance(rejected, litellm.BadRequestError)
    with pytest.raises(litellm.RateLimitError) as info:  # a MockException is mapped by its status
        litellm.completion(model="gpt-4o", messages=MESSAGES,
                           mock_response=litellm.MockException(429, "slow down", "openai", "gpt-4o"))
    assert info.value.message == "slow down"
    midstream = litellm.MidStreamFallbackError("cut", model="gpt-4o", llm_provider="openai",
                                               original_exception=ValueError("x"), generated_content="Hel")
    assert midstream.status_code == 503 and midstream.generated_content == "Hel"
    assert litellm.RateLimitError in litellm.LITELLM_EXCEPTION_TYPES
    assert isinstance(litellm.RateLimitError("x"), tuple(litellm.LITELLM_EXCEPTION_TYPES))


def test_openai_error_and_exception_type():
    openai = pytest.importorskip("openai")
    assert litellm.OpenAIError is openai.OpenAIError
    assert isinstance(litellm.ContextWindowExceededError("x", "gpt-4o", "openai"), litellm.OpenAIError)

    class Upstream(Exception):
        status_code = 429

    with pytest.raises(litellm.RateLimitError) as info:
        litellm.exception_type(model="gpt-4o", original_exception=Upstream("slow"), custom_llm_provider="openai")
    assert (info.value.llm_provider, info.value.model) == ("openai", "gpt-4o")
    original = litellm.NotFoundError("gone", "gpt-4o", "openai")
    with pytest.raises(litellm.NotFoundError) as info:
        litellm.exception_type(model="gpt-4o", original_exception=original, custom_llm_provider="openai")
    assert info.value is original


# ------------------------------------------------------------------ test_completion_cost.py
def _priced_response(model: str, prompt: int, completion: int) -> litellm.ModelResponse:
    return litellm.ModelResponse(
        id="chatcmpl-1", created=1717519830, model=model,
        choices=[litellm.Choices(finish_reason="stop", index=0, message=litellm.Message(content="Hi", role="assistant"))],
        usage=litellm.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion))


def test_response_cost_calculator_and_base_model():
    response = _priced_response("llama3-70b-8192", 17, 46)
    response._hidden_params["custom_llm_provider"] = "groq"
    cost = litellm.response_cost_calculator(response_object=response, model="groq/llama-3.3-70b-versatile",
                                            custom_llm_provider="groq", call_type="acompletion", optional_params={})
    assert isinstance(cost, float) and cost > 0
    assert cost == litellm.completion_cost(completion_response=response, model="groq/llama-3.3-70b-versatile")
    assert litellm.response_cost_calculator(response_object=response, model="groq/llama-3.3-70b-versatile",
                                            cache_hit=True) == 0.0
    deployment = _priced_response("my-deployment", 10, 5)
    assert litellm.completion_cost(completion_response=deployment, model="azure/my-deployment",
                                   base_model="azure/gpt-4o") == litellm.completion_cost(
        completion_response=deployment, model="gpt-4o")


def test_mock_response_cost_in_hidden_params():
    """test_completion_cost_hidden_params."""
    response = litellm.completion(model="gpt-3.5-turbo", messages=MESSAGES, mock_response="Hello world")
    assert isinstance(response._hidden_params["response_cost"], float)


# ------------------------------------------------------------------ completion(fallbacks=...)
def test_completion_fallbacks_try_the_next_model():
    """LiteLLM's completion_with_fallbacks: ``fallbacks`` (names or dicts of arguments) are
    tried in order on any error; all failing raises the last error."""
    response = litellm.completion(model="bad-model", messages=MESSAGES, fallbacks=["gpt-4o"], mock_response="hi")
    assert response.model == "gpt-4o"
    response = litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="litellm.RateLimitError",
                                  fallbacks=[{"model": "gpt-4o-mini", "mock_response": "from mini"}])
    assert response.choices[0].message.content == "from mini"
    with pytest.raises(litellm.RateLimitError) as info:
        litellm.completion(model="gpt-4o", messages=MESSAGES, fallbacks=["gpt-4o-mini"],
                           mock_response="litellm.RateLimitError")
    assert info.value.model == "gpt-4o-mini"

    async def run() -> litellm.ModelResponse:
        return await litellm.acompletion(model="bad-model", messages=MESSAGES, fallbacks=["gpt-4o"],
                                         mock_response="hi")

    assert asyncio.run(run()).model == "gpt-4o"


def test_context_window_fallback_dict():
    from servers.openai_server import FakeOpenAIServer, error_reply

    class SmallWindow(FakeOpenAIServer):
        def chat(self, request):
            if request.json().get("model") == "gpt-4o-mini":
                return error_reply(400, "This model's maximum context length is 8 tokens.",
                                   code="context_length_exceeded")
            return super().chat(request)

    with SmallWindow() as server:
        kwargs = {"api_base": server.url + "/v1", "api_key": "sk-x", "num_retries": 0}
        response = litellm.completion(model="gpt-4o-mini", messages=MESSAGES,
                                      context_window_fallback_dict={"gpt-4o-mini": "gpt-4o"}, **kwargs)
        assert [r["model"] for r in server.chat_requests] == ["gpt-4o-mini", "gpt-4o"]
        assert response.choices[0].message.content
        with pytest.raises(litellm.ContextWindowExceededError):
            litellm.completion(model="gpt-4o-mini", messages=MESSAGES, **kwargs)


def test_additional_drop_params_are_never_sent():
    from servers.openai_server import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        litellm.completion(model="gpt-4o", messages=MESSAGES, api_base=server.url + "/v1", api_key="sk-x",
                           temperature=0.2, seed=7, additional_drop_params=["temperature"])
        sent = server.chat_requests[-1]
        assert "temperature" not in sent and sent["seed"] == 7 and "additional_drop_params" not in sent


def test_function_to_dict_without_a_parameters_section():
    def get_current_weather(location, unit="fahrenheit"):
        """Get the current weather in a given location"""

    schema = litellm.utils.function_to_dict(get_current_weather)
    assert schema["description"] == "Get the current weather in a given location"
    assert schema["parameters"]["required"] == ["location"]
    assert schema["parameters"]["properties"]["unit"] == {"type": "string"}  # from its default


def test_stream_chunk_builder_multiple_tool_calls_equal_the_expected_choices():
    """test_stream_chunk_builder_multiple_tool_calls: chunk objects made with
    ModelResponse(**chunk, stream=True); the rebuilt choices equal the expected ones."""
    def chunk(call=None, finish=None):
        delta = {"role": "assistant", "tool_calls": [call]} if call else {}
        return litellm.ModelResponse(stream=True, id="chatcmpl-A5k", created=1725932618, model="gpt-4o-2024-08-06",
                                     object="chat.completion.chunk",
                                     choices=[{"index": 0, "delta": delta, "finish_reason": finish}])

    chunks = [chunk({"id": "call_X", "function": {"arguments": "", "name": "exponentiate"}, "type": "function",
                     "index": 0})]
    chunks += [chunk({"function": {"arguments": a}, "type": "function", "index": 0})
               for a in ['{"ba', 'se": ', '3, "ex', 'pone', 'nt": ', '5}']]
    chunks.append(chunk({"id": "call_Q", "function": {"arguments": "", "name": "add"}, "type": "function", "index": 1}))
    chunks += [chunk({"function": {"arguments": a}, "type": "function", "index": 1})
               for a in ['{"fi', 'rst_i', 'nt": 1', '2, "', 'secon', 'd_int"', ': 3}']]
    chunks.append(chunk(finish="tool_calls"))
    expected = litellm.ModelResponse(id="x", created=1, model="gpt-4o", choices=[{
        "finish_reason": "tool_calls", "index": 0,
        "message": {"content": None, "role": "assistant", "function_call": None, "tool_calls": [
            {"function": {"arguments": '{"base": 3, "exponent": 5}', "name": "exponentiate"}, "id": "call_X",
             "type": "function"},
            {"function": {"arguments": '{"first_int": 12, "second_int": 3}', "name": "add"}, "id": "call_Q",
             "type": "function"}]}}])
    assert litellm.stream_chunk_builder(chunks=chunks).choices == expected.choices


def test_provider_specific_fields_read_as_none_and_are_not_dumped():
    response = litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="hi")
    message = response.choices[0].message
    assert message.provider_specific_fields is None
    assert "provider_specific_fields" not in message.model_dump()
    assert litellm.Delta(content="x").provider_specific_fields is None
    assert litellm.Message(content="x", provider_specific_fields={"citations": ["u"]}).provider_specific_fields == {
        "citations": ["u"]}


# ------------------------------------------------------------------ test_get_llm_provider.py
def test_get_llm_provider_as_litellm_answers(monkeypatch):
    get = litellm.get_llm_provider
    assert get(model="anthropic.claude-v2:1")[1] == "bedrock"
    assert get(model="fireworks_ai/accounts/my-test-1234")[:2] == ("accounts/my-test-1234", "fireworks_ai")
    assert get(model="*")[1] == "openai"
    assert get(model="gpt-3.5-turbo-instruct-0914")[1] == "text-completion-openai"
    assert get(model="mistral/mistral-large-fr", api_base="https://example.com/v1") == (
        "mistral-large-fr", "mistral", None, "https://example.com/v1")
    monkeypatch.setenv("DEEPSEEK_API_BASE", "MY-FAKE-BASE")
    assert get(model="deepseek/deep-chat") == ("deep-chat", "deepseek", None, "MY-FAKE-BASE")
    assert get(model="cohere/command-r-plus")[:2] == ("command-r-plus", "cohere_chat")
    assert get(model="azure/o1-mini")[:2] == ("o1-mini", "azure")
    assert get(model="hosted_vllm/llama-3.1-70b-instruct")[:3] == ("llama-3.1-70b-instruct", "hosted_vllm",
                                                                   "fake-api-key")
    assert get(model="amazon.nova-micro-v1:0")[:2] == ("amazon.nova-micro-v1:0", "bedrock")
    assert get(model="bedrock/invoke/anthropic.claude-3-5-sonnet-20240620-v1:0")[:2] == (
        "invoke/anthropic.claude-3-5-sonnet-20240620-v1:0", "bedrock")
    assert get(model="grok-2-vision-latest", custom_llm_provider="xai", api_base=None, api_key="xai-k",
               litellm_params=None) == ("grok-2-vision-latest", "xai", "xai-k", "https://api.x.ai/v1")
    for name in ("text-embedding-3-small", "dall-e-3", "whisper-1", "tts-1", "omni-moderation-latest"):
        assert get(model=name)[1] == "openai"
    monkeypatch.setenv("LITELLM_PROXY_API_BASE", "http://localhost:4000")
    assert get(model="litellm_proxy/gpt-4") == ("gpt-4", "litellm_proxy", None, "http://localhost:4000")


def test_module_api_key_and_base_come_before_the_environment(monkeypatch):
    """LiteLLM: ``api_key or litellm.api_key or <PROVIDER>_API_KEY`` (and the same for api_base)."""
    from servers.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(api_key="sk-module") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
        monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")  # nothing listens there
        monkeypatch.setattr(litellm, "api_key", "sk-module")
        monkeypatch.setattr(litellm, "api_base", server.url + "/v1")
        response = litellm.completion(model="gpt-4o", messages=MESSAGES, num_retries=0)
        assert response.choices[0].message.content
        with pytest.raises(litellm.AuthenticationError):  # a call's own key still wins
            litellm.completion(model="gpt-4o", messages=MESSAGES, api_key="sk-call", num_retries=0)
