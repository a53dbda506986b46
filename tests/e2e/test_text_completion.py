"""``llmrelay.text_completion()`` / ``atext_completion()`` against the OpenAI loopback fake."""

from __future__ import annotations

import llmrelay
from servers.fixtures import openai_server  # noqa: F401 - fixture
from servers.openai_server import DEFAULT_TEXT


def _kw(srv) -> dict:
    return {"api_base": srv.url + "/v1", "api_key": "k"}


def test_text_completion(openai_server):
    resp = llmrelay.text_completion(model="openai/gpt-4o-mini", prompt="Hi", echo=True, **_kw(openai_server))
    assert resp.object == "text_completion" and resp.choices[0].text == "Hi" + DEFAULT_TEXT
    assert resp["choices"][0]["finish_reason"] == "stop" and resp.usage.total_tokens > 0


def test_several_prompts(openai_server):
    resp = llmrelay.text_completion(model="openai/gpt-4o-mini", prompt=["a", "b"], **_kw(openai_server))
    assert [c.index for c in resp.choices] == [0, 1]
    assert [m["messages"][0]["content"] for m in openai_server.chat_requests] == ["a", "b"]


async def test_async_stream(openai_server):
    stream = await llmrelay.atext_completion(model="openai/gpt-4o-mini", prompt="Hi", stream=True, **_kw(openai_server))
    text = "".join([c.choices[0].text async for c in stream if c.choices])
    assert text == DEFAULT_TEXT
