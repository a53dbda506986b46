"""The gateway's response cache: ``litellm_settings.cache: true`` + ``cache_params``.

Per request, before the Router: the controls come from the body's ``cache`` object (LiteLLM's
``{"no-cache": true, "no-store": true, "ttl": 60, "s-maxage": 600, "namespace": "x"}``) and the
``Cache-Control`` request header (``no-cache``, ``no-store``, ``max-age``/``s-maxage``); the key
hashes the model group (the name the client asked for) and every answer-changing parameter.
A hit is answered without touching the Router (no deployment, no limits of a deployment, no
upstream); a miss is stored once it succeeded (a stream: once it ended normally). Responses
say ``x-llmrelay-cache: hit|miss``; hits also carry ``x-litellm-cache-key``.
"""

from __future__ import annotations

from typing import Any

from ..caching import Cache, parse_controls
from ..caching.keys import CacheControls
from ..caching.replay import decode_entry

__all__ = ["GatewayCache", "CacheRequest", "build_gateway_cache"]

_HIT = (b"x-llmrelay-cache", b"hit")
_UNREAD = object()
_MISS = (b"x-llmrelay-cache", b"miss")


class CacheRequest:
    """One request's cache decision: its key and controls."""

    __slots__ = ("cache", "key", "controls", "hit", "_entry")

    def __init__(self, cache: Cache, key: str, controls: CacheControls) -> None:
        self.cache = cache
        self.key = key
        self.controls = controls
        self.hit = False
        self._entry: Any = _UNREAD

    def redis_key(self, link: Any) -> str | None:
        """The entry's Redis key when the cache lives on ``link`` (another round trip on that
        Redis may read it: :meth:`prefetched`), else None."""
        backend = self.cache.backend
        if getattr(backend, "link", None) is not link or self.controls.no_cache:
            return None
        return backend.prefix + self.key

    def prefetched(self, raw: bytes | None) -> None:
        """The entry as read by another round trip (the keys' admission): no lookup of its own."""
        self._entry = raw

    async def acall(self, models: Any, request: Any) -> Any:
        """The cached answer to a chat :class:`~.ingress.CanonicalRequest`, or the Router's
        (stored when it completes)."""
        cache = self.cache
        stream = request.stream
        if self._entry is _UNREAD:
            entry = await cache.alookup(self.key, self.controls)
        else:
            entry = decode_entry(self._entry, self.controls.max_age)
        if entry is not None:
            self.hit = True
            return cache.replay(entry, request.model, stream, self.key,
                                stream_options=request.params.get("stream_options"), messages=request.messages)
        result = await models.acall(request)
        if stream:
            cache.store_when_complete(result, self.key, self.controls)
        else:
            await cache.astore(self.key, result, self.controls)
        return result

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.hit:
            return [_HIT, (b"x-litellm-cache-key", self.key.encode())]
        return [_MISS]


class GatewayCache:
    """The gateway's :class:`~llmrelay.caching.Cache` and how a request selects it."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def request(self, scope: dict, request: Any) -> CacheRequest | None:
        """Pop ``cache`` from a chat request's params; its cache decision, or None when not cached.

        Raises ValueError for a malformed ``cache`` object (a 400 for the client).
        """
        params = request.params
        raw = params.pop("cache", None)
        header = None
        for name, value in scope["headers"]:
            if name == b"cache-control":
                header = value.decode("latin-1")
                break
        controls = parse_controls(raw, header)
        if not self.cache.wanted("acompletion", None, controls):
            return None
        return CacheRequest(self.cache, self.cache.key(request.model, request.messages, params, controls), controls)


def build_gateway_cache(params: dict[str, Any] | None) -> GatewayCache | None:
    """From ``cache_params`` (None: no cache). Raises ValueError/TypeError for bad params."""
    if params is None:
        return None
    return GatewayCache(Cache(**params))


#: ``cache_params`` keys (LiteLLM's names) the gateway understands.
CACHE_PARAMS = frozenset({
    "type", "host", "port", "password", "url", "ttl", "namespace", "supported_call_types", "mode",
    "disk_cache_dir", "max_size_in_memory", "default_in_memory_ttl", "default_in_redis_ttl", "db",
    "username", "ssl", "redis_timeout",
})


def cache_settings(enabled: Any, params: Any) -> dict[str, Any] | None:
    """``litellm_settings.cache`` + ``cache_params`` → ``Cache(**kwargs)`` or None (cache off).

    Raises ValueError with a message naming the bad value.
    """
    if enabled is None and params is None:
        return None
    if enabled is not None and not isinstance(enabled, bool):
        raise ValueError(f"litellm_settings.cache must be true or false, got {enabled!r}")
    if params is not None and not isinstance(params, dict):
        raise ValueError("litellm_settings.cache_params must be a mapping (type, host, port, ttl, ...)")
    if enabled is not True:  # as LiteLLM: cache_params alone do not turn the cache on
        return None
    out = dict(params or {})
    unknown = sorted(set(out) - CACHE_PARAMS)
    if unknown:
        raise ValueError(f"unknown cache_params key(s) {unknown}; known: {', '.join(sorted(CACHE_PARAMS))}")
    kind = str(out.get("type") or "local").lower()
    if kind not in ("local", "redis", "disk"):
        raise ValueError(f"cache_params.type {kind!r} is not supported; use local, redis or disk")
    if out.get("mode", "default_on") not in ("default_on", "default_off"):
        raise ValueError(f"cache_params.mode must be default_on or default_off, got {out['mode']!r}")
    ttl = out.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0):
        raise ValueError(f"cache_params.ttl must be a positive number of seconds, got {ttl!r}")
    return out
