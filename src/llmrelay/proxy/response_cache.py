"""The gateway's response cache: ``litellm_settings.cache: true`` + ``cache_params``.

Per request, before the Router: the controls come from the body's ``cache`` object (LiteLLM's
``{"no-cache": true, "no-store": true, "ttl": 60, "s-maxage": 600, "namespace": "x"}``) and the
``Cache-Control`` request header (``no-cache``, ``no-store``, ``max-age``/``s-maxage``); the key
hashes the model group (the name the client asked for) and every answer-changing parameter.
A hit is answered without touching the Router (no deployment, no limits of a deployment, no
upstream); a miss is stored once it succeeded (a stream: once it ended normally). Responses
say ``x-llmrelay-cache: hit|miss``; hits also carry ``x-litellm-cache-key``.

A hit on ``/v1/chat/completions`` (when no hook rewrites answers) is served as bytes
(:meth:`CacheRequest.served`): each stored entry is rendered once per process by the general
replay — the stream state machine and the chat encoder, with placeholder id and model — into
the whole SSE body (or JSON body), kept in :class:`Rendered` (a bounded memo keyed by the
entry's bytes); a hit then only puts the id in (the stored one, or a fresh one when none was
stored: :func:`~llmrelay.caching.replay.hit_id`) and the client's model name, and writes the
body at once. The bytes are the general path's, by construction. An entry the templates cannot
express (no usage or ``created`` stored, a placeholder found in the answer itself) is served
by the general replay instead.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import orjson

from ..caching import Cache, parse_controls
from ..caching.keys import CacheControls
from ..caching.replay import decode_entry, fresh, hit_hidden_params, hit_id, read_entry, replay
from .ingress import CanonicalRequest
from .ingress.chat import ChatEncoder, ChatIngress

__all__ = ["GatewayCache", "CacheRequest", "EmbeddingCacheRequest", "build_gateway_cache", "Rendered", "Served"]

log = logging.getLogger("llmrelay.cache")

_HIT = (b"x-llmrelay-cache", b"hit")
_UNREAD = object()
_MISS = (b"x-llmrelay-cache", b"miss")


#: Placeholders the templates are rendered with (JSON-escaped in the body: ``\u0000``), and
#: how they appear in the rendered bytes.
_ID = "\x00llmrelay-cache-id\x00"
_MODEL = "\x00llmrelay-cache-model\x00"
_ID_JSON = orjson.dumps(_ID)[1:-1]
_MODEL_JSON = orjson.dumps(_MODEL)[1:-1]
_CHAT = ChatIngress()


class _Template:
    """A rendered body with ``frames`` places for the id and as many for the model name."""

    __slots__ = ("body", "frames", "size")

    def __init__(self, body: bytes, frames: int) -> None:
        self.body = body
        self.frames = frames
        self.size = len(body)

    def fill(self, response_id: str, model: str) -> bytes:
        return self.body.replace(_ID_JSON, orjson.dumps(response_id)[1:-1]).replace(_MODEL_JSON,
                                                                                  orjson.dumps(model)[1:-1])


def _template(body: bytes, frames: int) -> _Template | None:
    """The template, unless a placeholder is not exactly where the general path put the id and
    the model (the answer itself contains one: such an entry is replayed the general way)."""
    if body.count(_ID_JSON) != frames or body.count(_MODEL_JSON) != frames:
        return None
    return _Template(body, frames)


class _Entry:
    """One stored entry, decoded once: its time, its answer and the bodies rendered from it."""

    __slots__ = ("stored", "response", "bodies", "size")

    def __init__(self, stored: float, response: dict, size: int) -> None:
        self.stored = stored
        self.response = response
        self.bodies: dict[tuple[bool, bool], _Template | None] = {}
        self.size = size

    def render(self, stream: bool, include_usage: bool) -> _Template | None:
        """The chat API's body of this answer by the general replay (a stream: the whole SSE
        body, ``[DONE]`` included), or None when a template cannot express it."""
        response = self.response
        created = response.get("created")
        if type(response.get("usage")) is not dict or type(created) is not int or not created:
            return None  # (the general replay then computes a usage or a time for each hit)
        if response.get("id") and type(response["id"]) is not str:
            return None  # (a template's id is a JSON string)
        if not stream:
            result = replay(response, _MODEL, False, "", response_id=_ID)
            return _template(_CHAT.response_body(result, CanonicalRequest(_MODEL)), 1)
        chunks = replay(response, _MODEL, True, "", response_id=_ID,
                        stream_options={"include_usage": True} if include_usage else None)
        encoder = ChatEncoder(_MODEL)
        frames = [encoder.chunk(chunk) for chunk in chunks]
        return _template(encoder.start() + b"".join(frames) + encoder.end(), len(frames))


class Rendered:
    """Decoded entries and their rendered bodies by the entry's bytes: a memo of at most
    ``max_bytes`` (entries and bodies), least recently used out first. An entry larger than
    1/16 of it is decoded and rendered again on each hit."""

    def __init__(self, max_bytes: int = 8 << 20) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, raw: bytes) -> _Entry | None:
        """The decoded entry (None: unreadable)."""
        entries = self._entries
        entry = entries.get(raw)
        if entry is not None:
            entries.move_to_end(raw)
            return entry
        read = read_entry(raw)
        if read is None:
            return None
        entry = _Entry(read[0], read[1], len(raw))
        if entry.size * 16 <= self.max_bytes:
            entries[raw] = entry
            self._grow(entry.size)
        return entry

    def body(self, raw: bytes, entry: _Entry, stream: bool, include_usage: bool) -> _Template | None:
        """``entry``'s body for this kind of request (rendered on first use)."""
        form = (stream, include_usage)
        bodies = entry.bodies
        if form in bodies:
            return bodies[form]
        try:
            template = entry.render(stream, include_usage)
        except Exception:  # noqa: BLE001 - the general replay answers it (and reports what is wrong)
            log.warning("cache entry not renderable as bytes; replayed the general way", exc_info=True)
            template = None
        bodies[form] = template
        if template is not None and self._entries.get(raw) is entry:
            entry.size += template.size
            self._grow(template.size)
        return template

    def _grow(self, size: int) -> None:
        self.size += size
        entries = self._entries
        while self.size > self.max_bytes and entries:
            _, old = entries.popitem(last=False)
            self.size -= old.size


class Served:
    """A hit answered as bytes: the body, and what the end of the request reads — the
    answer's ``usage`` (a dict), the chunks of a stream, and as the request's result its ``id``
    (the spend log's), ``_hidden_params`` (``cache_hit``) and ``state.response()`` (the answer as
    a ``ModelResponse``, built only when something asks: the callbacks)."""

    __slots__ = ("body", "usage", "chunks", "id", "_hidden_params", "_entry", "_model", "_key")

    def __init__(self, body: bytes, chunks: int, entry: _Entry, model: str, response_id: str, key: str) -> None:
        self.body = body
        self.chunks = chunks
        self.usage = entry.response.get("usage")
        self._hidden_params = hit_hidden_params(key)
        self._entry = entry
        self._model = model
        self.id = response_id
        self._key = key

    @property
    def state(self) -> "Served":
        return self

    def response(self) -> Any:
        """The answer as the general replay makes it (same id and model as the bytes)."""
        return replay(self._entry.response, self._model, False, self._key, response_id=self.id)


class CacheRequest:
    """One request's cache decision: its key and controls."""

    __slots__ = ("cache", "key", "controls", "hit", "_entry", "_rendered")

    def __init__(self, cache: Cache, key: str, controls: CacheControls, rendered: Rendered | None = None) -> None:
        self.cache = cache
        self.key = key
        self.controls = controls
        self.hit = False
        self._entry: Any = _UNREAD
        self._rendered = rendered

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

    async def served(self, request: CanonicalRequest) -> Served | None:
        """A hit on the chat API as its bytes (see the module docstring), or None: a miss, or an
        entry only the general replay serves — :meth:`acall` then goes on without another read."""
        raw = self._entry
        if raw is _UNREAD:
            raw = self._entry = await self.cache.araw(self.key, self.controls)
        rendered = self._rendered
        if raw is None or rendered is None:
            return None
        entry = rendered.entry(raw)
        if entry is None or not fresh(entry.stored, self.controls.max_age):
            return None
        stream = request.stream
        include_usage = False
        if stream:
            options = request.params.get("stream_options")
            if options is not None and type(options) is not dict:
                return None
            include_usage = bool(options and options.get("include_usage"))
        template = rendered.body(raw, entry, stream, include_usage)
        if template is None:
            return None
        self.hit = True
        response_id = hit_id(entry.response)
        return Served(template.fill(response_id, request.model), template.frames if stream else 0, entry,
                      request.model, response_id, self.key)

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


class EmbeddingCacheRequest:
    """One ``/v1/embeddings`` request's cache decision: an entry per input item, as the
    library's :mod:`~llmrelay.caching.embed` keeps them (keyed by the model group the client
    asked for). All items stored: answered from the cache without the Router; some: only the
    missing ones go upstream and the answer joins both, in the client's order."""

    __slots__ = ("plan", "hit")

    def __init__(self, plan: Any) -> None:
        self.plan = plan
        self.hit = False

    def redis_key(self, link: Any) -> None:
        return None  # (several keys: not read in the admission's round trip)

    async def acall(self, models: Any, request: Any) -> Any:
        """The answer: from the cache, the Router's for the missing items, or both joined."""
        from ..caching import embed

        plan = self.plan
        await embed.alookup(plan)
        self.hit = bool(plan.found)
        if plan.complete:
            return plan.answer(request.model)
        request.input = plan.missing_input()
        upstream = await models.acall(request)
        await embed.astore(plan, upstream)
        return plan.answer(request.model, upstream) if plan.found else plan.mark_miss(upstream)

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.hit:
            key = self.plan.keys[0] if self.plan.single else None
            return [_HIT, (b"x-litellm-cache-key", key.encode())] if key else [_HIT]
        return [_MISS]


class GatewayCache:
    """The gateway's :class:`~llmrelay.caching.Cache` and how a request selects it."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.rendered = Rendered()

    def request(self, scope: dict, request: Any) -> "CacheRequest | EmbeddingCacheRequest | None":
        """Pop ``cache`` from a request's params; its cache decision, or None when not cached (a
        chat call: one entry per answer; an embeddings call: :meth:`embedding_request`; any
        other kind of call is not cached).

        Raises ValueError for a malformed ``cache`` object (a 400 for the client).
        """
        kind = request.kind
        if kind != "chat":
            return self.embedding_request(scope, request) if kind == "embedding" else None
        params = request.params
        controls = self._controls(scope, params)
        if not self.cache.wanted("acompletion", None, controls):
            return None
        return CacheRequest(self.cache, self.cache.key(request.model, request.messages, params, controls), controls,
                            self.rendered)

    def embedding_request(self, scope: dict, request: Any) -> EmbeddingCacheRequest | None:
        """Pop ``cache`` from an embeddings request's params; its cache decision, or None when not
        cached (or the input is not a string or a list of them: the upstream reports it).

        Raises ValueError for a malformed ``cache`` object (a 400 for the client).
        """
        controls = self._controls(scope, request.params)
        if not self.cache.wanted("aembedding", None, controls):
            return None
        from ..caching.embed import plan_for

        plan = plan_for(self.cache, controls, request.model, request.input, request.params)
        return EmbeddingCacheRequest(plan) if plan is not None else None

    @staticmethod
    def _controls(scope: dict, params: dict) -> CacheControls:
        raw = params.pop("cache", None)
        header = None
        for name, value in scope["headers"]:
            if name == b"cache-control":
                header = value.decode("latin-1")
                break
        return parse_controls(raw, header)


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
