"""Which request-body keys a gateway client may set: one allow-list for every endpoint.

The gateway trusts its config, never its clients. A client may add to its request:

- the endpoint's OpenAI parameters (:data:`CHAT_PARAMS` for chat completions; other endpoints
  pass their own set),
- keys the gateway itself consumes (:data:`GATEWAY_KEYS`, e.g. ``tags`` for routing),
- provider extras the deployment allows: ``model_info.allowed_client_params`` in the config
  (for a model name served by several deployments, a key must be allowed by all of them).

Everything else is refused with a 400 naming the key. ``extra_body`` is unwrapped: each of its
keys goes through the same policy as a top-level key (and wins over it, as in the OpenAI SDK);
it never reaches the upstream as a raw body patch, so it cannot replace the model, the stream
mode, ``stream_options`` handling, credentials or the URL. Keys that configure where and how the
upstream is called (:func:`is_connection_key`) can never be allowed, not even by the config.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Container, Iterable, Mapping
from typing import Any

from ..providers.base import OPENAI_PARAMS

__all__ = [
    "CHAT_PARAMS",
    "GATEWAY_KEYS",
    "MAX_CLIENT_RETRIES",
    "ROUTING_KEYS",
    "ClientParamError",
    "ClientParamPolicy",
    "is_connection_key",
    "screen_client_params",
]

#: OpenAI's chat-completions body parameters a client may set (``model``, ``messages`` and
#: ``stream`` are read by the endpoint itself before the rest is screened).
CHAT_PARAMS = OPENAI_PARAMS | frozenset({"metadata", "prompt_cache_key", "safety_identifier"})

#: Keys the gateway reads itself (routing, the response cache's controls); accepted from any client.
GATEWAY_KEYS = frozenset({"tags", "cache"})

#: LiteLLM's per-request routing controls a client may set, checked by :meth:`ClientParamPolicy.routing`:
#: ``fallbacks`` (model names of this gateway, or ``{"model": name, "messages": [...], ...}``),
#: ``num_retries`` (at most :data:`MAX_CLIENT_RETRIES`), ``timeout`` (seconds; it can only shorten
#: the configured timeouts), ``disable_fallbacks`` and the ``mock_testing_*`` flags.
ROUTING_KEYS = frozenset({
    "fallbacks", "num_retries", "timeout", "mock_testing_fallbacks", "mock_testing_content_policy_fallbacks",
    "mock_testing_context_window_fallbacks", "mock_testing_rate_limit_error", "disable_fallbacks",
})

#: The most retries a client's ``num_retries`` asks for (a larger number is lowered to it): a
#: request may not turn into an unbounded number of upstream calls.
MAX_CLIENT_RETRIES = 5

#: Set by the endpoint from its own top-level fields; never from ``extra_body``.
_ENDPOINT_KEYS = frozenset({"model", "messages", "stream", "stream_options", "extra_body", "input", "prompt"})

#: Call configuration of ``completion()`` and the Router: where and how the upstream is called.
_CONNECTION_KEYS = frozenset(
    {
        "api_base", "base_url", "api_key", "api_version", "custom_llm_provider", "extra_headers",
        "headers", "mock_response", "mock_tool_calls", "mock_timeout", "mock_delay",
        "max_retries", "request_timeout",
        "stream_timeout", "stream_idle_timeout", "organization", "azure_ad_token",
        "azure_ad_token_provider", "model_list", "litellm_params", "drop_params",
        "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks",
        "specific_deployment", "ssl_verify", "model_info", "litellm_settings",
    }
)
#: Also connection settings: credentials anywhere in a name, and provider settings that pick
#: the host the configured credentials are sent to (region, location, project) or files and
#: memory on the gateway's machine (a local model's path and sizes).
_CONNECTION_PATTERN = re.compile(
    r"api_key|access_key|secret|_token$|token_provider|credential|password|api_base|base_url|endpoint"
    r"|^(aws|vertex|azure|gcp|google)_|region|location|project|profile|^model_path$"
    r"|^n_(ctx|threads|gpu_layers|batch)$"
)


class ClientParamError(ValueError):
    """A client set a body key it may not set. ``param`` names it (``extra_body.x`` inside
    ``extra_body``); ``str(error)`` is the message for the client."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def is_connection_key(key: str) -> bool:
    """Whether ``key`` configures the upstream call (host, credentials, retries, timeouts…)."""
    return key in _CONNECTION_KEYS or bool(_CONNECTION_PATTERN.search(key))


def _check(key: Any, where: str, known: Collection[str], extras: Collection[str], model: str | None) -> str:
    name = f"{where}{key}"
    if not isinstance(key, str):
        raise ClientParamError(where.rstrip(".") or "body", f"Body keys must be strings, got {key!r}.")
    if is_connection_key(key):
        raise ClientParamError(
            name,
            f"The parameter {name!r} cannot be set by a client of the gateway: where and how the "
            "upstream is called (host, credentials, retries, timeouts) comes from the gateway's config.",
        )
    if key in known or key in GATEWAY_KEYS or key in ROUTING_KEYS or key in extras:
        return key
    served = f" for model {model!r}" if model else ""
    raise ClientParamError(
        name,
        f"The parameter {name!r} is not accepted by this gateway{served}: clients may set the "
        "endpoint's OpenAI parameters and the provider extras the deployment allows "
        "(model_info.allowed_client_params in the gateway's config).",
    )


def screen_client_params(
    params: Mapping[str, Any],
    allowed_extras: Collection[str] = (),
    *,
    known: Collection[str] = CHAT_PARAMS,
    model: str | None = None,
) -> dict[str, Any]:
    """The keys of a request body to pass on, or :class:`ClientParamError` for the first refused.

    ``params`` is the body without the endpoint's own fields (``model``, ``messages``/``input``,
    ``stream``), ``known`` the endpoint's OpenAI parameters, ``allowed_extras`` the provider
    extras the model's deployments allow. ``extra_body`` is unwrapped into the result.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "extra_body":
            continue
        out[_check(key, "", known, allowed_extras, model)] = value
    extra_body = params.get("extra_body")
    if extra_body is None:
        return out
    if not isinstance(extra_body, dict):
        raise ClientParamError("extra_body", "'extra_body' must be a JSON object.")
    for key, value in extra_body.items():
        if key in _ENDPOINT_KEYS:
            raise ClientParamError(
                f"extra_body.{key}",
                f"The parameter 'extra_body.{key}' cannot be set: the gateway fixes it from the "
                "request's own fields and its config (set it at the top level of the body where "
                "the API has it).",
            )
        out[_check(key, "extra_body.", known, allowed_extras, model)] = value
    return out


class ClientParamPolicy:
    """The allow-list of one gateway: per public model name, the provider extras its deployments
    allow (``model_info.allowed_client_params``), validated when the gateway starts."""

    def __init__(self, deployments: Iterable[Any]) -> None:
        """``deployments``: objects with ``model_name`` and ``model_info`` (the config's
        :class:`~llmrelay.proxy.config.Deployment`). Raises ``ValueError`` for a bad list."""
        groups: dict[str, frozenset[str] | None] = {}
        for dep in deployments:
            allowed = _allowed_of(dep.model_name, dep.model_info or {})
            previous = groups.get(dep.model_name)
            groups[dep.model_name] = allowed if previous is None else previous & allowed
        self._extras = {name: extras or frozenset() for name, extras in groups.items()}

    def extras(self, model: str) -> frozenset[str]:
        """The provider extras clients may send to ``model``."""
        return self._extras.get(model, frozenset())

    def screen(self, model: str, params: Mapping[str, Any], known: Collection[str] = CHAT_PARAMS) -> dict[str, Any]:
        """:func:`screen_client_params` with ``model``'s allowed extras."""
        return screen_client_params(params, self.extras(model), known=known, model=model)

    def routing(self, params: dict[str, Any], served: Container[str], known: Collection[str] = CHAT_PARAMS) -> list[str]:
        """Check (and normalise, in place) the screened ``params``' LiteLLM routing controls
        (:data:`ROUTING_KEYS`); the model names the request's ``fallbacks`` may call (for the
        caller's model access check). ``served``: the gateway's model names. Raises
        :class:`ClientParamError`: a fallback must be a model of this gateway, its own
        arguments pass the same screen as a request's, and ``num_retries`` is a count."""
        for flag in ROUTING_KEYS.difference(("fallbacks", "num_retries", "timeout")).intersection(params):
            if not isinstance(params[flag], bool):
                raise ClientParamError(flag, f"{flag!r} must be true or false.")
        if "num_retries" in params:
            n = params["num_retries"]
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ClientParamError("num_retries", "'num_retries' must be a non-negative integer.")
            params["num_retries"] = min(n, MAX_CLIENT_RETRIES)
        if "timeout" in params:
            t = params.pop("timeout")
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < float("inf"):
                raise ClientParamError("timeout", "'timeout' must be a positive number of seconds.")
            params["timeout_cap"] = float(t)  # (the router's bound on its own timeouts)
        value = params.get("fallbacks")
        if value is None:
            params.pop("fallbacks", None)
            return []
        if not isinstance(value, list):
            raise ClientParamError("fallbacks", "'fallbacks' must be a list of model names (or {\"model\": name, ...} objects).")
        names: list[str] = []
        items: list[Any] = []
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("model"), str):
                name = item["model"]
                extra = {k: v for k, v in item.items() if k not in ("model", "messages")}
                try:
                    extra = self.screen(name, extra, known)
                except ClientParamError as exc:
                    raise ClientParamError(f"fallbacks.{exc.param}", str(exc)) from None
                if ROUTING_KEYS.intersection(extra):
                    raise ClientParamError("fallbacks", "A fallback's own arguments cannot set fallbacks, retries or mock flags.")
                if "messages" in item:
                    if not isinstance(item["messages"], list):
                        raise ClientParamError("fallbacks", "A fallback's 'messages' must be a list.")
                    extra["messages"] = item["messages"]
                items.append({"model": name, **extra})
            elif isinstance(item, str):
                name = item
                items.append(item)
            else:
                raise ClientParamError("fallbacks", f"'fallbacks' must list model names (or {{\"model\": name, ...}} objects), got {item!r}.")
            if name not in served:
                raise ClientParamError("fallbacks", f"'fallbacks': the model {name!r} is not served by this gateway.")
            names.append(name)
        params["fallbacks"] = items
        return names


def _allowed_of(model_name: str, model_info: Mapping[str, Any]) -> frozenset[str]:
    value = model_info.get("allowed_client_params")
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(k, str) and k for k in value):
        raise ValueError(
            f"model {model_name!r}: model_info.allowed_client_params must be a list of parameter names, got {value!r}"
        )
    bad = sorted(k for k in value if is_connection_key(k) or k in _ENDPOINT_KEYS)
    if bad:
        raise ValueError(
            f"model {model_name!r}: model_info.allowed_client_params lists {', '.join(bad)}, which "
            "configure the upstream call (or are fixed by the endpoint) and cannot be given to clients"
        )
    return frozenset(value)
