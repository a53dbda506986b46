"""``azure_ai/`` (Azure AI Foundry's model inference API): LiteLLM's URL and key-header rules,
and calls through a loopback server speaking OpenAI's chat wire format."""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay.exceptions import AuthenticationError
from llmrelay.providers.azure_ai import chat_url, uses_api_key_header
from providers.helpers import build_request
from servers.openai_server import DEFAULT_TEXT

MSG = [{"role": "user", "content": "Hi"}]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("AZURE_AI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_AI_API_BASE", raising=False)


@pytest.mark.parametrize("base, version, url", [
    ("https://my-res.services.ai.azure.com", None, "https://my-res.services.ai.azure.com/models/chat/completions"),
    ("https://my-res.services.ai.azure.com/models/", "2024-05-01-preview",
     "https://my-res.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview"),
    ("https://Mistral-large.eastus2.models.ai.azure.com", None,
     "https://Mistral-large.eastus2.models.ai.azure.com/chat/completions"),
    ("https://x.eastus2.inference.ai.azure.com/v1?api-version=2024-01-01", "2025-01-01",
     "https://x.eastus2.inference.ai.azure.com/v1/chat/completions?api-version=2024-01-01"),
    ("https://x.services.ai.azure.com/models/chat/completions", None,
     "https://x.services.ai.azure.com/models/chat/completions"),
])
def test_chat_url(base, version, url):
    assert chat_url(base, version) == url


def test_key_header_by_host():
    assert uses_api_key_header("https://r.services.ai.azure.com/models")
    assert uses_api_key_header("https://r.openai.azure.com")
    assert not uses_api_key_header("https://m.eastus2.models.ai.azure.com")
    assert not uses_api_key_header("https://evil.example/services.ai.azure.com")


def test_request_from_the_environment(monkeypatch):
    monkeypatch.setenv("AZURE_AI_API_BASE", "https://r.services.ai.azure.com")
    monkeypatch.setenv("AZURE_AI_API_KEY", "az-key")
    req, body = build_request("azure_ai/mistral-large-2411", MSG, False, {"api_version": "2024-05-01-preview"})
    assert req.url == "https://r.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview"
    assert req.headers["api-key"] == "az-key" and "Authorization" not in req.headers
    assert body["model"] == "mistral-large-2411" and body["messages"] == MSG
    assert "api_version" not in body


def test_serverless_endpoint_takes_a_bearer_key():
    req, _ = build_request("azure_ai/Llama-3.3-70B", MSG, False,
                           {"api_base": "https://l.eastus2.models.ai.azure.com", "api_key": "k1"})
    assert req.headers["Authorization"] == "Bearer k1" and "api-key" not in req.headers


def test_needs_a_key_and_a_base():
    with pytest.raises(AuthenticationError, match="api_base"):
        build_request("azure_ai/m", MSG, False, {"api_key": "k"})
    with pytest.raises(AuthenticationError, match="AZURE_AI_API_KEY"):
        build_request("azure_ai/m", MSG, False, {"api_base": "https://l.models.ai.azure.com"})


def test_calls_and_streams_through_a_server(openai_server):
    base = openai_server.url + "/v1"
    resp = llmrelay.completion("azure_ai/phi-4", MSG, api_base=base, api_key="k2")
    assert resp.choices[0].message.content == DEFAULT_TEXT
    assert openai_server.requests[-1].headers["authorization"] == "Bearer k2"
    chunks = list(llmrelay.completion("azure_ai/phi-4", MSG, stream=True, api_base=base, api_key="k2"))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_TEXT


def test_served_by_the_gateway(openai_server, tmp_path):
    import openai

    from proxy.harness import Gateway

    path = tmp_path / "config.yaml"
    path.write_text(f"""
model_list:
  - model_name: phi
    litellm_params: {{model: azure_ai/phi-4, api_base: "{openai_server.url}/v1", api_key: os.environ/AZURE_AI_API_KEY}}
general_settings:
  master_key: sk-azure-ai-1
""")
    with Gateway(str(path), env={"AZURE_AI_API_KEY": "az-gw-key"}) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-azure-ai-1", max_retries=0)
        resp = client.chat.completions.create(model="phi", messages=MSG)
        assert resp.choices[0].message.content == DEFAULT_TEXT and resp.model == "phi"
        stream = client.chat.completions.create(model="phi", messages=MSG, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == DEFAULT_TEXT
    assert openai_server.requests[-1].headers["authorization"] == "Bearer az-gw-key"
    assert openai_server.last_json["model"] == "phi-4"
