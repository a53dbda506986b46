"""Objects behave like the openai SDK's (and so LiteLLM's): dumps keep OpenAI's keys, dict access
reads absent keys as None, exclude_none / exclude_unset are honoured.

The reference is the official ``openai`` package itself: each of our objects is serialised the
way the gateway sends it, parsed by openai's pydantic models, and both dumps must agree.
"""

from __future__ import annotations

import json

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import llmrelay
from e2e.conftest import kwargs_for
from servers.openai_server import ChunkFactory, completion_reply, stream_reply, tool_call_stream

DUMP_OPTIONS = [{}, {"exclude_none": True}, {"exclude_unset": True}, {"exclude_unset": True, "exclude_none": True}]


def _openai_twin(obj, cls):
    """openai's object for the bytes we would send (``exclude_unset`` = the wire shape)."""
    return cls.model_validate_json(obj.model_dump_json(exclude_unset=True))


def _assert_same_dumps(obj, cls):
    twin = _openai_twin(obj, cls)
    for options in DUMP_OPTIONS:
        assert obj.model_dump(**options) == twin.model_dump(**options), options
        assert json.loads(obj.model_dump_json(**options)) == json.loads(twin.model_dump_json(**options)), options
    assert obj.dict() == twin.model_dump()
    assert obj.json() == twin.model_dump()  # LiteLLM's .json() returns the dict


def test_streamed_chunks_dump_like_openai_chunks(server):
    server.enqueue(tool_call_stream([("get_weather", {"location": "Paris"}), ("get_time", {"tz": "CET"})],
                                    include_usage=True))
    chunks = list(llmrelay.completion(**kwargs_for(server), stream=True, stream_options={"include_usage": True}))
    assert len(chunks) > 5
    for chunk in chunks:
        _assert_same_dumps(chunk, ChatCompletionChunk)


def test_text_stream_and_response_dump_like_openai(server):
    server.enqueue(completion_reply("Hello there"))
    response = llmrelay.completion(**kwargs_for(server))
    _assert_same_dumps(response, ChatCompletion)
    dumped = response.model_dump()
    assert dumped["choices"][0]["message"]["tool_calls"] is None and dumped["metadata"] is None
    assert "tool_calls" not in response.model_dump(exclude_none=True)["choices"][0]["message"]
    mock = llmrelay.completion(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], mock_response="a b c",
                               stream=True)
    for chunk in mock:
        _assert_same_dumps(chunk, ChatCompletionChunk)
        assert chunk.model_dump()["choices"][0]["delta"]["function_call"] is None


def test_tool_call_continuation_reads_like_langchain_litellm_expects(server):
    """langchain-litellm dumps each chunk and reads ``rtc["function"]["name"]`` / ``rtc["id"]``."""
    server.enqueue(tool_call_stream([("get_weather", {"location": "Paris, France"})]))
    stream = llmrelay.completion(**kwargs_for(server), stream=True)
    names, ids, arguments = [], [], []
    for chunk in stream:
        as_dict = chunk.model_dump()
        for rtc in as_dict["choices"][0]["delta"]["tool_calls"] or []:
            names.append(rtc["function"]["name"])
            ids.append(rtc["id"])
            arguments.append(rtc["function"]["arguments"])
        for rtc in chunk.choices[0].delta.tool_calls or []:  # and on the objects themselves
            assert rtc["function"]["name"] == rtc.function.name and rtc["id"] == rtc.id and rtc["type"] == rtc.type
    assert names[0] == "get_weather" and set(names[1:]) == {None}
    assert ids[0] and set(ids[1:]) == {None}
    assert json.loads("".join(arguments)) == {"location": "Paris, France"}


def test_dict_access_and_iteration():
    chunk = llmrelay.ModelResponse(id="c", choices=[{"index": 0, "delta": {"content": "x"}}], stream=True)
    delta = chunk["choices"][0]["delta"]
    assert delta["role"] is None and delta["tool_calls"] is None and delta["content"] == "x"
    assert "role" in delta and "function_call" in delta and "nope" not in delta
    assert set(dict(delta)) == {"audio", "content", "function_call", "refusal", "role", "tool_calls"}
    assert set(delta.keys()) == set(dict(delta)) and list(delta.values()).count(None) == 5
    assert dict(chunk)["usage"] is None and chunk.get("usage", 5) == 5
    with pytest.raises(KeyError):
        delta["not_a_field"]
    message = llmrelay.Message(content="hi")
    assert message["tool_calls"] is None and message["role"] == "assistant"
    call = llmrelay.ChatCompletionDeltaToolCall(index=0, function={"arguments": "{"})
    assert call["id"] is None and call["function"]["name"] is None and call["function"]["arguments"] == "{"


def test_include_exclude_and_extra_fields_kept():
    chunk = llmrelay.ModelResponse(id="c", choices=[{"index": 0, "delta": {"content": "x", "reasoning_content": "r"}}],
                                   stream=True)
    delta = chunk.choices[0].delta
    assert delta.model_dump()["reasoning_content"] == "r"  # extra fields kept, as openai keeps them
    assert delta.model_dump(include={"content"}) == {"content": "x"}
    assert "content" not in delta.model_dump(exclude={"content"})
    assert json.loads(chunk.model_dump_json(indent=2)) == chunk.model_dump()
    assert chunk == chunk.model_dump() and chunk == chunk.model_dump(exclude_unset=True)


def test_usage_details_dump_like_openai():
    usage = llmrelay.Usage(prompt_tokens=3, completion_tokens=2, prompt_tokens_details={"cached_tokens": 1},
                           completion_tokens_details={"reasoning_tokens": 1})
    from openai.types import CompletionUsage

    twin = CompletionUsage.model_validate_json(usage.model_dump_json(exclude_unset=True))
    for options in DUMP_OPTIONS:
        assert usage.model_dump(**options) == twin.model_dump(**options)


def test_typed_parts_content_non_streamed(server):
    """Mistral Magistral answers with thinking/text parts: reasoning_content plus string content."""
    body = {"id": "x", "object": "chat.completion", "created": 1, "model": "magistral-medium-latest",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": [
                {"type": "thinking", "thinking": [{"type": "text", "text": "Let me "}, {"type": "text", "text": "think."}]},
                {"type": "text", "text": "The answer "}, {"type": "text", "text": "is 4."}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}
    from servers.loopback import Reply

    server.enqueue(Reply.json(body))
    response = llmrelay.completion(**kwargs_for(server, model="openai/magistral-medium-latest"))
    message = response.choices[0].message
    assert message.content == "The answer is 4." and message.reasoning_content == "Let me think."


@pytest.mark.parametrize("mode_", ["sync", "async"])
def test_typed_parts_content_streamed(server, mode_):
    f = ChunkFactory(model="magistral-medium-latest")
    events = [
        f.delta({"role": "assistant", "content": ""}),
        f.delta({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Hmm, "}]}]}),
        f.delta({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "two plus two."}]}]}),
        f.delta({"content": [{"type": "text", "text": "It is "}]}),
        f.delta({"content": "4."}),
        f.delta({"content": [{"type": "reference", "reference_ids": [1]}]}),
        f.delta({}, finish_reason="stop"),
        "[DONE]",
    ]
    server.enqueue(stream_reply(events))
    kw = kwargs_for(server, model="openai/magistral-medium-latest")
    if mode_ == "sync":
        chunks = list(llmrelay.completion(**kw, stream=True))
    else:
        import asyncio

        async def run():
            return [c async for c in await llmrelay.acompletion(**kw, stream=True)]

        chunks = asyncio.run(run())
    assert all(isinstance(c.choices[0].delta.content, (str, type(None))) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    reasoning = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks)
    assert text == "It is 4." and reasoning == "Hmm, two plus two."
    built = llmrelay.stream_chunk_builder(chunks)
    assert built.choices[0].message.content == "It is 4."
    assert built.choices[0].message.reasoning_content == "Hmm, two plus two."
