"""Legacy ``/v1/completions`` with the official ``openai`` SDK, over three upstream wire formats."""

from __future__ import annotations

import openai
import pytest

from proxy.upstreams import MASTER_KEY, MODELS, gateway3, upstreams  # noqa: F401 - fixtures
from servers.openai_server import DEFAULT_TEXT

ALL = sorted(MODELS)


@pytest.fixture
def client(gateway3):
    return openai.OpenAI(base_url=gateway3.url + "/v1", api_key=MASTER_KEY, max_retries=0)


@pytest.mark.parametrize("model", ALL)
def test_completion(client, model):
    resp = client.completions.create(model=model, prompt="Say hello", max_tokens=100, temperature=0)
    assert resp.object == "text_completion" and resp.model == model and resp.id.startswith("cmpl-")
    assert resp.choices[0].text == DEFAULT_TEXT and resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0


@pytest.mark.parametrize("model", ALL)
def test_stream(client, model):
    chunks = list(client.completions.create(model=model, prompt=["Say hello"], stream=True,
                                            stream_options={"include_usage": True}))
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == DEFAULT_TEXT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage.completion_tokens > 0


def test_echo_and_upstream_shape(client, upstreams):
    resp = client.completions.create(model="gpt", prompt="Q: hi\nA:", echo=True, stop=["\n"], max_tokens=20)
    assert resp.choices[0].text == "Q: hi\nA:" + DEFAULT_TEXT
    sent = upstreams.openai.chat_requests[-1]
    assert sent["messages"] == [{"role": "user", "content": "Q: hi\nA:"}]
    assert sent["stop"] == ["\n"] and sent["max_tokens"] == 20


def test_refused(client):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="gpt", prompt=[1, 2, 3])
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="gpt", prompt="x", suffix="y")
