"""Non-streaming calls, HTTP errors, retries, timeouts and input validation, sync and async."""

from __future__ import annotations

import asyncio
import time

import pytest

import llmrelay
from e2e.conftest import call, kwargs_for, stream_all
from servers.loopback import Reply
from servers.openai_server import (
    DEFAULT_TEXT,
    completion_dict,
    content_policy_reply,
    context_length_exceeded_reply,
    error_reply,
    rate_limit_reply,
    slow_headers_reply,
)


def test_non_streaming(mode, server):
    response = call(mode, **kwargs_for(server, temperature=0.2, max_tokens=50, seed=7, user="u1"))
    assert response.object == "chat.completion"
    assert response.choices[0].message.content == DEFAULT_TEXT
    assert response["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "gpt-4o-mini"
    assert response.usage.total_tokens > 0
    body = server.last_json
    assert body["temperature"] == 0.2 and body["max_tokens"] == 50 and body["seed"] == 7
    assert body["user"] == "u1" and "stream" not in body
    dumped = response.model_dump()
    assert dumped["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert isinstance(response.model_dump_json(), str)


def test_all_openai_params_are_forwarded(mode, server):
    params = {
        "temperature": 0.5, "top_p": 0.9, "n": 1, "stop": ["x"], "max_completion_tokens": 20,
        "presence_penalty": 0.1, "frequency_penalty": 0.2, "logit_bias": {"50256": -100},
        "logprobs": True, "top_logprobs": 2, "seed": 1, "user": "me", "parallel_tool_calls": False,
        "response_format": {"type": "json_object"}, "reasoning_effort": "low",
    }
    call(mode, **kwargs_for(server, **params, extra_body={"custom_field": 1}, extra_headers={"X-Trace": "abc"}))
    body = server.last_json
    for key, value in params.items():
        assert body[key] == value, key
    assert body["custom_field"] == 1
    assert server.last_request.headers["x-trace"] == "abc"
    assert server.last_request.headers["authorization"] == "Bearer sk-test"


def test_usage_counted_when_missing(mode, server):
    data = completion_dict("Hello world", model="gpt-4o-mini")
    data.pop("usage", None)
    server.enqueue(Reply.json(data))
    response = call(mode, **kwargs_for(server))
    assert response.usage.completion_tokens == 2
    assert response.usage.prompt_tokens > 0


@pytest.mark.parametrize(
    "reply,cls,status",
    [
        (error_reply(400, "bad"), llmrelay.BadRequestError, 400),
        (error_reply(401, "Incorrect API key provided"), llmrelay.AuthenticationError, 401),
        (error_reply(403, "nope"), llmrelay.PermissionDeniedError, 403),
        (error_reply(404, "no such model"), llmrelay.NotFoundError, 404),
        (error_reply(422, "unprocessable"), llmrelay.UnprocessableEntityError, 422),
        (rate_limit_reply(retry_after=7), llmrelay.RateLimitError, 429),
        (error_reply(500, "boom"), llmrelay.InternalServerError, 500),
        (error_reply(502, "bad gateway"), llmrelay.BadGatewayError, 502),
        (error_reply(503, "overloaded"), llmrelay.ServiceUnavailableError, 503),
        (context_length_exceeded_reply(), llmrelay.ContextWindowExceededError, 400),
        (content_policy_reply(), llmrelay.ContentPolicyViolationError, 400),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_http_errors_raise_from_the_call(mode, server, reply, cls, status, stream):
    server.enqueue(reply)
    with pytest.raises(cls) as info:
        # for streams, the error must come from completion()/acompletion() itself
        call(mode, **kwargs_for(server, stream=stream))
    error = info.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.llm_provider == "openai" and error.model == "gpt-4o-mini"
    assert error.body and error.headers
    if status == 429:
        assert error.retry_after == 7
    if cls is llmrelay.ContextWindowExceededError:
        assert isinstance(error, llmrelay.BadRequestError)


def test_200_with_error_body(mode, server):
    server.enqueue(Reply.json({"error": {"message": "quota", "type": "insufficient_quota"}}))
    with pytest.raises(llmrelay.RateLimitError, match="quota"):
        call(mode, **kwargs_for(server))


def test_200_with_malformed_json(mode, server):
    server.enqueue(Reply.text("{not json", content_type="application/json"))
    with pytest.raises(llmrelay.APIError, match="malformed JSON"):
        call(mode, **kwargs_for(server))


def test_retries_honour_retry_after(mode, server):
    server.enqueue(rate_limit_reply(retry_after=0.2), error_reply(503, "busy", headers={"retry-after-ms": "50"}))
    start = time.monotonic()
    response = call(mode, **kwargs_for(server, num_retries=2))
    assert response.choices[0].message.content == DEFAULT_TEXT
    assert len(server.chat_requests) == 3
    assert time.monotonic() - start >= 0.25


def test_retries_for_streams_happen_before_the_first_chunk(mode, server):
    server.enqueue(error_reply(500, "boom", headers={"retry-after": "0"}))
    _, chunks = stream_all(mode, **kwargs_for(server, max_retries=1))
    assert len(server.chat_requests) == 2 and chunks


def test_no_retry_for_client_errors(mode, server):
    server.enqueue(error_reply(400, "bad request"))
    with pytest.raises(llmrelay.BadRequestError):
        call(mode, **kwargs_for(server, num_retries=3))
    assert len(server.chat_requests) == 1


def test_retries_exhausted_raise_the_last_error(mode, server):
    server.enqueue(*(error_reply(503, "busy", headers={"retry-after": "0"}) for _ in range(3)))
    with pytest.raises(llmrelay.ServiceUnavailableError):
        call(mode, **kwargs_for(server, num_retries=2))
    assert len(server.chat_requests) == 3


def test_timeout_waiting_for_headers(mode, server):
    server.enqueue(slow_headers_reply(2.0, stream=False))
    with pytest.raises(llmrelay.Timeout):
        call(mode, **kwargs_for(server, timeout=0.3))


def test_connection_refused(mode):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(llmrelay.APIConnectionError):
        call(mode, model="openai/x", messages=[{"role": "user", "content": "hi"}],
             api_base=f"http://127.0.0.1:{port}/v1", api_key="k", timeout=5)


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"messages": "hi"}, "messages must be a list"),
        ({"messages": []}, "must not be empty"),
        ({"messages": [{"content": "hi"}]}, "role"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "unknown role"),
        ({"messages": ["hi"]}, "must be a dict"),
        ({"messages": [{"role": "user", "content": 5}]}, "content must be"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"max_tokens": 1.5}, "max_tokens must be an integer"),
        ({"n": 0}, "n must be at least 1"),
        ({"stop": [1, 2]}, "stop must be"),
        ({"tools": {"a": 1}}, "tools must be a list"),
        ({"model": "nosuchprovider/model-x"}, "known provider prefixes"),
        ({"model": "my-unknown-model"}, "Cannot resolve the model"),
        ({"model": ""}, "model must be a non-empty string"),
        ({"model": None}, "model must be a non-empty string"),
        ({"stream": "yes"}, "stream must be True or False"),
        ({"timeout": -1}, "timeout must be positive"),
        ({"custom_llm_provider": "nope"}, "Unknown custom_llm_provider"),
    ],
)
def test_bad_input_fails_before_any_network_call(mode, server, overrides, needle):
    with pytest.raises(llmrelay.BadRequestError, match=needle):
        call(mode, **kwargs_for(server, **overrides))
    assert server.requests == []


def test_unknown_model_error_lists_prefixes(mode):
    with pytest.raises(llmrelay.BadRequestError) as info:
        call(mode, model="foo/bar", messages=[{"role": "user", "content": "x"}])
    assert "openai" in str(info.value) and "hosted_vllm" in str(info.value)


def test_bare_model_name_and_env_settings(mode, server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    response = call(mode, model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert response.choices[0].message.content == DEFAULT_TEXT
    assert server.last_request.headers["authorization"] == "Bearer sk-env"
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setenv("OPENAI_API_BASE", server.url + "/v1")
    call(mode, model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert len(server.chat_requests) == 2


def test_base_url_alias_and_custom_provider(mode, server):
    response = call(mode, model="my-local-model", custom_llm_provider="openai",
                    messages=[{"role": "user", "content": "x"}], base_url=server.url + "/v1", api_key="k")
    assert server.last_json["model"] == "my-local-model"
    assert response.model == "my-local-model"


def test_hosted_vllm_needs_no_key(mode, server):
    call(mode, model="hosted_vllm/meta-llama/Llama-3-8b", messages=[{"role": "user", "content": "x"}],
         api_base=server.url + "/v1")
    assert server.last_json["model"] == "meta-llama/Llama-3-8b"
    assert "authorization" not in server.last_request.headers


def test_missing_openai_key_fails_early(mode, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    with pytest.raises(llmrelay.AuthenticationError, match="OPENAI_API_KEY"):
        call(mode, model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])


def test_acompletion_is_natively_async(server):
    """Many concurrent calls on one loop, no worker threads involved."""
    import threading

    async def main():
        before = threading.active_count()
        results = await asyncio.gather(*(llmrelay.acompletion(**kwargs_for(server)) for _ in range(20)))
        assert threading.active_count() <= before
        return results

    results = asyncio.run(main())
    assert all(r.choices[0].message.content == DEFAULT_TEXT for r in results)


def test_unknown_kwargs_are_sent_to_openai_compatible_servers(mode, server):
    call(mode, **kwargs_for(server, top_k=5, guided_json={"type": "object"}, api_version="x",
                            metadata={"trace": 1}, organization="org-1"))
    body = server.last_json
    assert body["top_k"] == 5 and body["guided_json"] == {"type": "object"}
    assert "api_version" not in body and "metadata" not in body and "organization" not in body
    assert server.last_request.headers["openai-organization"] == "org-1"


def test_wrong_kind_of_iteration_is_a_clear_type_error(server):
    stream = llmrelay.completion(**kwargs_for(server, stream=True))

    async def iterate_sync_stream_async():
        return [c async for c in stream]

    with pytest.raises(TypeError, match="use a for loop"):
        asyncio.run(iterate_sync_stream_async())

    async def iterate_async_stream_sync():
        s = await llmrelay.acompletion(**kwargs_for(server, stream=True))
        try:
            return list(s)
        finally:
            await s.aclose()

    with pytest.raises(TypeError, match="use async for"):
        asyncio.run(iterate_async_stream_sync())


def test_a_provider_registered_at_run_time(mode, server, monkeypatch):
    from llmrelay.providers import registry

    monkeypatch.setitem(registry.PROVIDERS, "myhost", "llmrelay.providers.openai:OpenAIProvider")
    registry.register("myhost", "llmrelay.providers.openai:OpenAIProvider")
    response = call(mode, model="myhost/some-model", messages=[{"role": "user", "content": "x"}],
                    api_base=server.url + "/v1", api_key="k")
    assert response._hidden_params["custom_llm_provider"] == "myhost"
    assert server.last_json["model"] == "some-model"
