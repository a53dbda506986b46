"""Cohere Chat v2: translation, SSE event decoding (sans-I/O) and e2e against the fake server."""

from __future__ import annotations

import json

import pytest

import llmrelay
from llmrelay.exceptions import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ContextWindowExceededError,
    NotFoundError,
    RateLimitError,
)
from llmrelay.providers.base import Call
from llmrelay.providers.cohere import CohereProvider, CohereStreamDecoder
from llmrelay.streaming import StreamState
from providers.helpers import feed_split
from servers._answers import THINKING, Answer
from servers.cohere_server import (
    DEFAULT_COHERE_MODEL,
    TOOL_PLAN,
    FakeCohereServer,
    cohere_error_reply,
    cohere_events,
    cohere_sse,
    dropped_cohere_stream,
)

KEY = "co-test-key"
HI = [{"role": "user", "content": "Hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}},
}


def _call(stream=False, messages=None, api_base=None, extra=None, **params) -> Call:
    return Call("cohere", DEFAULT_COHERE_MODEL, messages or HI, params, stream=stream, api_base=api_base,
                api_key=KEY, extra=extra or {}, user_model=DEFAULT_COHERE_MODEL)


def _sse_bytes(events) -> bytes:
    return cohere_sse(events).body_bytes()


def _decode(data: bytes, split: int | None = None) -> tuple[list[dict], CohereStreamDecoder]:
    decoder = CohereStreamDecoder("cohere", "m")
    return feed_split(decoder, data, split), decoder


# ------------------------------------------------------------------- request translation
def test_body_translation():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What?"},
                                     {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": '{"a":1}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
    ]
    call = _call(messages=messages, temperature=0.3, top_p=0.8, max_tokens=20, stop="END", seed=1,
                 tools=[WEATHER_TOOL], tool_choice="required", reasoning_effort="low",
                 response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
                 extra={"top_k": 5, "safety_mode": "STRICT"})
    request = CohereProvider().build_request(call)
    assert request.url == "https://api.cohere.com/v2/chat"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    body = json.loads(request.body)
    assert {k: body[k] for k in ("temperature", "p", "max_tokens", "stop_sequences", "seed", "k", "safety_mode", "tool_choice")} == {
        "temperature": 0.3, "p": 0.8, "max_tokens": 20, "stop_sequences": ["END"], "seed": 1, "k": 5,
        "safety_mode": "STRICT", "tool_choice": "REQUIRED"}
    assert body["thinking"] == {"type": "enabled", "token_budget": 1024}
    assert body["response_format"] == {"type": "json_object", "json_schema": {"type": "object"}}
    assert body["tools"] == [WEATHER_TOOL]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What?"},
                                     {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]},
        {"role": "assistant", "tool_plan": "Checking.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": '{"a":1}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
    ]


@pytest.mark.parametrize("base, url", [
    ("http://h:1", "http://h:1/v2/chat"), ("http://h:1/v2/", "http://h:1/v2/chat"),
    ("http://h:1/v2/chat", "http://h:1/v2/chat"), ("https://api.cohere.ai/v1/chat", "https://api.cohere.ai/v2/chat"),
])
def test_api_base_forms(base, url):
    assert CohereProvider().build_request(_call(api_base=base)).url == url


def test_missing_key(monkeypatch):
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    monkeypatch.delenv("CO_API_KEY", raising=False)
    call = Call("cohere", "command-a-03-2025", HI, {}, user_model="command-a-03-2025")
    with pytest.raises(AuthenticationError, match="COHERE_API_KEY"):
        CohereProvider().build_request(call)


# ------------------------------------------------------------------- stream decoding
def test_stream_every_split_tools_plan_and_thinking():
    data = _sse_bytes(cohere_events(Answer(thinking="hmm ok", tool_calls=[("get_weather", {"location": "Paris"})])))
    whole, decoder = _decode(data)
    assert decoder.done
    for split in range(0, len(data) + 1, 5):
        assert _decode(data, split)[0] == whole
    assert whole[0] == {"id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4", "choices": []}
    deltas = [c["choices"][0]["delta"] for c in whole if c["choices"]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "hmm ok"
    assert "".join(d.get("content", "") for d in deltas) == TOOL_PLAN + " "
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0]["id"] == "get_weather_0k3vbcf2x" and calls[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"location": "Paris"}
    assert whole[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert whole[-1]["usage"] == {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}


@pytest.mark.parametrize("reason, expected", [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls")])
def test_finish_reasons(reason, expected):
    whole, _ = _decode(_sse_bytes(cohere_events(Answer(text="a"), finish_reason=reason)))
    assert whole[-1]["choices"][0]["finish_reason"] == expected


def test_finish_reason_error_raises():
    events = cohere_events(Answer(text="a b"))
    events[-1]["delta"] = {"finish_reason": "ERROR", "error": "internal model failure"}
    with pytest.raises(APIError, match="internal model failure"):
        _decode(_sse_bytes(events))


def test_citations_pass_through_and_stream_state():
    whole, decoder = _decode(_sse_bytes(cohere_events(Answer(text="Hello there", thinking=THINKING), citations=True)))
    state = StreamState("m", "cohere", include_usage=True)
    out = [c for c in map(state.process, whole) if c is not None] + state.finish(decoder.done)
    assert {c.id for c in out} == {"c14c80c3-18eb-4519-9460-6c92edd8cfb4"}
    assert "".join(c.choices[0].delta.content or "" for c in out if c.choices) == "Hello there"
    assert any(c.choices and c.choices[0].delta.get("citations") for c in out)
    assert out[-1].usage.prompt_tokens == 30


# ------------------------------------------------------------------- end to end
@pytest.fixture
def cohere():
    with FakeCohereServer() as srv:
        yield srv


def test_non_stream_tool_call_e2e(cohere):
    response = llmrelay.completion(f"cohere/{DEFAULT_COHERE_MODEL}", HI, tools=[WEATHER_TOOL], api_base=cohere.url, api_key=KEY)
    message = response.choices[0].message
    assert response.choices[0].finish_reason == "tool_calls"
    assert message.content == TOOL_PLAN
    assert message.tool_calls[0].function.name == "get_weather"
    assert response.id == "c14c80c3-18eb-4519-9460-6c92edd8cfb4"


@pytest.mark.parametrize("status, message, cls", [
    (401, "invalid api token", AuthenticationError),
    (429, "You are using a Trial key, which is limited to 10 API calls / minute.", RateLimitError),
    (400, "too many tokens: total number of tokens in the prompt cannot exceed 128000", ContextWindowExceededError),
])
def test_http_errors(cohere, status, message, cls):
    cohere.enqueue(cohere_error_reply(status, message))
    with pytest.raises(cls, match=message[:20]):
        llmrelay.completion(f"cohere_chat/{DEFAULT_COHERE_MODEL}", HI, api_base=cohere.url, api_key=KEY)


def test_unknown_model(cohere):
    with pytest.raises(NotFoundError):
        llmrelay.completion("cohere/nope", HI, api_base=cohere.url, api_key=KEY)


async def test_dropped_stream_async(cohere):
    cohere.enqueue(dropped_cohere_stream(4))
    stream = await llmrelay.acompletion(f"cohere/{DEFAULT_COHERE_MODEL}", HI, stream=True, api_base=cohere.url, api_key=KEY)
    with pytest.raises(APIConnectionError):
        async for _ in stream:
            pass
