"""``/v1/responses`` driven by the official ``openai`` SDK, over three upstream wire formats."""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from proxy.upstreams import MASTER_KEY, MODELS, gateway3, upstreams  # noqa: F401 - fixtures
from servers.openai_server import DEFAULT_TEXT, DEFAULT_TOOL_ARGUMENTS, dropped_stream

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
                   "required": ["location"]},
}
ALL = sorted(MODELS)
TEXT_EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
               "response.content_part.added", "response.output_text.delta", "response.output_text.done",
               "response.content_part.done", "response.output_item.done", "response.completed"]
CALL_EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
               "response.function_call_arguments.delta", "response.function_call_arguments.done",
               "response.output_item.done", "response.completed"]


class Weather(BaseModel):
    city: str
    temperature: int


@pytest.fixture
def client(gateway3):
    return openai.OpenAI(base_url=gateway3.url + "/v1", api_key=MASTER_KEY, max_retries=0)


def _squash(kinds: list[str]) -> list[str]:
    """Event types with runs of the same delta event collapsed."""
    out: list[str] = []
    for kind in kinds:
        if not (out and out[-1] == kind and kind.endswith(".delta")):
            out.append(kind)
    return out


@pytest.mark.parametrize("model", ALL)
def test_text(client, model):
    resp = client.responses.create(model=model, input="Hi", instructions="Be brief.", max_output_tokens=300)
    assert resp.object == "response" and resp.status == "completed" and resp.model == model
    assert resp.output_text == DEFAULT_TEXT
    assert [item.type for item in resp.output] == ["message"]
    assert resp.instructions == "Be brief." and resp.max_output_tokens == 300
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens


@pytest.mark.parametrize("model", ALL)
def test_function_call_and_previous_response(client, model, upstreams):
    resp = client.responses.create(model=model, input=[{"role": "user", "content": "Weather in Paris?"}],
                                   tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"})
    (call,) = [item for item in resp.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == DEFAULT_TOOL_ARGUMENTS
    follow = client.responses.create(
        model=model, previous_response_id=resp.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert follow.previous_response_id == resp.id and follow.status == "completed"
    if model == "gpt":
        assert follow.output_text == "The tool said: sunny"
        sent = upstreams.openai.chat_requests[-1]["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
        assert sent[1]["tool_calls"][0]["id"] == call.call_id and sent[2]["tool_call_id"] == call.call_id


def test_items_without_store(client, upstreams):
    """The whole conversation as items (what agent frameworks send), store=False."""
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
    ]
    resp = client.responses.create(model="gpt", input=items, tools=[WEATHER], store=False)
    assert resp.output_text == "The tool said: rain" and resp.store is False
    sent = upstreams.openai.chat_requests[-1]["messages"]
    assert sent[2] == {"role": "assistant", "content": "Let me look.",
                       "tool_calls": [{"id": "call_1", "type": "function",
                                       "function": {"name": "get_weather", "arguments": "{}"}}]}
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt", input="more", previous_response_id=resp.id)


@pytest.mark.parametrize("model", ALL)
def test_stream_text_events(client, model):
    events = list(client.responses.create(model=model, input="Hi", stream=True))
    assert _squash([e.type for e in events]) == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == DEFAULT_TEXT
    done = events[-1].response
    assert done.status == "completed" and done.output_text == DEFAULT_TEXT and done.usage.output_tokens > 0


@pytest.mark.parametrize("model", ALL)
def test_stream_function_call_events(client, model):
    with client.responses.stream(model=model, input="Weather?", tools=[WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert _squash([e.type for e in events]) == CALL_EVENTS
    (call,) = final.output
    assert call.type == "function_call" and json.loads(call.arguments) == DEFAULT_TOOL_ARGUMENTS
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == DEFAULT_TOOL_ARGUMENTS


def test_structured_output(client, upstreams):
    parsed = client.responses.parse(model="gpt", input="Weather in Paris as JSON", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris", temperature=21)
    sent = upstreams.openai.chat_requests[-1]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["properties"]["city"] == {"title": "City", "type": "string"}
    with client.responses.stream(model="gpt", input="Weather as JSON", text_format=Weather) as stream:
        final = stream.get_final_response()
    assert final.output_parsed == Weather(city="Paris", temperature=21)


def test_reasoning_effort_reaches_upstream(client, upstreams):
    client.responses.create(model="gemini", input="Hi", reasoning={"effort": "low", "summary": "auto"})
    body = upstreams.gemini.requests[-1].json()
    assert body["generationConfig"]["thinkingConfig"]["includeThoughts"] is True


def test_reasoning_summary_stream(client):
    events = list(client.responses.create(model="gemini", input="Hi", stream=True,
                                          reasoning={"effort": "low", "summary": "auto"}))
    kinds = _squash([e.type for e in events])
    assert kinds[2:5] == ["response.output_item.added", "response.reasoning_summary_part.added",
                          "response.reasoning_summary_text.delta"]
    final = events[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text


def test_errors(client, upstreams):
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input="Hi")
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="gpt", input="Hi", previous_response_id="resp_unknown")
    assert info.value.code == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt", input="Hi", tools=[{"type": "web_search"}])
    upstreams.openai.enqueue(dropped_stream(after_chunks=3))
    events = list(client.responses.create(model="gpt", input="Hi", stream=True))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert events[-1].response.status == "failed" and events[-1].response.error.message


def test_router_fallback_serves_every_api(client, gateway3):
    """The translated APIs go through the Router like chat: 'flaky' (unreachable) falls back to 'gpt'."""
    import anthropic as anthropic_sdk

    assert client.responses.create(model="flaky", input="Hi").output_text == DEFAULT_TEXT
    assert client.completions.create(model="flaky", prompt="Hi").choices[0].text == DEFAULT_TEXT
    claude = anthropic_sdk.Anthropic(base_url=gateway3.url, api_key=MASTER_KEY, max_retries=0)
    msg = claude.messages.create(model="flaky", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert msg.content[0].text == DEFAULT_TEXT


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_thinking_signatures_survive_the_next_turn(client, upstreams, stream):
    """Claude's thinking blocks travel in the reasoning item's encrypted_content and go back
    upstream with their signature (Anthropic needs them with tool use)."""
    from servers.anthropic_server import SIGNATURE

    kwargs = {"model": "claude", "input": "Weather?", "tools": [WEATHER], "reasoning": {"effort": "low"}}
    if stream:
        with client.responses.stream(**kwargs) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(**kwargs)
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and reasoning.encrypted_content and call.type == "function_call"
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    for follow in ({"previous_response_id": first.id, "input": [output]},
                   {"input": [{"role": "user", "content": "Weather?"},
                              *[item.model_dump(exclude_none=True) for item in first.output], output]}):
        client.responses.create(model="claude", tools=[WEATHER], reasoning={"effort": "low"}, **follow)
        sent = upstreams.anthropic.requests[-1].json()["messages"]
        assert sent[1]["role"] == "assistant"
        assert sent[1]["content"][0] == {"type": "thinking", "thinking": reasoning.summary[0].text,
                                         "signature": SIGNATURE}


def test_codex_shaped_request_to_gemini(client, upstreams):
    """OpenAI-only hints Codex CLI sends are not passed to a provider that would refuse them."""
    resp = client.responses.create(model="gemini", input="Hi", store=False, prompt_cache_key="abc",
                                   include=["reasoning.encrypted_content"], parallel_tool_calls=False,
                                   tools=[WEATHER], tool_choice="none", service_tier="auto")
    assert resp.output_text == DEFAULT_TEXT


def test_retrieve_and_delete_stored_response(client):
    resp = client.responses.create(model="gpt", input="Hi")
    again = client.responses.retrieve(resp.id)
    assert again.id == resp.id and again.output_text == DEFAULT_TEXT
    streamed = list(client.responses.create(model="gpt", input="Hi", stream=True))[-1].response
    assert client.responses.retrieve(streamed.id).output_text == DEFAULT_TEXT
    client.responses.delete(resp.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt", input="more", previous_response_id=resp.id)
    unstored = client.responses.create(model="gpt", input="Hi", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
