"""The response cache: ``llmrelay.cache = llmrelay.Cache(...)``, as LiteLLM's.

    import llmrelay
    llmrelay.cache = llmrelay.Cache(type="redis", host="127.0.0.1", port=6379, ttl=600)
    llmrelay.completion(model=..., messages=...)                      # stored
    llmrelay.completion(model=..., messages=..., stream=True)         # served from the cache
    llmrelay.completion(..., cache={"no-cache": True})                # ask the model, store again
    llmrelay.completion(..., cache={"no-store": True, "s-maxage": 60})

With ``mode="default_off"`` only calls with ``caching=True`` use it; ``caching=False`` skips
it in either mode. Keys: :func:`llmrelay.caching.keys.cache_key`. Hits carry
``_hidden_params["cache_hit"] = True`` and ``["cache_key"]``. A stream is stored once it has
ended normally (never a cut or failed one) and either kind of answer serves either kind of
request. Identical calls that miss at the same moment all go upstream (no in-flight
de-duplication). The gateway uses the same class (``litellm_settings.cache``/``cache_params``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any, Iterable

from ..routing.deployment import _positive_number
from .backends import DiskBackend, LocalBackend, RedisBackend
from .in_memory import DualCache, InMemoryCache
from .keys import NO_CONTROLS, CacheControls, cache_key, parse_controls
from .replay import decode_entry, encode_entry, replay

__all__ = ["Cache", "CacheMode", "CacheControls", "parse_controls", "cache_key", "TYPES", "enable_cache", "disable_cache", "update_cache",
           "InMemoryCache", "DualCache"]

log = logging.getLogger("llmrelay.cache")

TYPES = ("local", "redis", "disk")
#: LiteLLM's cache types we do not have (a clear error instead of a silent local cache).
_UNSUPPORTED = ("redis-semantic", "qdrant-semantic", "s3", "gcs", "azure-blob", "valkey-semantic")
_CALL_TYPES = ("completion", "acompletion", "embedding", "aembedding", "text_completion", "atext_completion")
_TEXT_AS_CHAT = {"text_completion": "completion", "atext_completion": "acompletion"}
#: Fire-and-forget stores of finished async streams (kept so they are not garbage collected).
_pending: set[asyncio.Task] = set()


class CacheMode(str, enum.Enum):
    """LiteLLM's ``Cache(mode=CacheMode.default_off)`` (plain strings work as well)."""

    default_on = "default_on"
    default_off = "default_off"


class Cache:
    """A response cache on one backend (see the module docstring).

    ``type``: ``"local"`` (this process), ``"redis"`` (shared; ``url`` or ``host``/``port``/
    ``password``/``db``, else ``REDIS_URL``/``REDIS_HOST`` from the environment, else
    127.0.0.1:6379) or ``"disk"`` (``disk_cache_dir``). ``ttl``: default seconds to keep an
    entry (None: until evicted). ``namespace``: prefix of every key. ``supported_call_types``:
    which calls are cached (llmrelay caches ``completion``/``acompletion``,
    ``embedding``/``aembedding``, each input item apart (:mod:`llmrelay.caching.embed`), and
    ``text_completion``/``atext_completion`` through the chat calls they are made of).
    ``mode``: ``"default_on"`` or ``"default_off"``. ``redis_timeout``: seconds per Redis command.
    """

    def __init__(
        self,
        type: str = "local",  # noqa: A002 - LiteLLM's name
        host: str | None = None,
        port: int | str | None = None,
        password: str | None = None,
        url: str | None = None,
        ttl: float | None = None,
        namespace: str | None = None,
        supported_call_types: Iterable[str] | None = None,
        mode: str = "default_on",
        disk_cache_dir: str | None = None,
        max_size_in_memory: int | None = None,
        default_in_memory_ttl: float | None = None,
        default_in_redis_ttl: float | None = None,
        db: int | None = None,
        username: str | None = None,
        ssl: bool = False,
        redis_timeout: float = 0.5,
        **ignored: Any,
    ) -> None:
        kind = str(type or "local").lower()
        if kind in _UNSUPPORTED:
            raise ValueError(f"cache type {kind!r} is not supported by llmrelay; use one of {', '.join(TYPES)}")
        if kind not in TYPES:
            raise ValueError(f"unknown cache type {kind!r}; use one of {', '.join(TYPES)}")
        mode = mode.value if isinstance(mode, CacheMode) else mode
        if mode not in ("default_on", "default_off"):
            raise ValueError(f"cache mode must be 'default_on' or 'default_off', got {mode!r}")
        if ignored:
            log.debug("Cache options accepted and ignored: %s", sorted(ignored))
        self.type = kind
        self.mode = mode
        self.namespace = namespace or None
        supported = set(supported_call_types or _CALL_TYPES)
        # a legacy text completion is made of chat calls: caching it caches those
        supported |= {_TEXT_AS_CHAT[t] for t in supported & set(_TEXT_AS_CHAT)}
        self.supported_call_types = frozenset(supported)
        self.link = None
        if kind == "redis":
            from ..redis_link import get_link, redis_settings_from_env

            settings: dict[str, Any] = {"url": url} if url else {}
            if not url and (host or port or password):
                settings = {"host": host, "port": port, "password": password, "username": username, "ssl": ssl}
            if not settings:
                settings = redis_settings_from_env() or {}
            if db is not None:
                settings["db"] = db
            self.link = get_link(timeout=redis_timeout, **settings)
            self.backend: Any = RedisBackend(self.link)
            default_ttl = default_in_redis_ttl
        elif kind == "disk":
            self.backend = DiskBackend(disk_cache_dir)
            default_ttl = None
        else:
            self.backend = LocalBackend(max_size_in_memory or 10_000)
            default_ttl = default_in_memory_ttl
        self.ttl = _ttl(ttl if ttl is not None else default_ttl)

    def __repr__(self) -> str:
        return f"<Cache type={self.type!r} mode={self.mode!r} ttl={self.ttl}>"

    # ------------------------------------------------------------------ deciding
    def wanted(self, call_type: str, caching: Any = None, controls: CacheControls = NO_CONTROLS) -> bool:
        """Whether a call of ``call_type`` with ``caching=``/``cache=`` uses the cache at all."""
        if caching is False or call_type not in self.supported_call_types:
            return False
        if self.mode == "default_off":
            return bool(caching) or bool(controls.use_cache)
        return True

    def key(self, model: str, messages: Any, params: dict[str, Any], controls: CacheControls = NO_CONTROLS) -> str:
        """The key of this call (``namespace:`` + hex SHA-256)."""
        digest = cache_key(model, messages, params)
        namespace = controls.namespace or self.namespace
        return f"{namespace}:{digest}" if namespace else digest

    def _ttl_for(self, controls: CacheControls) -> float | None:
        return controls.ttl if controls.ttl is not None else self.ttl

    def _keeps(self, controls: CacheControls) -> bool:
        """Whether an answer is stored at all: not with ``no-store`` or a ttl of 0."""
        return not controls.no_store and self._ttl_for(controls) != 0

    # ------------------------------------------------------------------ reading
    def lookup(self, key: str, controls: CacheControls = NO_CONTROLS) -> dict | None:
        """The stored ``chat.completion`` dict for ``key`` (None: miss, or ``no-cache``)."""
        if controls.no_cache:
            return None
        return decode_entry(self.backend.get(key), controls.max_age)

    async def alookup(self, key: str, controls: CacheControls = NO_CONTROLS) -> dict | None:
        return decode_entry(await self.araw(key, controls), controls.max_age)

    async def araw(self, key: str, controls: CacheControls = NO_CONTROLS) -> bytes | None:
        """The stored entry's bytes, undecoded (None: none, or ``no-cache``); see
        :func:`~llmrelay.caching.replay.decode_entry`."""
        if controls.no_cache:
            return None
        return await self.backend.aget(key)

    # ------------------------------------------------------------------ writing
    def store(self, key: str, response: Any, controls: CacheControls = NO_CONTROLS) -> None:
        """Store a whole answer (a ``ModelResponse`` or ``chat.completion`` dict) unless ``no-store``."""
        if self._keeps(controls) and _storable(response):
            self.backend.set(key, encode_entry(response), self._ttl_for(controls))

    async def astore(self, key: str, response: Any, controls: CacheControls = NO_CONTROLS) -> None:
        if self._keeps(controls) and _storable(response):
            await self.backend.aset(key, encode_entry(response), self._ttl_for(controls))

    def store_when_complete(self, stream: Any, key: str, controls: CacheControls = NO_CONTROLS) -> None:
        """Store ``stream``'s answer once it ends normally (nothing if it fails or is closed early)."""
        if not self._keeps(controls):
            return

        def on_end(finished: Any) -> None:
            response = finished.state.response()
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.store(key, response, controls)
                return
            task = loop.create_task(self.astore(key, response, controls))
            _pending.add(task)
            task.add_done_callback(_pending.discard)

        stream.add_end_hook(on_end)

    # ------------------------------------------------------------------ answering
    @staticmethod
    def replay(response: dict, model: str, stream: bool, key: str, *, stream_options: dict | None = None,
               messages: list | None = None) -> Any:
        """A hit as a ``ModelResponse`` or a stream (see :func:`llmrelay.caching.replay.replay`)."""
        return replay(response, model, stream, key, stream_options=stream_options, messages=messages)

    def clear(self) -> None:
        """Remove every entry (in Redis: every entry of this cache's namespace, or all of llmrelay's)."""
        self.backend.clear(self.namespace)

    # ------------------------------------------------------------------ LiteLLM's direct API
    def get_cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The key of a call given as its keyword arguments (``model=``, ``messages=``/``input=``,
        the parameters): the key ``completion(**kwargs)`` reads and writes. ``cache_key=`` is
        returned as is. The model group (``metadata["model_group"]``) stands for the model when
        given, as in LiteLLM's proxy."""
        if kwargs.get("cache_key"):
            return str(kwargs["cache_key"])
        params = dict(kwargs)
        model = params.pop("model", None)
        group = (params.get("metadata") or {}).get("model_group") if isinstance(params.get("metadata"), dict) else None
        messages = params.pop("messages", None)
        try:
            controls = parse_controls(params.pop("cache", None))
        except ValueError:
            controls = NO_CONTROLS
        for name in ("caching", "ttl", "result"):
            params.pop(name, None)
        return library_key(self, str(group or model or ""), messages, params, controls)

    def add_cache(self, result: Any, *args: Any, **kwargs: Any) -> None:
        """Store ``result`` under the key of ``kwargs`` (or ``cache_key=``); ``ttl=`` seconds."""
        key = self.get_cache_key(*args, **kwargs)
        ttl = kwargs.get("ttl", self.ttl)
        if ttl != 0:
            self.backend.set(key, encode_entry(result), ttl)

    async def async_add_cache(self, result: Any, *args: Any, **kwargs: Any) -> None:
        key = self.get_cache_key(*args, **kwargs)
        ttl = kwargs.get("ttl", self.ttl)
        if ttl != 0:
            await self.backend.aset(key, encode_entry(result), ttl)

    def get_cache(self, *args: Any, **kwargs: Any) -> Any:
        """What is stored under the key of ``kwargs`` (or ``cache_key=``): a response is returned
        as a dict; None when absent."""
        return _stored_value(self.backend.get(self.get_cache_key(*args, **kwargs)))

    async def async_get_cache(self, *args: Any, **kwargs: Any) -> Any:
        return _stored_value(await self.backend.aget(self.get_cache_key(*args, **kwargs)))


def _stored_value(blob: Any) -> Any:
    if blob is None:
        return None
    import orjson

    try:
        return orjson.loads(blob)["r"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def enable_cache(type: str = "local", **params: Any) -> Cache:  # noqa: A002 - LiteLLM's name
    """``llmrelay.cache = Cache(type=..., **params)`` (LiteLLM's ``litellm.enable_cache``)."""
    import sys

    cache = Cache(type=type, **params)
    sys.modules["llmrelay"].cache = cache
    return cache


def update_cache(type: str = "local", **params: Any) -> Cache:  # noqa: A002
    """Replace ``llmrelay.cache`` with a new ``Cache(type=..., **params)``."""
    return enable_cache(type, **params)


def disable_cache() -> None:
    """``llmrelay.cache = None``."""
    import sys

    sys.modules["llmrelay"].cache = None


def _ttl(value: Any) -> float | None:
    """Seconds to keep entries; 0 (LiteLLM's ``Cache(ttl=0)``) keeps nothing."""
    return _positive_number(value, "cache ttl (seconds)")


def _storable(response: Any) -> bool:
    """Only whole, successful answers: choices with a finish reason, no error."""
    choices = response.get("choices") if isinstance(response, dict) else getattr(response, "choices", None)
    if not choices:
        return False
    for choice in choices:
        finish = choice.get("finish_reason") if isinstance(choice, dict) else getattr(choice, "finish_reason", None)
        if finish is None:
            return False
    return True


# --------------------------------------------------------------------- the library's call path
def call_cache(kwargs: dict[str, Any], call_type: str) -> tuple[Cache, CacheControls] | None:
    """Pop ``caching``/``cache``/``ttl`` out of a call's kwargs; the cache to use, if any.

    ``ttl=`` (LiteLLM's per-call keyword) is the same as ``cache={"ttl": ...}``."""
    caching = kwargs.pop("caching", None)
    raw = kwargs.pop("cache", None)
    ttl = kwargs.pop("ttl", None)
    if ttl is not None:
        raw = {"ttl": ttl, **(raw if isinstance(raw, dict) else {})} if raw is None or isinstance(raw, dict) else raw
    import sys

    cache = sys.modules["llmrelay"].__dict__.get("cache")
    if cache is None:
        return None
    try:
        controls = parse_controls(raw)
    except ValueError as exc:
        from ..exceptions import BadRequestError

        raise BadRequestError(str(exc), model=kwargs.get("model")) from None
    if not cache.wanted(call_type, caching, controls):
        return None
    return cache, controls


def library_key(cache: Cache, model: str, messages: Any, kwargs: dict[str, Any], controls: CacheControls) -> str:
    """The key of a library call: the model string, messages, answer-changing kwargs and api_base."""
    params = dict(kwargs)
    base = params.pop("base_url", None)
    if base and not params.get("api_base"):
        params["api_base"] = base
    return cache.key(model, messages, params, controls)
