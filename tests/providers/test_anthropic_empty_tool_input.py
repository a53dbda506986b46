"""Anthropic streams a tool_use with empty input as no (or an empty) ``input_json_delta``: the
call's arguments must be ``"{}"`` (what the non-streamed answer gives), never ``""`` — sync,
async, and through ``stream_chunk_builder`` (recorded from real traffic)."""

from __future__ import annotations

import asyncio
import json

import pytest

import llmrelay
from llmrelay.providers.anthropic import AnthropicStreamDecoder
from providers.helpers import assemble, decode_every_split
from servers.anthropic_server import FakeAnthropicServer, anthropic_stream_reply, event_frame, message_dict, message_events

MODEL = "claude-sonnet-4-5"
KEY = "sk-ant-test"
CONTENT = [{"type": "text", "text": "Checking."},
           {"type": "tool_use", "id": "toolu_empty", "name": "get_time", "input": {}},
           {"type": "tool_use", "id": "toolu_full", "name": "get_weather", "input": {"city": "Paris"}}]


def _events(with_empty_delta: bool) -> list[dict]:
    events = message_events(CONTENT, model=MODEL, stop_reason="tool_use")
    if not with_empty_delta:  # the empty call streams no input_json_delta at all
        events = [e for e in events if not (e["type"] == "content_block_delta" and e.get("index") == 1)]
    else:  # ... or only an empty one
        events = [e for e in events if not (e["type"] == "content_block_delta" and e.get("index") == 1
                                            and e["delta"]["partial_json"])]
        assert [e for e in events if e["type"] == "content_block_delta" and e.get("index") == 1]
    return events


@pytest.mark.parametrize("with_empty_delta", [False, True])
def test_decoder_gives_empty_object_arguments(with_empty_delta):
    data = b"".join(event_frame(e) for e in _events(with_empty_delta))
    result = assemble(decode_every_split(lambda: AnthropicStreamDecoder("anthropic", MODEL), data))
    assert result["tools"][0] == {"id": "toolu_empty", "name": "get_time", "arguments": "{}"}
    assert json.loads(result["tools"][1]["arguments"]) == {"city": "Paris"}


@pytest.fixture
def server():
    with FakeAnthropicServer(api_key=KEY) as srv:
        yield srv


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("with_empty_delta", [False, True])
def test_streamed_and_built(server, mode, with_empty_delta):
    server.enqueue(anthropic_stream_reply(_events(with_empty_delta)))
    kw = {"api_base": server.url, "api_key": KEY, "stream": True}
    messages = [{"role": "user", "content": "What time is it?"}]
    if mode == "sync":
        chunks = list(llmrelay.completion("anthropic/" + MODEL, messages, **kw))
    else:
        async def run():
            return [c async for c in await llmrelay.acompletion("anthropic/" + MODEL, messages, **kw)]

        chunks = asyncio.run(run())
    args: dict[int, str] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args[call.index] = args.get(call.index, "") + (call.function.arguments or "")
    assert args[0] == "{}"
    built = llmrelay.stream_chunk_builder(chunks, messages=messages)
    calls = built.choices[0].message.tool_calls
    assert [c.function.arguments for c in calls][0] == "{}"
    assert json.loads(calls[1].function.arguments) == {"city": "Paris"}


def test_non_streamed_matches(server):
    from servers.loopback import Reply

    server.enqueue(Reply.json(message_dict(CONTENT, model=MODEL, stop_reason="tool_use")))
    response = llmrelay.completion("anthropic/" + MODEL, [{"role": "user", "content": "x"}], api_base=server.url,
                                   api_key=KEY)
    assert response.choices[0].message.tool_calls[0].function.arguments == "{}"


def test_builder_fills_empty_arguments_from_any_source():
    """Chunks recorded elsewhere (e.g. LiteLLM's) with a named call and no argument text."""
    chunks = [{"id": "a", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
                  {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_time", "arguments": ""}}]}}]},
              {"id": "a", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]
    built = llmrelay.stream_chunk_builder(chunks)
    assert built.choices[0].message.tool_calls[0].function.arguments == "{}"
