"""What a success callback reads, value by value: LiteLLM's documented ``standard_logging_object``
keys, ``response_cost``, the datetimes and ``complete_streaming_response``, for a stream and a
non-stream call, sync and async, against a real loopback OpenAI server.

The event is built by fast paths (the streamed response's dump made together with it, the
offline count of a stream without usage, the plain-usage price), so each value is checked
against what it must equal, computed another way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest

import llmrelay
from llmrelay.integrations.dispatch import wait_pending
from llmrelay.tokens import get_encoding, token_counter
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer, reasoning_stream, tool_call_stream, usage_stream

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hey, how's it going?"}]
STANDARD_METADATA = {
    "user_api_key_hash", "user_api_key_alias", "user_api_key_org_id", "user_api_key_team_id",
    "user_api_key_user_id", "user_api_key_user_email", "user_api_key_team_alias", "user_api_key_end_user_id",
    "spend_logs_metadata", "requester_ip_address", "requester_metadata", "prompt_management_metadata",
    "applied_guardrails", "mcp_tool_call_metadata", "vector_store_request_metadata", "usage_object",
    "requester_custom_headers",
}


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def events() -> list[tuple[dict[str, Any], Any, Any, Any]]:
    seen: list[tuple[dict[str, Any], Any, Any, Any]] = []
    llmrelay.success_callback = [lambda kwargs, response, start, end: seen.append((kwargs, response, start, end))]
    return seen


async def _call(server: FakeOpenAIServer, mode: str, stream: bool, **extra: Any) -> Any:
    """One call read to its end; returns what the caller got (the response, or the chunks)."""
    params = {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "api_base": server.url + "/v1",
              "api_key": "sk-test", "timeout": 10, "stream": stream, **extra}
    if mode == "sync":
        result = llmrelay.completion(**params)
        return list(result) if stream else result
    result = await llmrelay.acompletion(**params)
    got = [c async for c in result] if stream else result
    await wait_pending()
    return got


def _price(prompt: int, completion: int) -> float:
    entry = llmrelay.model_cost["gpt-4o-mini"]
    return prompt * entry["input_cost_per_token"] + completion * entry["output_cost_per_token"]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
async def test_standard_logging_object_values(server, events, mode: str, stream: bool):
    got = await _call(server, mode, stream, temperature=0.2, user="u1", metadata={"team": "a", "tags": ["t1"]})
    assert len(events) == 1
    kwargs, response, start, end = events[0]
    slo = kwargs["standard_logging_object"]

    assert slo["id"] == slo["trace_id"] == kwargs["litellm_call_id"] == kwargs["litellm_params"]["litellm_call_id"]
    assert slo["call_type"] == kwargs["call_type"] == ("completion" if mode == "sync" else "acompletion")
    assert slo["stream"] is kwargs["stream"] is stream
    assert slo["model"] == kwargs["model"] == "openai/gpt-4o-mini"
    assert slo["model_group"] is None and slo["model_id"] is None
    assert slo["custom_llm_provider"] == kwargs["custom_llm_provider"] == "openai"
    assert slo["api_base"] == kwargs["api_base"] == server.url + "/v1/chat/completions"
    assert slo["status"] == "success" and slo["error_str"] is None and slo["error_information"] is None
    assert slo["cache_hit"] is False and kwargs["cache_hit"] is False and slo["cache_key"] is None
    assert slo["messages"] == kwargs["messages"] == MESSAGES
    assert slo["model_parameters"] == kwargs["optional_params"] == {"temperature": 0.2, "user": "u1"}
    assert slo["end_user"] == kwargs["user"] == "u1"
    assert slo["request_tags"] == ["t1"]
    assert STANDARD_METADATA <= set(slo["metadata"]) and slo["metadata"]["team"] == "a"
    assert all(slo["metadata"][k] is None for k in STANDARD_METADATA)

    # tokens: the upstream's for a response; a stream without usage is counted offline, as tiktoken counts
    usage = response.usage
    if stream:
        enc = get_encoding("gpt-4o-mini")
        assert usage.completion_tokens == len(enc.encode_ordinary(DEFAULT_TEXT))
        assert usage.prompt_tokens == token_counter(model="gpt-4o-mini", messages=MESSAGES)
        assert "".join(c.choices[0].delta.content or "" for c in got) == DEFAULT_TEXT
    else:
        assert response is got
    assert (slo["prompt_tokens"], slo["completion_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert slo["total_tokens"] == usage.prompt_tokens + usage.completion_tokens > 0

    # the cost, the same everywhere it is reported
    cost = kwargs["response_cost"]
    assert cost == pytest.approx(_price(usage.prompt_tokens, usage.completion_tokens), rel=1e-12) and cost > 0
    assert slo["response_cost"] == response._hidden_params["response_cost"] == cost
    assert slo["hidden_params"] == {"response_cost": cost, "model_id": None, "api_base": server.url + "/v1/chat/completions",
                                    "cache_key": None, "litellm_model_name": "openai/gpt-4o-mini",
                                    "litellm_overhead_time_ms": None, "additional_headers": {}, "batch_models": None,
                                    "usage_object": None}
    assert slo["model_map_information"] == {"model_map_key": "openai/gpt-4o-mini",
                                            "model_map_value": {"key": "gpt-4o-mini", **llmrelay.model_cost["gpt-4o-mini"]}}
    assert slo["status_fields"] == {"llm_api_status": "success", "guardrail_status": "not_run"}
    assert orjson.loads(kwargs["original_response"]) == response.model_dump()

    # times: floats in order; the kwargs' datetimes are the same instants (start and end are passed too)
    assert slo["startTime"] <= slo["completionStartTime"] <= slo["endTime"]
    assert slo["response_time"] == slo["endTime"] - slo["startTime"]
    assert kwargs["start_time"] == start == datetime.fromtimestamp(slo["startTime"])
    assert kwargs["end_time"] == end == datetime.fromtimestamp(slo["endTime"])
    assert kwargs["completion_start_time"] == datetime.fromtimestamp(slo["completionStartTime"])
    if stream:
        assert slo["completionStartTime"] < slo["endTime"]  # the first chunk's time, not the end's

    # the response: a plain dict equal to the response's dump, key order included, and its own copy
    assert orjson.dumps(slo["response"]) == orjson.dumps(response.model_dump())
    assert slo["response"]["choices"][0]["message"]["content"] == DEFAULT_TEXT
    slo["response"]["choices"][0]["message"]["content"] = "changed"
    slo["response"]["choices"].append({})
    assert response.choices[0].message.content == DEFAULT_TEXT and len(response.choices) == 1
    orjson.dumps(slo)  # the whole object is plain data
    if stream:
        assert kwargs["complete_streaming_response"] is kwargs["async_complete_streaming_response"] is response
    else:
        assert "complete_streaming_response" not in kwargs


@pytest.mark.parametrize("reply", ["reasoning", "tool_calls", "usage"])
async def test_streamed_response_dump_equals_model_dump(server, events, reply: str):
    """Streams of other shapes: reasoning with the upstream's usage (nested details), tool
    calls, a usage chunk. The dump is the response's, and the usage and cost are the upstream's."""
    server.enqueue({"reasoning": reasoning_stream, "tool_calls": tool_call_stream, "usage": usage_stream}[reply]())
    await _call(server, "async", True)
    (kwargs, response, _, _), = events
    slo = kwargs["standard_logging_object"]
    assert orjson.dumps(slo["response"]) == orjson.dumps(response.model_dump())
    if reply == "tool_calls":
        assert slo["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    else:
        assert slo["response"]["usage"]["prompt_tokens_details"] == {
            "audio_tokens": 0, "cache_write_tokens": None, "cached_tokens": 0, "image_tokens": None, "text_tokens": None}
        assert slo["prompt_tokens"] == 10
    usage = response.usage
    assert kwargs["response_cost"] == pytest.approx(_price(usage.prompt_tokens, usage.completion_tokens), rel=1e-12)


async def test_two_streams_share_nothing(server, events):
    """Each event's dump is built anew: changing one changes nothing in the next."""
    await _call(server, "async", True)
    first = events[0][0]["standard_logging_object"]["response"]
    first["choices"][0]["message"]["tool_calls"] = ["x"]
    first["usage"]["completion_tokens_details"] = {"x": 1}
    await _call(server, "async", True)
    second, response = events[1][0]["standard_logging_object"]["response"], events[1][1]
    assert second == response.model_dump()
    assert second["choices"][0]["message"]["tool_calls"] is None and second["usage"]["completion_tokens_details"] is None


def test_call_ids_are_unique_uuid4_strings_also_in_a_forked_child():
    import os
    import uuid

    from llmrelay.logging_obj import _new_id

    ids = [_new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, ",".join(_new_id() for _ in range(100)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(write)
    child = os.read(read, 1 << 16).decode().split(",")
    os.close(read)
    after = [_new_id() for _ in range(100)]
    assert len(child) == 100 and not set(child) & set(ids + after)
