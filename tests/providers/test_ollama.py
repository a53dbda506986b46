"""Ollama native provider: translation and NDJSON decoding (sans-I/O) plus wire-level e2e."""

from __future__ import annotations

import json

import pytest

import llmrelay
from llmrelay.exceptions import APIConnectionError, APIError, BadRequestError, InternalServerError, NotFoundError
from llmrelay.providers.base import Call
from llmrelay.providers.ollama import OllamaProvider, OllamaStreamDecoder
from llmrelay.streaming import StreamState
from providers.helpers import feed_split
from servers._answers import THINKING, Answer
from servers.ollama_server import (
    FakeOllamaServer,
    dropped_ollama_stream,
    in_stream_error_reply,
    ollama_stream_lines,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


def _call(**params) -> Call:
    stream = params.pop("stream", False)
    messages = params.pop("messages", [{"role": "user", "content": "Hi"}])
    extra = params.pop("extra", {})
    return Call("ollama_chat", "llama3.2", messages, params, stream=stream, extra=extra, user_model="llama3.2")


# ------------------------------------------------------------------- request translation
def test_request_body_maps_options_tools_images_and_history():
    provider = OllamaProvider("ollama_chat")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    call = _call(
        messages=messages, temperature=0.2, top_p=0.9, max_tokens=50, stop="END", seed=7,
        tools=[WEATHER_TOOL], response_format={"type": "json_object"}, reasoning_effort="high",
        extra={"keep_alive": "5m", "top_k": 40, "num_ctx": 4096},
    )
    request = provider.build_request(call)
    assert request.url == "http://localhost:11434/api/chat"
    body = json.loads(request.body)
    assert body["stream"] is False
    assert body["options"] == {
        "temperature": 0.2, "top_p": 0.9, "num_predict": 50, "stop": ["END"], "seed": 7,
        "top_k": 40, "num_ctx": 4096,
    }
    assert body["format"] == "json" and body["keep_alive"] == "5m" and body["think"] == "high"
    assert body["tools"] == [WEATHER_TOOL]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is this?", "images": ["iVBORw0KGgo="]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"location": "Paris"}}}]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]


def test_api_base_env_and_key(monkeypatch):
    monkeypatch.setenv("OLLAMA_API_BASE", "http://gpu-box:11434/")
    monkeypatch.setenv("OLLAMA_API_KEY", "k1")
    request = OllamaProvider("ollama").build_request(_call())
    assert request.url == "http://gpu-box:11434/api/chat"
    assert request.headers["Authorization"] == "Bearer k1"


def test_image_urls_are_refused_before_any_request():
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(BadRequestError, match="base64"):
        OllamaProvider().build_request(_call(messages=[{"role": "user", "content": content}]))


def test_forced_tool_choice_is_refused_unless_dropped():
    with pytest.raises(BadRequestError, match="tool_choice"):
        OllamaProvider().build_request(_call(tools=[WEATHER_TOOL], tool_choice="required"))


def test_json_schema_format():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    call = _call(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert json.loads(OllamaProvider().build_request(call).body)["format"] == schema


# ------------------------------------------------------------------- stream decoding
def _stream_bytes(ans: Answer, ids: bool = False) -> bytes:
    return b"".join(ollama_stream_lines(ans, ids=ids))


@pytest.mark.parametrize("ids", [False, True])
def test_tool_calls_become_tool_call_deltas_at_every_split(ids):
    data = _stream_bytes(Answer(tool_calls=[("get_weather", {"location": "Paris"}), ("get_time", {})]), ids)
    reference = None
    for split in range(len(data) + 1):
        chunks = feed_split(OllamaStreamDecoder("ollama", "m"), data, split)
        calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
        assert [(tc["index"], tc["function"]["name"], json.loads(tc["function"]["arguments"])) for tc in calls] == [
            (0, "get_weather", {"location": "Paris"}), (1, "get_time", {})]
        assert all(tc["id"].startswith("call_") and tc["type"] == "function" for tc in calls)
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
        assert chunks[-1]["usage"]["prompt_tokens"] == 26
        shape = [sorted(c["choices"][0]["delta"]) for c in chunks]
        assert reference is None or shape == reference
        reference = shape


def test_text_thinking_and_usage_through_stream_state():
    data = _stream_bytes(Answer(text="Hello there friend", thinking=THINKING))
    decoder = OllamaStreamDecoder("ollama", "m")
    state = StreamState("m", "ollama", include_usage=True)
    out = [state.process(c) for c in feed_split(decoder, data, 37)]
    out = [c for c in out if c is not None] + state.finish(decoder.done)
    assert "".join(c.choices[0].delta.content or "" for c in out if c.choices) == "Hello there friend"
    assert "".join(c.choices[0].delta.reasoning_content or "" for c in out if c.choices) == THINKING
    assert out[-2].choices[0].finish_reason == "stop"
    assert out[-1].usage.prompt_tokens == 26 and out[-1].usage.completion_tokens > 0


def test_length_done_reason():
    data = _stream_bytes(Answer(text="a b", truncated=True))
    assert feed_split(OllamaStreamDecoder("ollama", "m"), data)[-1]["choices"][0]["finish_reason"] == "length"


def test_error_line_raises_typed_error():
    lines = ollama_stream_lines(Answer(text="a b c"))[:1] + [b'{"error":"model \\"x\\" not found"}\n']
    decoder = OllamaStreamDecoder("ollama", "m")
    with pytest.raises(NotFoundError):
        feed_split(decoder, b"".join(lines))
    with pytest.raises(InternalServerError, match="out of memory"):
        OllamaStreamDecoder("ollama", "m").feed(b'{"error":"out of memory"}\n')


def test_bad_line_is_a_codec_error_naming_the_line():
    from llmrelay.codecs.errors import CodecError

    with pytest.raises(CodecError, match="line 2"):
        feed_split(OllamaStreamDecoder("ollama", "m"), b'{"message":{"content":"a"},"done":false}\n{oops\n')


# ------------------------------------------------------------------- end to end
@pytest.fixture
def ollama():
    with FakeOllamaServer() as srv:
        yield srv


def test_non_stream_tool_call_e2e(ollama):
    response = llmrelay.completion(
        "ollama/llama3.2", [{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL], api_base=ollama.url
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"location": "Paris, France", "unit": "celsius"}
    assert choice.message.tool_calls[0].id.startswith("call_")
    assert ollama.last_json["stream"] is False


def test_model_not_found_is_not_found_error(ollama):
    with pytest.raises(NotFoundError, match="try pulling it first"):
        llmrelay.completion("ollama_chat/nope", [{"role": "user", "content": "Hi"}], api_base=ollama.url)


def test_in_stream_error_raises_from_iteration(ollama):
    ollama.enqueue(in_stream_error_reply("CUDA error: out of memory"))
    stream = llmrelay.completion("ollama_chat/llama3.2", [{"role": "user", "content": "Hi"}], stream=True, api_base=ollama.url)
    with pytest.raises(APIError, match="out of memory") as info:
        for _ in stream:
            pass
    assert info.value.generated_content


async def test_dropped_stream_is_a_connection_error_async(ollama):
    ollama.enqueue(dropped_ollama_stream(2))
    stream = await llmrelay.acompletion(
        "ollama_chat/llama3.2", [{"role": "user", "content": "Hi"}], stream=True, api_base=ollama.url
    )
    with pytest.raises(APIConnectionError):
        async for _ in stream:
            pass
