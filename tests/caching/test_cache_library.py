"""``llmrelay.cache = llmrelay.Cache(...)``: the library's response cache on every backend,
against a loopback OpenAI server (which counts the calls that really went upstream)."""

from __future__ import annotations

import asyncio
import time

import pytest

import llmrelay
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer, dropped_stream
from servers.redis_server import SKIP_REASON, redis_url, unique_prefix
from timing import DEADLINE, in_one_period, wait_for

MESSAGES = [{"role": "user", "content": "Cache me"}]


def _backend_kwargs(kind: str, tmp_path) -> dict:
    if kind == "redis":
        url = redis_url()
        if url is None:
            pytest.skip(SKIP_REASON)
        return {"type": "redis", "url": url, "namespace": unique_prefix("lib")}
    if kind == "disk":
        return {"type": "disk", "disk_cache_dir": str(tmp_path / "cache")}
    return {"type": "local"}


@pytest.fixture(params=["local", "disk", "redis"])
def cache(request, tmp_path):
    c = llmrelay.Cache(**_backend_kwargs(request.param, tmp_path))
    llmrelay.cache = c
    yield c
    llmrelay.cache = None
    c.clear()


@pytest.fixture
def srv():
    with FakeOpenAIServer() as s:
        yield s


def call(srv, **kw):
    args = {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "api_base": srv.url + "/v1", "api_key": "sk-x",
            "timeout": 10}
    args.update(kw)
    return llmrelay.completion(**args)


async def acall(srv, **kw):
    args = {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "api_base": srv.url + "/v1", "api_key": "sk-x",
            "timeout": 10}
    args.update(kw)
    return await llmrelay.acompletion(**args)


def text_of(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def wait_stored(cache, srv, **kw) -> None:
    """Async stream stores happen in a task just after the stream ends: wait for the entry."""
    deadline = time.monotonic() + DEADLINE
    key = llmrelay.caching.library_key(cache, "openai/gpt-4o-mini", MESSAGES,
                                       {"api_base": srv.url + "/v1", **kw}, llmrelay.caching.keys.NO_CONTROLS)
    while cache.lookup(key) is None:
        assert time.monotonic() < deadline, "the finished stream was never stored"
        time.sleep(0.01)


def test_non_stream_hit_then_stream_hit(cache, srv):
    first = call(srv)
    assert first._hidden_params["cache_hit"] is False
    second = call(srv)
    assert second._hidden_params["cache_hit"] is True
    assert second._hidden_params["cache_key"] == first._hidden_params["cache_key"]
    assert second.choices[0].message.content == DEFAULT_TEXT
    assert second.id == first.id and second.created == first.created  # the stored answer, as LiteLLM
    assert second.usage.total_tokens == first.usage.total_tokens
    chunks = list(call(srv, stream=True, stream_options={"include_usage": True}))
    assert len(srv.chat_requests) == 1  # only the first call went upstream
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text_of(chunks) == DEFAULT_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == first.usage.total_tokens
    assert len({c.id for c in chunks}) == 1


def test_stream_miss_is_stored_when_complete_and_serves_non_stream(cache, srv):
    stream = call(srv, stream=True)
    assert stream._hidden_params["cache_hit"] is False
    assert text_of(list(stream)) == DEFAULT_TEXT
    hit = call(srv)
    assert hit._hidden_params["cache_hit"] is True
    assert hit.choices[0].message.content == DEFAULT_TEXT
    assert hit.choices[0].finish_reason == "stop"
    assert len(srv.chat_requests) == 1


def test_a_cut_stream_is_never_stored(cache, srv):
    srv.enqueue(dropped_stream(after_chunks=3))
    stream = call(srv, stream=True)
    with pytest.raises(llmrelay.APIConnectionError):
        list(stream)
    # a stream closed early by its reader is not stored either
    stream = call(srv, stream=True)
    next(stream)
    stream.close()
    again = call(srv)
    assert again._hidden_params["cache_hit"] is False
    assert len(srv.chat_requests) == 3


async def test_async_stream_and_hit(cache, srv):
    stream = await acall(srv, stream=True)
    assert text_of([c async for c in stream]) == DEFAULT_TEXT
    await asyncio.sleep(0)
    await asyncio.to_thread(wait_stored, cache, srv)
    hit = await acall(srv, stream=True)
    assert hit._hidden_params["cache_hit"] is True
    assert text_of([c async for c in hit]) == DEFAULT_TEXT
    assert len(srv.chat_requests) == 1


def test_controls_no_cache_no_store_and_max_age(cache, srv):
    call(srv)
    fresh = call(srv, cache={"no-cache": True})
    assert fresh._hidden_params["cache_hit"] is False
    assert len(srv.chat_requests) == 2
    other = [{"role": "user", "content": "not stored"}]
    call(srv, messages=other, cache={"no-store": True})
    assert call(srv, messages=other)._hidden_params["cache_hit"] is False
    time.sleep(1.1)
    assert call(srv, cache={"s-maxage": 1})._hidden_params["cache_hit"] is False  # too old for this caller
    assert call(srv, cache={"s-maxage": 60})._hidden_params["cache_hit"] is True


def test_ttl_expiry(cache, srv):
    def store(ttl: float) -> list:  # and hit, within the entry's ttl
        messages = [{"role": "user", "content": f"Cache me for {ttl:g} s"}]
        call(srv, messages=messages, cache={"ttl": int(ttl)})
        assert call(srv, messages=messages)._hidden_params["cache_hit"] is True
        return messages

    messages = in_one_period(store, (1, 4, 16))
    stored = len(srv.chat_requests)
    wait_for(lambda: call(srv, messages=messages)._hidden_params["cache_hit"] is False, what="the entry to expire")
    assert len(srv.chat_requests) == stored + 1  # the hits did not go upstream, the miss did


def test_key_changes_with_the_answer_changing_params_only(cache, srv):
    call(srv, temperature=0.2, user="alice", metadata={"a": 1})
    assert call(srv, temperature=0.2, user="bob")._hidden_params["cache_hit"] is True
    assert call(srv, temperature=0.3)._hidden_params["cache_hit"] is False
    assert call(srv, temperature=0.2, max_tokens=5)._hidden_params["cache_hit"] is False
    assert call(srv, model="openai/gpt-4o", temperature=0.2)._hidden_params["cache_hit"] is False


def test_caching_false_and_default_off(srv):
    llmrelay.cache = llmrelay.Cache(mode="default_off")
    try:
        call(srv)
        assert call(srv)._hidden_params.get("cache_hit") is None  # not cached at all
        call(srv, caching=True)
        assert call(srv, caching=True)._hidden_params["cache_hit"] is True
        llmrelay.cache = llmrelay.Cache()
        call(srv)
        assert call(srv, caching=False)._hidden_params.get("cache_hit") is None
    finally:
        llmrelay.cache = None


def test_no_cache_set_means_cache_kwargs_are_just_dropped(srv):
    assert llmrelay.cache is None
    resp = call(srv, caching=True, cache={"ttl": 5})
    assert resp.choices[0].message.content == DEFAULT_TEXT
    assert "cache" not in srv.chat_requests[-1] and "caching" not in srv.chat_requests[-1]


def test_redis_down_is_a_miss_not_an_error(srv):
    from servers.redis_server import free_port

    llmrelay.cache = llmrelay.Cache(type="redis", host="127.0.0.1", port=free_port())
    try:
        for _ in range(3):
            assert call(srv).choices[0].message.content == DEFAULT_TEXT
        assert len(srv.chat_requests) == 3
        assert llmrelay.cache.link.up is False
    finally:
        llmrelay.cache = None


def test_unsupported_type_is_a_clear_error():
    with pytest.raises(ValueError, match="not supported"):
        llmrelay.Cache(type="s3")
    with pytest.raises(ValueError, match="unknown cache type"):
        llmrelay.Cache(type="memcached")
