"""``llmrelay.embedding()`` / ``aembedding()`` against a loopback fake of each wire format."""

from __future__ import annotations

import base64
import struct

import pytest

import llmrelay
from servers.embedding_servers import DEFAULT_DIMS, KEY, VERTEX_TOKEN, FakeEmbeddingServer, vector

TEXTS = [f"text number {i}" for i in range(5)]


@pytest.fixture(scope="module")
def srv():
    with FakeEmbeddingServer() as server:
        yield server


def _cases(srv) -> dict[str, dict]:
    return {
        "openai/text-embedding-3-small": {"api_base": srv.url + "/v1", "api_key": KEY},
        "azure/my-embedder": {"api_base": srv.url, "api_key": KEY, "api_version": "2024-10-21"},
        "mistral/mistral-embed": {"api_base": srv.url + "/v1", "api_key": KEY},
        "voyage/voyage-3": {"api_base": srv.url + "/v1", "api_key": KEY},
        "hosted_vllm/bge-small": {"api_base": srv.url + "/v1", "api_key": KEY},
        "gemini/gemini-embedding-001": {"api_base": srv.url, "api_key": KEY},
        "cohere/embed-v4.0": {"api_base": srv.url, "api_key": KEY},
        "vertex_ai/text-embedding-005": {"api_base": srv.url, "vertex_access_token": VERTEX_TOKEN,
                                         "vertex_project": "p1", "vertex_location": "europe-west4"},
        "vertex_ai/gemini-embedding-001": {"api_base": srv.url, "vertex_access_token": VERTEX_TOKEN,
                                           "vertex_project": "p1"},
        "ollama/nomic-embed-text": {"api_base": srv.url},
        "bedrock/amazon.titan-embed-text-v2:0": {"api_base": srv.url, "api_key": KEY},
        "bedrock/cohere.embed-english-v3": {"api_base": srv.url, "api_key": KEY},
    }


MODELS = ["openai/text-embedding-3-small", "azure/my-embedder", "mistral/mistral-embed", "voyage/voyage-3",
          "hosted_vllm/bge-small", "gemini/gemini-embedding-001", "cohere/embed-v4.0", "ollama/nomic-embed-text",
          "vertex_ai/text-embedding-005", "vertex_ai/gemini-embedding-001",
          "bedrock/amazon.titan-embed-text-v2:0", "bedrock/cohere.embed-english-v3"]


@pytest.mark.parametrize("model", MODELS)
def test_every_wire_format(srv, model):
    resp = llmrelay.embedding(model=model, input=TEXTS, **_cases(srv)[model])
    assert resp.object == "list" and len(resp.data) == len(TEXTS)
    assert [d.index for d in resp.data] == list(range(len(TEXTS)))
    assert [d.embedding for d in resp.data] == [vector(t) for t in TEXTS]
    assert resp["data"][0]["object"] == "embedding"
    assert resp.usage.prompt_tokens > 0 and resp.usage.total_tokens == resp.usage.prompt_tokens


@pytest.mark.parametrize("model", ["openai/text-embedding-3-small", "gemini/gemini-embedding-001",
                                   "cohere/embed-v4.0", "mistral/mistral-embed", "voyage/voyage-3",
                                   "bedrock/amazon.titan-embed-text-v2:0", "ollama/nomic-embed-text",
                                   "vertex_ai/text-embedding-005"])
async def test_dimensions_async(srv, model):
    resp = await llmrelay.aembedding(model=model, input="hello", dimensions=4, **_cases(srv)[model])
    assert resp.data[0].embedding == vector("hello", 4)


def test_base64(srv):
    resp = llmrelay.embedding(model="gemini/gemini-embedding-001", input=["a", "b"], encoding_format="base64",
                              **_cases(srv)["gemini/gemini-embedding-001"])
    raw = base64.b64decode(resp.data[1].embedding)
    assert list(struct.unpack(f"<{DEFAULT_DIMS}f", raw)) == vector("b")


@pytest.mark.parametrize("model,limit", [("gemini/gemini-embedding-001", 100), ("cohere/embed-v4.0", 96),
                                         ("bedrock/cohere.embed-english-v3", 96)])
async def test_batches_split_and_joined_in_order(srv, model, limit):
    texts = [f"t{i}" for i in range(limit * 2 + 3)]
    before = len(srv.requests)
    resp = await llmrelay.aembedding(model=model, input=texts, **_cases(srv)[model])
    assert [d.embedding for d in resp.data] == [vector(t) for t in texts]
    assert len(srv.requests) - before == 3


def test_titan_one_text_per_request(srv):
    before = len(srv.requests)
    llmrelay.embedding(model="bedrock/amazon.titan-embed-text-v2:0", input=["x", "y", "z"],
                       **_cases(srv)["bedrock/amazon.titan-embed-text-v2:0"])
    assert len(srv.requests) - before == 3


def test_bedrock_sigv4(srv):
    pytest.importorskip("botocore")
    resp = llmrelay.embedding(model="bedrock/amazon.titan-embed-text-v2:0", input="hi", api_base=srv.url,
                              aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", aws_region_name="us-east-1")
    assert resp.data[0].embedding == vector("hi")


def test_errors(srv):
    with pytest.raises(llmrelay.AuthenticationError):
        llmrelay.embedding(model="openai/text-embedding-3-small", input="x", api_base=srv.url + "/v1", api_key="bad")
    with pytest.raises(llmrelay.BadRequestError):
        llmrelay.embedding(model="anthropic/claude-x", input="x")
    with pytest.raises(llmrelay.BadRequestError):
        llmrelay.embedding(model="cohere/embed-v4.0", input=[1, 2, 3], **_cases(srv)["cohere/embed-v4.0"])
    with pytest.raises(llmrelay.BadRequestError):
        llmrelay.embedding(model="openai/x", input="x", encoding_format="int8", **_cases(srv)["openai/text-embedding-3-small"])
    tokens = llmrelay.embedding(model="openai/text-embedding-3-small", input=[[1, 2], [3]],
                                **_cases(srv)["openai/text-embedding-3-small"])
    assert len(tokens.data) == 2
