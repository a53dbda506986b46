"""The streaming contract (docs/streaming.md), sync and async, against a real SSE server."""

from __future__ import annotations

import json

import pytest

import llmrelay
from e2e.conftest import kwargs_for, stream_all, stream_until_error, text_of
from servers.openai_server import (
    DEFAULT_TEXT,
    DEFAULT_TOOL_ARGUMENTS,
    ChunkFactory,
    crlf_stream,
    dropped_stream,
    in_band_error_stream,
    malformed_chunk_stream,
    no_done_stream,
    no_finish_stream,
    ping_stream,
    reasoning_stream,
    repeated_chunk_stream,
    stream_reply,
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]


def assert_contract(chunks: list, model: str = "gpt-4o-mini", n: int = 1) -> None:
    """Checks every stream must pass: one id/created/model, role first, finish once and last."""
    assert chunks, "no chunks"
    assert len({c.id for c in chunks}) == 1
    assert len({c.created for c in chunks}) == 1
    assert {c.model for c in chunks} == {model}
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    for index in range(n):
        mine = [(pos, ch) for pos, c in enumerate(chunks) for ch in c.choices if ch.index == index]
        assert mine, f"choice {index} never appeared"
        assert mine[0][1].delta.role == "assistant"
        assert all(ch.delta.role is None for _, ch in mine[1:])
        finishes = [(pos, ch) for pos, ch in mine if ch.finish_reason is not None]
        assert len(finishes) == 1, f"choice {index}: finish_reason {len(finishes)} times"
        assert finishes[0][1] is mine[-1][1], "finish_reason is not on the choice's last chunk"
        assert finishes[0][1].finish_reason in ("stop", "length", "tool_calls", "content_filter")
    last_finish = max(pos for pos, c in enumerate(chunks) for ch in c.choices if ch.finish_reason)
    for c in chunks[last_finish + 1 :]:
        assert c.choices == [] and c.usage is not None, "only the usage chunk may follow the finish"


def test_basic_stream(mode, server):
    stream, chunks = stream_all(mode, **kwargs_for(server))
    assert_contract(chunks)
    assert text_of(chunks) == DEFAULT_TEXT
    assert chunks[0].id == "chatcmpl-fake0000"  # the upstream's id is kept
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert server.last_json["stream"] is True
    assert server.last_json["model"] == "gpt-4o-mini"
    # usage is available on the exhausted stream even without include_usage (counted)
    assert stream.usage.completion_tokens > 0 and stream.usage.prompt_tokens > 0
    assert stream._hidden_params["custom_llm_provider"] == "openai"
    assert stream._hidden_params["api_base"].startswith(server.url)


def test_content_is_not_merged(mode, server):
    _, chunks = stream_all(mode, **kwargs_for(server))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3  # each upstream piece is its own chunk


def test_include_usage(mode, server):
    _, chunks = stream_all(mode, **kwargs_for(server, stream_options={"include_usage": True}))
    assert_contract(chunks)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens
    assert server.last_json["stream_options"] == {"include_usage": True}
    assert sum(1 for c in chunks if c.usage is not None) == 1


def test_include_usage_counted_when_upstream_sends_none(mode, server):
    server.enqueue(stream_reply(
        [ChunkFactory().content("Hi there"), ChunkFactory().finish(), "[DONE]"]
    ))
    _, chunks = stream_all(mode, **kwargs_for(server, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 2
    assert chunks[0].choices[0].delta.role == "assistant"  # added on the first chunk


def test_n_choices(mode, server):
    _, chunks = stream_all(mode, **kwargs_for(server, n=3))
    assert_contract(chunks, n=3)
    for index in range(3):
        assert text_of(chunks, index) == DEFAULT_TEXT


def test_tool_call_stream_and_builder(mode, server):
    messages = [{"role": "user", "content": "weather in Paris?"}]
    _, chunks = stream_all(mode, **kwargs_for(server, messages=messages, tools=TOOLS))
    assert_contract(chunks)
    calls = [tc for c in chunks for ch in c.choices for tc in (ch.delta.tool_calls or [])]
    assert calls[0].id and calls[0].type == "function" and calls[0].function.name == "get_weather"
    assert all(tc.index == 0 for tc in calls)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    built = llmrelay.stream_chunk_builder(chunks, messages=messages)
    call = built.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == DEFAULT_TOOL_ARGUMENTS
    assert built.choices[0].finish_reason == "tool_calls"


def test_reasoning_passes_through(mode, server):
    server.enqueue(reasoning_stream("Think first.", "Answer."))
    _, chunks = stream_all(mode, **kwargs_for(server))
    assert "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices) == "Think first."
    assert text_of(chunks) == "Answer."
    built = llmrelay.stream_chunk_builder(chunks)
    assert built.choices[0].message.reasoning_content == "Think first."


def test_crlf_and_comments(mode, server):
    server.enqueue(crlf_stream())
    _, chunks = stream_all(mode, **kwargs_for(server))
    assert text_of(chunks) == DEFAULT_TEXT
    server.enqueue(ping_stream())
    _, chunks = stream_all(mode, **kwargs_for(server))
    assert text_of(chunks) == DEFAULT_TEXT
    assert_contract(chunks)


def test_missing_finish_reason_becomes_stop(mode, server):
    server.enqueue(no_finish_stream(done=True))
    _, chunks = stream_all(mode, **kwargs_for(server))
    assert_contract(chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_missing_done_with_finish_is_complete(mode, server):
    server.enqueue(no_done_stream())
    _, chunks = stream_all(mode, **kwargs_for(server))
    assert_contract(chunks)
    assert text_of(chunks) == DEFAULT_TEXT


def test_stream_ending_without_finish_or_done_is_an_error(mode, server):
    server.enqueue(no_finish_stream(done=False))
    chunks, error, after = stream_until_error(mode, **kwargs_for(server))
    assert isinstance(error, llmrelay.APIConnectionError)
    assert error.generated_content == DEFAULT_TEXT
    assert after == []


def test_dropped_connection(mode, server):
    server.enqueue(dropped_stream(after_chunks=3))
    chunks, error, after = stream_until_error(mode, **kwargs_for(server))
    assert isinstance(error, llmrelay.APIConnectionError)
    assert error.generated_content == text_of(chunks) and error.generated_content
    assert error.llm_provider == "openai" and error.model == "gpt-4o-mini"
    assert after == []


@pytest.mark.parametrize(
    "etype,code,cls",
    [
        ("server_error", None, llmrelay.InternalServerError),
        ("rate_limit_error", None, llmrelay.RateLimitError),
        ("invalid_request_error", "context_length_exceeded", llmrelay.ContextWindowExceededError),
    ],
)
def test_in_band_error_event(mode, server, etype, code, cls):
    server.enqueue(in_band_error_stream("upstream broke", after_chunks=2, type=etype, code=code))
    chunks, error, after = stream_until_error(mode, **kwargs_for(server))
    assert type(error) is cls
    assert "upstream broke" in error.message
    assert error.generated_content == text_of(chunks)
    assert after == []


def test_malformed_json_chunk(mode, server):
    server.enqueue(malformed_chunk_stream(after_chunks=2))
    chunks, error, _ = stream_until_error(mode, **kwargs_for(server))
    assert type(error) is llmrelay.APIError
    assert "chatcmpl-broken" in error.message  # names the bad bytes
    assert not isinstance(error.__cause__, json.JSONDecodeError)


def test_repeat_guard_over_http(mode, server, monkeypatch):
    monkeypatch.setattr(llmrelay, "REPEATED_STREAMING_CHUNK_LIMIT", 5)
    server.enqueue(repeated_chunk_stream(20, "Hello"))
    chunks, error, after = stream_until_error(mode, **kwargs_for(server))
    assert type(error) is llmrelay.InternalServerError
    assert error.status_code == 500
    assert "'Hello'" in error.message
    assert error.generated_content == "Hello" * 5
    assert after == []


def test_repeat_guard_limit_not_reached(mode, server, monkeypatch):
    monkeypatch.setattr(llmrelay, "REPEATED_STREAMING_CHUNK_LIMIT", 5)
    server.enqueue(repeated_chunk_stream(5, "Hello"))
    _, chunks = stream_all(mode, **kwargs_for(server))
    assert text_of(chunks) == "Hello" * 5


def test_blank_repeats_do_not_trigger(mode, server, monkeypatch):
    monkeypatch.setattr(llmrelay, "REPEATED_STREAMING_CHUNK_LIMIT", 3)
    server.enqueue(repeated_chunk_stream(10, " "))
    _, chunks = stream_all(mode, **kwargs_for(server))
    assert text_of(chunks) == " " * 10


def test_error_event_in_the_same_read_as_content_keeps_order_and_does_not_wait(mode, server):
    """Chunks before an error event arrive first, then the error — even when both come in one
    read and the upstream then keeps the connection open (no waiting for the read timeout)."""
    from servers.loopback import Hang
    from servers.openai_server import error_body

    f = ChunkFactory()
    server.enqueue(stream_reply([f.role(), f.content("one"), f.content(" two"),
                                 error_body("overloaded", "server_error", None, None), Hang()]))
    chunks, error, after = stream_until_error(mode, **kwargs_for(server, timeout=30))
    assert type(error) is llmrelay.InternalServerError
    assert text_of(chunks) == "one two" and error.generated_content == "one two"
    assert after == []
