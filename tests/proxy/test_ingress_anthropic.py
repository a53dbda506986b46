"""``/v1/messages`` driven by the official ``anthropic`` SDK, over three upstream wire formats."""

from __future__ import annotations

import pytest

anthropic = pytest.importorskip("anthropic")

from proxy.upstreams import MASTER_KEY, MODELS, gateway3, upstreams  # noqa: E402,F401 - fixtures
from servers.anthropic_server import SIGNATURE  # noqa: E402
from servers.openai_server import DEFAULT_TEXT, DEFAULT_TOOL_ARGUMENTS  # noqa: E402

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
                     "required": ["location"]},
}
ALL = sorted(MODELS)


@pytest.fixture
def client(gateway3):
    return anthropic.Anthropic(base_url=gateway3.url, api_key=MASTER_KEY, max_retries=0)


@pytest.fixture
def aclient(gateway3):
    return anthropic.AsyncAnthropic(base_url=gateway3.url, api_key=MASTER_KEY, max_retries=0)


@pytest.mark.parametrize("model", ALL)
def test_text_message(client, model):
    msg = client.messages.create(model=model, max_tokens=200, system="Be brief.",
                                 messages=[{"role": "user", "content": "Hi"}])
    assert msg.type == "message" and msg.role == "assistant" and msg.model == model
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == DEFAULT_TEXT
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert msg.id.startswith("msg_")


@pytest.mark.parametrize("model", ALL)
def test_tool_use_then_result(client, model, upstreams):
    msg = client.messages.create(model=model, max_tokens=200, tools=[WEATHER],
                                 tool_choice={"type": "tool", "name": "get_weather"},
                                 messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert msg.stop_reason == "tool_use"
    (use,) = [b for b in msg.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == DEFAULT_TOOL_ARGUMENTS
    # the tool result goes back as Anthropic blocks; the upstream gets it in its own shape
    follow = client.messages.create(
        model=model, max_tokens=200, tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}],
    )
    assert follow.type == "message"
    if model == "gpt":
        sent = upstreams.openai.chat_requests[-1]
        assert sent["messages"][-1] == {"role": "tool", "tool_call_id": use.id, "content": "sunny"}
        assert sent["tools"][0]["function"]["name"] == "get_weather"
        assert follow.content[0].text == "The tool said: sunny"


@pytest.mark.parametrize("model", ALL)
def test_stream_event_sequence(client, model):
    with client.messages.create(model=model, max_tokens=200, stream=True,
                                messages=[{"role": "user", "content": "Hi"}]) as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1] == "content_block_start" or "ping" in kinds
    body = [k for k in kinds if k not in ("ping",)][1:-2]
    assert body[0] == "content_block_start" and body[-1] == "content_block_stop"
    assert set(body[1:-1]) == {"content_block_delta"}
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == DEFAULT_TEXT
    delta = events[-2]
    assert delta.delta.stop_reason == "end_turn" and delta.usage.output_tokens > 0


@pytest.mark.parametrize("model", ALL)
def test_stream_tool_use_helper(client, model):
    with client.messages.stream(model=model, max_tokens=200, tools=[WEATHER],
                                messages=[{"role": "user", "content": "Weather?"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    (use,) = [b for b in final.content if b.type == "tool_use"]
    assert use.input == DEFAULT_TOOL_ARGUMENTS


def test_thinking_signature_round_trip(client, upstreams):
    thinking = {"type": "enabled", "budget_tokens": 1024}
    msg = client.messages.create(model="claude", max_tokens=2048, thinking=thinking,
                                 messages=[{"role": "user", "content": "Hi"}])
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].signature == SIGNATURE
    with client.messages.stream(model="claude", max_tokens=2048, thinking=thinking,
                                messages=[{"role": "user", "content": "Hi"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].signature == SIGNATURE
    assert final.content[0].thinking == msg.content[0].thinking
    client.messages.create(
        model="claude", max_tokens=2048, thinking=thinking,
        messages=[{"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": [b.model_dump() for b in final.content]},
                  {"role": "user", "content": "Again"}])
    sent = upstreams.anthropic.requests[-1].json()
    assert sent["thinking"] == thinking
    assert sent["messages"][1]["content"][0] == {"type": "thinking", "thinking": final.content[0].thinking,
                                                 "signature": SIGNATURE}


async def test_async_stream(aclient):
    async with aclient.messages.stream(model="gemini", max_tokens=100,
                                       messages=[{"role": "user", "content": "Hi"}]) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == DEFAULT_TEXT


def test_count_tokens(client):
    small = client.messages.count_tokens(model="claude", messages=[{"role": "user", "content": "Hi"}])
    big = client.messages.count_tokens(model="claude", tools=[WEATHER],
                                       messages=[{"role": "user", "content": "Hi " * 50}])
    assert 0 < small.input_tokens < big.input_tokens


def test_errors_in_anthropic_shape(client, gateway3):
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "not_found_error"
    bad = anthropic.Anthropic(base_url=gateway3.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(model="gpt", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert info.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="gpt", max_tokens=10, messages=[])
    assert info.value.body["error"]["type"] == "invalid_request_error"


def test_bearer_auth_and_claude_code_headers(gateway3):
    import urllib.request
    import json

    req = urllib.request.Request(
        gateway3.url + "/v1/messages", method="POST",
        data=json.dumps({"model": "gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}).encode(),
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json",
                 "anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking-2025-05-14"})
    with urllib.request.urlopen(req) as r:
        assert json.loads(r.read())["content"][0]["text"] == DEFAULT_TEXT


def test_thinking_to_an_openai_upstream_is_not_forwarded(client, upstreams):
    """Claude Code turns thinking on; an OpenAI upstream has no such parameter (it would 400)."""
    msg = client.messages.create(model="gpt", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                 messages=[{"role": "user", "content": "Hi"}])
    assert msg.content[-1].text == DEFAULT_TEXT
    assert "thinking" not in upstreams.openai.chat_requests[-1]


@pytest.mark.parametrize("model", ALL)
def test_claude_code_shaped_request(gateway3, model):
    """What Claude Code sends: ?beta=true, beta headers, cache_control everywhere, system blocks,
    metadata, thinking, tools, a server tool, and keys with no chat equivalent."""
    import httpx

    body = {
        "model": model, "max_tokens": 32000, "stream": True, "temperature": 1,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
            {"type": "text", "text": "List the files", "cache_control": {"type": "ephemeral"}}]}],
        "tools": [{"name": "Bash", "description": "Run a command",
                   "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                                    "required": ["command"]}},
                  {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        "metadata": {"user_id": "user_abc_account_123_session_xyz"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "context_management": {"edits": []},
    }
    headers = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14", "user-agent": "claude-cli/2.0"}
    with httpx.stream("POST", gateway3.url + "/v1/messages?beta=true", json=body, headers=headers, timeout=30) as r:
        assert r.status_code == 200, r.read()
        events = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_start" in events and "error" not in events


def test_error_mid_stream_is_an_anthropic_error_event(client, upstreams):
    from servers.openai_server import dropped_stream

    upstreams.openai.enqueue(dropped_stream(after_chunks=3))
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(model="gpt", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]) as s:
            for _ in s:
                pass
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "api_error"
