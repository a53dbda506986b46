"""LiteLLM's key/value caches for custom code: ``InMemoryCache`` and ``DualCache``.

Gateway hooks get a ``DualCache`` as their ``cache`` argument (LiteLLM's
``async_pre_call_hook(user_api_key_dict, cache, data, call_type)``), and code written against
``litellm.caching.in_memory_cache.InMemoryCache`` / ``litellm.caching.dual_cache.DualCache``
imports these. They are process-local dicts with per-key expiry, not the response cache
(:class:`llmrelay.Cache`).

The rules are LiteLLM's: every entry expires (``default_ttl`` seconds unless ``ttl=`` is
given); setting a key that has not expired keeps its expiry; when ``max_size_in_memory``
entries are stored, expired entries go first, then those that expire soonest; a value larger
than ``max_size_per_item`` KB is not stored; ``get_cache`` decodes a stored JSON string.
"""

from __future__ import annotations

import heapq
import json
import sys
import threading
import time
from typing import Any

__all__ = ["InMemoryCache", "DualCache"]


class InMemoryCache:
    """A dict with per-key expiry and a size bound (LiteLLM's ``InMemoryCache``)."""

    def __init__(self, max_size_in_memory: int | None = 200, default_ttl: float | None = 600,
                 max_size_per_item: int | None = 1024) -> None:
        self.max_size_in_memory = max_size_in_memory or 200
        self.default_ttl = default_ttl or 600
        self.max_size_per_item = max_size_per_item or 1024  # KB
        self.cache_dict: dict[str, Any] = {}
        self.ttl_dict: dict[str, float] = {}
        #: (expiry, key) of every stored key, one entry per key.
        self.expiration_heap: list[tuple[float, str]] = []
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ size and expiry
    def check_value_size(self, value: Any) -> bool:
        """Whether ``value`` is small enough to store (at most ``max_size_per_item`` KB)."""
        try:
            if isinstance(value, (str, bytes, bytearray)):
                size = len(value)
            else:
                size = sys.getsizeof(value)
                if hasattr(value, "model_dump"):
                    size = max(size, len(json.dumps(value.model_dump(), default=str)))
            return size / 1024 <= self.max_size_per_item
        except Exception:  # noqa: BLE001 - an unmeasurable value is stored
            return True

    def _expired(self, key: str, now: float) -> bool:
        expiry = self.ttl_dict.get(key)
        return expiry is not None and now > expiry

    def _remove_key(self, key: str) -> None:
        self.cache_dict.pop(key, None)
        self.ttl_dict.pop(key, None)

    def _rebuild_heap(self) -> None:
        self.expiration_heap = [(expiry, key) for key, expiry in self.ttl_dict.items()]
        heapq.heapify(self.expiration_heap)

    def evict_cache(self) -> None:
        """Drop expired entries, then the ones that expire soonest, until there is room."""
        now = time.time()
        for key in [k for k, expiry in self.ttl_dict.items() if now > expiry]:
            self._remove_key(key)
        self._rebuild_heap()
        while len(self.cache_dict) >= self.max_size_in_memory and self.expiration_heap:
            _, key = heapq.heappop(self.expiration_heap)
            self._remove_key(key)
        while len(self.cache_dict) >= self.max_size_in_memory:  # entries without expiry
            self._remove_key(next(iter(self.cache_dict)))

    # ------------------------------------------------------------------ sync
    def set_cache(self, key: str, value: Any, **kwargs: Any) -> None:
        if not self.check_value_size(value):
            return
        with self._lock:
            now = time.time()
            if key not in self.cache_dict and len(self.cache_dict) >= self.max_size_in_memory:
                self.evict_cache()
            self.cache_dict[key] = value
            current = self.ttl_dict.get(key)
            if current is not None and now <= current:
                return  # an entry that has not expired keeps its expiry
            ttl = kwargs.get("ttl")
            expiry = now + (float(ttl) if ttl is not None else self.default_ttl)
            self.ttl_dict[key] = expiry
            if current is not None or len(self.expiration_heap) > 2 * len(self.ttl_dict):
                self._rebuild_heap()  # (one heap entry per key)
            else:
                heapq.heappush(self.expiration_heap, (expiry, key))

    def set_cache_pipeline(self, cache_list: list[tuple[str, Any]], ttl: float | None = None, **kwargs: Any) -> None:
        for key, value in cache_list:
            self.set_cache(key, value, ttl=ttl, **kwargs)

    def get_cache(self, key: str, **kwargs: Any) -> Any:
        with self._lock:
            if key not in self.cache_dict:
                return None
            if self._expired(key, time.time()):
                self._remove_key(key)
                self._rebuild_heap()
                return None
            value = self.cache_dict[key]
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def batch_get_cache(self, keys: list[str], **kwargs: Any) -> list[Any]:
        return [self.get_cache(key, **kwargs) for key in keys]

    def increment_cache(self, key: str, value: float, **kwargs: Any) -> float:
        """Add ``value`` to the number stored at ``key`` (0 when absent), atomically."""
        with self._lock:
            total = (self.get_cache(key, **kwargs) or 0) + value
            self.set_cache(key, total, **kwargs)
            return total

    def delete_cache(self, key: str) -> None:
        with self._lock:
            self._remove_key(key)
            self._rebuild_heap()

    def flush_cache(self) -> None:
        with self._lock:
            self.cache_dict.clear()
            self.ttl_dict.clear()
            self.expiration_heap.clear()

    def get_ttl(self, key: str, **kwargs: Any) -> float | None:
        """Seconds ``key`` has left (None when absent)."""
        expiry = self.ttl_dict.get(key)
        return None if expiry is None else max(0.0, expiry - time.time())

    # ------------------------------------------------------------------ async twins
    async def async_set_cache(self, key: str, value: Any, **kwargs: Any) -> None:
        self.set_cache(key, value, **kwargs)

    async def async_set_cache_pipeline(self, cache_list: list[tuple[str, Any]], ttl: float | None = None,
                                       **kwargs: Any) -> None:
        self.set_cache_pipeline(cache_list, ttl=ttl, **kwargs)

    async def async_get_cache(self, key: str, **kwargs: Any) -> Any:
        return self.get_cache(key, **kwargs)

    async def async_batch_get_cache(self, keys: list[str], **kwargs: Any) -> list[Any]:
        return self.batch_get_cache(keys, **kwargs)

    async def async_increment(self, key: str, value: float, **kwargs: Any) -> float:
        return self.increment_cache(key, value, **kwargs)

    async def async_delete_cache(self, key: str) -> None:
        self.delete_cache(key)


class DualCache:
    """LiteLLM's two-level cache: an :class:`InMemoryCache` in front of an optional shared one
    (any object with ``get_cache`` / ``set_cache`` and their ``async_`` twins, such as a Redis
    cache). Reads try memory first and fill it from the shared cache; writes go to both."""

    def __init__(self, in_memory_cache: InMemoryCache | None = None, redis_cache: Any = None,
                 default_in_memory_ttl: float | None = None, default_redis_ttl: float | None = None,
                 **_: Any) -> None:
        self.in_memory_cache = in_memory_cache or InMemoryCache()
        self.redis_cache = redis_cache
        self.default_in_memory_ttl = default_in_memory_ttl
        self.default_redis_ttl = default_redis_ttl

    def _memory_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("ttl") is None and self.default_in_memory_ttl is not None:
            return {**kwargs, "ttl": self.default_in_memory_ttl}
        return kwargs

    def _redis_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("ttl") is None and self.default_redis_ttl is not None:
            return {**kwargs, "ttl": self.default_redis_ttl}
        return kwargs

    def update_cache_ttl(self, default_in_memory_ttl: float | None, default_redis_ttl: float | None) -> None:
        if default_in_memory_ttl is not None:
            self.default_in_memory_ttl = default_in_memory_ttl
        if default_redis_ttl is not None:
            self.default_redis_ttl = default_redis_ttl

    def set_cache(self, key: str, value: Any, local_only: bool = False, **kwargs: Any) -> None:
        self.in_memory_cache.set_cache(key, value, **self._memory_kwargs(kwargs))
        if self.redis_cache is not None and not local_only:
            self.redis_cache.set_cache(key, value, **self._redis_kwargs(kwargs))

    def get_cache(self, key: str, local_only: bool = False, **kwargs: Any) -> Any:
        value = self.in_memory_cache.get_cache(key, **kwargs)
        if value is None and self.redis_cache is not None and not local_only:
            value = self.redis_cache.get_cache(key, **kwargs)
            if value is not None:
                self.in_memory_cache.set_cache(key, value, **self._memory_kwargs(kwargs))
        return value

    def batch_get_cache(self, keys: list[str], local_only: bool = False, **kwargs: Any) -> list[Any]:
        return [self.get_cache(key, local_only=local_only, **kwargs) for key in keys]

    def increment_cache(self, key: str, value: float, local_only: bool = False, **kwargs: Any) -> float:
        total = self.in_memory_cache.increment_cache(key, value, **self._memory_kwargs(kwargs))
        if self.redis_cache is not None and not local_only and hasattr(self.redis_cache, "increment_cache"):
            total = self.redis_cache.increment_cache(key, value, **self._redis_kwargs(kwargs))
        return total

    def delete_cache(self, key: str) -> None:
        self.in_memory_cache.delete_cache(key)
        if self.redis_cache is not None and hasattr(self.redis_cache, "delete_cache"):
            self.redis_cache.delete_cache(key)

    def flush_cache(self) -> None:
        self.in_memory_cache.flush_cache()
        if self.redis_cache is not None and hasattr(self.redis_cache, "flush_cache"):
            self.redis_cache.flush_cache()

    async def async_set_cache(self, key: str, value: Any, local_only: bool = False, **kwargs: Any) -> None:
        self.in_memory_cache.set_cache(key, value, **self._memory_kwargs(kwargs))
        if self.redis_cache is not None and not local_only:
            await self.redis_cache.async_set_cache(key, value, **self._redis_kwargs(kwargs))

    async def async_get_cache(self, key: str, local_only: bool = False, **kwargs: Any) -> Any:
        value = self.in_memory_cache.get_cache(key, **kwargs)
        if value is None and self.redis_cache is not None and not local_only:
            value = await self.redis_cache.async_get_cache(key, **kwargs)
            if value is not None:
                self.in_memory_cache.set_cache(key, value, **self._memory_kwargs(kwargs))
        return value

    async def async_batch_get_cache(self, keys: list[str], local_only: bool = False, **kwargs: Any) -> list[Any]:
        return [await self.async_get_cache(key, local_only=local_only, **kwargs) for key in keys]

    async def async_increment_cache(self, key: str, value: float, local_only: bool = False, **kwargs: Any) -> float:
        total = self.in_memory_cache.increment_cache(key, value, **self._memory_kwargs(kwargs))
        if self.redis_cache is not None and not local_only and hasattr(self.redis_cache, "async_increment"):
            total = await self.redis_cache.async_increment(key, value, **self._redis_kwargs(kwargs))
        return total

    async def async_delete_cache(self, key: str) -> None:
        self.in_memory_cache.delete_cache(key)
        if self.redis_cache is not None and hasattr(self.redis_cache, "async_delete_cache"):
            await self.redis_cache.async_delete_cache(key)

    async def async_set_cache_pipeline(self, cache_list: list[tuple[str, Any]], local_only: bool = False,
                                       **kwargs: Any) -> None:
        for key, value in cache_list:
            await self.async_set_cache(key, value, local_only=local_only, **kwargs)
