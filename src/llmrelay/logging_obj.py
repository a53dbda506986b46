"""``Logging``: the record of one call, and what tells the callbacks about it (once).

LiteLLM code passes it to ``CustomStreamWrapper``; llmrelay also uses it to build the
``kwargs`` every callback receives (``model``, ``messages``, ``optional_params``,
``litellm_params`` with ``metadata``, ``litellm_call_id``, ``response_cost``,
``standard_logging_object``…) and to make sure a call reports exactly one success or failure:
the first of :meth:`success` / :meth:`failure` / the stream hooks wins, later ones do nothing.

Nothing here runs per chunk: a stream reports at its end, from its state machine.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
from datetime import datetime
from typing import Any

import orjson

from . import settings as _settings

__all__ = ["Logging", "start_call", "response_cost"]

log = logging.getLogger("llmrelay.callbacks")

#: Keyword arguments of a call that are not model parameters (kept out of ``optional_params``).
_NOT_PARAMS = frozenset({
    "api_key", "api_base", "base_url", "timeout", "request_timeout", "stream_timeout", "num_retries",
    "max_retries", "extra_headers", "headers", "extra_body", "custom_llm_provider", "drop_params",
    "mock_response", "metadata", "litellm_call_id", "litellm_logging_obj", "litellm_metadata",
    "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "stream_idle_timeout",
    "model_info", "litellm_trace_id", "caching", "cache", "ttl",
})


#: The keys of LiteLLM's ``StandardLoggingMetadata``: always in ``standard_logging_object
#: ["metadata"]`` (None unless the call's metadata has them; the gateway fills the key's).
_STANDARD_METADATA = dict.fromkeys((
    "user_api_key_hash", "user_api_key_alias", "user_api_key_org_id", "user_api_key_team_id",
    "user_api_key_user_id", "user_api_key_user_email", "user_api_key_team_alias", "user_api_key_end_user_id",
    "spend_logs_metadata", "requester_ip_address", "requester_metadata", "prompt_management_metadata",
    "applied_guardrails", "mcp_tool_call_metadata", "vector_store_request_metadata", "usage_object",
    "requester_custom_headers", "user_api_key_spend", "user_api_key_max_budget", "user_api_key_budget_reset_at",
    "user_api_key_request_route", "user_api_key_auth_metadata", "cold_storage_object_key",
))

_pricer: Any = None
_fromtimestamp = datetime.fromtimestamp
#: The facts about where a call went that are read from a result's ``_hidden_params``.
_ROUTE_KEYS = ("custom_llm_provider", "api_base", "model_group", "model_id", "cache_hit", "cache_key")


def cache_hit_cost(hidden: Any) -> float:
    """What a cache hit's response cost (``hidden``: its ``_hidden_params``): nothing, or, for an
    embeddings call with only some items stored, what its upstream part cost (its
    ``response_cost``). Read as stored: a stream's mapping would price the replayed text."""
    cost = dict.get(hidden, "response_cost") if isinstance(hidden, dict) else None
    return float(cost) if cost else 0.0


def response_cost(response: Any) -> float | None:
    """The cost in USD of a response (the one place the library prices a call), or None.
    A cache hit (``_hidden_params["cache_hit"]``) costs nothing, or what the part its cache did
    not hold cost (an embeddings call with some items stored: their ``response_cost``)."""
    global _pricer
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict) and hidden.get("cache_hit"):
        return cache_hit_cost(hidden)
    if _pricer is None:
        try:
            from .cost import completion_cost as _pricer
        except ImportError:
            _pricer = False
    if _pricer is False:
        return None
    try:
        return _pricer(completion_response=response)
    except Exception:  # noqa: BLE001 - an unknown model has no price; never fail the call
        log.debug("no cost for %r", getattr(response, "model", None), exc_info=True)
        return None


_registered: Any = None  # integrations.dispatch.registered, once start_call has run


def start_call(model: Any, messages: Any, stream: bool, kwargs: dict[str, Any], is_async: bool,
               call_type: str = "completion", extra: dict[str, Any] | None = None) -> "Logging | None":
    """The record of a call that the caller must report, or None (nothing registered, or the
    call belongs to an outer layer, which passed ``litellm_logging_obj`` and reports it).

    ``call_type`` is the sync name (``"completion"``, ``"embedding"``, ``"text_completion"``);
    an async call's is ``"a" + call_type``, as LiteLLM's. ``extra`` are more keys of every
    event's ``kwargs`` (``input`` for embeddings)."""
    global _registered
    if kwargs.get("litellm_logging_obj") is not None:
        return None
    if _registered is None:  # imported once, not per call (a function-level import is ~0.5 µs)
        from .integrations.dispatch import registered as _registered

    callbacks = _registered()
    budget = _package().get("max_budget")
    if budget is not None:  # LiteLLM's global budget: llmrelay.max_budget, spent in llmrelay._current_cost
        spent = _package().get("_current_cost") or 0.0
        if spent > budget:
            from .exceptions import BudgetExceededError

            raise BudgetExceededError(current_cost=spent, max_budget=budget)
        if callbacks is None:
            callbacks = _no_callbacks()
    elif callbacks is None:
        return None
    record = Logging(
        model=model, messages=messages, stream=stream,
        call_type="a" + call_type if is_async else call_type,
        litellm_call_id=kwargs.get("litellm_call_id"), callbacks=callbacks, is_async=is_async,
        optional_params={k: v for k, v in kwargs.items() if k not in _NOT_PARAMS},
        metadata=kwargs.get("metadata"),
        custom_llm_provider=kwargs.get("custom_llm_provider"),
    )
    if extra:
        record.call_kwargs = extra
    record.pre_call()
    record.budgeted = budget is not None
    # input_callback only: told of the call's start, nothing to report at its end
    return record if callbacks.reports or budget is not None else None


_package_dict: dict[str, Any] | None = None
_empty: Any = None


def _package() -> dict[str, Any]:
    """The ``llmrelay`` package's attributes (its module settings)."""
    global _package_dict
    if _package_dict is None:
        import sys

        _package_dict = sys.modules["llmrelay"].__dict__
    return _package_dict


def _no_callbacks() -> Any:
    global _empty
    if _empty is None:
        from .integrations.dispatch import Callbacks

        _empty = Callbacks()
    return _empty


def _id_prefix() -> str:
    """The first 20 hex digits (and 4 dashes) of this process's call ids: random, version 4,
    RFC 4122 variant."""
    getrandbits = random.getrandbits
    return "%08x-%04x-4%03x-%04x-" % (getrandbits(32), getrandbits(16), getrandbits(12),
                                       0x8000 | getrandbits(14))


_ID_PREFIX = _id_prefix()
_ids = itertools.count(random.getrandbits(40))


def _reset_ids() -> None:  # a forked child must not repeat its parent's ids
    global _ID_PREFIX, _ids
    _ID_PREFIX = _id_prefix()
    _ids = itertools.count(random.getrandbits(40))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_ids)


def _new_id() -> str:
    """A call id shaped as a UUID4: the process's random prefix and a counter as the last
    12 hex digits (unique per process, one string format per call; no system call)."""
    return _ID_PREFIX + "%012x" % (next(_ids) & 0xFFFFFFFFFFFF)


def _assembled(stream: Any, cost: Any = None, dump: bool = False) -> tuple[Any, Any]:
    """What a stream generated, as one response carrying the stream's facts (model, provider)
    and ``cost`` as its ``response_cost``; and with ``dump`` its ``model_dump()`` (made with it,
    from the same facts), else None."""
    if dump:
        response, plain = stream.state.response_and_dump()
    else:
        response, plain = stream.state.response(), None
    # what is there (read as a plain dict: a stream's mapping would price itself to be copied)
    params = stream._hidden_params
    fill = getattr(params, "fill_headers", None)
    if fill is not None:
        fill()
    hidden = dict(dict.items(params))
    if cost is not None:
        hidden["response_cost"] = cost
    else:
        hidden.pop("response_cost", None)
    response._hidden_params = hidden
    return response, plain


_lookup: Any = None


def _map_value(model: Any, provider: str | None) -> dict[str, Any] | None:
    """``model_map_information["model_map_value"]``: the price table's facts for the model
    (a copy; the lookup is cached), or None when it is not in the table."""
    global _lookup
    if _lookup is None:
        from .cost import _lookup
    try:
        found = _lookup(model, provider) if isinstance(model, str) and model else None
    except Exception:  # noqa: BLE001
        return None
    return {"key": found[0], **found[1]} if found is not None else None


REDACTED = "redacted-by-litellm"


def _redact(kwargs: dict[str, Any], slo: dict[str, Any], response: Any) -> Any:
    """``turn_off_message_logging``: what an event's callbacks see of the prompt and the
    answer becomes LiteLLM's placeholder (the caller's own response is left alone: the
    callbacks get a redacted copy)."""
    messages = [{"role": "user", "content": REDACTED}]
    kwargs["messages"] = kwargs["input"] = slo["messages"] = messages
    kwargs["additional_args"] = {"complete_input_dict": {}, "api_base": kwargs["additional_args"].get("api_base")}
    kwargs["original_response"] = REDACTED
    slo["response"] = {"text": REDACTED}
    if response is None:
        return None
    import copy

    redacted = copy.deepcopy(response)
    for choice in getattr(redacted, "choices", None) or ():
        for part in ("message", "delta"):
            message = getattr(choice, part, None)
            if message is not None and getattr(message, "content", None) is not None:
                message.content = REDACTED
        if getattr(choice, "text", None) is not None:  # a text completion's
            choice.text = REDACTED
    return redacted


def _original(response: Any) -> str:
    """``kwargs["original_response"]``: the answer as JSON text (LiteLLM's is the raw body)."""
    try:
        return orjson.dumps(_plain(response), default=str).decode()
    except Exception:  # noqa: BLE001 - a str either way
        return str(response)


def usage_tokens(usage: Any) -> tuple[int, int, int]:
    """``(prompt, completion, total)`` tokens of a usage object or dict; zeros for None."""
    if usage is None:
        return 0, 0, 0
    get = usage.get if isinstance(usage, dict) else getattr(usage, "__dict__", {}).get
    prompt = get("prompt_tokens") or 0
    completion = get("completion_tokens") or 0
    return prompt, completion, get("total_tokens") or prompt + completion


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if dump is not None else value


def _response_value(response: Any, plain: bool) -> Any:
    """``standard_logging_object["response"]``: the response as a plain dict (or as it is)."""
    if response is None:
        return None
    return _plain(response) if plain else response


class Logging:
    """What is known about one call, for callbacks and for counting usage."""

    def __init__(
        self,
        model: str | None = None,
        messages: list | None = None,
        stream: bool = False,
        call_type: str = "completion",
        start_time: float | None = None,
        litellm_call_id: str | None = None,
        function_id: str | None = None,
        *,
        callbacks: Any = None,
        is_async: bool = False,
        optional_params: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        custom_llm_provider: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.messages = messages
        self.stream = stream
        self.call_type = call_type
        self.start_time = start_time if start_time is not None else time.time()
        self.litellm_call_id = litellm_call_id or _new_id()
        self.function_id = function_id
        self.model_call_details: dict[str, Any] = dict(kwargs)
        self.callbacks = callbacks
        self.is_async = is_async
        self.optional_params = optional_params or {}
        self.metadata = dict(metadata) if isinstance(metadata, dict) else {}
        #: Facts about where the call went (custom_llm_provider, api_base, model_group, model_id).
        self.route: dict[str, Any] = {"custom_llm_provider": custom_llm_provider}

    # Set later, when at all (class-level defaults: a call does not pay for them at its start).
    completion_start_time: float | None = None
    trace_id: str | None = None
    #: Set by the gateway: the request this call answers (LiteLLM's litellm_params key).
    proxy_server_request: dict[str, Any] | None = None
    #: standard_logging_object["response"] as a plain dict (False: the response object itself,
    #: which reads like a dict; the gateway's own loggers need no copy).
    plain_response = True
    #: More keys of every event's kwargs (``input`` for embeddings, ``prompt``…).
    call_kwargs: dict[str, Any] | None = None
    #: Set by the gateway when only its own loggers (which read ``standard_logging_object``)
    #: hear the event: its kwargs are then ``standard_logging_object`` and ``response_cost``
    #: alone (LiteLLM's other keys, their datetimes and nested dicts are not built).
    slim = False
    #: The call has reported its end (success or failure): later reports do nothing.
    done = False
    budgeted = False  # adds its cost to llmrelay._current_cost (llmrelay.max_budget is set)
    posted = False  # log_post_api_call sent
    event_response: Any = None  # the response the success/failure callbacks get
    additional_args: dict[str, Any] | None = None

    # ------------------------------------------------------------------ the events
    def pre_call(self) -> None:
        callbacks = self.callbacks
        if callbacks is not None and (callbacks.pre or callbacks.inputs):
            kwargs = self._base_kwargs("pre_api_call")
            callbacks.pre_call(self.model, self.messages, kwargs)

    def _additional_args(self) -> dict[str, Any]:
        """LiteLLM's ``additional_args``: the request as llmrelay's OpenAI-shaped view of it (the
        provider's own wire body is built after the pre-call hook), made once per call."""
        args = self.additional_args
        if args is None:
            body = {"model": self.model, **self.optional_params}
            if self.call_kwargs and "input" in self.call_kwargs:
                body["input"] = self.call_kwargs["input"]
            elif self.messages is not None:
                body["messages"] = self.messages
            args = self.additional_args = {"complete_input_dict": body, "api_base": self.route.get("api_base")}
        return args

    def _post_call(self, original_response: Any) -> None:
        """``log_post_api_call`` once per call, as LiteLLM's: ``response_obj`` and ``end_time`` are
        None, ``kwargs["original_response"]`` the answer (a failure's: its message)."""
        if self.posted:
            return
        self.posted = True
        callbacks = self.callbacks
        if callbacks is not None and callbacks.post:
            kwargs = self._base_kwargs("post_api_call")
            kwargs["original_response"] = original_response
            callbacks.post_call(kwargs, None, self._dt(self.start_time), None)

    def success(self, response: Any, end_time: float | None = None, cost: Any = False) -> None:
        """A complete response (not a stream): report it, with its cost."""
        if self.done:
            return
        self.done = True
        try:
            self._route_from(response)
            if cost is False:
                cost = response_cost(response)
            hidden = getattr(response, "_hidden_params", None)
            if isinstance(hidden, dict):
                if cost is not None:
                    hidden["response_cost"] = cost
                if not self.slim:  # LiteLLM's: ties the response to its callbacks' events
                    hidden["litellm_call_id"] = self.litellm_call_id
            self._emit("success", response, getattr(response, "usage", None), cost, end_time, None)
        except Exception:  # noqa: BLE001 - never break the call
            log.warning("building the success event failed", exc_info=True)

    def failure(self, exc: BaseException, partial: Any = None, end_time: float | None = None) -> None:
        """The call failed (``partial``: what a stream generated before it did)."""
        if self.done:
            return
        self.done = True
        if not self.posted:  # LiteLLM tells log_post_api_call of a failed call too
            try:
                self._post_call(str(exc))
            except Exception:  # noqa: BLE001 - never break the call
                log.warning("building the post-call event failed", exc_info=True)
        try:
            # nothing generated costs nothing: 0, as LiteLLM's failure events say (not None)
            cost = response_cost(partial) if partial is not None else 0.0
            self._emit("failure", partial, getattr(partial, "usage", None), cost, end_time, exc)
        except Exception:  # noqa: BLE001
            log.warning("building the failure event failed", exc_info=True)

    def returned(self, result: Any) -> Any:
        """The call returned ``result``: a response is reported now, a stream at its end."""
        if hasattr(result, "observe"):  # a stream: where it went is read at its end
            if not self.posted:
                if self.callbacks is not None and self.callbacks.post:
                    self._route_from(result)
                self._post_call("")  # nothing read yet
            result.observe(self)
        else:
            if not self.posted:
                self._route_from(result)
                self._post_call(_original(result))
            self.success(result)
        return result

    # called by CustomStreamWrapper, once, when the stream ends one way or another
    def stream_success(self, stream: Any) -> None:
        if self.done:
            return
        self.done = True
        try:
            self._stream_times(stream)
            # the stream prices itself at its end (with its deployment's prices); a cache hit is free
            cost = 0.0 if self.route.get("cache_hit") else stream._hidden_params.get("response_cost")
            response, plain = _assembled(stream, cost, self.plain_response)
            self._emit("success", response, response.usage, cost, None, None, plain)
        except Exception:  # noqa: BLE001 - never break the call
            log.warning("building the success event failed", exc_info=True)

    def stream_failure(self, stream: Any, exc: BaseException) -> None:
        if not self.done:
            self._stream_times(stream)
            self.failure(exc, _assembled(stream)[0])

    def stream_abandoned(self, stream: Any) -> None:
        if not self.done:
            from .exceptions import APIConnectionError

            self._stream_times(stream)
            state = stream.state
            exc = APIConnectionError("The stream was closed before it ended (abandoned by the caller).",
                                     llm_provider=self.route.get("custom_llm_provider"), model=self.model,
                                     generated_content=state.generated_content())
            self.failure(exc, _assembled(stream)[0])

    # ------------------------------------------------------------------ building the kwargs
    def _stream_times(self, stream: Any) -> None:
        first = getattr(stream.state, "first_time", None)
        if first is not None and self.completion_start_time is None:
            self.completion_start_time = first
        self._route_from(stream)

    def _route_from(self, result: Any) -> None:
        hidden = getattr(result, "_hidden_params", None)
        if isinstance(hidden, dict):
            get = dict.get  # not a stream's lazy lookups: only what is there
            route = self.route
            for key in _ROUTE_KEYS:
                value = get(hidden, key)
                if value is not None:
                    route[key] = value
            model = get(hidden, "model")
            if model:  # the upstream's model name (a router's deployment)
                provider = route.get("custom_llm_provider")
                route["litellm_model_name"] = f"{provider}/{model}" if provider and "/" not in model else model

    def _base_kwargs(self, event: str) -> dict[str, Any]:
        route = self.route
        kwargs = {
            "model": self.model,
            "messages": self.messages,
            "input": self.messages,  # LiteLLM's: the messages (an embedding's input, below)
            "api_key": None,  # LiteLLM passes the upstream key here; llmrelay never hands it out
            "additional_args": self._additional_args(),
            "log_event_type": event,
            "optional_params": self.optional_params,
            "litellm_params": {
                "metadata": self.metadata,
                "litellm_call_id": self.litellm_call_id,
                "custom_llm_provider": route.get("custom_llm_provider"),
                "api_base": route.get("api_base") or "",
                "acompletion": self.is_async,
                "model_info": {"id": route.get("model_id")},
                "proxy_server_request": self.proxy_server_request,
            },
            "litellm_call_id": self.litellm_call_id,
            "user": self.optional_params.get("user"),
            "stream": self.stream,
            "call_type": self.call_type,
            "custom_llm_provider": route.get("custom_llm_provider"),
            "api_base": route.get("api_base"),
            "start_time": _fromtimestamp(self.start_time),
        }
        if self.call_kwargs:
            kwargs.update(self.call_kwargs)
        return kwargs

    @staticmethod
    def _dt(t: float | None) -> datetime | None:
        return datetime.fromtimestamp(t) if t is not None else None

    def event_kwargs(self, status: str, response: Any, usage: Any, cost: float | None, end: float,
                     exc: BaseException | None, plain: Any = None) -> dict[str, Any]:
        """The ``kwargs`` of a success or failure event (LiteLLM's ``model_call_details``);
        ``plain`` is ``response.model_dump()`` when the caller has it already."""
        prompt, completion, total = usage_tokens(usage)
        first = self.completion_start_time
        rget = self.route.get
        provider, api_base, model_id = rget("custom_llm_provider"), rget("api_base"), rget("model_id")
        cache_key, map_key, cache_hit = rget("cache_key"), rget("litellm_model_name"), bool(rget("cache_hit"))
        error_str = None
        error_info = None
        if exc is not None:
            error_str = str(exc)
            error_info = {
                "error_code": str(getattr(exc, "status_code", "") or ""),
                "error_class": type(exc).__name__,
                "llm_provider": getattr(exc, "llm_provider", None) or provider or "",
                "error_message": error_str,
            }
        slo = {
            "id": self.litellm_call_id,
            "trace_id": self.trace_id or self.litellm_call_id,
            "call_type": self.call_type,
            "stream": self.stream,
            "status": status,
            "response_cost": cost or 0.0,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": total,
            "startTime": self.start_time,
            "endTime": end,
            "completionStartTime": first if first is not None else end,
            "response_time": end - self.start_time,
            "model": self.model,
            "model_id": model_id,
            "model_group": rget("model_group"),
            "custom_llm_provider": provider,
            "api_base": api_base or "",
            "metadata": {**_STANDARD_METADATA, **self.metadata},
            "cache_hit": cache_hit,
            "cache_key": cache_key,
            "saved_cache_cost": 0.0,
            "error_str": error_str,
            "error_information": error_info,
            "messages": self.messages,
            "response": plain if plain is not None else _response_value(response, self.plain_response),
            "model_parameters": self.optional_params,
            "hidden_params": {"response_cost": cost, "model_id": model_id, "api_base": api_base,
                              "cache_key": cache_key, "litellm_model_name": map_key,
                              "litellm_overhead_time_ms": None, "additional_headers": {}, "batch_models": None,
                              "usage_object": None},
            "end_user": self.optional_params.get("user"),
            "request_tags": list(self.metadata.get("tags") or []),
            "requester_ip_address": None,
            "model_map_information": {"model_map_key": map_key or self.model, "model_map_value": None},
            "response_cost_failure_debug_info": None,
            "guardrail_information": None,
            "cost_breakdown": None,
            "status_fields": {"llm_api_status": status, "guardrail_status": "not_run"},
            "standard_built_in_tools_params": None,
        }
        if self.slim:
            self.event_response = response
            kwargs = self.model_call_details = {"standard_logging_object": slo, "response_cost": cost}
            return kwargs
        # (not in slim events: the gateway's own loggers do not read it)
        slo["model_map_information"]["model_map_value"] = _map_value(map_key or self.model, provider)
        kwargs = self._base_kwargs("successful_api_call" if exc is None else "failed_api_call")
        response_dict = slo["response"]
        kwargs["original_response"] = error_str if exc is not None else (
            _original(response_dict) if response_dict is not None else "")
        end_time = _fromtimestamp(end)
        kwargs["end_time"] = end_time
        kwargs["completion_start_time"] = end_time if first is None else _fromtimestamp(first)
        kwargs["response_cost"] = cost
        kwargs["cache_hit"] = cache_hit
        kwargs["standard_logging_object"] = slo
        if _settings.get("turn_off_message_logging"):
            response = _redact(kwargs, slo, response)
        self.event_response = response  # what the callbacks get (a redacted copy, or the response)
        if self.stream and response is not None:
            kwargs["complete_streaming_response"] = response
            kwargs["async_complete_streaming_response"] = response
        if exc is not None:
            kwargs["exception"] = exc
            kwargs["traceback_exception"] = error_str
        if self.model_call_details:
            self.model_call_details.update(kwargs)
        else:  # as LiteLLM's: the event's kwargs are the call's details
            self.model_call_details = kwargs
        return kwargs

    def _emit(self, status: str, response: Any, usage: Any, cost: float | None, end_time: float | None,
              exc: BaseException | None, plain: Any = None) -> None:
        end = end_time if end_time is not None else time.time()
        if self.budgeted and cost:
            package = _package()
            package["_current_cost"] = (package.get("_current_cost") or 0.0) + cost
        kwargs = self.event_kwargs(status, response, usage, cost, end, exc, plain)
        response = self.event_response
        if self.callbacks:
            self.callbacks.emit(status, self.is_async, kwargs, response, kwargs["start_time"], kwargs["end_time"])

    def __repr__(self) -> str:
        return f"Logging(model={self.model!r}, call_type={self.call_type!r}, id={self.litellm_call_id!r})"
