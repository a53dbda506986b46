"""Turn answers into cache entries and cache entries back into answers (pure, no I/O).

An entry is JSON: ``{"t": stored_at_epoch_seconds, "r": <chat.completion dict>}``. A streamed
answer is stored in the same ``chat.completion`` shape (``StreamState.response()`` of the
finished stream), so either kind of request can be served from either kind of answer. A hit is replayed
as a stream through the real stream state machine (one id, role first, content, tool calls,
finish_reason, usage when asked, as every stream), or returned as a ``ModelResponse``. (The
gateway renders an entry this way once and serves later hits from the rendered bytes:
:mod:`llmrelay.proxy.response_cache`.)
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..streaming import CustomStreamWrapper
from ..types import ModelResponse, json_default, new_completion_id

__all__ = ["encode_entry", "decode_entry", "read_envelope", "read_entry", "fresh", "replay", "hit_id", "hit_hidden_params"]


def encode_entry(response: Any, now: float | None = None) -> bytes:
    """The bytes stored for ``response`` (a ``ModelResponse`` or a plain ``chat.completion`` dict)."""
    return orjson.dumps({"t": time.time() if now is None else now, "r": response}, default=json_default)


def read_envelope(blob: bytes | str | None) -> tuple[float, Any] | None:
    """(stored at, the stored value) of an entry :func:`encode_entry` wrote, or None when absent
    or unreadable."""
    if blob is None:
        return None
    try:
        entry = orjson.loads(blob)
        return float(entry["t"]), entry["r"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def read_entry(blob: bytes | str | None) -> tuple[float, dict] | None:
    """(stored at, the stored ``chat.completion`` dict), or None when absent or unreadable."""
    entry = read_envelope(blob)
    if entry is None or type(entry[1]) is not dict or not entry[1].get("choices"):
        return None
    return entry


def fresh(stored: float, max_age: float | None, now: float | None = None) -> bool:
    """Whether an entry stored at ``stored`` is at most ``max_age`` seconds old (None: any age)."""
    return max_age is None or (time.time() if now is None else now) - stored <= max_age


def decode_entry(blob: bytes | str | None, max_age: float | None = None, now: float | None = None) -> dict | None:
    """The stored ``chat.completion`` dict, or None when absent, unreadable or older than ``max_age``."""
    entry = read_entry(blob)
    if entry is None or not fresh(entry[0], max_age, now):
        return None
    return entry[1]


def hit_id(response: dict[str, Any]) -> str:
    """The id a hit of the stored ``response`` carries: the stored one, as LiteLLM's hits (callers
    tell a hit from a miss by comparing ids); a fresh one per hit if none was stored."""
    return response.get("id") or new_completion_id()


def hit_hidden_params(key: str) -> dict[str, Any]:
    """A hit's ``_hidden_params``: ``cache_hit``, ``cache_key``, and no cost."""
    return {"cache_hit": True, "cache_key": key, "custom_llm_provider": "cached_response", "response_cost": 0.0}


def _stream_chunks(response: dict[str, Any], response_id: str) -> list[dict[str, Any]]:
    """A cached answer as upstream-style chunk dicts: the text in one piece per choice."""
    base = {"id": response_id, "created": response.get("created"), "model": response.get("model")}
    if response.get("system_fingerprint"):
        base["system_fingerprint"] = response["system_fingerprint"]
    chunks = []
    finishes = []
    for choice in response.get("choices") or ():
        index = choice.get("index") or 0
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant"}
        if message.get("reasoning_content"):
            delta["reasoning_content"] = message["reasoning_content"]
        delta["content"] = message.get("content") or ""
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {"index": i, "id": call.get("id"), "type": call.get("type") or "function",
                 "function": dict(call.get("function") or {})}
                for i, call in enumerate(message["tool_calls"])
            ]
        if message.get("function_call"):
            delta["function_call"] = dict(message["function_call"])
        chunks.append({**base, "choices": [{"index": index, "delta": delta}]})
        finishes.append({"index": index, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"})
    chunks.append({**base, "choices": finishes, "usage": response.get("usage")})
    return chunks


def replay(response: dict[str, Any], model: str, stream: bool, key: str, *,
           stream_options: dict | None = None, messages: list | None = None, response_id: str | None = None) -> Any:
    """A cache hit as what ``acompletion`` returns: a ``ModelResponse`` or a ``CustomStreamWrapper``.

    A hit keeps the stored answer's ``id`` and ``created``, as LiteLLM's hits do (:func:`hit_id`;
    ``response_id`` sets another); ``_hidden_params`` says ``cache_hit`` and ``cache_key``.
    """
    hidden = hit_hidden_params(key)
    if response_id is None:
        response_id = hit_id(response)
    if stream:
        return CustomStreamWrapper(
            _stream_chunks(response, response_id), model=model, custom_llm_provider="cached_response",
            stream_options=stream_options, messages=messages, hidden_params=hidden,
        )
    data = dict(response)
    data["id"] = response_id
    data["model"] = model
    result = ModelResponse(**data)
    result._hidden_params = hidden
    return result
