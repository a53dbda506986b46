"""One scenario matrix for every provider: users switch providers by changing the model string.

Each provider runs against its loopback fake (speaking its real wire format): text, streams
(sync and async) with the streaming contract, tools, tool results in history, images,
reasoning, usage, and errors before and inside the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import pytest

import llmrelay
from llmrelay.exceptions import APIError, RateLimitError
from servers.anthropic_server import FakeAnthropicServer, anthropic_error_reply, anthropic_stream_reply, stream_error_events
from servers.azure_server import FakeAzureServer
from servers.gemini_server import FakeGeminiServer, gemini_stream_reply, google_error_body, google_error_reply, stream_events
from servers.openai_server import (
    DEFAULT_TEXT,
    FakeOpenAIServer,
    in_band_error_stream,
    rate_limit_reply,
    reasoning_stream,
)

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
    "required": ["location"]}}}]
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
HI = [{"role": "user", "content": "Hi"}]


@dataclass
class Spec:
    name: str
    server: Callable[[], Any]
    model: str
    kwargs: Callable[[Any], dict]
    rate_limit: Callable[[], Any]
    stream_error: Callable[[], Any]
    reasoning: Callable[[Any], dict]  # enqueue what is needed; return extra kwargs


def _openai_reasoning(srv: Any) -> dict:
    srv.enqueue(reasoning_stream())
    return {}


SPECS = [
    Spec("openai", FakeOpenAIServer, "openai/gpt-4o-mini", lambda s: {"api_base": s.url + "/v1", "api_key": "k"},
         lambda: rate_limit_reply(0), lambda: in_band_error_stream(), _openai_reasoning),
    Spec("azure", FakeAzureServer, "azure/my-gpt4o",
         lambda s: {"api_base": s.url, "api_key": "azure-key", "api_version": "2024-10-21"},
         lambda: rate_limit_reply(0), lambda: in_band_error_stream(), _openai_reasoning),
    Spec("anthropic", FakeAnthropicServer, "anthropic/claude-sonnet-4-5",
         lambda s: {"api_base": s.url, "api_key": "sk-ant-test"},
         lambda: anthropic_error_reply(429, "rate limited", retry_after=0),
         lambda: anthropic_stream_reply(stream_error_events()), lambda s: {"reasoning_effort": "low"}),
    Spec("gemini", FakeGeminiServer, "gemini/gemini-2.5-flash", lambda s: {"api_base": s.url, "api_key": "gemini-key"},
         lambda: google_error_reply(429, "Resource has been exhausted"),
         lambda: gemini_stream_reply([*stream_events([{"text": "Hello there friend"}])[:1],
                                      google_error_body(503, "The model is overloaded.")]),
         lambda s: {"reasoning_effort": "low"}),
    Spec("vertex_ai", FakeGeminiServer, "vertex_ai/gemini-2.5-flash",
         lambda s: {"api_base": s.url, "vertex_access_token": "vertex-token", "vertex_project": "p"},
         lambda: google_error_reply(429, "Resource has been exhausted"),
         lambda: gemini_stream_reply([*stream_events([{"text": "Hello there friend"}])[:1],
                                      google_error_body(503, "The model is overloaded.")]),
         lambda s: {"reasoning_effort": "low"}),
]


@pytest.fixture(params=SPECS, ids=[s.name for s in SPECS])
def env(request):
    spec: Spec = request.param
    with spec.server() as srv:
        yield spec, srv


def check_contract(chunks: list, include_usage: bool = True) -> dict:
    assert chunks, "no chunks"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    finishes = [(i, c.choices[0].finish_reason) for i, c in enumerate(chunks) if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    last_choice = max(i for i, c in enumerate(chunks) if c.choices)
    assert finishes[0][0] == last_choice
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    return {"text": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
            "reasoning": "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices),
            "finish": finishes[0][1]}


def test_text(env):
    spec, srv = env
    resp = llmrelay.completion(spec.model, HI, **spec.kwargs(srv))
    assert resp.choices[0].message.content == DEFAULT_TEXT and resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp._hidden_params["custom_llm_provider"] == spec.name
    assert resp._hidden_params["api_base"].startswith(srv.url)


def test_stream_sync(env):
    spec, srv = env
    chunks = list(llmrelay.completion(spec.model, HI, stream=True, stream_options={"include_usage": True},
                                      **spec.kwargs(srv)))
    result = check_contract(chunks)
    assert result["text"] == DEFAULT_TEXT and result["finish"] == "stop"


async def test_stream_async(env):
    spec, srv = env
    stream = await llmrelay.acompletion(spec.model, HI, stream=True, stream_options={"include_usage": True},
                                        **spec.kwargs(srv))
    result = check_contract([c async for c in stream])
    assert result["text"] == DEFAULT_TEXT


async def test_tools_and_tool_results_in_history(env):
    spec, srv = env
    stream = await llmrelay.acompletion(spec.model, [{"role": "user", "content": "Weather in Paris?"}], stream=True,
                                        tools=TOOLS, **spec.kwargs(srv))
    built = llmrelay.stream_chunk_builder([c async for c in stream])
    assert built.choices[0].finish_reason == "tool_calls"
    call = built.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments)["location"] == "Paris, France"
    history = [{"role": "user", "content": "Weather in Paris?"}, built.choices[0].message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]
    resp = llmrelay.completion(spec.model, history, tools=TOOLS, tool_choice="none", **spec.kwargs(srv))
    assert resp.choices[0].message.content == DEFAULT_TEXT


def test_images(env):
    spec, srv = env
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                             {"type": "image_url", "image_url": {"url": PNG}}]}]
    resp = llmrelay.completion(spec.model, messages, **spec.kwargs(srv))
    assert resp.choices[0].message.content == DEFAULT_TEXT
    assert PNG.split(",", 1)[1] in srv.last_request.body.decode()


def test_reasoning(env):
    spec, srv = env
    extra = spec.reasoning(srv)
    chunks = list(llmrelay.completion(spec.model, HI, stream=True, stream_options={"include_usage": True},
                                      **spec.kwargs(srv), **extra))
    result = check_contract(chunks)
    assert result["reasoning"] and result["text"] == DEFAULT_TEXT


async def test_error_before_stream(env):
    spec, srv = env
    srv.enqueue(spec.rate_limit(), spec.rate_limit())
    with pytest.raises(RateLimitError):
        llmrelay.completion(spec.model, HI, stream=True, **spec.kwargs(srv))
    with pytest.raises(RateLimitError):
        await llmrelay.acompletion(spec.model, HI, **spec.kwargs(srv))


async def test_error_inside_stream(env):
    spec, srv = env
    srv.enqueue(spec.stream_error(), spec.stream_error())
    with pytest.raises(APIError) as info:
        for _ in llmrelay.completion(spec.model, HI, stream=True, **spec.kwargs(srv)):
            pass
    assert type(info.value) is not APIError and info.value.llm_provider == spec.name
    stream = await llmrelay.acompletion(spec.model, HI, stream=True, **spec.kwargs(srv))
    with pytest.raises(type(info.value)):
        async for _ in stream:
            pass


# Valid JSON of a shape no provider sends: a typed APIError, never a raw AttributeError/TypeError.
ODD_BODY = {"type": "message", "content": 1, "candidates": [1], "choices": [1]}
ODD_EVENT = b'event: message_start\ndata: {"type":"message_start","message":"x","candidates":"x"}\n\n'


async def test_unexpected_shapes_are_typed_errors(env):
    from servers.loopback import Reply

    spec, srv = env
    srv.enqueue(Reply.json(ODD_BODY), Reply.json(ODD_BODY))
    with pytest.raises(APIError, match="unexpected shape"):
        llmrelay.completion(spec.model, HI, **spec.kwargs(srv))
    with pytest.raises(APIError, match="unexpected shape"):
        await llmrelay.acompletion(spec.model, HI, **spec.kwargs(srv))
    if spec.name in ("anthropic", "gemini", "vertex_ai"):  # OpenAI-shaped chunks go to StreamState as they are
        srv.enqueue(Reply.stream([ODD_EVENT], content_type="text/event-stream"))
        with pytest.raises(APIError, match="unexpected shape"):
            list(llmrelay.completion(spec.model, HI, stream=True, **spec.kwargs(srv)))
