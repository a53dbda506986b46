"""Anthropic Messages API: request translation, the stream decoder (every split), and end-to-end
calls through llmrelay.completion / acompletion against a fake speaking the real wire format."""

from __future__ import annotations

import json

import pytest

import llmrelay
from llmrelay.exceptions import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnsupportedParamsError,
)
from llmrelay.providers.anthropic import AnthropicProvider, AnthropicStreamDecoder
from providers.helpers import assemble, build_request, decode_every_split
from servers.anthropic_server import (
    DEFAULT_THINKING,
    SIGNATURE,
    FakeAnthropicServer,
    anthropic_error_reply,
    anthropic_stream_reply,
    event_frame,
    message_events,
    stream_error_events,
)
from servers.loopback import Drop
from servers.openai_server import DEFAULT_TEXT

MODEL = "claude-sonnet-4-5"
KEY = "sk-ant-test"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                           "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]
PNG = "data:image/png;base64,iVBORw0KGgo="


def request_body(messages, stream=False, **kwargs):
    return build_request("anthropic/" + MODEL, messages, stream, {"api_key": KEY, **kwargs}, AnthropicProvider())


# ============================================================================ requests
def test_request_shape_headers_and_url():
    req, body = request_body([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == KEY and req.headers["anthropic-version"] == "2023-06-01"
    assert body == {"model": MODEL, "system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}],
                    "max_tokens": 4096}


@pytest.mark.parametrize("base", ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/messages"])
def test_api_base_with_or_without_v1(base):
    req, _ = request_body([{"role": "user", "content": "Hi"}], api_base=base)
    assert req.url == "http://h:1/v1/messages"


def test_missing_key_fails_before_network(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY"):
        llmrelay.completion("anthropic/" + MODEL, [{"role": "user", "content": "Hi"}], api_base="http://127.0.0.1:9")


def test_merging_tools_results_images_and_params():
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Sys", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Weather?"},
        {"role": "user", "content": [{"type": "text", "text": "In Paris"}, {"type": "image_url", "image_url": {"url": PNG}},
                                     {"type": "image_url", "image_url": "https://x/cat.jpg"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "19C"},
        {"role": "user", "content": "thanks"},
    ]
    _, body = request_body(messages, tools=TOOLS, tool_choice="required", stop="END", max_tokens=100,
                           temperature=0.2, user="u-1", parallel_tool_calls=False)
    assert body["system"] == [{"type": "text", "text": "Sys", "cache_control": {"type": "ephemeral"}}]
    user, assistant, results = body["messages"]
    assert [b["type"] for b in user["content"]] == ["text", "text", "image", "image"]
    assert user["content"][2]["source"] == {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    assert user["content"][3]["source"] == {"type": "url", "url": "https://x/cat.jpg"}
    assert assistant["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}]
    assert results["content"] == [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                                  {"type": "tool_result", "tool_use_id": "toolu_2", "content": "19C"},
                                  {"type": "text", "text": "thanks"}]
    assert body["tools"] == [{"name": "get_weather", "description": "Weather",
                              "input_schema": TOOLS[0]["function"]["parameters"]}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["stop_sequences"] == ["END"] and body["max_tokens"] == 100 and body["temperature"] == 0.2
    assert body["metadata"] == {"user_id": "u-1"}


@pytest.mark.parametrize("choice,expected", [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
])
def test_tool_choice(choice, expected):
    _, body = request_body([{"role": "user", "content": "Hi"}], tools=TOOLS, tool_choice=choice)
    assert body["tool_choice"] == expected


def test_reasoning_effort_and_thinking_blocks_sent_back():
    messages = [{"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello", "thinking_blocks": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"}]},
                {"role": "user", "content": "Again"}]
    _, body = request_body(messages, reasoning_effort="high")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] > 4096
    assert body["messages"][1]["content"] == [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                                              {"type": "text", "text": "Hello"}]
    _, body = request_body(messages[:1], thinking={"type": "enabled", "budget_tokens": 2000})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000} and body["max_tokens"] == 4096


def test_response_format_json_schema_uses_a_forced_tool():
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    _, body = request_body([{"role": "user", "content": "Hi"}],
                           response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    assert body["tools"] == [{"name": "json_tool_call", "description": "Respond with the JSON object.", "input_schema": schema}]
    assert body["tool_choice"] == {"type": "tool", "name": "json_tool_call"}


def test_message_level_cache_control_goes_on_the_last_block():
    cache = {"type": "ephemeral"}
    _, body = request_body([{"role": "system", "content": "Long rules", "cache_control": cache},
                            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                             "cache_control": cache}])
    assert body["system"] == [{"type": "text", "text": "Long rules", "cache_control": cache}]
    assert body["messages"][0]["content"] == [{"type": "text", "text": "a"},
                                              {"type": "text", "text": "b", "cache_control": cache}]


def test_response_format_with_thinking_does_not_force_the_tool():
    # Anthropic: "Thinking may not be enabled when tool_choice forces tool use."
    _, body = request_body([{"role": "user", "content": "Hi"}], reasoning_effort="low",
                           response_format={"type": "json_object"})
    assert body["thinking"]["type"] == "enabled" and body["tool_choice"] == {"type": "auto"}
    assert [t["name"] for t in body["tools"]] == ["json_tool_call"]


def test_unsupported_params_raise_or_drop():
    with pytest.raises(UnsupportedParamsError, match="anthropic.*frequency_penalty"):
        request_body([{"role": "user", "content": "Hi"}], frequency_penalty=0.5)
    _, body = request_body([{"role": "user", "content": "Hi"}], frequency_penalty=0.5, drop_params=True, n=1)
    assert "frequency_penalty" not in body and "n" not in body


# ============================================================================ stream decoder
def _bytes(events):
    return b"".join(event_frame(e) for e in events)


def test_decoder_text_at_every_split_with_multibyte():
    events = message_events([{"type": "text", "text": "Grüße 👋 aus Köln"}], model=MODEL, input_tokens=12,
                            output_tokens=5, cache_read=3)
    chunks = decode_every_split(lambda: AnthropicStreamDecoder("anthropic", MODEL), _bytes(events))
    result = assemble(chunks)
    assert result["text"] == "Grüße 👋 aus Köln"
    assert result["finish"] == ["stop"] and result["ids"] == {"msg_fake0001"}
    usage = result["usage"]
    assert (usage.prompt_tokens, usage.completion_tokens) == (15, 5)
    assert usage.prompt_tokens_details["cached_tokens"] == 3


def test_decoder_tool_calls_and_thinking():
    content = [{"type": "thinking", "thinking": "Let me think", "signature": "sig=="},
               {"type": "text", "text": "Checking."},
               {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"location": "Paris, France"}},
               {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {"tz": "CET"}}]
    events = message_events(content, model=MODEL, stop_reason="tool_use")
    chunks = decode_every_split(lambda: AnthropicStreamDecoder("anthropic", MODEL), _bytes(events))
    result = assemble(chunks)
    assert result["reasoning"] == "Let me think" and result["text"] == "Checking."
    assert result["thinking_blocks"] == [{"type": "thinking", "thinking": "Let me think", "signature": "sig=="}]
    assert result["tools"] == {0: {"id": "toolu_a", "name": "get_weather", "arguments": '{"location":"Paris, France"}'},
                               1: {"id": "toolu_b", "name": "get_time", "arguments": '{"tz":"CET"}'}}
    assert result["finish"] == ["tool_calls"]


@pytest.mark.parametrize("reason,expected", [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
                                             ("tool_use", "tool_calls"), ("refusal", "content_filter")])
def test_decoder_stop_reasons(reason, expected):
    events = message_events([{"type": "text", "text": "x"}], model=MODEL, stop_reason=reason)
    decoder = AnthropicStreamDecoder("anthropic", MODEL)
    result = assemble(decoder.feed(_bytes(events)))
    assert result["finish"] == [expected] and decoder.done


@pytest.mark.parametrize("etype,cls", [("overloaded_error", ServiceUnavailableError), ("api_error", InternalServerError),
                                       ("rate_limit_error", RateLimitError), ("invalid_request_error", BadRequestError)])
def test_decoder_error_event_raises_typed(etype, cls):
    data = b"".join(event_frame(e) for e in stream_error_events(etype, "boom"))
    decoder = AnthropicStreamDecoder("anthropic", MODEL)
    # chunks before the error event come out first; the error is parked for the transport
    chunks = decoder.feed(data)
    assert chunks and type(decoder.error) is cls and "boom" in decoder.error.message


def test_decoder_without_message_stop_is_not_done():
    events = message_events([{"type": "text", "text": "Hi"}], model=MODEL)[:4]
    decoder = AnthropicStreamDecoder("anthropic", MODEL)
    chunks = decoder.feed(_bytes(events)) + decoder.close()
    assert not decoder.done
    with pytest.raises(APIConnectionError):
        assemble(chunks, complete=False)


# ============================================================================ end to end
@pytest.fixture
def server():
    with FakeAnthropicServer(api_key=KEY) as srv:
        yield srv


def kw(server, **extra):
    return {"api_base": server.url, "api_key": KEY, **extra}


def test_e2e_sync_text(server):
    resp = llmrelay.completion("anthropic/" + MODEL, [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}],
                               **kw(server))
    assert resp.choices[0].message.content == DEFAULT_TEXT
    assert resp.choices[0].finish_reason == "stop" and resp.model == MODEL
    assert resp.usage.completion_tokens > 0 and resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp._hidden_params["custom_llm_provider"] == "anthropic"
    assert resp._hidden_params["api_base"] == server.url + "/v1/messages"
    assert server.last_json["system"] == "S"


def test_e2e_sync_stream_with_usage(server):
    stream = llmrelay.completion("anthropic/" + MODEL, [{"role": "user", "content": "Hi"}], stream=True,
                                 stream_options={"include_usage": True}, **kw(server))
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_TEXT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


async def test_e2e_async_stream_tools(server):
    stream = await llmrelay.acompletion("anthropic/" + MODEL, [{"role": "user", "content": "Weather?"}], stream=True,
                                        tools=TOOLS, **kw(server))
    chunks = [c async for c in stream]
    built = llmrelay.stream_chunk_builder(chunks)
    call = built.choices[0].message.tool_calls[0]
    assert call.id == "toolu_fake0001" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris, France", "unit": "celsius"}
    assert built.choices[0].finish_reason == "tool_calls"


async def test_e2e_async_nonstream_reasoning_and_tool_round_trip(server):
    resp = await llmrelay.acompletion("anthropic/" + MODEL, [{"role": "user", "content": "Weather?"}],
                                      reasoning_effort="low", tools=TOOLS, **kw(server))
    message = resp.choices[0].message
    assert message.reasoning_content == DEFAULT_THINKING
    assert message.thinking_blocks == [{"type": "thinking", "thinking": DEFAULT_THINKING, "signature": SIGNATURE}]
    assert resp.choices[0].finish_reason == "tool_calls"
    history = [{"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "image_url", "image_url": {"url": PNG}}]},
               message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "18C"}]
    resp2 = await llmrelay.acompletion("anthropic/" + MODEL, history, **kw(server))  # the fake validates the history
    assert resp2.choices[0].message.content == DEFAULT_TEXT
    sent = server.last_json["messages"]
    assert sent[1]["content"][0]["type"] == "thinking" and sent[2]["content"][0]["type"] == "tool_result"


def test_e2e_json_mode(server):
    resp = llmrelay.completion("anthropic/" + MODEL, [{"role": "user", "content": "Hi"}],
                               response_format={"type": "json_object"}, **kw(server))
    assert json.loads(resp.choices[0].message.content) == {"answer": DEFAULT_TEXT}
    assert resp.choices[0].finish_reason == "stop" and not resp.choices[0].message.tool_calls
    stream = llmrelay.completion("anthropic/" + MODEL, [{"role": "user", "content": "Hi"}], stream=True,
                                 response_format={"type": "json_object"}, **kw(server))
    built = llmrelay.stream_chunk_builder(list(stream))
    assert json.loads(built.choices[0].message.content) == {"answer": DEFAULT_TEXT}
    assert built.choices[0].finish_reason == "stop"
    resp = llmrelay.completion("anthropic/" + MODEL, [{"role": "user", "content": "Hi"}], reasoning_effort="low",
                               response_format={"type": "json_object"}, **kw(server))  # the fake refuses a forced tool
    assert json.loads(resp.choices[0].message.content) == {"answer": DEFAULT_TEXT}
    assert resp.choices[0].message.reasoning_content == DEFAULT_THINKING and resp.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("status,etype,message,cls", [
    (400, "invalid_request_error", "messages: field required", BadRequestError),
    (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", ContextWindowExceededError),
    (400, "invalid_request_error", "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000",
     ContextWindowExceededError),
    (400, "invalid_request_error", "messages.0.content.0.text: String too long to be a tool name", BadRequestError),
    (401, "authentication_error", "invalid x-api-key", AuthenticationError),
    (403, "permission_error", "no access", PermissionDeniedError),
    (404, "not_found_error", "model: claude-x", NotFoundError),
    (413, "request_too_large", "Request exceeds the maximum allowed number of bytes", BadRequestError),
    (429, "rate_limit_error", "slow down", RateLimitError),
    (500, "api_error", "Internal server error", InternalServerError),
    (529, "overloaded_error", "Overloaded", ServiceUnavailableError),
])
def test_e2e_http_errors(server, status, etype, message, cls):
    server.enqueue(anthropic_error_reply(status, message, type=etype, retry_after=7 if status == 429 else None))
    with pytest.raises(cls) as info:
        llmrelay.completion("anthropic/" + MODEL, [{"role": "user", "content": "Hi"}], **kw(server))
    exc = info.value
    assert exc.status_code == status and message in exc.message and exc.llm_provider == "anthropic"
    if status == 429:
        assert exc.retry_after == 7


async def test_e2e_error_inside_stream_sync_and_async(server):
    server.enqueue(anthropic_stream_reply(stream_error_events()), anthropic_stream_reply(stream_error_events()))
    stream = llmrelay.completion("anthropic/" + MODEL, [{"role": "user", "content": "Hi"}], stream=True, **kw(server))
    got = []
    with pytest.raises(ServiceUnavailableError) as info:
        for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "Hello there" and info.value.generated_content == "Hello there"
    stream = await llmrelay.acompletion("anthropic/" + MODEL, [{"role": "user", "content": "Hi"}], stream=True, **kw(server))
    with pytest.raises(ServiceUnavailableError):
        async for _ in stream:
            pass


def test_e2e_dropped_stream_raises(server):
    events = message_events([{"type": "text", "text": "Hello there friend"}], model=MODEL)[:5]
    server.enqueue(anthropic_stream_reply([*events, Drop()]))
    stream = llmrelay.completion("anthropic/" + MODEL, [{"role": "user", "content": "Hi"}], stream=True, **kw(server))
    with pytest.raises(APIConnectionError):
        list(stream)


def test_e2e_retry_after_overloaded(server):
    server.enqueue(anthropic_error_reply(529, "Overloaded", retry_after=0))
    resp = llmrelay.completion("anthropic/" + MODEL, [{"role": "user", "content": "Hi"}], num_retries=1, **kw(server))
    assert resp.choices[0].message.content == DEFAULT_TEXT
    assert len(server.requests) == 2


def test_bare_claude_name_resolves_to_anthropic(server):
    resp = llmrelay.completion(MODEL, [{"role": "user", "content": "Hi"}], **kw(server))
    assert resp.choices[0].message.content == DEFAULT_TEXT


def test_e2e_stream_thinking_signature_round_trip(server):
    stream = llmrelay.completion("anthropic/" + MODEL, [{"role": "user", "content": "Weather?"}], stream=True,
                                 reasoning_effort="low", tools=TOOLS, **kw(server))
    message = llmrelay.stream_chunk_builder(list(stream)).choices[0].message
    assert message.thinking_blocks == [{"type": "thinking", "thinking": DEFAULT_THINKING, "signature": SIGNATURE}]
    history = [{"role": "user", "content": "Weather?"}, message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "18C"}]
    llmrelay.completion("anthropic/" + MODEL, history, reasoning_effort="low", **kw(server))
    sent = server.last_json["messages"][1]["content"]
    assert sent[0] == {"type": "thinking", "thinking": DEFAULT_THINKING, "signature": SIGNATURE}
    assert sent[1]["type"] == "tool_use"
