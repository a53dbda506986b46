"""LiteLLM's caching calls and the assertions its tests make (tests/local_testing/test_caching.py,
docs/my-website/docs/caching/all_caches.md), on every backend, against a fake OpenAI upstream
that counts what really went upstream."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import llmrelay as litellm
from servers.openai_server import DEFAULT_TEXT
from servers.redis_server import SKIP_REASON, TEST_DB, redis_url, unique_prefix


def _cache(kind: str, tmp_path, **kw) -> litellm.Cache:
    if kind == "redis":
        url = redis_url()
        if url is None:
            pytest.skip(SKIP_REASON)
        host, port = url.removeprefix("redis://").split("/")[0].split(":")
        # a generous command timeout: the shared test machine is often loaded
        return litellm.Cache(type="redis", host=host, port=port, password=None, db=TEST_DB,
                             namespace=unique_prefix("par"), redis_timeout=5, **kw)
    if kind == "disk":
        return litellm.Cache(type="disk", disk_cache_dir=str(tmp_path / "c"), **kw)
    return litellm.Cache(**kw)


@pytest.fixture(params=["local", "disk", "redis"])
def kind(request) -> str:
    return request.param


def messages() -> list[dict]:
    return [{"role": "user", "content": f"write a one sentence poem about: {uuid.uuid4()}"}]


def ask(upstream, msgs, **kw):
    return litellm.completion(model="gpt-3.5-turbo", messages=msgs, api_base=upstream.url + "/v1",
                              api_key="sk-x", **kw)


def test_hit_is_the_stored_answer_same_id_and_created(kind, tmp_path, upstream):
    litellm.cache = _cache(kind, tmp_path)
    msgs = messages()
    r1 = ask(upstream, msgs, caching=True, max_tokens=20)
    r2 = ask(upstream, msgs, caching=True, max_tokens=20)
    r3 = ask(upstream, msgs, caching=True, temperature=0.5)
    assert len(upstream.chat_requests) == 2  # r2 was a hit, r3 has other params
    assert r1.id == r2.id and r1.created == r2.created
    assert r1.choices[0].message.content == r2.choices[0].message.content == DEFAULT_TEXT
    assert r2._hidden_params["cache_hit"] is True and r1._hidden_params["cache_hit"] is False
    assert r3.id != r1.id
    assert r2._hidden_params["response_cost"] == 0  # a hit costs nothing
    assert r1._hidden_params["response_cost"] > 0


def test_stream_hit_keeps_the_stream_id(kind, tmp_path, upstream):
    litellm.cache = _cache(kind, tmp_path)
    msgs = messages()
    first = [c.id for c in ask(upstream, msgs, stream=True, max_tokens=40, temperature=0.2)]
    second = ask(upstream, msgs, stream=True, max_tokens=40, temperature=0.2)
    ids = [c.id for c in second]
    assert len(upstream.chat_requests) == 1
    assert ids[-1] == first[-1]
    assert second._hidden_params["cache_hit"] is True and second._hidden_params["response_cost"] == 0


async def test_async_hit_and_cache_controls(kind, tmp_path, upstream):
    litellm.cache = _cache(kind, tmp_path)
    msgs = messages()
    kw = {"model": "gpt-3.5-turbo", "messages": msgs, "api_base": upstream.url + "/v1", "api_key": "sk-x"}
    r1 = await litellm.acompletion(**kw, cache={"ttl": 25})
    r2 = await litellm.acompletion(**kw, cache={"s-maxage": 25})
    assert r2.id == r1.id
    r3 = await litellm.acompletion(**kw, caching=True, cache={"no-cache": True})
    assert r3.id != r1.id and r3._hidden_params["cache_hit"] is False
    await asyncio.sleep(0)


def test_ttl_zero_keeps_nothing(upstream):
    """``Cache(ttl=0)``, ``ttl=0`` and ``cache={"ttl": 0}``: each call goes upstream."""
    litellm.cache = litellm.Cache(ttl=0)
    msgs = messages()
    assert ask(upstream, msgs, caching=True).id != ask(upstream, msgs, caching=True).id
    litellm.cache = litellm.Cache()
    msgs = messages()
    r1 = ask(upstream, msgs, caching=True, ttl=0)
    r2 = ask(upstream, msgs, caching=True)
    assert r1.id != r2.id  # r1 was not kept
    assert "ttl" not in upstream.chat_requests[0]  # ttl= is a cache setting, never sent upstream
    msgs = messages()
    r3 = ask(upstream, msgs, cache={"ttl": 0})
    assert ask(upstream, msgs).id != r3.id


def test_mock_response_is_cached_like_any_answer():
    litellm.cache = litellm.Cache()
    msgs = messages()
    r1 = litellm.completion(model="gpt-3.5-turbo", messages=msgs, caching=True, mock_response="Hello world from cache test")
    r2 = litellm.completion(model="gpt-3.5-turbo", messages=msgs, caching=True)
    r3 = litellm.completion(model="gpt-4.1-nano", messages=msgs, caching=True, mock_response="Different model response")
    assert r2.choices[0].message.content == "Hello world from cache test" and r2.id == r1.id
    assert r3.choices[0].message.content == "Different model response"


def test_default_off_mode(upstream):
    from llmrelay.caching import CacheMode

    litellm.cache = litellm.Cache(type="local", mode=CacheMode.default_off)
    msgs = messages()
    assert ask(upstream, msgs).id != ask(upstream, msgs).id
    r3 = ask(upstream, msgs, caching=True)
    assert ask(upstream, msgs, caching=True).id == r3.id


async def test_get_cache_key_add_cache_and_get_cache(kind, tmp_path, upstream):
    """``litellm.cache.get_cache_key(...)``, ``add_cache(result, cache_key=...)``,
    ``async_get_cache(...)``: the same keys ``completion()`` uses."""
    litellm.cache = _cache(kind, tmp_path)
    msgs = messages()
    response1 = litellm.completion(model="gpt-3.5-turbo", messages=msgs, mock_response="Hello world from cache test",
                                   caching=False)
    key = litellm.cache.get_cache_key(model="gpt-3.5-turbo", messages=msgs)
    assert key == litellm.cache.get_cache_key(model="gpt-3.5-turbo", messages=msgs, litellm_call_id="x", stream=True)
    assert key != litellm.cache.get_cache_key(model="gpt-3.5-turbo", messages=msgs, temperature=0.2)
    litellm.cache.add_cache(result=response1, cache_key=key)
    stored = await litellm.cache.async_get_cache(model="gpt-3.5-turbo", messages=msgs)
    assert stored["id"] == response1.id
    assert litellm.cache.get_cache(cache_key=key)["id"] == response1.id
    hit = litellm.completion(model="gpt-3.5-turbo", messages=msgs)  # served from what add_cache stored
    assert hit.id == response1.id and hit._hidden_params["cache_hit"] is True


def test_enable_and_disable_cache():
    litellm.enable_cache(type="local", supported_call_types=["completion"])
    assert litellm.cache is not None and litellm.cache.type == "local"
    litellm.disable_cache()
    assert litellm.cache is None
    litellm.disable_cache()  # disabling a cache that is off
    assert litellm.cache is None
    litellm.update_cache(type="local")
    assert litellm.cache.type == "local"


async def test_text_completion_cached_when_its_call_type_is(upstream):
    """test_redis_cache_atext_completion: ``supported_call_types=["atext_completion"]``."""
    litellm.cache = litellm.Cache(supported_call_types=["atext_completion"])
    prompt = f"write a one sentence poem about: {uuid.uuid4()}"
    kw = {"model": "gpt-3.5-turbo-instruct", "prompt": prompt, "max_tokens": 40, "temperature": 1,
          "api_base": upstream.url + "/v1", "api_key": "sk-x", "custom_llm_provider": "openai"}
    response1 = await litellm.atext_completion(**kw)
    response2 = await litellm.atext_completion(**kw)
    assert response1.id == response2.id and len(upstream.chat_requests) == 1
    assert response2.choices[0].text == response1.choices[0].text
