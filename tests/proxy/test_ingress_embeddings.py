"""``/v1/embeddings`` with the official ``openai`` SDK, over OpenAI, Gemini, Bedrock and Cohere
upstreams (one loopback fake speaks each wire format)."""

from __future__ import annotations

import openai
import pytest

from proxy.conftest import closed_port
from proxy.harness import Gateway
from servers.embedding_servers import KEY, FakeEmbeddingServer, vector

MASTER = "sk-master-embeddings-1"


@pytest.fixture(scope="module")
def srv():
    with FakeEmbeddingServer() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(srv, tmp_path_factory):
    path = tmp_path_factory.mktemp("emb") / "config.yaml"
    path.write_text(f"""
model_list:
  - model_name: small
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{srv.url}/v1", api_key: os.environ/T_EMB_KEY}}
  - model_name: gemini-embed
    litellm_params: {{model: gemini/gemini-embedding-001, api_base: "{srv.url}", api_key: os.environ/T_EMB_KEY}}
  - model_name: titan
    litellm_params: {{model: bedrock/amazon.titan-embed-text-v2:0, api_base: "{srv.url}", api_key: os.environ/T_EMB_KEY}}
  - model_name: cohere-embed
    litellm_params: {{model: cohere/embed-v4.0, api_base: "{srv.url}", api_key: os.environ/T_EMB_KEY}}
  - model_name: broken
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{srv.url}/v1", api_key: wrong-key}}
  - model_name: down
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "http://127.0.0.1:{closed_port()}/v1", api_key: x}}
router_settings:
  num_retries: 0
  fallbacks: [{{"down": ["gemini-embed"]}}]
general_settings:
  master_key: {MASTER}
""")
    with Gateway(str(path), env={"T_EMB_KEY": KEY}) as gw:
        yield gw


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER, max_retries=0)


@pytest.mark.parametrize("model", ["small", "gemini-embed", "titan", "cohere-embed"])
def test_embeddings_create(client, model):
    # the SDK asks for base64 and decodes it: this exercises the gateway's base64 encoding
    resp = client.embeddings.create(model=model, input=["alpha", "beta", "gamma"])
    assert resp.model == model and [d.index for d in resp.data] == [0, 1, 2]
    for d, text in zip(resp.data, ["alpha", "beta", "gamma"]):
        assert d.embedding == pytest.approx(vector(text))
    assert resp.usage.prompt_tokens > 0 and resp.usage.total_tokens == resp.usage.prompt_tokens


def test_router_fallback(client):
    resp = client.embeddings.create(model="down", input="alpha", encoding_format="float")
    assert resp.data[0].embedding == vector("alpha")


def test_float_and_dimensions(client):
    resp = client.embeddings.create(model="small", input="alpha", encoding_format="float", dimensions=3)
    assert resp.data[0].embedding == vector("alpha", 3)


def test_errors(client, gateway):
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nope", input="x")
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="small", input="x", extra_body={"api_base": "http://evil"})
    assert "api_base" in str(info.value)
    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="broken", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="small", input=None)  # type: ignore[arg-type]
    record = gateway.wait_log(lambda r: r.get("path") == "/v1/embeddings" and r.get("status") == 200)
    assert record["prompt_tokens"] > 0


def test_unknown_path_lists_endpoints(gateway):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(gateway.url + "/v1/images/generations", method="POST", data=b"{}"))
    assert info.value.code == 404
    message = info.value.read().decode()
    import json

    with urllib.request.urlopen(gateway.url + "/openapi.json") as r:
        documented = json.loads(r.read())["paths"]
    for path in ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/messages/count_tokens",
                 "/v1/embeddings", "/v1/completions"):
        assert path in message and "post" in documented[path]
