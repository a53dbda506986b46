"""Cache keys and per-call cache controls (pure: no I/O, no clock).

A key is the SHA-256 of the model (the gateway's model group, or the library's model string)
and every parameter that can change the answer, serialised with sorted keys so that the order
a client wrote them in does not matter. Parameters that only change how the answer is
delivered or accounted for (``stream``, ``stream_options``, ``user``, ``metadata``, timeouts,
retries, credentials, the cache controls themselves) are left out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from ..routing.deployment import _positive_number
from ..types import json_default

__all__ = ["CacheControls", "cache_key", "parse_controls", "parse_cache_control_header", "NOT_IN_KEY"]

#: Parameters that never change the answer, so never enter the key.
NOT_IN_KEY = frozenset(
    {
        "stream", "stream_options", "user", "metadata", "litellm_metadata", "tags", "cache", "caching",
        "timeout", "request_timeout", "stream_timeout", "stream_idle_timeout", "num_retries", "max_retries",
        "api_key", "extra_headers", "headers", "drop_params", "mock_response", "fallbacks",
        "context_window_fallbacks", "content_policy_fallbacks", "litellm_logging_obj", "proxy_server_request",
        "litellm_call_id", "logger_fn", "azure_ad_token",
    }
)


def _default(obj: Any) -> Any:
    try:
        return json_default(obj)
    except TypeError:
        dump = getattr(obj, "model_dump", None)
        if dump is not None:
            return dump()
        return repr(obj)


def cache_key(model: str, messages: Any, params: Mapping[str, Any]) -> str:
    """The hex SHA-256 identifying an answer: ``model`` + ``messages`` + answer-changing params."""
    material = {k: v for k, v in params.items() if k not in NOT_IN_KEY and v is not None}
    material["model"] = model
    material["messages"] = messages
    blob = orjson.dumps(material, default=_default, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class CacheControls:
    """What one call asked of the cache.

    ``no_cache``: do not answer from the cache (the fresh answer is still stored);
    ``no_store``: do not store this answer; ``ttl``: seconds to keep it (else the cache's
    default); ``max_age`` (``s-maxage``): accept only an entry at most this many seconds old;
    ``namespace``: a separate key space; ``use_cache``: opt in when the cache is ``default_off``.
    """

    no_cache: bool = False
    no_store: bool = False
    ttl: float | None = None
    max_age: float | None = None
    namespace: str | None = None
    use_cache: bool | None = None


NO_CONTROLS = CacheControls()


def _seconds(value: Any, what: str) -> float | None:
    return _positive_number(value, f"cache {what} (seconds)")


def parse_controls(value: Any, header: str | None = None) -> CacheControls:
    """``cache={...}`` (LiteLLM's keys) and/or a ``Cache-Control`` header → :class:`CacheControls`.

    Raises ValueError for a malformed value; unknown keys are ignored (lenient with input).
    """
    fields: dict[str, Any] = {}
    if header:
        fields.update(parse_cache_control_header(header))
    if value is not None:
        if not isinstance(value, Mapping):
            raise ValueError(f"'cache' must be an object like {{\"no-cache\": true}}, got {value!r}")
        for name, item in value.items():
            key = str(name).lower().replace("_", "-")
            if key == "no-cache":
                fields["no_cache"] = bool(item)
            elif key == "no-store":
                fields["no_store"] = bool(item)
            elif key == "ttl":
                fields["ttl"] = _seconds(item, "ttl")
            elif key in ("s-maxage", "s-max-age", "max-age"):
                fields["max_age"] = _seconds(item, key)
            elif key == "namespace":
                if item is not None and not isinstance(item, str):
                    raise ValueError(f"cache namespace must be a string, got {item!r}")
                fields["namespace"] = item or None
            elif key == "use-cache":
                fields["use_cache"] = bool(item)
    return CacheControls(**fields) if fields else NO_CONTROLS


def parse_cache_control_header(header: str) -> dict[str, Any]:
    """HTTP request ``Cache-Control`` directives → :class:`CacheControls` fields.

    ``no-cache`` and ``no-store`` as in HTTP; ``max-age=N``/``s-maxage=N`` accept only entries
    at most N seconds old. Malformed directives are ignored.
    """
    out: dict[str, Any] = {}
    for part in header.split(","):
        name, _, arg = part.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            out["no_cache"] = True
        elif name == "no-store":
            out["no_store"] = True
        elif name in ("max-age", "s-maxage"):
            try:
                out["max_age"] = max(0.0, float(arg.strip().strip('"')))
            except ValueError:
                pass
    return out
