"""LiteLLM's InMemoryCache / DualCache (tests/test_litellm/caching/test_in_memory_cache.py and
test_dual_cache.py behaviour), as code written against ``litellm.caching.in_memory_cache`` and
gateway hooks (their ``cache`` argument) use them."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmrelay.caching import DualCache, InMemoryCache

SHORT = 0.05  # seconds: a ttl that has run out after _expire()


def _expire() -> None:
    time.sleep(SHORT * 3)


class _SlowInt(int):
    def __add__(self, value: int) -> "_SlowInt":
        time.sleep(0.01)
        return _SlowInt(int(self) + value)


def test_increment_is_atomic_across_threads():
    cache = InMemoryCache()
    cache.set_cache("counter", _SlowInt(1000))
    barrier = threading.Barrier(8)

    def increment(_: int) -> float:
        barrier.wait()
        return cache.increment_cache("counter", 1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(increment, range(8)))
    assert cache.get_cache("counter") == 1008


def test_async_increment_and_objects_stored_as_they_are():
    cache = InMemoryCache()

    async def run() -> tuple:
        return await cache.async_increment("counter", 2), await cache.async_increment("counter", 3)

    assert asyncio.run(run()) == (2, 5)
    marker = object()
    cache.set_cache("obj", marker)
    assert cache.get_cache("obj") is marker
    cache.set_cache("json", '{"a": 1}')  # a stored JSON string reads back decoded
    assert cache.get_cache("json") == {"a": 1}
    assert cache.get_cache("missing") is None


def test_values_over_the_item_size_are_not_stored():
    cache = InMemoryCache(max_size_per_item=100)  # KB
    assert cache.check_value_size("a" * 1_000_000) is False
    cache.set_cache("big", "a" * 1_000_000)
    assert cache.get_cache("big") is None


def test_ttl_kept_while_alive_and_dropped_on_expiry():
    cache = InMemoryCache()
    cache.set_cache("k", "v1", ttl=10)
    first = cache.ttl_dict["k"]
    cache.set_cache("k", "v2", ttl=10)
    assert cache.ttl_dict["k"] == first and cache.get_cache("k") == "v2"  # expiry not moved
    cache.set_cache("short", "x", ttl=SHORT)
    _expire()
    assert cache.get_cache("short") is None
    assert "short" not in cache.ttl_dict
    cache.set_cache("again", "x", ttl=SHORT)  # expired but never read: set again gets a new expiry
    old = cache.ttl_dict["again"]
    _expire()
    cache.set_cache("again", "y", ttl=SHORT)
    assert cache.ttl_dict["again"] != old


def test_size_bound_evicts_expired_then_soonest_expiring():
    cache = InMemoryCache(max_size_in_memory=3)
    for i in range(3):
        cache.set_cache(f"key_{i}", i, ttl=86400 + i)
    cache.set_cache("key_3", 3, ttl=86400)
    assert len(cache.cache_dict) == len(cache.ttl_dict) == 3
    assert "key_0" not in cache.cache_dict and "key_0" not in cache.ttl_dict

    cache = InMemoryCache(max_size_in_memory=3)
    cache.set_cache("expired_1", 1, ttl=SHORT)
    cache.set_cache("expired_2", 2, ttl=SHORT)
    cache.set_cache("long_lived", 3, ttl=86400)
    _expire()
    cache.set_cache("new_item", 4, ttl=86400)
    assert set(cache.cache_dict) == {"long_lived", "new_item"} == set(cache.ttl_dict)

    cache = InMemoryCache(max_size_in_memory=2)
    cache.set_cache("early", 1, ttl=100)
    cache.set_cache("late", 2, ttl=200)
    cache.set_cache("new", 3, ttl=300)
    assert set(cache.cache_dict) == {"late", "new"}


def test_expiration_heap_stays_one_entry_per_key():
    cache = InMemoryCache(max_size_in_memory=10)
    for i in range(1000):
        cache.set_cache("hot_key", f"value_{i}", ttl=60)
    assert len(cache.expiration_heap) == 1
    cache = InMemoryCache(max_size_in_memory=200, default_ttl=SHORT)
    for cycle in range(3):
        for i in range(5):
            cache.set_cache(f"key_{i}", f"value_{cycle}_{i}", ttl=SHORT)
        _expire()
    for i in range(5):
        cache.set_cache(f"key_{i}", "final", ttl=SHORT)
    assert len(cache.cache_dict) == len(cache.ttl_dict) == len(cache.expiration_heap) == 5


def test_dual_cache_reads_memory_then_the_shared_cache():
    shared = InMemoryCache()  # stands for a Redis cache: same methods
    dual = DualCache(redis_cache=shared, default_in_memory_ttl=60)
    dual.set_cache("a", 1)
    assert shared.get_cache("a") == 1 and dual.in_memory_cache.get_cache("a") == 1
    shared.set_cache("b", 2)
    assert dual.get_cache("b", local_only=True) is None
    assert dual.get_cache("b") == 2 and dual.in_memory_cache.get_cache("b") == 2  # filled from the shared one

    async def run() -> list:
        await dual.async_set_cache("c", 3)
        await dual.async_increment_cache("n", 2)
        return [await dual.async_get_cache("c"), await dual.async_batch_get_cache(["a", "c", "zz"]),
                await dual.async_increment_cache("n", 1)]

    assert asyncio.run(run()) == [3, [1, 3, None], 3]
    dual.delete_cache("a")
    assert dual.get_cache("a") is None


def test_litellm_import_paths():
    import subprocess

    code = """
import llmrelay
llmrelay.install_as_litellm()
from litellm.caching.caching import DualCache as D2
from litellm.caching.dual_cache import DualCache as D1
from litellm.caching.in_memory_cache import InMemoryCache as M1
from llmrelay.caching import DualCache, InMemoryCache
assert D1 is D2 is DualCache and M1 is InMemoryCache
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("ttl", [None, 5])
def test_default_ttl_applies(ttl):
    cache = InMemoryCache(default_ttl=30)
    cache.set_cache("k", 1, ttl=ttl)
    left = cache.get_ttl("k")
    assert 0 < left <= (30 if ttl is None else 5)
