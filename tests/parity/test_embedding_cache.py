"""LiteLLM's embedding caching and ``mock_response`` (tests/local_testing/test_caching.py:
test_embedding_caching*, test_cache_override): each input item is cached apart, against a
fake OpenAI embeddings upstream that records what was really sent."""

from __future__ import annotations

import uuid

import pytest

import llmrelay as litellm
from servers.embedding_servers import KEY, FakeEmbeddingServer, vector


@pytest.fixture
def emb():
    with FakeEmbeddingServer() as server:
        yield server


def kw(server) -> dict:
    return {"model": "text-embedding-ada-002", "api_base": server.url + "/v1", "api_key": KEY}


def sent(server) -> list:
    return [b["input"] for b in server.bodies("/v1/embeddings")]


def test_whole_list_hit(emb):
    litellm.cache = litellm.Cache()
    text = [f"small text {uuid.uuid4()}"]
    e1 = litellm.embedding(input=text, caching=True, **kw(emb))
    e2 = litellm.embedding(input=text, caching=True, **kw(emb))
    assert len(sent(emb)) == 1
    assert e2["data"][0]["embedding"] == e1["data"][0]["embedding"] == vector(text[0])
    assert e1._hidden_params["cache_hit"] is False and e2._hidden_params["cache_hit"] is True
    assert e2._hidden_params["response_cost"] == 0 and e1._hidden_params["response_cost"] > 0
    assert e2.usage.prompt_tokens == e1.usage.prompt_tokens != 0


async def test_items_cached_apart_partial_hit_keeps_order(emb):
    litellm.cache = litellm.Cache()
    common, new = f"hey how's it going {uuid.uuid4()}", f"I'm fine {uuid.uuid4()}"
    first = await litellm.aembedding(input=[f"{uuid.uuid4()}", common], caching=True, **kw(emb))
    second = await litellm.aembedding(input=[common, new], caching=True, **kw(emb))
    assert sent(emb)[-1] == [new]  # only the missing item went upstream
    assert second._hidden_params["cache_hit"] is True
    assert second.data[0]["embedding"] == first.data[1]["embedding"] == vector(common)
    assert second.data[1]["embedding"] == vector(new)
    assert [d["index"] for d in second.data] == [0, 1]
    third = await litellm.aembedding(input=[common, new, "this is a new text"], caching=True, **kw(emb))
    assert third.usage.prompt_tokens > second.usage.prompt_tokens


async def test_mock_response_items_then_list():
    litellm.cache = litellm.Cache()
    a, b = f"hello {uuid.uuid4()}", f"world {uuid.uuid4()}"
    e1 = await litellm.aembedding(model="text-embedding-ada-002", input=a, caching=True,
                                  mock_response="0.1,0.2,0.3,0.4,0.5")
    e2 = await litellm.aembedding(model="text-embedding-ada-002", input=b, caching=True,
                                  mock_response="0.6,0.7,0.8,0.9,1.0")
    e3 = await litellm.aembedding(model="text-embedding-ada-002", input=[a, b], caching=True)
    assert e3["data"][0]["embedding"] == e1["data"][0]["embedding"] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert e3["data"][1]["embedding"] == e2["data"][0]["embedding"]
    assert e3._hidden_params["cache_hit"] is True and e3.usage.prompt_tokens != 0
    single = await litellm.aembedding(model="text-embedding-ada-002", input=a, caching=True)
    assert len(single.data) == 1 and single._hidden_params["cache_hit"] is True


def test_caching_false_and_mock_response_without_a_cache():
    litellm.cache = litellm.Cache()
    r1 = litellm.embedding(model="text-embedding-ada-002", input=["hello who are you"], caching=False,
                           mock_response="0.1,0.2,0.3,0.4,0.5")
    r2 = litellm.embedding(model="text-embedding-ada-002", input=["hello who are you"], caching=False,
                           mock_response="0.6,0.7,0.8,0.9,1.0")
    assert r1.data[0].embedding != r2.data[0].embedding
    litellm.cache = None
    plain = litellm.embedding(model="text-embedding-3-small", input=["a", "b"], mock_response=[0.5, 0.25])
    assert [d.embedding for d in plain.data] == [[0.5, 0.25], [0.5, 0.25]] and plain.usage.prompt_tokens == 2
    assert plain._hidden_params["response_cost"] > 0
    assert len(litellm.embedding(model="text-embedding-3-small", input="x", mock_response=True).data[0].embedding) == 1536


def test_base64_vectors_are_cached_as_sent(emb):
    litellm.cache = litellm.Cache()
    inputs = [f"{uuid.uuid4()} hello this is ishaan", f"{uuid.uuid4()} hello this is ishaan again"]
    v1 = litellm.embedding(input=inputs, caching=True, encoding_format="base64", **kw(emb))
    v2 = litellm.embedding(input=inputs, caching=True, encoding_format="base64", **kw(emb))
    floats = litellm.embedding(input=inputs, caching=True, **kw(emb))
    assert v2._hidden_params["cache_hit"] is True
    assert v2.data[0]["embedding"] == v1.data[0]["embedding"] and isinstance(v1.data[0]["embedding"], str)
    assert floats._hidden_params["cache_hit"] is False  # another encoding is another entry


async def test_callbacks_charge_only_what_went_upstream(emb):
    from llmrelay.integrations.custom_logger import CustomLogger
    from llmrelay.integrations.dispatch import wait_pending

    costs = []

    class Costs(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            costs.append((kwargs["cache_hit"], kwargs["response_cost"]))

    litellm.callbacks = [Costs()]
    litellm.cache = litellm.Cache()
    a, b = f"first {uuid.uuid4()}", f"second {uuid.uuid4()}"
    await litellm.aembedding(input=[a], caching=True, **kw(emb))
    await litellm.aembedding(input=[a], caching=True, **kw(emb))
    await litellm.aembedding(input=[a, b], caching=True, **kw(emb))
    await wait_pending()
    assert costs[0][1] > 0 and costs[1] == (True, 0.0)
    assert costs[2][0] is True and costs[2][1] > 0  # b went upstream and is charged
