"""``response._hidden_params["additional_headers"]``: the provider's response headers, as LiteLLM
reports them (every header as ``llm_provider-<name>``, the rate-limit headers also under OpenAI's
names), for responses and streams, from loopback upstreams that send such headers."""

from __future__ import annotations

import pytest

import llmrelay
from servers.anthropic_server import FakeAnthropicServer, message_dict
from servers.loopback import Reply
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer, completion_reply, stream_reply, text_stream_events

MESSAGES = [{"role": "user", "content": "Hi"}]
LIMITS = {"X-RateLimit-Limit-Requests": "100", "x-ratelimit-remaining-requests": "99",
          "x-ratelimit-limit-tokens": "20000", "x-ratelimit-remaining-tokens": "19990",
          "x-ratelimit-reset-requests": "600ms", "X-Request-Id": "req-upstream-1"}


def with_headers(reply: Reply, headers: dict[str, str]) -> Reply:
    reply.headers = {**dict(reply.headers or {}), **headers}
    return reply


def check_openai(additional: dict) -> None:
    assert additional["x-ratelimit-limit-requests"] == "100"
    assert additional["x-ratelimit-remaining-requests"] == "99"
    assert additional["x-ratelimit-limit-tokens"] == "20000"
    assert additional["x-ratelimit-remaining-tokens"] == "19990"
    assert additional["llm_provider-x-ratelimit-remaining-requests"] == "99"
    assert additional["llm_provider-x-ratelimit-reset-requests"] == "600ms"
    assert additional["llm_provider-x-request-id"] == "req-upstream-1"
    assert "x-ratelimit-reset-requests" not in additional  # (only the four OpenAI names, as LiteLLM)
    assert all(k == k.lower() for k in additional)


@pytest.fixture
def upstream():
    with FakeOpenAIServer() as srv:
        yield srv


def kw(srv) -> dict:
    return {"api_base": srv.url + "/v1", "api_key": "sk-up"}


def test_completion(upstream):
    upstream.enqueue(with_headers(completion_reply(), LIMITS))
    response = llmrelay.completion("openai/gpt-4o-mini", MESSAGES, **kw(upstream))
    assert response.choices[0].message.content == DEFAULT_TEXT
    check_openai(response._hidden_params["additional_headers"])


async def test_acompletion_and_stream(upstream):
    upstream.enqueue(with_headers(completion_reply(), LIMITS))
    response = await llmrelay.acompletion("openai/gpt-4o-mini", MESSAGES, **kw(upstream))
    check_openai(response._hidden_params["additional_headers"])

    upstream.enqueue(with_headers(stream_reply(text_stream_events(DEFAULT_TEXT)), LIMITS))
    stream = await llmrelay.acompletion("openai/gpt-4o-mini", MESSAGES, stream=True, **kw(upstream))
    check_openai(stream._hidden_params["additional_headers"])
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == DEFAULT_TEXT


def test_sync_stream_through_a_router(upstream):
    upstream.enqueue(with_headers(stream_reply(text_stream_events(DEFAULT_TEXT)), LIMITS))
    router = llmrelay.Router(model_list=[{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o-mini",
                                                                             **kw(upstream)}}])
    stream = router.completion(model="m", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == DEFAULT_TEXT
    check_openai(stream._hidden_params["additional_headers"])


def test_anthropic_rate_limits_under_openai_names():
    headers = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
               "anthropic-ratelimit-tokens-limit": "8000", "anthropic-ratelimit-tokens-remaining": "7990",
               "request-id": "req_abc"}
    with FakeAnthropicServer(api_key="sk-ant") as srv:
        srv.enqueue(Reply.json(message_dict([{"type": "text", "text": "Hello"}], model="claude-sonnet-4-5"),
                               headers=headers))
        response = llmrelay.completion("anthropic/claude-sonnet-4-5", MESSAGES, api_base=srv.url, api_key="sk-ant")
    additional = response._hidden_params["additional_headers"]
    assert (additional["x-ratelimit-limit-requests"], additional["x-ratelimit-remaining-requests"],
            additional["x-ratelimit-limit-tokens"], additional["x-ratelimit-remaining-tokens"]) == ("50", "49", "8000", "7990")
    assert additional["llm_provider-anthropic-ratelimit-requests-remaining"] == "49"
    assert additional["llm_provider-request-id"] == "req_abc"


def test_no_headers_is_an_empty_mapping():
    from llmrelay.provider_headers import additional_headers

    assert additional_headers({}) == {}
    assert additional_headers({"llm_provider-x": "1", "Server": "s"}) == {"llm_provider-x": "1", "llm_provider-server": "s"}


async def test_a_streams_additional_headers_are_made_when_first_read(upstream, monkeypatch):
    """A stream's ``additional_headers``, and the upstream's header lines they come from, are
    made when first read, once: a relay that never reads them (the gateway) does not split and
    rename the ~24 headers of every response."""
    import llmrelay.main
    import llmrelay.streaming
    from llmrelay import provider_headers
    from llmrelay.transport import lean

    made, split = [], []

    def additional(headers):
        made.append(headers)
        return provider_headers.additional_headers(headers)

    def line(text):
        split.append(text)
        return real_line(text)

    real_line = lean._line
    monkeypatch.setattr(llmrelay.main, "additional_headers", additional)
    monkeypatch.setattr(llmrelay.streaming, "_additional_headers", additional, raising=False)
    monkeypatch.setattr(lean, "_line", line)
    upstream.enqueue(with_headers(stream_reply(text_stream_events(DEFAULT_TEXT)),
                                  {**LIMITS, "X-Lazy": "lazy-1"}))  # (a line not seen before)
    stream = await llmrelay.acompletion("openai/gpt-4o-mini", MESSAGES, stream=True, **kw(upstream))
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == DEFAULT_TEXT
    assert made == [] and split == []
    hidden = stream._hidden_params
    assert "additional_headers" in hidden
    check_openai(hidden.get("additional_headers"))
    assert hidden["additional_headers"]["llm_provider-x-lazy"] == "lazy-1"
    assert dict(hidden)["additional_headers"] is hidden["additional_headers"]
    assert len(made) == 1 and split


async def test_a_streams_copy_has_its_additional_headers(upstream):
    """Copies that read a stream's mapping as a plain dict (its assembled response's) still get
    the additional headers made on demand."""
    from llmrelay.logging_obj import _assembled

    upstream.enqueue(with_headers(stream_reply(text_stream_events(DEFAULT_TEXT)), LIMITS))
    stream = await llmrelay.acompletion("openai/gpt-4o-mini", MESSAGES, stream=True, **kw(upstream))
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == DEFAULT_TEXT
    response, _ = _assembled(stream)
    check_openai(response._hidden_params["additional_headers"])
