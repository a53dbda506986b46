"""The gateway's response cache on ``/v1/embeddings``: one entry per input item (as the library's
and LiteLLM's embedding cache), through the official openai SDK, on the local cache and on a
real Redis shared by two gateway processes."""

from __future__ import annotations

import openai
import pytest

from proxy.harness import Gateway
from servers.embedding_servers import KEY, FakeEmbeddingServer, vector
from servers.redis_server import SKIP_REASON, delete_matching, redis_url, unique_prefix

MASTER = "sk-master-embed-cache-1"


def config(srv_url: str, cache_params: str) -> str:
    return f"""
model_list:
  - model_name: small
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{srv_url}/v1", api_key: os.environ/T_EMB_KEY}}
  - model_name: other
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{srv_url}/v1", api_key: os.environ/T_EMB_KEY}}
litellm_settings:
  cache: true
  cache_params: {cache_params}
general_settings:
  master_key: {MASTER}
"""


@pytest.fixture(scope="module")
def srv():
    with FakeEmbeddingServer() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(srv, tmp_path_factory):
    path = tmp_path_factory.mktemp("embcache") / "config.yaml"
    path.write_text(config(srv.url, "{type: local, ttl: 600}"))
    with Gateway(str(path), env={"T_EMB_KEY": KEY}) as gw:
        yield gw


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=10)


def embed(gw, input, **kw):  # noqa: A002 - the API's name
    raw = client(gw).embeddings.with_raw_response.create(model=kw.pop("model", "small"), input=input, **kw)
    return raw.parse(), raw.headers


def upstream_inputs(srv) -> list:
    return [body["input"] for body in srv.bodies("/v1/embeddings")]


def test_miss_then_hit_without_the_upstream(gateway, srv):
    first, h1 = embed(gateway, ["ec-a1", "ec-b1"])
    assert h1["x-llmrelay-cache"] == "miss"
    calls = len(upstream_inputs(srv))
    second, h2 = embed(gateway, ["ec-a1", "ec-b1"])
    assert h2["x-llmrelay-cache"] == "hit" and h2["x-litellm-response-cost"] == "0.0"
    assert len(upstream_inputs(srv)) == calls  # answered from the cache alone
    assert [d.index for d in second.data] == [0, 1] and second.model == "small"
    for d, text in zip(second.data, ["ec-a1", "ec-b1"]):
        assert d.embedding == pytest.approx(vector(text))  # (the SDK asked for base64: encoded from the cache)
    assert second.usage.prompt_tokens == first.usage.prompt_tokens > 0
    record = gateway.wait_log(lambda r: r.get("cache_hit") is True and r.get("model") == "small")
    assert record["status"] == 200 and record["cost"] == 0


def test_single_string_hit_names_its_key(gateway, srv):
    embed(gateway, "ec-single", encoding_format="float")
    resp, headers = embed(gateway, "ec-single", encoding_format="float")
    assert headers["x-llmrelay-cache"] == "hit" and len(headers["x-litellm-cache-key"]) >= 64
    assert resp.data[0].embedding == vector("ec-single")


def test_partial_hit_sends_only_the_missing_items_and_keeps_the_order(gateway, srv):
    embed(gateway, ["ec-p1", "ec-p2"])
    resp, headers = embed(gateway, ["ec-p3", "ec-p2", "ec-p1", "ec-p4"])
    assert headers["x-llmrelay-cache"] == "hit"
    assert upstream_inputs(srv)[-1] == ["ec-p3", "ec-p4"]
    assert [d.index for d in resp.data] == [0, 1, 2, 3]
    for d, text in zip(resp.data, ["ec-p3", "ec-p2", "ec-p1", "ec-p4"]):
        assert d.embedding == pytest.approx(vector(text))
    assert resp.usage.prompt_tokens == 4  # (the fake counts one token a word: the cached two and the new two)
    # the upstream part is charged: a partial hit is not free
    assert float(headers["x-litellm-response-cost"]) > 0
    record = gateway.wait_log(lambda r: r.get("cache_hit") is True and r.get("cost"))
    assert record["cost"] > 0


def test_key_is_per_model_group_and_params(gateway, srv):
    embed(gateway, "ec-k", encoding_format="float")
    _, h_dims = embed(gateway, "ec-k", encoding_format="float", dimensions=3)
    _, h_group = embed(gateway, "ec-k", encoding_format="float", model="other")
    assert h_dims["x-llmrelay-cache"] == "miss" and h_group["x-llmrelay-cache"] == "miss"
    resp, _ = embed(gateway, "ec-k", encoding_format="float", dimensions=3)
    assert resp.data[0].embedding == vector("ec-k", 3)


def test_client_controls(gateway, srv):
    embed(gateway, "ec-c", encoding_format="float")
    calls = len(upstream_inputs(srv))
    _, headers = embed(gateway, "ec-c", encoding_format="float", extra_body={"cache": {"no-cache": True}})
    assert headers["x-llmrelay-cache"] == "miss" and len(upstream_inputs(srv)) == calls + 1
    _, headers = embed(gateway, "ec-c2", encoding_format="float", extra_headers={"cache-control": "no-store"})
    _, headers = embed(gateway, "ec-c2", encoding_format="float")
    assert headers["x-llmrelay-cache"] == "miss"  # the first was not stored
    with pytest.raises(openai.BadRequestError):
        embed(gateway, "ec-c3", extra_body={"cache": "yes"})


def test_bad_input_is_the_upstreams_error_not_a_cache_error(gateway):
    with pytest.raises(openai.BadRequestError):
        embed(gateway, [])


def test_two_gateways_share_entries_on_redis(srv, tmp_path):
    url = redis_url()
    if url is None:
        pytest.skip(SKIP_REASON)
    namespace = unique_prefix("embgw")
    path = tmp_path / "config.yaml"
    path.write_text(config(srv.url, f'{{type: redis, url: "{url}", namespace: "{namespace}", ttl: 600}}'))
    try:
        with Gateway(str(path), env={"T_EMB_KEY": KEY}) as a, Gateway(str(path), env={"T_EMB_KEY": KEY}) as b:
            _, h1 = embed(a, ["ec-r1", "ec-r2"])
            calls = len(upstream_inputs(srv))
            resp, h2 = embed(b, ["ec-r2", "ec-r1"])
            assert h1["x-llmrelay-cache"] == "miss" and h2["x-llmrelay-cache"] == "hit"
            assert len(upstream_inputs(srv)) == calls
            assert [d.embedding for d in resp.data] == [pytest.approx(vector("ec-r2")), pytest.approx(vector("ec-r1"))]
    finally:
        delete_matching(url, f"llmrelay:cache:{namespace}:*")
