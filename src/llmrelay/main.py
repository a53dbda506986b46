"""``completion`` and ``acompletion``: validate, resolve the provider, send, wrap.

The two functions share everything but the waiting: both build a :class:`Call` with
:func:`prepare_call`, and both go through the same retry policy (:func:`retryable`,
:func:`retry_delay`; the router uses it too).
"""

from __future__ import annotations

import logging
import random
import sys
import time
from time import perf_counter
from typing import Any

from orjson import dumps as _dumps

from . import settings
from .exceptions import (
    APIConnectionError,
    APIError,
    BadRequestError,
    ContextWindowExceededError,
    LLMRelayError,
    Timeout,
)
from .logging_obj import start_call
from .provider_headers import additional_headers
from .providers import registry
from .response_format import response_format_param
from .retry_after import DEFAULT_MAX_RETRY_AFTER, capped
from .providers.base import OPENAI_PARAMS, SHAPE_ERRORS, Call, HttpRequest, shape_error
from .mock import is_mocked
from .streaming import CustomStreamWrapper
from .types import ModelResponse

__all__ = ["completion", "acompletion", "prepare_call", "validate_messages", "validate_params", "retryable", "retry_delay"]

log = logging.getLogger("llmrelay")
_module = sys.modules["llmrelay"]
_DEFAULTS = settings.DEFAULTS

#: Keyword arguments that configure the call itself rather than the model.
_CALL_KWARGS = {
    "api_base",
    "base_url",
    "api_key",
    "timeout",
    "request_timeout",
    "stream_timeout",
    "num_retries",
    "max_retries",
    "extra_headers",
    "headers",
    "extra_body",
    "custom_llm_provider",
    "drop_params",
    "mock_response",
    "mock_tool_calls",
    "mock_timeout",
    "mock_delay",
    "mock_testing_fallbacks",
    "complete_response",
    "additional_drop_params",
    "fallbacks",
    "context_window_fallback_dict",
    "mock_testing_content_policy_fallbacks",
    "mock_testing_context_window_fallbacks",
    "mock_testing_rate_limit_error",
    "ssl_verify",
    "merge_reasoning_content_in_choices",
    "stream",
    "messages",
    "model",
}

_NUMBER_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INT_PARAMS = ("n", "max_tokens", "max_completion_tokens", "top_logprobs", "seed")
_VALID_ROLES = {"system", "user", "assistant", "tool", "function", "developer"}
#: Every parameter validate_params looks at.
_CHECKED_PARAMS = frozenset((*_NUMBER_PARAMS, *_INT_PARAMS, "stop", "tools", "functions", "stream_options",
                             "response_format", "logit_bias"))


def _bad(message: str, model: Any = None) -> BadRequestError:
    return BadRequestError(message, model=model if isinstance(model, str) else None)


def validate_messages(messages: Any, model: Any = None, allow_empty: bool = False) -> list[dict[str, Any]]:
    """Messages must be a non-empty list of dicts, each with a known ``role`` (empty is allowed
    with ``allow_empty``, for mock calls: LiteLLM's ``messages`` defaults to ``[]``)."""
    if messages is None and allow_empty:
        return []
    if not isinstance(messages, list):
        raise _bad(f"messages must be a list of dicts, got {type(messages).__name__}", model)
    if not messages and not allow_empty:
        raise _bad("messages must not be empty", model)
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            if hasattr(message, "model_dump"):
                message = message.model_dump(exclude_none=True)
            else:
                raise _bad(f"messages[{i}] must be a dict, got {type(message).__name__}", model)
        role = message.get("role")
        if not isinstance(role, str):
            raise _bad(f"messages[{i}] has no 'role' (one of {sorted(_VALID_ROLES)})", model)
        if role not in _VALID_ROLES:
            raise _bad(f"messages[{i}] has an unknown role {role!r} (one of {sorted(_VALID_ROLES)})", model)
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _bad(
                f"messages[{i}].content must be a string or a list of content parts, "
                f"got {type(content).__name__}",
                model,
            )
        out.append(message)
    return out


def validate_params(params: dict[str, Any], model: Any = None) -> None:
    """Type checks for the OpenAI parameters, before any network call."""
    if _CHECKED_PARAMS.isdisjoint(params):  # (a gateway's stream often has none of them)
        return
    for name in _NUMBER_PARAMS:
        value = params.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise _bad(f"{name} must be a number, got {type(value).__name__} {value!r}", model)
    for name in _INT_PARAMS:
        value = params.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _bad(f"{name} must be an integer, got {type(value).__name__} {value!r}", model)
    n = params.get("n")
    if n is not None and n < 1:
        raise _bad(f"n must be at least 1, got {n}", model)
    stop = params.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
        isinstance(stop, list) and all(isinstance(s, str) for s in stop)
    ):
        raise _bad(f"stop must be a string or a list of strings, got {stop!r}", model)
    for name in ("tools", "functions"):
        value = params.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(t, dict) for t in value)):
            raise _bad(f"{name} must be a list of dicts", model)
    for name in ("stream_options", "response_format", "logit_bias"):
        value = params.get(name)
        if value is not None and not isinstance(value, dict):
            raise _bad(f"{name} must be a dict, got {type(value).__name__}", model)


def prepare_call(model: Any, messages: Any, stream: bool, kwargs: dict[str, Any],
                 mocked: bool = False) -> tuple[Call, dict[str, Any]]:
    """Validate the user's arguments and build the :class:`Call` (no I/O).

    Returns the call and the transport options (timeout, retries). A ``mocked`` call (nothing
    is sent) may have no messages, and a ``provider/model`` whose provider llmrelay does not
    serve is answered under that provider's name (LiteLLM knows more providers than llmrelay
    serves; its tests mock calls to them).
    """
    if not isinstance(model, str) or not model.strip():
        raise _bad(f"model must be a non-empty string like 'openai/gpt-4o-mini', got {model!r}")
    if not isinstance(stream, bool):
        raise _bad(f"stream must be True or False, got {stream!r}", model)
    # The settings as settings.get reads them (the package's attribute, else the default),
    # read here without a call each.
    user = _module.__dict__
    aliases = user.get("model_alias_map", _DEFAULTS["model_alias_map"])
    if aliases:
        model = aliases.get(model, model)
    messages = validate_messages(messages, model, mocked)
    try:
        provider_name, provider_model = registry.resolve(model, kwargs.get("custom_llm_provider"))
    except BadRequestError:
        if not mocked:
            raise
        provider_name, provider_model = _mock_resolve(model, kwargs.get("custom_llm_provider"))
    params: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _CALL_KWARGS:
            continue
        if key in OPENAI_PARAMS:
            if value is not None:
                params[key] = value
        else:
            extra[key] = value
    dropped = kwargs.get("additional_drop_params")
    if dropped and params:  # LiteLLM's: these parameters are never sent, whatever the provider
        for name in dropped:
            params.pop(name, None)
    if params:
        if "response_format" in params:
            params["response_format"] = response_format_param(params["response_format"])
        if not _CHECKED_PARAMS.isdisjoint(params):
            validate_params(params, model)
        if not stream:
            params.pop("stream_options", None)
    headers = kwargs.get("headers")
    extra_headers = dict(headers) if headers else {}
    more = kwargs.get("extra_headers")
    if more:
        extra_headers.update(more)
    extra_body = kwargs.get("extra_body") or {}
    if not isinstance(extra_body, dict):
        raise _bad("extra_body must be a dict", model)
    drop = kwargs.get("drop_params")
    call = Call(
        provider_name,
        provider_model,
        messages,
        params,
        stream,
        kwargs.get("api_base") or kwargs.get("base_url"),
        kwargs.get("api_key"),
        extra_headers,
        dict(extra_body),
        user.get("drop_params", _DEFAULTS["drop_params"]) if drop is None else bool(drop),
        extra,
        provider_model,
    )
    timeout = kwargs.get("timeout")
    if timeout is None:
        if stream:
            timeout = kwargs.get("stream_timeout")
        if timeout is None:
            timeout = kwargs.get("request_timeout")
            if timeout is None:
                timeout = user.get("request_timeout", _DEFAULTS["request_timeout"])
    if timeout is not None:
        timeout = _timeout_seconds(timeout, model)
    retries = kwargs.get("num_retries")
    if retries is None:
        retries = kwargs.get("max_retries")
        if retries is None:
            retries = user.get("num_retries", _DEFAULTS["num_retries"]) or 0
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise _bad(f"num_retries must be a non-negative integer, got {retries!r}", model)
    verify = kwargs.get("ssl_verify")
    if verify is None:
        verify = user.get("ssl_verify", _DEFAULTS["ssl_verify"])
    if verify is not True and not isinstance(verify, (bool, str)):
        raise _bad(f"ssl_verify must be True, False or the path of a CA bundle, got {verify!r}", model)
    merge = bool(kwargs.get("merge_reasoning_content_in_choices"))
    return call, {"timeout": timeout, "retries": retries, "ssl_verify": verify, "merge_reasoning": merge}


def _mock_resolve(model: str, custom_llm_provider: Any) -> tuple[str, str]:
    """(provider, model) of a mocked call whose provider llmrelay does not serve: the
    ``custom_llm_provider`` or the model's prefix; a bare unknown name still raises."""
    if isinstance(custom_llm_provider, str) and custom_llm_provider:
        prefix = custom_llm_provider + "/"
        return custom_llm_provider, model[len(prefix):] if model.startswith(prefix) else model
    head, sep, rest = model.partition("/")
    if sep and head and rest:
        return head, rest
    return registry.resolve(model)


def _first_given(kwargs: dict[str, Any], names: tuple[str, ...], default: Any) -> Any:
    """The first of ``names`` the caller gave (not None), else ``default``."""
    for name in names:
        value = kwargs.get(name)
        if value is not None:
            return value
    return default


def _timeout_seconds(timeout: Any, model: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool):
        raise _bad(f"timeout must be a number of seconds, got {timeout!r}", model)
    if isinstance(timeout, (int, float)):
        if timeout <= 0:
            raise _bad(f"timeout must be positive, got {timeout!r}", model)
        return float(timeout)
    # httpx.Timeout / openai-style objects: use their read timeout
    for attr in ("read", "total", "timeout"):
        value = getattr(timeout, attr, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    raise _bad(f"timeout must be a number of seconds, got {timeout!r}", model)


_RETRYABLE = (APIConnectionError, Timeout)


def retryable(exc: BaseException) -> bool:
    """429, 408, 5xx, connection errors and timeouts; never 400/401/403/404/422."""
    if isinstance(exc, _RETRYABLE):
        return True
    if isinstance(exc, APIError):
        status = exc.status_code
        return status == 429 or status == 408 or status >= 500
    return False


def retry_delay(exc: BaseException | None, attempt: int, cap: float = DEFAULT_MAX_RETRY_AFTER) -> float:
    """Retry-After when the upstream sent a usable one (at most ``cap`` seconds), else
    exponential backoff with jitter."""
    after = capped(getattr(exc, "retry_after", None), cap)
    if after is not None:
        return after
    base = min(0.5 * (2**attempt), 8.0)
    return base * (0.75 + random.random() * 0.5)


def _hidden(call: Call, url: str, headers: Any) -> dict[str, Any]:
    return {"custom_llm_provider": call.provider, "api_base": url.split("?", 1)[0], "model": call.model,
            "additional_headers": additional_headers(headers) if headers else {}}


def _stream_hidden(call: Call, url: str) -> dict[str, Any]:
    """A stream's :func:`_hidden` but its ``additional_headers``, made when first read
    (:class:`~.streaming.StreamHiddenParams`, ``headers_from``)."""
    return {"custom_llm_provider": call.provider, "api_base": url.split("?", 1)[0], "model": call.model}


def _wrap_stream(call: Call, source: Any, hidden: dict[str, Any], started: float | None = None,
                 response: Any = None) -> CustomStreamWrapper:
    stream = CustomStreamWrapper(
        source,
        model=call.user_model,
        custom_llm_provider=call.provider,
        stream_options=call.params.get("stream_options"),
        messages=call.messages,
        hidden_params=hidden,
    )
    stream._hidden_params.started = started
    if response is not None:
        stream._hidden_params.headers_from = response
    if call.extra:
        from .cost import call_prices

        stream._hidden_params.prices = call_prices(call.extra)
    return stream


def _begin(model: Any, messages: Any, stream: Any, kwargs: dict[str, Any]) -> tuple[Call, dict[str, Any], Any]:
    """Validate and resolve (no I/O): the call, its transport options and its provider."""
    call, options = prepare_call(model, messages, stream, kwargs)
    provider = registry.get_provider(call.provider)
    call.user_model = provider.public_model(call.model)
    return call, options, provider


def _mocked(model: Any, messages: Any, stream: Any, kwargs: dict[str, Any]) -> tuple[float, Any]:
    """A mock call (``mock_response=`` & co.): seconds to wait first, and what then answers."""
    from .mock import mock_completion, mock_wait

    call, options = prepare_call(model, messages, stream, kwargs, mocked=True)
    return mock_wait(kwargs, options["timeout"]), lambda: mock_completion(call, kwargs, options["timeout"])


def _in_process(call: Call, provider: Any) -> Any:
    return _wrap_stream(call, provider.stream_source(call), {"custom_llm_provider": call.provider})


def _response(call: Call, provider: Any, url: str, status: int, headers: Any, body: bytes,
              started: float | None = None) -> ModelResponse:
    if status >= 400 or status < 200:
        raise provider.error(call, status, headers, body)
    try:
        result = provider.parse_response(call, status, headers, body)
    except SHAPE_ERRORS as exc:  # a 200 body of an unexpected shape: typed, not a traceback
        raise shape_error(exc, call.provider, call.user_model, "a response body") from exc
    seconds = None
    if started is not None:
        seconds = perf_counter() - started
        result._response_ms = seconds * 1000.0
    hidden = result._hidden_params = _hidden(call, url, headers)
    hidden["response_cost"] = _call_cost(call, result.usage, seconds)
    return result


def _call_cost(call: Call, usage: Any, seconds: float | None = None) -> float | None:
    """What ``usage`` cost on this call's model (at the call's own prices when it gives some;
    ``seconds``, the call's duration, for per-second prices)."""
    from .cost import call_prices, response_cost

    return response_cost(call.model, call.provider, usage, call_prices(call.extra), seconds)


def _merged(result: Any, options: dict[str, Any]) -> Any:
    """``merge_reasoning_content_in_choices``: a response, or a stream's chunk source, with the
    reasoning moved into ``content`` between ``<think>`` tags."""
    if not options["merge_reasoning"]:
        return result
    from .reasoning import MergedReasoningSource, merge_response

    return merge_response(result) if isinstance(result, ModelResponse) else MergedReasoningSource(result)


def _delay_before_retry(exc: LLMRelayError, attempt: int, options: dict[str, Any], call: Call) -> float | None:
    """Seconds to wait before the next attempt, or None when ``exc`` is final."""
    if attempt >= options["retries"] or not retryable(exc):
        return None
    delay = retry_delay(exc, attempt)
    log.debug("retrying %s after %s (attempt %d, %.2fs)", call.model, type(exc).__name__, attempt + 1, delay)
    return delay


def _uncached(kwargs: dict[str, Any]) -> bool:
    """Whether ``llmrelay.cache`` cannot apply to a call with ``kwargs`` (see :func:`_cache_for`)."""
    return not ("caching" in kwargs or "cache" in kwargs or "ttl" in kwargs or _module.__dict__.get("cache") is not None)


def _cache_for(model: Any, messages: Any, kwargs: dict[str, Any], call_type: str) -> Any:
    """(cache, controls, key) when ``llmrelay.cache`` applies to this call, else None.
    Pops ``caching``/``cache`` from ``kwargs`` either way."""
    if not _uncached(kwargs):
        from .caching import call_cache, library_key

        cached = call_cache(kwargs, call_type)
        if cached is not None:
            return (*cached, library_key(cached[0], model, messages, kwargs, cached[1]))
    return None


def _replay(cache: Any, entry: dict, model: Any, messages: Any, stream: Any, key: str, kwargs: dict[str, Any]) -> Any:
    if not isinstance(stream, bool):
        raise _bad(f"stream must be True or False, got {stream!r}", model)
    return cache.replay(entry, entry.get("model") or model, stream, key,
                        stream_options=kwargs.get("stream_options"), messages=messages)


def _mark_miss(result: Any, key: str) -> None:
    hidden = getattr(result, "_hidden_params", None)
    if isinstance(hidden, dict):
        hidden["cache_hit"] = False
        hidden["cache_key"] = key


# =============================================================================== sync
def completion(
    model: str,
    messages: list[dict[str, Any]] | None = None,
    stream: bool = False,
    **kwargs: Any,
) -> ModelResponse | CustomStreamWrapper:
    """Call a chat model; with ``stream=True`` return a stream of ``chat.completion.chunk``.

    ``model`` is ``"provider/model"`` (``openai/gpt-4o-mini``, ``anthropic/claude-…``) or a
    bare OpenAI model name. Keyword arguments are OpenAI's parameters (``temperature``,
    ``tools``, ``stream_options``…) plus ``api_base``/``base_url``, ``api_key``, ``timeout``,
    ``num_retries``, ``extra_headers``, ``extra_body``, ``custom_llm_provider``,
    ``drop_params`` and the mocks (``mock_response``, ``mock_tool_calls``, ``mock_timeout``,
    ``mock_delay``; see :mod:`llmrelay.mock`). ``fallbacks=[model, ...]`` (names, or dicts of
    ``model`` and arguments to change) are tried in order when the call fails, and
    ``context_window_fallback_dict={model: bigger_model}`` on a ContextWindowExceededError, as
    in LiteLLM. HTTP errors raise from this call; errors inside a
    stream raise from its iteration. Registered callbacks (``llmrelay.callbacks``…) hear of
    the call once: at its end, or at the end of the stream.
    """
    if stream and kwargs.get("complete_response"):
        return _completed(completion(model, messages, stream, **_without(kwargs, "complete_response")), messages)
    if kwargs and ("fallbacks" in kwargs or "context_window_fallback_dict" in kwargs):
        return _with_fallbacks(model, messages, stream, kwargs)
    record = start_call(model, messages, stream, kwargs, False)
    if record is None:
        return _cached_completion(model, messages, stream, kwargs)
    try:
        return record.returned(_cached_completion(model, messages, stream, kwargs))
    except BaseException as exc:
        record.failure(exc)
        raise


def _fallback_plan(model: Any, kwargs: dict[str, Any]) -> tuple[list[tuple[Any, dict[str, Any]]], dict[str, Any]]:
    """LiteLLM's ``completion(fallbacks=[...], context_window_fallback_dict={...})``: the
    (model, kwargs) to try in order — the call's own, then each fallback (a model name, or a
    dict of ``model`` and arguments to change) — and the context-window map."""
    fallbacks = kwargs.get("fallbacks") or []
    windows = kwargs.get("context_window_fallback_dict") or {}
    base = {k: v for k, v in kwargs.items() if k not in ("fallbacks", "context_window_fallback_dict")}
    plan: list[tuple[Any, dict[str, Any]]] = [(model, base)]
    for item in fallbacks if isinstance(fallbacks, list) else [fallbacks]:
        if isinstance(item, dict):
            plan.append((item.get("model", model), {**base, **{k: v for k, v in item.items() if k != "model"}}))
        else:
            plan.append((item, base))
    return plan, windows if isinstance(windows, dict) else {}


def _with_fallbacks(model: Any, messages: Any, stream: Any, kwargs: dict[str, Any]) -> Any:
    """:func:`completion` over :func:`_fallback_plan`: the first that answers; else the last error.
    A ContextWindowExceededError moves to ``context_window_fallback_dict[model]`` first."""
    plan, windows = _fallback_plan(model, kwargs)
    error: BaseException | None = None
    tried: set[Any] = set()
    while plan:
        name, kw = plan.pop(0)
        tried.add(name)
        try:
            return completion(name, messages, stream, **kw)
        except Exception as exc:  # noqa: BLE001 - LiteLLM moves on to the next model on any error
            error = _failed_over(plan, windows, tried, name, kw, exc)
    assert error is not None
    raise error


async def _awith_fallbacks(model: Any, messages: Any, stream: Any, kwargs: dict[str, Any]) -> Any:
    """The async twin of :func:`_with_fallbacks`."""
    plan, windows = _fallback_plan(model, kwargs)
    error: BaseException | None = None
    tried: set[Any] = set()
    while plan:
        name, kw = plan.pop(0)
        tried.add(name)
        try:
            return await acompletion(name, messages, stream, **kw)
        except Exception as exc:  # noqa: BLE001 - LiteLLM moves on to the next model on any error
            error = _failed_over(plan, windows, tried, name, kw, exc)
    assert error is not None
    raise error


def _failed_over(plan: list, windows: dict, tried: set, name: Any, kw: dict[str, Any], exc: Exception) -> Exception:
    """One model of a fallback plan failed: a context-window error puts its bigger model next
    (``context_window_fallback_dict``); returns the error to raise if nothing else answers."""
    bigger = windows.get(name) if isinstance(exc, ContextWindowExceededError) else None
    if bigger is not None and bigger not in tried:
        plan.insert(0, (bigger, kw))
    log.debug("completion with fallbacks: %s failed (%s)", name, type(exc).__name__)
    return exc


def _without(kwargs: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in kwargs.items() if key != name}


def _completed(chunks: Any, messages: Any, stream: Any = None) -> Any:
    """``complete_response=True`` (LiteLLM's): a stream's chunks built into one response."""
    from .builder import stream_chunk_builder

    stream = chunks if stream is None else stream
    response = stream_chunk_builder(list(chunks), messages=messages)
    hidden = getattr(stream, "_hidden_params", None)
    if response is not None and hidden is not None:
        provider = hidden.get("custom_llm_provider")
        if provider:
            response._hidden_params["custom_llm_provider"] = provider
    return response


def _cached_completion(model: Any, messages: Any, stream: Any, kwargs: dict[str, Any]) -> Any:
    """:func:`_completion` through ``llmrelay.cache`` when it applies."""
    cached = _cache_for(model, messages, kwargs, "completion")
    if cached is None:
        return _completion(model, messages, stream, kwargs)
    cache, controls, key = cached
    entry = cache.lookup(key, controls)
    if entry is not None:
        return _replay(cache, entry, model, messages, stream, key, kwargs)
    result = _completion(model, messages, stream, kwargs)
    _mark_miss(result, key)
    if stream:
        cache.store_when_complete(result, key, controls)
    else:
        cache.store(key, result, controls)
    return result


def _completion(model: Any, messages: Any, stream: Any, kwargs: dict[str, Any]) -> Any:
    if kwargs and is_mocked(kwargs):
        wait, answer = _mocked(model, messages, stream, kwargs)
        if wait:
            time.sleep(wait)
        return answer()
    call, options, provider = _begin(model, messages, stream, kwargs)
    if provider.in_process:
        return _in_process(call, provider) if call.stream else provider.complete(call)
    from .transport import sync as transport

    request = provider.build_request(call)
    attempt = 0
    while True:
        try:
            started = perf_counter()
            response = transport.send(request, options["timeout"], call.provider, call.user_model,
                                          ssl_verify=options["ssl_verify"])
            if call.stream and 200 <= response.status < 400:
                decoder = provider.stream_decoder(call)
                source = transport.SyncStreamSource(response, decoder, call.provider, call.user_model)
                return _wrap_stream(call, _merged(source, options), _stream_hidden(call, request.url),
                                    started, response)
            return _merged(_response(call, provider, request.url, response.status, response.headers,
                                     response.read(), started), options)
        except LLMRelayError as exc:
            delay = _delay_before_retry(exc, attempt, options, call)
            if delay is None:
                raise
            attempt += 1
            time.sleep(delay)


# =============================================================================== async
async def acompletion(
    model: str,
    messages: list[dict[str, Any]] | None = None,
    stream: bool = False,
    **kwargs: Any,
) -> ModelResponse | CustomStreamWrapper:
    """The async twin of :func:`completion` (natively async; ``async for`` over streams)."""
    if stream and kwargs.get("complete_response"):
        result = await acompletion(model, messages, stream, **_without(kwargs, "complete_response"))
        return _completed([chunk async for chunk in result], messages, result)
    if kwargs and ("fallbacks" in kwargs or "context_window_fallback_dict" in kwargs):
        return await _awith_fallbacks(model, messages, stream, kwargs)
    record = start_call(model, messages, stream, kwargs, True)
    if record is None:
        if _uncached(kwargs):  # (one coroutine less on the common path)
            return await _acompletion(model, messages, stream, kwargs)
        return await _cached_acompletion(model, messages, stream, kwargs)
    try:
        return record.returned(await _cached_acompletion(model, messages, stream, kwargs))
    except BaseException as exc:
        record.failure(exc)
        raise


async def _cached_acompletion(model: Any, messages: Any, stream: Any, kwargs: dict[str, Any]) -> Any:
    """:func:`_acompletion` through ``llmrelay.cache`` when it applies."""
    cached = _cache_for(model, messages, kwargs, "acompletion")
    if cached is None:
        return await _acompletion(model, messages, stream, kwargs)
    cache, controls, key = cached
    entry = await cache.alookup(key, controls)
    if entry is not None:
        return _replay(cache, entry, model, messages, stream, key, kwargs)
    result = await _acompletion(model, messages, stream, kwargs)
    _mark_miss(result, key)
    if stream:
        cache.store_when_complete(result, key, controls)
    else:
        await cache.astore(key, result, controls)
    return result


_aio: Any = None  # llmrelay.transport.aio, imported by the first async call (not per call)


def _load_aio() -> Any:
    global _aio
    from .transport import aio

    _aio = aio
    return aio


async def _acompletion(model: Any, messages: Any, stream: Any, kwargs: dict[str, Any]) -> Any:
    import asyncio

    if kwargs and is_mocked(kwargs):
        wait, answer = _mocked(model, messages, stream, kwargs)
        if wait:
            await asyncio.sleep(wait)
        return answer()
    call, options, provider = _begin(model, messages, stream, kwargs)
    if provider.in_process:
        return _in_process(call, provider) if call.stream else await provider.acomplete(call)
    transport = _aio or _load_aio()
    request = provider.build_request(call)
    attempt = 0
    while True:
        try:
            started = perf_counter()
            response = await transport.send(request, options["timeout"], call.provider, call.user_model,
                                                ssl_verify=options["ssl_verify"])
            if call.stream and 200 <= response.status < 400:
                decoder = provider.stream_decoder(call)
                source = transport.AsyncStreamSource(response, decoder, call.provider, call.user_model)
                return _wrap_stream(call, _merged(source, options), _stream_hidden(call, request.url),
                                    started, response)
            return _merged(_response(call, provider, request.url, response.status, response.headers,
                                     await response.read(), started), options)
        except LLMRelayError as exc:
            delay = _delay_before_retry(exc, attempt, options, call)
            if delay is None:
                raise
            attempt += 1
            await asyncio.sleep(delay)


# =============================================================================== prepared streams
#: Request keyword arguments a prepared stream takes: OpenAI parameters, none of the call's own.
PLAIN_PARAMS = frozenset(OPENAI_PARAMS) - frozenset(_CALL_KWARGS)
_registered: Any = None  # integrations.dispatch.registered, once the first plan is worked out


class StreamPlan:
    """A deployment's streamed chat call worked out once (issue 18): what :func:`prepare_call`
    and the provider's ``build_request`` make of the deployment's own keyword arguments (the
    provider, the model names, the URL and headers, the transport options), so that a routed
    stream adds only the request's messages and OpenAI parameters (:func:`astream_planned`).

    Made only for an OpenAI-format provider (``OpenAIProvider``'s own ``build_request`` and
    key and base resolution) with an explicit ``api_base`` and ``api_key``, a ``provider/model``
    name, no mock, cache, ``custom_llm_provider`` or reasoning merge; used only while the
    deployment's keyword arguments and the module settings it read are what they were."""

    __slots__ = ("model", "kwargs", "provider", "provider_name", "provider_model", "user_model", "api_base",
                 "api_key", "extra_headers", "extra_body", "drop_params", "extra", "params", "url", "headers",
                 "ssl_verify", "drop_setting", "verify_setting")


def stream_plan(model: Any, kwargs: dict[str, Any]) -> StreamPlan | None:
    """The :class:`StreamPlan` for streamed calls of ``model`` with the deployment's ``kwargs``
    (the router's, without the request's), or None: such calls take the general path."""
    from .providers.openai import OpenAIProvider

    if (not isinstance(model, str) or "/" not in model or is_mocked(kwargs) or not _uncached(kwargs)
            or kwargs.get("custom_llm_provider") or kwargs.get("merge_reasoning_content_in_choices")
            or kwargs.get("additional_drop_params") or kwargs.get("fallbacks")
            or kwargs.get("context_window_fallback_dict")
            or not kwargs.get("api_key") or not (kwargs.get("api_base") or kwargs.get("base_url"))):
        return None
    user = _module.__dict__
    if user.get("model_alias_map") or user.get("cache") is not None:
        return None
    params: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in OPENAI_PARAMS and key not in _CALL_KWARGS:
            if value is None:  # (its place in the body would depend on the request's)
                return None
            params[key] = value
    try:
        call, options = prepare_call(model, [{"role": "user", "content": ""}], True,
                                     {**kwargs, "num_retries": 0, "timeout": 1.0})
        provider = registry.get_provider(call.provider)
    except LLMRelayError:
        return None
    kind = type(provider)
    if (provider.in_process or not isinstance(provider, OpenAIProvider)
            or kind.build_request is not OpenAIProvider.build_request
            or kind.resolve_api_base is not OpenAIProvider.resolve_api_base
            or kind.resolve_api_key is not OpenAIProvider.resolve_api_key):
        return None
    call.user_model = provider.public_model(call.model)
    try:
        request = provider.build_request(call)
    except LLMRelayError:
        return None
    plan = StreamPlan()
    plan.model = model
    plan.kwargs = dict(kwargs)
    plan.provider = provider
    plan.provider_name = call.provider
    plan.provider_model = call.model
    plan.user_model = call.user_model
    plan.api_base = call.api_base
    plan.api_key = call.api_key
    plan.extra_headers = call.extra_headers
    plan.extra_body = call.extra_body
    plan.drop_params = call.drop_params
    plan.extra = call.extra
    plan.params = params
    plan.url = request.url
    plan.headers = request.headers
    plan.ssl_verify = options["ssl_verify"]
    plan.drop_setting = user.get("drop_params", _DEFAULTS["drop_params"])
    plan.verify_setting = user.get("ssl_verify", _DEFAULTS["ssl_verify"])
    return plan


def plan_applies(plan: StreamPlan, kwargs: dict[str, Any]) -> bool:
    """Whether ``plan`` (made from a deployment's keyword arguments, now ``kwargs``) still
    gives what :func:`acompletion` would: the same arguments, module settings and provider,
    no callbacks or budget (``acompletion``'s own record of the call)."""
    global _registered
    user = _module.__dict__
    if _registered is None:
        from .integrations.dispatch import registered as _registered
    return (kwargs == plan.kwargs and not user.get("model_alias_map") and user.get("cache") is None
            and user.get("drop_params", _DEFAULTS["drop_params"]) == plan.drop_setting
            and user.get("ssl_verify", _DEFAULTS["ssl_verify"]) == plan.verify_setting
            and user.get("max_budget") is None and _registered() is None
            and registry._cache.get(plan.provider_name) is plan.provider)


async def astream_planned(plan: StreamPlan, messages: Any, params_in: dict[str, Any], timeout: Any) -> Any:
    """``acompletion(plan.model, messages, True, **kwargs)`` for kwargs = the deployment's
    (``plan``'s, checked by :func:`plan_applies`), ``params_in`` (the request's, OpenAI
    parameters only: :data:`PLAIN_PARAMS`), ``num_retries=0`` and ``timeout``: the same
    validation, request, errors and stream, without working the deployment's part out again."""
    model = plan.model
    messages = validate_messages(messages, model)
    params = dict(plan.params)
    for key, value in params_in.items():
        if value is not None:
            params[key] = value
        else:
            params.pop(key, None)
    if params:
        if "response_format" in params:
            params["response_format"] = response_format_param(params["response_format"])
        if not _CHECKED_PARAMS.isdisjoint(params):
            validate_params(params, model)
    provider_model = plan.provider_model
    call = Call(plan.provider_name, provider_model, messages, params, True, plan.api_base, plan.api_key,
                dict(plan.extra_headers), dict(plan.extra_body), plan.drop_params, dict(plan.extra), provider_model)
    timeout = _timeout_seconds(timeout, model)
    call.user_model = plan.user_model
    provider = plan.provider
    request = HttpRequest("POST", plan.url, dict(plan.headers),
                          _dumps(provider.build_body(call, provider.check_params(call))))
    transport = _aio or _load_aio()
    started = perf_counter()
    response = await transport.send(request, timeout, call.provider, call.user_model, ssl_verify=plan.ssl_verify)
    if 200 <= response.status < 400:
        source = transport.AsyncStreamSource(response, provider.stream_decoder(call), call.provider, call.user_model)
        return _wrap_stream(call, source, _stream_hidden(call, request.url), started, response)
    return _response(call, provider, request.url, response.status, response.headers, await response.read(), started)
