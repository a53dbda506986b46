"""LiteLLM's mocks, which people test their apps with: ``mock_response`` (text, ModelResponse,
exceptions mapped as real errors), ``n``, ``mock_tool_calls``, ``mock_timeout``, ``mock_delay``,
and the Router reacting to mocked errors exactly as to real ones."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import llmrelay
from llmrelay import Router

MESSAGES = [{"role": "user", "content": "Hey, how's it going?"}]


def _collect(stream):
    return list(stream)


# ---------------------------------------------------------------- LiteLLM's documented examples
def test_docs_mock_response_basic():
    response = llmrelay.completion(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "Hey, I'm a mock request"}],
                                   mock_response="It's simple to use and easy to get started")
    assert response.choices[0].message.content == "It's simple to use and easy to get started"


def test_docs_mock_response_streaming():
    response = llmrelay.completion(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "Hey, I'm a mock request"}],
                                   stream=True, mock_response="It's simple to use and easy to get started")
    complete_response = ""
    for chunk in response:
        complete_response += chunk["choices"][0]["delta"]["content"] or ""
    assert complete_response == "It's simple to use and easy to get started"


# ---------------------------------------------------------------- ModelResponse
def test_model_response_returned_as_is_and_streamed():
    canned = llmrelay.ModelResponse(id="chatcmpl-canned", model="gpt-4o", choices=[
        {"index": 0, "message": {"role": "assistant", "content": "Canned answer here",
                                 "reasoning_content": "because"}, "finish_reason": "stop"}],
        usage={"prompt_tokens": 3, "completion_tokens": 3})
    assert llmrelay.completion(model="gpt-4o", messages=MESSAGES, mock_response=canned) is canned
    chunks = _collect(llmrelay.completion(model="gpt-4o", messages=MESSAGES, mock_response=canned, stream=True,
                                          stream_options={"include_usage": True}))
    assert {c.id for c in chunks} == {"chatcmpl-canned"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Canned answer here"
    assert "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices) == "because"
    assert chunks[-1].usage.total_tokens == 6
    built = llmrelay.stream_chunk_builder(chunks)
    assert built.choices[0].message.content == "Canned answer here"


# ---------------------------------------------------------------- exceptions
class _StatusError(Exception):
    def __init__(self, message, status_code):
        super().__init__(message)
        self.status_code = status_code


@pytest.mark.parametrize("mock,cls,status", [
    (_StatusError("slow down", 429), llmrelay.RateLimitError, 429),
    (_StatusError("no key", 401), llmrelay.AuthenticationError, 401),
    (_StatusError("overloaded", 503), llmrelay.ServiceUnavailableError, 503),
    (Exception("This model's maximum context length is 8192 tokens"), llmrelay.ContextWindowExceededError, 500),
    (_StatusError("Your request was rejected as a result of our safety system", 400),
     llmrelay.ContentPolicyViolationError, 400),
    (Exception("something broke"), llmrelay.InternalServerError, 500),
    (ValueError("boom"), llmrelay.InternalServerError, 500),
])
def test_bare_exceptions_are_mapped(mock, cls, status):
    with pytest.raises(cls) as info:
        llmrelay.completion(model="gpt-4o", messages=MESSAGES, mock_response=mock)
    assert type(info.value) is cls and info.value.status_code == status and info.value.__cause__ is mock


def test_litellm_names_and_instances_raise():
    for mock in ("litellm.ContextWindowExceededError", "litellm.InternalServerError",
                 llmrelay.BadRequestError("bad", model="gpt-4o"), llmrelay.Timeout):
        with pytest.raises(llmrelay.APIError):
            llmrelay.completion(model="gpt-4o", messages=MESSAGES, mock_response=mock)


# ---------------------------------------------------------------- n, tool calls
def test_n_choices_plain_and_streamed():
    response = llmrelay.completion(model="gpt-4o", messages=MESSAGES, mock_response="one two", n=3)
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert {c.message.content for c in response.choices} == {"one two"}
    chunks = _collect(llmrelay.completion(model="gpt-4o", messages=MESSAGES, mock_response="one two", n=3, stream=True))
    for index in range(3):
        mine = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == index]
        assert "".join(ch.delta.content or "" for ch in mine) == "one two"
        assert [ch.finish_reason for ch in mine if ch.finish_reason] == ["stop"]
        assert mine[0].delta.role == "assistant" and all(ch.delta.role is None for ch in mine[1:])


TOOL_CALLS = [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
              {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]


def test_mock_tool_calls():
    response = llmrelay.completion(model="gpt-4o", messages=MESSAGES, mock_tool_calls=TOOL_CALLS)
    calls = response.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"] and calls[0].id == "call_1"
    assert response.choices[0].finish_reason == "tool_calls"
    chunks = _collect(llmrelay.completion(model="gpt-4o", messages=MESSAGES, mock_tool_calls=TOOL_CALLS, stream=True))
    built = llmrelay.stream_chunk_builder(chunks)
    assert [json.loads(c.function.arguments) for c in built.choices[0].message.tool_calls] == [{"city": "Paris"}, {}]
    assert built.choices[0].finish_reason == "tool_calls"


# ---------------------------------------------------------------- timeout, delay
def test_mock_timeout_waits_for_the_timeout_then_raises():
    start = time.monotonic()
    with pytest.raises(llmrelay.Timeout):
        llmrelay.completion(model="gpt-4o", messages=MESSAGES, mock_timeout=True, timeout=0.3)
    assert time.monotonic() - start >= 0.3

    async def run():
        await llmrelay.acompletion(model="gpt-4o", messages=MESSAGES, mock_timeout=True, timeout=0.2)

    start = time.monotonic()
    with pytest.raises(llmrelay.Timeout):
        asyncio.run(run())
    assert time.monotonic() - start >= 0.2


def test_mock_delay_waits():
    start = time.monotonic()
    response = llmrelay.completion(model="gpt-4o", messages=MESSAGES, mock_response="late", mock_delay=0.25)
    assert response.choices[0].message.content == "late" and time.monotonic() - start >= 0.25

    async def run():
        # the event loop stays free while a mock waits
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        await llmrelay.acompletion(model="gpt-4o", messages=MESSAGES, mock_response="late", mock_delay=0.2)
        ticker.cancel()
        return ticks

    assert asyncio.run(run()) >= 5


# ---------------------------------------------------------------- the Router reacts as to real errors
def _router(**kwargs):
    return Router(model_list=[
        {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "k"}, "model_info": {"id": "a"}},
        {"model_name": "backup", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k"}, "model_info": {"id": "b"}},
    ], **kwargs)


def test_router_retries_and_falls_back_on_mocked_errors():
    router = _router(fallbacks=[{"gpt": ["backup"]}], num_retries=1, retry_after=0)
    with pytest.raises(llmrelay.RateLimitError) as info:
        router.completion(model="gpt", messages=MESSAGES, mock_response=_StatusError("slow down", 429))
    assert [a["model_group"] for a in info.value.attempts].count("gpt") == 2  # retried, then fell back (and failed there too)
    router = _router(context_window_fallbacks=[{"gpt": ["backup"]}])
    err = Exception("This model's maximum context length is 8192 tokens")
    with pytest.raises(llmrelay.ContextWindowExceededError) as info:
        router.completion(model="gpt", messages=MESSAGES, mock_response=err)
    assert [a["model_group"] for a in info.value.attempts] == ["gpt", "backup"]


@pytest.mark.parametrize("stream", [False, True])
def test_router_mock_testing_fallbacks(stream):
    """LiteLLM's reliability page: ``mock_testing_fallbacks=True`` makes the first group fail."""
    router = _router(fallbacks=[{"gpt": ["backup"]}])
    response = router.completion(model="gpt", messages=MESSAGES, mock_response="from the fallback",
                                 mock_testing_fallbacks=True, stream=stream)
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in response if c.choices) == "from the fallback"
    else:
        assert response.choices[0].message.content == "from the fallback"
    assert response._hidden_params["model_group"] == "backup"
    assert [a["model_group"] for a in response._hidden_params["router_attempts"]] == ["gpt"]

    async def run():
        return await router.acompletion(model="gpt", messages=MESSAGES, mock_response="async fallback",
                                        mock_testing_fallbacks=True)

    assert asyncio.run(run())._hidden_params["model_group"] == "backup"
    # without fallbacks the mock failure is what the caller gets
    with pytest.raises(llmrelay.InternalServerError, match="mock_testing_fallbacks"):
        _router().completion(model="gpt", messages=MESSAGES, mock_response="x", mock_testing_fallbacks=True)
