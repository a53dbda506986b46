"""The stream state machine, fed chunk dicts directly (no I/O)."""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay.streaming import CustomStreamWrapper, StreamState, normalize_finish_reason


def chunk(content=None, index=0, finish=None, **delta):
    if content is not None:
        delta["content"] = content
    return {"id": "up-1", "created": 5, "model": "upstream-model",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def run(chunks, **kw):
    return list(CustomStreamWrapper(chunks, model="m", custom_llm_provider="test", **kw))


def test_role_only_on_first_and_finish_held_to_end():
    out = run([chunk(role="assistant", content=""), chunk("a"), chunk("b", finish="stop"), chunk("c")])
    assert [c.choices[0].delta.role for c in out] == ["assistant", None, None, None, None]
    assert [c.choices[0].delta.content for c in out] == ["", "a", "b", "c", None]
    assert [c.choices[0].finish_reason for c in out] == [None, None, None, None, "stop"]
    assert {c.model for c in out} == {"m"} and {c.id for c in out} == {"up-1"}


def test_empty_chunks_dropped_and_duplicate_finishes_ignored():
    out = run([chunk("a"), chunk(""), chunk(finish="length"), chunk(finish="stop"), {"choices": []}])
    assert [c.choices[0].delta.content for c in out] == ["a", None]
    assert out[-1].choices[0].finish_reason == "length"


def test_id_generated_when_upstream_has_none():
    out = run([{"choices": [{"index": 0, "delta": {"content": "x"}}]}])
    assert out[0].id.startswith("chatcmpl-") and out[0].id == out[-1].id


def test_tool_call_indices_filled_and_type_added():
    out = run([
        {"choices": [{"delta": {"tool_calls": [{"id": "call_1", "function": {"name": "f", "arguments": ""}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": '{"a"'}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": ": 1}"}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"id": "call_2", "function": {"name": "g", "arguments": "{}"}}]}}]},
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
    ])
    calls = [tc for c in out for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.index for tc in calls] == [0, 0, 0, 1]
    assert calls[0].type == "function" and calls[3].type == "function"
    built = llmrelay.stream_chunk_builder(out)
    tcs = built.choices[0].message.tool_calls
    assert [(t.id, t.function.name, t.function.arguments) for t in tcs] == [
        ("call_1", "f", '{"a": 1}'), ("call_2", "g", "{}")]


def test_finish_defaults_to_tool_calls_when_tools_streamed():
    out = run([{"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}}]}])
    assert out[-1].choices[0].finish_reason == "tool_calls"


def test_reasoning_alias():
    out = run([chunk(reasoning="think"), chunk("answer", finish="stop")])
    assert out[0].choices[0].delta.reasoning_content == "think"


@pytest.mark.parametrize("raw,expected", [("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
                                          ("SAFETY", "content_filter"), ("weird", "stop"), ("length", "length")])
def test_finish_reason_normalised(raw, expected):
    assert normalize_finish_reason(raw) == expected


def test_n_choices_each_get_role_and_one_finish():
    out = run([chunk("a", 0), chunk("b", 1), chunk("c", 0, finish="stop"), chunk("d", 1, finish="length")])
    first = {}
    for c in out:
        for ch in c.choices:
            first.setdefault(ch.index, ch)
    assert first[0].delta.role == first[1].delta.role == "assistant"
    finishes = [(ch.index, ch.finish_reason) for c in out for ch in c.choices if ch.finish_reason]
    assert finishes == [(0, "stop"), (1, "length")]


def test_usage_chunk_and_stream_usage():
    chunks = [chunk("hello"), chunk(finish="stop"),
              {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}]
    stream = CustomStreamWrapper(chunks, model="m", stream_options={"include_usage": True})
    out = list(stream)
    assert out[-1].choices == [] and out[-1].usage.total_tokens == 4
    assert stream.usage.prompt_tokens == 3


def test_repeat_guard_runtime_change(monkeypatch):
    monkeypatch.setattr(llmrelay, "REPEATED_STREAMING_CHUNK_LIMIT", 3)
    stream = CustomStreamWrapper([chunk("xy ")] * 4, model="m")
    with pytest.raises(llmrelay.InternalServerError) as info:
        list(stream)
    assert info.value.generated_content == "xy xy xy "
    assert list(stream) == []  # raised once, then the stream is over
    monkeypatch.setattr(llmrelay, "REPEATED_STREAMING_CHUNK_LIMIT", 4)
    assert len(list(CustomStreamWrapper([chunk("xy ")] * 4, model="m"))) == 5


def test_repeat_guard_counts_only_consecutive():
    import llmrelay.settings as s

    limit = s.get("REPEATED_STREAMING_CHUNK_LIMIT")
    chunks = ([chunk("xxx")] * limit + [chunk("yyy")]) * 3
    assert len(list(CustomStreamWrapper(chunks, model="m"))) == len(chunks) + 1


def test_repeat_guard_env_default(monkeypatch):
    import subprocess
    import sys

    code = "import llmrelay; print(llmrelay.REPEATED_STREAMING_CHUNK_LIMIT)"
    out = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "REPEATED_STREAMING_CHUNK_LIMIT": "7"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "7"


def test_async_iteration_over_list_iterator():
    import asyncio

    async def main():
        it = llmrelay.ModelResponseListIterator(model_responses=[chunk("a"), chunk("b", finish="stop")])
        return [c async for c in CustomStreamWrapper(it, model="m")]

    out = asyncio.run(main())
    assert [c.choices[0].delta.content for c in out] == ["a", "b", None]


def test_state_does_no_io_and_is_reusable_directly():
    state = StreamState("m", "p")
    assert state.process(chunk("hi")).choices[0].delta.content == "hi"
    closing = state.finish(complete=True)
    assert closing[0].choices[0].finish_reason == "stop"


def test_unfinished_incomplete_stream_raises():
    state = StreamState("m", "p")
    state.process(chunk("hi"))
    with pytest.raises(llmrelay.APIConnectionError) as info:
        state.finish(complete=False)
    assert info.value.generated_content == "hi"


def test_counted_usage_covers_every_choice_and_kind_of_output():
    """Without upstream usage the completion is counted from all that was generated: text
    (one choice alone, or several), reasoning and tool calls; and it is priced from the counts."""
    from llmrelay.streaming import StreamHiddenParams
    from llmrelay.tokens import counted_usage

    messages = [{"role": "user", "content": "Hi there"}]

    def ended(*chunks: dict) -> StreamState:
        state = StreamState("gpt-4o-mini", "openai", messages=messages)
        for c in chunks:
            state.process({"id": "c", "created": 1, "model": "gpt-4o-mini", "choices": c})
        state.finish(True)
        return state

    def delta(index: int = 0, **d) -> list:
        return [{"index": index, "delta": d, "finish_reason": None}]

    plain = ended(delta(role="assistant", content=""), delta(content="Hello"), delta(content=" world"))
    assert plain.usage().completion_tokens == counted_usage("gpt-4o-mini", messages, "Hello world").completion_tokens
    mixed = ended(delta(role="assistant", content=""), delta(reasoning_content="think"), delta(content="Hi"),
                  delta(tool_calls=[{"index": 0, "id": "t", "function": {"name": "f", "arguments": "{}"}}]),
                  delta(1, content="two"))
    expected = counted_usage("gpt-4o-mini", messages, "Hithinkf{}two")
    assert mixed.usage().completion_tokens == expected.completion_tokens
    assert mixed.usage() is mixed.usage()  # counted once
    hidden = StreamHiddenParams({"custom_llm_provider": "openai"}, mixed)
    from llmrelay.cost import response_cost

    assert hidden["response_cost"] == response_cost("gpt-4o-mini", "openai", expected, None)
