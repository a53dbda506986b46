"""``llmrelay.responses()`` / ``aresponses()`` against loopback providers (OpenAI, Anthropic)."""

from __future__ import annotations

import json

import pytest

import llmrelay
from proxy.upstreams import LoopOpenAIServer
from servers.anthropic_server import FakeAnthropicServer
from servers.openai_server import DEFAULT_TEXT, DEFAULT_TOOL_ARGUMENTS

TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


@pytest.fixture(scope="module")
def oai():
    with LoopOpenAIServer() as srv:
        yield srv


def _kw(srv) -> dict:
    return {"api_base": srv.url + "/v1", "api_key": "k"}


def test_text_and_dict_access(oai):
    resp = llmrelay.responses(input="Hi", model="openai/gpt-4o-mini", instructions="Be brief.", **_kw(oai))
    assert resp.output_text == DEFAULT_TEXT and resp.status == "completed"
    assert resp["output"][0]["content"][0]["text"] == DEFAULT_TEXT
    assert resp.usage.total_tokens > 0 and resp.id.startswith("resp_")
    assert oai.chat_requests[-1]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_tool_loop_with_previous_response_id(oai):
    first = llmrelay.responses(input="Weather?", model="openai/gpt-4o-mini", tools=[TOOL], **_kw(oai))
    call = first.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == DEFAULT_TOOL_ARGUMENTS
    second = llmrelay.responses(input=[{"type": "function_call_output", "call_id": call.call_id, "output": "hail"}],
                                model="openai/gpt-4o-mini", previous_response_id=first.id, tools=[TOOL], **_kw(oai))
    assert second.output_text == "The tool said: hail"
    with pytest.raises(llmrelay.NotFoundError):
        llmrelay.responses(input="x", model="openai/gpt-4o-mini", previous_response_id="resp_nope", **_kw(oai))


def test_stream_events(oai):
    events = list(llmrelay.responses(input="Hi", model="openai/gpt-4o-mini", stream=True, **_kw(oai)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == DEFAULT_TEXT
    assert events[-1].response.output_text == DEFAULT_TEXT


async def test_async_anthropic_stream_and_follow_up():
    with FakeAnthropicServer(api_key="sk-ant-x") as srv:
        kw = {"api_base": srv.url, "api_key": "sk-ant-x"}
        stream = await llmrelay.aresponses(input="Hi", model="anthropic/claude-sonnet-4-5", stream=True, **kw)
        events = [e async for e in stream]
        final = events[-1].response
        assert final.output_text == DEFAULT_TEXT
        again = await llmrelay.aresponses(input="More", model="anthropic/claude-sonnet-4-5",
                                          previous_response_id=final.id, max_output_tokens=50, **kw)
        assert again.status == "completed"
        sent = srv.requests[-1].json()
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["max_tokens"] == 50


async def test_router_aresponses_and_text_completion(oai):
    router = llmrelay.Router(model_list=[{"model_name": "g", "litellm_params": {"model": "openai/gpt-4o-mini",
                                                                                 "api_base": oai.url + "/v1",
                                                                                 "api_key": "k"}}])
    resp = await router.aresponses(model="g", input="Hi")
    assert resp.output_text == DEFAULT_TEXT and resp.model == "g"
    events = list(router.responses(model="g", input="Hi", stream=True))
    assert events[-1].type == "response.completed"
    text = await router.atext_completion(model="g", prompt="Hi")
    assert text.choices[0].text == DEFAULT_TEXT
    assert router.embedding is not None
