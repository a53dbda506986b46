"""The pure translators, fed chat chunks directly (no I/O): event order and bookkeeping."""

from __future__ import annotations

import json

from llmrelay.exceptions import RateLimitError
from llmrelay.proxy.ingress.anthropic import MessagesEncoder, to_chat as messages_to_chat
from llmrelay.translate.responses import ResponseEvents, to_chat
from llmrelay.types import ModelResponse


def _chunk(delta=None, finish=None, usage=None, choices=True):
    fields = {"id": "chatcmpl-x", "created": 1, "model": "m"}
    fields["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    if usage:
        fields["usage"] = usage
    return ModelResponse(stream=True, **fields)


TEXT_THEN_CALLS = [
    _chunk({"role": "assistant", "reasoning_content": "hmm"}),
    _chunk({"content": "Let me check."}),
    _chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "a", "arguments": '{"x"'}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
    _chunk({"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "b", "arguments": "{}"}}]}, "tool_calls"),
    _chunk(usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}, choices=False),
]


def test_responses_events_reasoning_text_and_two_calls():
    call = to_chat({"input": "hi"}, "m")
    events = ResponseEvents(call, "m")
    out = events.start()
    for chunk in TEXT_THEN_CALLS:
        out += events.chunk(chunk)
    out += events.end()
    kinds = [e["type"] for e in out]
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    added = [e["item"]["type"] for e in out if e["type"] == "response.output_item.added"]
    done = [e["item"]["type"] for e in out if e["type"] == "response.output_item.done"]
    assert added == done == ["reasoning", "message", "function_call", "function_call"]
    # every item is closed before the next one opens
    opened = 0
    for kind in kinds:
        if kind == "response.output_item.added":
            assert opened == 0
            opened += 1
        elif kind == "response.output_item.done":
            opened -= 1
    final = out[-1]["response"]
    assert kinds[-1] == "response.completed" and final["usage"]["total_tokens"] == 7
    assert [o["type"] for o in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert json.loads(final["output"][2]["arguments"]) == {"x": 1}


def test_responses_error_events_end_the_stream():
    events = ResponseEvents(to_chat({"input": "hi"}, "m"), "m")
    events.start()
    events.chunk(_chunk({"content": "Hel"}))
    out = events.error("rate_limit_error", "slow down")
    assert [e["type"] for e in out] == ["error", "response.failed"]
    assert out[1]["response"]["status"] == "failed" and events.end() == []


def test_messages_encoder_blocks_and_error():
    enc = MessagesEncoder("m")
    body = b"".join(enc.chunk(c) for c in TEXT_THEN_CALLS) + enc.end()
    events = [json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")]
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use", "tool_use"]
    assert [e["index"] for e in events if e["type"] == "content_block_start"] == [0, 1, 2, 3]
    assert events[-2]["delta"]["stop_reason"] == "tool_use" and events[-2]["usage"]["output_tokens"] == 4
    failing = MessagesEncoder("m")
    failing.chunk(_chunk({"content": "x"}))
    tail = failing.error(RateLimitError("slow down", llm_provider="openai", model="m"), lambda s: s)
    assert b"event: error" in tail and b"rate_limit_error" in tail and failing.end() == b""


def test_messages_request_tool_results_come_first():
    messages, params = messages_to_chat({
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "and also"},
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "42"}]},
        ]}],
        "stop_sequences": ["END"], "metadata": {"user_id": "u1"},
    })
    assert messages == [{"role": "tool", "tool_call_id": "t1", "content": "42"},
                        {"role": "user", "content": "and also"}]
    assert params == {"max_tokens": 5, "stop": ["END"]}


def test_messages_server_tools_are_left_out():
    _, params = messages_to_chat({
        "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"},
                  {"name": "Bash", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "auto"},
    })
    assert [t["function"]["name"] for t in params["tools"]] == ["Bash"] and params["tool_choice"] == "auto"
    _, params = messages_to_chat({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                                  "tools": [{"type": "web_search_20250305", "name": "web_search"}],
                                  "tool_choice": {"type": "any"}})
    assert "tools" not in params and "tool_choice" not in params
