"""Azure OpenAI: URLs, auth, stream quirks and error mapping, end to end against a fake Azure."""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay.exceptions import (
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from llmrelay.main import prepare_call
from llmrelay.providers.azure import AzureProvider
from servers.azure_server import FakeAzureServer, azure_error_reply, content_filter_error_reply, content_filtered_stream
from servers.openai_server import DEFAULT_TEXT, context_length_exceeded_reply, error_reply, in_band_error_stream

MSG = [{"role": "user", "content": "Hi"}]


def url_for(**kwargs):
    call, _ = prepare_call("azure/my-gpt4o", MSG, False, {"api_key": "k", **kwargs})
    return AzureProvider("azure").build_request(call)


@pytest.mark.parametrize("base,version,expected", [
    ("https://r.openai.azure.com", "2024-10-21",
     "https://r.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"),
    ("https://r.openai.azure.com/", "2024-10-21",
     "https://r.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"),
    ("https://r.openai.azure.com/openai", "2024-10-21",
     "https://r.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"),
    ("https://r.openai.azure.com", None, "https://r.openai.azure.com/openai/v1/chat/completions"),
    ("https://r.openai.azure.com", "v1", "https://r.openai.azure.com/openai/v1/chat/completions"),
    ("https://r.openai.azure.com/openai/v1/", None, "https://r.openai.azure.com/openai/v1/chat/completions"),
    ("https://r.openai.azure.com", "preview", "https://r.openai.azure.com/openai/v1/chat/completions?api-version=preview"),
])
def test_urls(monkeypatch, base, version, expected):
    monkeypatch.delenv("AZURE_API_VERSION", raising=False)
    monkeypatch.delenv("OPENAI_API_VERSION", raising=False)
    req = url_for(api_base=base, api_version=version) if version else url_for(api_base=base)
    assert req.url == expected
    assert req.headers["api-key"] == "k" and "Authorization" not in req.headers


def test_env_settings_and_entra_token(monkeypatch):
    monkeypatch.setenv("AZURE_API_BASE", "https://env.openai.azure.com")
    monkeypatch.setenv("AZURE_API_VERSION", "2025-01-01-preview")
    monkeypatch.delenv("AZURE_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    call, _ = prepare_call("azure/my-gpt4o", MSG, False, {"azure_ad_token": "tok"})
    req = AzureProvider("azure").build_request(call)
    assert req.url.endswith("/openai/deployments/my-gpt4o/chat/completions?api-version=2025-01-01-preview")
    assert req.headers["Authorization"] == "Bearer tok" and "api-key" not in req.headers
    assert b"azure_ad_token" not in req.body
    call, _ = prepare_call("azure/my-gpt4o", MSG, False, {})
    with pytest.raises(AuthenticationError, match="azure_ad_token"):
        AzureProvider("azure").build_request(call)


@pytest.fixture
def azure():
    with FakeAzureServer() as srv:
        yield srv


@pytest.mark.parametrize("version", ["2024-10-21", None])
def test_e2e_sync_text_both_api_styles(azure, version):
    extra = {"api_version": version} if version else {}
    resp = llmrelay.completion("azure/my-gpt4o", MSG, api_base=azure.url, api_key="azure-key", **extra)
    assert resp.choices[0].message.content == DEFAULT_TEXT
    assert resp._hidden_params["custom_llm_provider"] == "azure"
    assert resp._hidden_params["api_base"].startswith(azure.url + "/openai/")
    assert azure.last_json["model"] == "my-gpt4o"


def test_e2e_stream_drops_prompt_filter_chunk_and_keeps_contract(azure):
    stream = llmrelay.completion("azure/my-gpt4o", MSG, stream=True, api_base=azure.url, api_key="azure-key",
                                 api_version="2024-10-21", stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_TEXT
    assert len({c.id for c in chunks}) == 1 and chunks[0].id
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.completion_tokens > 0


async def test_e2e_async_stream_entra_token_and_content_filter_finish(azure):
    azure.enqueue(content_filtered_stream())
    stream = await llmrelay.acompletion("azure/my-gpt4o", MSG, stream=True, api_base=azure.url,
                                        azure_ad_token="entra-token", api_version="2024-10-21")
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Once upon"
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert azure.last_request.headers["authorization"] == "Bearer entra-token"


async def test_e2e_async_nonstream(azure):
    resp = await llmrelay.acompletion("azure/my-gpt4o", MSG, api_base=azure.url, api_key="azure-key")
    assert resp.choices[0].message.content == DEFAULT_TEXT


@pytest.mark.parametrize("reply,cls", [
    (content_filter_error_reply(), ContentPolicyViolationError),
    (context_length_exceeded_reply(), ContextWindowExceededError),
    (azure_error_reply(400, "bad"), BadRequestError),
    (azure_error_reply(401, "Access denied"), AuthenticationError),
    (azure_error_reply(403, "forbidden"), PermissionDeniedError),
    (azure_error_reply(404, "The API deployment for this resource does not exist.", "DeploymentNotFound"), NotFoundError),
    (azure_error_reply(422, "unprocessable"), UnprocessableEntityError),
    (azure_error_reply(429, "Requests to the ChatCompletions_Create Operation have exceeded", retry_after=3), RateLimitError),
    (error_reply(500, "The server had an error"), InternalServerError),
    (error_reply(502, "bad gateway"), BadGatewayError),
    (error_reply(503, "unavailable"), ServiceUnavailableError),
])
def test_e2e_errors_map_like_openai(azure, reply, cls):
    azure.enqueue(reply)
    with pytest.raises(cls) as info:
        llmrelay.completion("azure/my-gpt4o", MSG, api_base=azure.url, api_key="azure-key")
    assert type(info.value) is cls and info.value.llm_provider == "azure"


def test_e2e_unknown_deployment_and_in_band_error(azure):
    with pytest.raises(NotFoundError, match="deployment"):
        llmrelay.completion("azure/nope", MSG, api_base=azure.url, api_key="azure-key", api_version="2024-10-21")
    azure.enqueue(in_band_error_stream())
    stream = llmrelay.completion("azure/my-gpt4o", MSG, stream=True, api_base=azure.url, api_key="azure-key")
    with pytest.raises(InternalServerError):
        list(stream)
