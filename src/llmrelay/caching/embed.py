"""The response cache for ``embedding()``/``aembedding()``: one entry per input item, as LiteLLM's.

A call looks every item up; when all are stored the answer is built from the cache
(``cache_hit``, cost 0) without an upstream call; otherwise only the missing items go upstream
and the answer joins both, in the caller's order (``cache_hit`` is True when any item came from
the cache, as in LiteLLM; ``response_cost`` is what the upstream part cost). Each new vector is
stored with its token count, so a hit's ``usage`` still counts the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import Cache, CacheControls, call_cache, library_key
from .replay import encode_entry, fresh, read_envelope

__all__ = ["EmbedPlan", "plan", "plan_for", "lookup", "alookup", "store", "astore"]


@dataclass
class EmbedPlan:
    """What the cache holds for one embeddings call, and how to finish it."""

    cache: Cache
    controls: CacheControls
    single: bool  # the input was one string (not a list)
    items: list[Any]
    keys: list[str]
    found: dict[int, dict[str, Any]] = field(default_factory=dict)  # index → {"v": vector, "n": tokens}

    @property
    def complete(self) -> bool:
        return len(self.found) == len(self.items)

    @property
    def missing(self) -> list[int]:
        return [i for i in range(len(self.items)) if i not in self.found]

    def missing_input(self) -> Any:
        """The input to send upstream: the missing items (the caller's own value when none was found)."""
        if not self.found:
            return self.items[0] if self.single else self.items
        return [self.items[i] for i in self.missing]

    def read(self, blobs: list[Any]) -> None:
        for index, blob in enumerate(blobs):
            value = _decode(blob, self.controls.max_age)
            if value is not None:
                self.found[index] = value

    def answer(self, model: str, upstream: Any = None) -> Any:
        """The response: the cached vectors (and ``upstream``'s for the missing items), in order."""
        from ..embeddings.base import Embedding, EmbeddingResponse

        vectors: list[Any] = [None] * len(self.items)
        tokens = 0
        for index, value in self.found.items():
            vectors[index] = value["v"]
            tokens += int(value.get("n") or 0)
        hidden: dict[str, Any] = {"cache_hit": True, "cache_key": self.keys[0] if self.single else None,
                                  "response_cost": 0.0}
        if upstream is not None:
            for index, item in zip(self.missing, upstream.data):
                vectors[index] = item["embedding"] if isinstance(item, dict) else item.embedding
            tokens += int(getattr(upstream.usage, "prompt_tokens", 0) or 0)
            upstream_hidden = getattr(upstream, "_hidden_params", None) or {}
            hidden = {**upstream_hidden, **hidden, "response_cost": upstream_hidden.get("response_cost")}
            model = upstream.model or model
        else:
            hidden["custom_llm_provider"] = "cached_response"
        response = EmbeddingResponse(
            object="list", model=model,
            data=[Embedding(object="embedding", index=i, embedding=v) for i, v in enumerate(vectors)],
            usage={"prompt_tokens": tokens, "total_tokens": tokens},
        )
        response._hidden_params = hidden
        return response

    def entries(self, upstream: Any) -> list[tuple[str, bytes]]:
        """(key, entry) for every item ``upstream`` answered (the missing ones)."""
        if not self.cache._keeps(self.controls):
            return []
        from ..tokens import token_counter

        missing = self.missing
        total = int(getattr(upstream.usage, "prompt_tokens", 0) or 0)
        # The upstream's count, shared out by each item's offline count (one item: all of it).
        counts = []
        for index in missing:
            text = self.items[index]
            try:
                counts.append(token_counter(upstream.model or "", text=text) if isinstance(text, str) else len(text))
            except Exception:  # noqa: BLE001 - a count is a nicety of the entry
                counts.append(1)
        offline = sum(counts) or 1
        out = []
        for index, item, count in zip(missing, upstream.data, counts):
            vector = item["embedding"] if isinstance(item, dict) else item.embedding
            share = round(total * count / offline) if total else count
            out.append((self.keys[index], encode_entry({"v": vector, "n": share})))
        return out

    def mark_miss(self, response: Any) -> Any:
        hidden = getattr(response, "_hidden_params", None)
        if isinstance(hidden, dict):
            hidden["cache_hit"] = False
            if self.single:
                hidden["cache_key"] = self.keys[0]
        return response


def _decode(blob: Any, max_age: float | None) -> dict[str, Any] | None:
    entry = read_envelope(blob)
    if entry is None:
        return None
    stored, value = entry
    if type(value) is not dict or "v" not in value:
        return None
    if not fresh(stored, max_age):
        return None
    return value


def plan(model: Any, input: Any, kwargs: dict[str, Any], call_type: str) -> EmbedPlan | None:  # noqa: A002
    """The cache plan of an embeddings call, or None when ``llmrelay.cache`` does not apply.
    Pops ``caching``/``cache``/``ttl`` from ``kwargs`` either way."""
    cached = call_cache(kwargs, call_type)
    if cached is None:
        return None
    cache, controls = cached
    return plan_for(cache, controls, model, input, kwargs, library_key)


def plan_for(cache: Cache, controls: CacheControls, model: Any, input: Any, params: dict[str, Any],  # noqa: A002
             key: Any = None) -> EmbedPlan | None:
    """The cache plan of an embeddings call of ``model`` with ``params`` on ``cache``: one key per
    input item (``key(cache, model, None, params, controls)``, by default ``cache.key``'s), or
    None when the input is not a string or a non-empty list (the call itself reports it)."""
    single = isinstance(input, str)
    items = [input] if single else list(input) if isinstance(input, list) and input else None
    if not items:
        return None
    params = {k: v for k, v in params.items() if k != "input"}
    key = key or Cache.key
    keys = [key(cache, str(model), None, {**params, "input": item}, controls) for item in items]
    return EmbedPlan(cache, controls, single, items, keys)


def lookup(p: EmbedPlan) -> None:
    if not p.controls.no_cache:
        p.read([p.cache.backend.get(k) for k in p.keys])


async def alookup(p: EmbedPlan) -> None:
    if not p.controls.no_cache:
        p.read([await p.cache.backend.aget(k) for k in p.keys])


def store(p: EmbedPlan, upstream: Any) -> None:
    ttl = p.cache._ttl_for(p.controls)
    for key, blob in p.entries(upstream):
        p.cache.backend.set(key, blob, ttl)


async def astore(p: EmbedPlan, upstream: Any) -> None:
    ttl = p.cache._ttl_for(p.controls)
    for key, blob in p.entries(upstream):
        await p.cache.backend.aset(key, blob, ttl)
