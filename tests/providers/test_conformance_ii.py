"""The common scenario matrix for the native providers of issue 4: Ollama, Bedrock, Cohere.

Every scenario runs against every provider's loopback server (which speaks that provider's real
wire format) through the public ``completion`` / ``acompletion``, sync and async, streamed and
not: text, tools, tool results in history, images, reasoning, usage, truncation, and errors
before and inside the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import pytest

import llmrelay
from llmrelay.exceptions import APIConnectionError, InternalServerError, RateLimitError
from servers._answers import THINKING, Answer
from servers.bedrock_server import (
    DEFAULT_BEDROCK_MODEL,
    TEST_CREDENTIALS,
    FakeBedrockServer,
    bedrock_error_reply,
    dropped_eventstream,
    eventstream_reply,
    exception_frame,
    stream_frames,
)
from servers.cohere_server import (
    DEFAULT_COHERE_MODEL,
    FakeCohereServer,
    cohere_error_reply,
    cohere_events,
    cohere_sse,
    dropped_cohere_stream,
)
from servers.ollama_server import (
    DEFAULT_OLLAMA_MODEL,
    FakeOllamaServer,
    dropped_ollama_stream,
    in_stream_error_reply,
    ollama_error_reply,
)
from servers.openai_server import DEFAULT_TEXT, DEFAULT_TOOL_ARGUMENTS


def _cohere_in_stream_error() -> Any:
    events = cohere_events(Answer(text="Hello there friend"))
    events[-1]["delta"] = {"finish_reason": "ERROR", "error": "internal server error, please retry"}
    return cohere_sse(events)


def _bedrock_in_stream_error() -> Any:
    frames = stream_frames(Answer(text="Hello there friend"))[:3]
    return eventstream_reply([*frames, exception_frame("internalServerException", "internal server error, please retry")])


@dataclass
class Target:
    name: str
    server: Callable[[], Any]
    model: str
    kwargs: Callable[[Any], dict]
    rate_limited: Callable[[], Any]
    in_stream_error: Callable[[], Any]
    dropped: Callable[[], Any]


AK, SK, REGION = TEST_CREDENTIALS
TARGETS = [
    Target(
        "ollama",
        FakeOllamaServer,
        f"ollama_chat/{DEFAULT_OLLAMA_MODEL}",
        lambda srv: {"api_base": srv.url},
        lambda: ollama_error_reply(429, "too many concurrent requests"),
        lambda: in_stream_error_reply("internal server error, please retry"),
        lambda: dropped_ollama_stream(2),
    ),
    Target(
        "bedrock",
        FakeBedrockServer,
        f"bedrock/{DEFAULT_BEDROCK_MODEL}",
        lambda srv: {"api_base": srv.url, "aws_access_key_id": AK, "aws_secret_access_key": SK, "aws_region_name": REGION},
        lambda: bedrock_error_reply(429, "ThrottlingException", "Too many requests, please wait before trying again."),
        _bedrock_in_stream_error,
        lambda: dropped_eventstream(3),
    ),
    Target(
        "cohere",
        FakeCohereServer,
        f"cohere/{DEFAULT_COHERE_MODEL}",
        lambda srv: {"api_base": srv.url, "api_key": "co-test-key"},
        lambda: cohere_error_reply(429, "You are using a Trial key, which is limited to 10 API calls / minute."),
        _cohere_in_stream_error,
        lambda: dropped_cohere_stream(4),
    ),
]

HI = [{"role": "user", "content": "Hi"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}}},
    },
}
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture(params=TARGETS, ids=lambda t: t.name)
def target(request):
    t: Target = request.param
    with t.server() as srv:
        yield t, srv, t.kwargs(srv)


def _collect(chunks: list) -> dict:
    """Everything a caller sees in a stream, checked against the streaming contract."""
    assert chunks, "no chunks"
    ids = {c.id for c in chunks}
    assert len(ids) == 1, f"more than one id: {ids}"
    choice_chunks = [c for c in chunks if c.choices]
    assert choice_chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in choice_chunks[1:])
    finishes = [c.choices[0].finish_reason for c in choice_chunks if c.choices[0].finish_reason]
    assert len(finishes) == 1 and choice_chunks[-1].choices[0].finish_reason == finishes[0]
    calls: dict[int, dict] = {}
    for c in choice_chunks:
        for tc in c.choices[0].delta.tool_calls or ():
            rec = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            rec["id"] = rec["id"] or tc.id
            if tc.function is not None:
                rec["name"] = rec["name"] or tc.function.name
                rec["arguments"] += tc.function.arguments or ""
    usage = [c.usage for c in chunks if not c.choices and c.usage is not None]
    return {
        "text": "".join(c.choices[0].delta.content or "" for c in choice_chunks),
        "reasoning": "".join(c.choices[0].delta.reasoning_content or "" for c in choice_chunks),
        "finish": finishes[0],
        "tool_calls": [calls[i] for i in sorted(calls)],
        "usage": usage[-1] if usage else None,
    }


def _stream(model: str, messages: list, kwargs: dict, **params) -> dict:
    return _collect(list(llmrelay.completion(model, messages, stream=True, **kwargs, **params)))


async def _astream(model: str, messages: list, kwargs: dict, **params) -> dict:
    stream = await llmrelay.acompletion(model, messages, stream=True, **kwargs, **params)
    return _collect([c async for c in stream])


# ------------------------------------------------------------------- text
def test_text(target):
    t, srv, kw = target
    response = llmrelay.completion(t.model, HI, **kw)
    assert response.choices[0].message.content == DEFAULT_TEXT
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


async def test_text_async(target):
    t, srv, kw = target
    response = await llmrelay.acompletion(t.model, HI, **kw)
    assert response.choices[0].message.content == DEFAULT_TEXT


def test_stream_sync_with_usage(target):
    t, srv, kw = target
    seen = _stream(t.model, HI, kw, stream_options={"include_usage": True})
    assert seen["text"] == DEFAULT_TEXT and seen["finish"] == "stop"
    reference = llmrelay.completion(t.model, HI, **kw).usage
    assert seen["usage"].prompt_tokens == reference.prompt_tokens
    assert seen["usage"].completion_tokens == reference.completion_tokens


async def test_stream_async(target):
    t, srv, kw = target
    seen = await _astream(t.model, HI, kw, stream_options={"include_usage": True})
    assert seen["text"] == DEFAULT_TEXT and seen["finish"] == "stop" and seen["usage"].total_tokens > 0


def test_max_tokens_truncates_with_length(target):
    t, srv, kw = target
    seen = _stream(t.model, HI, kw, max_tokens=3)
    assert seen["text"] == "Hello! How can" and seen["finish"] == "length"
    assert llmrelay.completion(t.model, HI, max_tokens=3, **kw).choices[0].finish_reason == "length"


# ------------------------------------------------------------------- tools
def test_tool_call_non_stream(target):
    t, srv, kw = target
    response = llmrelay.completion(t.model, [{"role": "user", "content": "Weather in Paris?"}], tools=[TOOL], **kw)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id and call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == DEFAULT_TOOL_ARGUMENTS


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_tool_call_stream(target, use_async):
    t, srv, kw = target
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    seen = await _astream(t.model, messages, kw, tools=[TOOL]) if use_async else _stream(t.model, messages, kw, tools=[TOOL])
    assert seen["finish"] == "tool_calls"
    (call,) = seen["tool_calls"]
    assert call["id"] and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == DEFAULT_TOOL_ARGUMENTS


def test_tool_call_stream_rebuilds_with_stream_chunk_builder(target):
    t, srv, kw = target
    chunks = list(llmrelay.completion(t.model, [{"role": "user", "content": "Weather?"}], stream=True, tools=[TOOL], **kw))
    rebuilt = llmrelay.stream_chunk_builder(chunks)
    call = rebuilt.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == DEFAULT_TOOL_ARGUMENTS
    assert rebuilt.choices[0].finish_reason == "tool_calls"


def test_tool_result_in_history(target):
    t, srv, kw = target
    first = llmrelay.completion(t.model, [{"role": "user", "content": "Weather in Paris?"}], tools=[TOOL], **kw)
    assistant = first.choices[0].message.model_dump(exclude_none=True)
    call_id = assistant["tool_calls"][0]["id"]
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        assistant,
        {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"},
    ]
    seen = _stream(t.model, messages, kw, tools=[TOOL])
    assert seen["text"] == "The tool said: 18C and sunny" and seen["finish"] == "stop"


# ------------------------------------------------------------------- images, reasoning
def test_image_input(target):
    t, srv, kw = target
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PIXEL}}]
    response = llmrelay.completion(t.model, [{"role": "user", "content": content}], **kw)
    assert response.choices[0].message.content == "I see 1 image(s)."


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_reasoning_stream(target, use_async):
    t, srv, kw = target
    if use_async:
        seen = await _astream(t.model, HI, kw, reasoning_effort="low")
    else:
        seen = _stream(t.model, HI, kw, reasoning_effort="low")
    assert seen["reasoning"] == THINKING and seen["text"] == DEFAULT_TEXT


def test_reasoning_non_stream(target):
    t, srv, kw = target
    message = llmrelay.completion(t.model, HI, reasoning_effort="low", **kw).choices[0].message
    assert message.reasoning_content == THINKING and message.content == DEFAULT_TEXT


# ------------------------------------------------------------------- errors
def test_error_before_stream_raises_from_the_call(target):
    t, srv, kw = target
    srv.enqueue(t.rate_limited())
    with pytest.raises(RateLimitError):
        llmrelay.completion(t.model, HI, stream=True, **kw)


async def test_error_before_stream_async(target):
    t, srv, kw = target
    srv.enqueue(t.rate_limited())
    with pytest.raises(RateLimitError):
        await llmrelay.acompletion(t.model, HI, **kw)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_error_inside_stream_raises_from_iteration(target, use_async):
    t, srv, kw = target
    srv.enqueue(t.in_stream_error())
    with pytest.raises(InternalServerError, match="please retry") as info:
        if use_async:
            stream = await llmrelay.acompletion(t.model, HI, stream=True, **kw)
            async for _ in stream:
                pass
        else:
            for _ in llmrelay.completion(t.model, HI, stream=True, **kw):
                pass
    assert info.value.generated_content.startswith("Hello")


def test_dropped_stream_is_reported(target):
    t, srv, kw = target
    srv.enqueue(t.dropped())
    with pytest.raises(APIConnectionError):
        list(llmrelay.completion(t.model, HI, stream=True, **kw))
