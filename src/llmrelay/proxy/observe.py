"""What the gateway tells others about each request: hooks, callbacks, metrics, traces.

One :class:`Observe` per app, built from ``litellm_settings.callbacks`` / ``success_callback`` /
``failure_callback``: built-in names (``prometheus``, ``otel``, ``langfuse_otel``) and
``module.attribute`` paths of a team's own ``CustomLogger`` instances or functions, resolved
relative to the config file's directory (as LiteLLM does).

The app calls in at a few points of a chat request:

* :meth:`Observe.pre_call` – ``async_pre_call_hook`` of each logger (may change the request, or
  reject it: an exception with ``status_code`` becomes that HTTP error);
* :meth:`Observe.upstream` – starts the request's record (trace span, in-flight gauges) and sets
  the ``traceparent`` for the upstream call (``transport.base.upstream_headers``, the task's);
* :meth:`Observe.post_success` / :meth:`Observe.post_failure` / :meth:`Observe.wrap_stream` – the
  post-call hooks (the per-chunk ``async_post_call_streaming_hook`` only if a logger has it);
* :meth:`Observe.end` – **the end-of-request fan-out**, exactly once per request, also for cut
  and failed streams and client disconnects: usage → cost → ``on_request_end`` hooks (spend,
  budgets… register with :meth:`Observe.on_request_end`) → success/failure callbacks → metrics
  and traces. Nothing here runs per chunk unless a logger asked for the per-chunk hook.
"""

from __future__ import annotations

import asyncio

import importlib
import importlib.util
import logging
import os
import sys
import time
from time import perf_counter as _perf, time as _time
from typing import Any, AsyncIterator, Callable

from ..integrations.custom_logger import overrides
from ..integrations.dispatch import BUILTIN, Callbacks, resolve
from ..logging_obj import _STANDARD_METADATA, Logging, _new_id, cache_hit_cost, response_cost, usage_tokens
from ..transport.base import upstream_headers as _upstream_headers
from ..types import ModelResponse, Usage
from .config import ConfigError, ProxyConfig

__all__ = ["Observe", "UserAPIKeyAuth", "load_callback", "wants_prometheus"]

log = logging.getLogger("llmrelay.proxy")
_new_record = object.__new__


class UserAPIKeyAuth:
    """Who made the request, as the proxy hooks receive it (LiteLLM's name and fields)."""

    def __init__(self, api_key: str | None = None, key_alias: str | None = None, user_id: str | None = None,
                 team_id: str | None = None, team_alias: str | None = None,
                 metadata: dict[str, Any] | None = None, **extra: Any) -> None:
        self.api_key = api_key
        self.key_alias = key_alias
        self.user_id = user_id
        self.team_id = team_id
        self.team_alias = team_alias
        self.metadata = metadata or {}
        self.__dict__.update(extra)

    def __repr__(self) -> str:
        return f"UserAPIKeyAuth(key_alias={self.key_alias!r}, user_id={self.user_id!r}, team_id={self.team_id!r})"


def wants_prometheus(config: ProxyConfig) -> bool:
    return any(n.strip().lower() == "prometheus" for names in config.callbacks.values() for n in names)


def prepare_workers(config: ProxyConfig, workers: int) -> Any:
    """Before ``--workers N`` start: give Prometheus a shared directory for its samples (unless
    ``PROMETHEUS_MULTIPROC_DIR`` is set). Returns what to keep alive until exit (or None)."""
    if workers < 2 or not wants_prometheus(config) or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    import tempfile

    directory = tempfile.TemporaryDirectory(prefix="llmrelay-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory.name
    return directory


def load_callback(name: str, config_path: str | None) -> Any:
    """A built-in logger by name, or ``module.attribute`` (the module found next to the config
    file first, then on the import path). Raises :class:`ConfigError` with what to fix."""
    if name.strip().lower() in BUILTIN:
        try:
            return resolve(name, strict=True)
        except ImportError as exc:
            raise ConfigError(f"callback {name!r} needs its optional dependencies "
                              f"(pip install 'llmrelay[observability]'): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - e.g. missing credentials: a config problem
            raise ConfigError(f"callback {name!r} cannot start: {exc}") from None
    module_name, _, attr = name.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(
            f"callback {name!r} is neither a built-in one ({', '.join(sorted(BUILTIN))}) nor a "
            "module.attribute path (e.g. custom_callbacks.proxy_handler_instance)"
        )
    module = _import_near(module_name, os.path.dirname(os.path.abspath(config_path)) if config_path else None)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"callback {name!r}: module {module_name!r} has no attribute {attr!r}") from None


def _import_near(module_name: str, directory: str | None) -> Any:
    if directory is not None:
        path = os.path.join(directory, *module_name.split(".")) + ".py"
        if os.path.isfile(path):
            if module_name in sys.modules and getattr(sys.modules[module_name], "__file__", None) == path:
                return sys.modules[module_name]
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            sys.path.insert(0, directory)  # so the module can import its neighbours
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(module_name, None)
                raise ConfigError(f"callback module {path} failed to load: {type(exc).__name__}: {exc}") from None
            finally:
                sys.path.remove(directory)
            return module
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        where = f" (looked for {module_name.replace('.', '/')}.py next to the config, in {directory})" if directory else ""
        raise ConfigError(f"callback module {module_name!r} cannot be imported{where}: {exc}") from None


#: What :meth:`Observe._facts` hands the gateway loggers, in order: ``raw`` (end user, key hash,
#: key alias, team, team alias, user, deployment's model name, model, model group, deployment id,
#: api base, provider, ok, stream, requested model, status code: the values the Prometheus
#: labels are made of), start and end (epoch seconds), the first token's time (the end when
#: none), prompt and completion tokens, cost (or None), the response, the request's
#: parameters and messages, and whether the router tried more than the deployment that
#: answered (``router_attempts``, or a fallback group answered: retries, fallbacks, cooldowns
#: to report; else there are none).
FACTS = ("raw", "start", "end", "first", "prompt_tokens", "completion_tokens", "cost", "response", "params",
         "messages", "retried")


class _Route:
    """What ``Logging._route_from`` fills (its ``route``), for :meth:`Observe._slim_success`."""

    __slots__ = ("route",)

    def __init__(self, model_group: str) -> None:
        self.route: dict[str, Any] = {"custom_llm_provider": None, "model_group": model_group}


class _Request:
    """The observation record of one chat request (only built when something observes)."""

    __slots__ = ("wall_start", "messages", "params", "stream", "state", "router")

    def __init__(self, wall_start: float, messages: Any, params: dict[str, Any], stream: bool,
                 router: Any = None) -> None:
        self.router = router  # the gateway's Router (deployment state for metrics)
        self.wall_start = wall_start
        self.messages = messages
        self.params = params
        self.stream = stream
        self.state: dict[int, Any] = {}  # per gateway logger (id) → what it keeps for this request


class Observe:
    """The gateway's observers (see the module docstring)."""

    def __init__(self, config: ProxyConfig) -> None:
        lists = {key: [load_callback(n, config.path) for n in names] for key, names in config.callbacks.items()}
        self.callbacks = Callbacks.from_lists(lists.get("callbacks", ()), lists.get("success_callback", ()),
                                              lists.get("failure_callback", ()))
        loggers = self.callbacks.loggers
        self._pre_call_hooks = [x for x in loggers if overrides(x, "async_pre_call_hook")]
        #: The ``cache`` argument of ``async_pre_call_hook`` (LiteLLM's DualCache, in memory, one
        #: per gateway process): what hooks keep between requests (counters, flags).
        self.hook_cache: Any = None
        if self._pre_call_hooks:
            from ..caching.in_memory import DualCache

            self.hook_cache = DualCache()
        self._moderation_hooks = [x for x in loggers if overrides(x, "async_moderation_hook")]
        #: loggers that see (and may reject) a request before it goes upstream
        self.pre_hooks = [x for x in loggers if x in self._pre_call_hooks or x in self._moderation_hooks]
        self.success_hooks = [x for x in loggers if overrides(x, "async_post_call_success_hook")]
        self.failure_hooks = [x for x in loggers if overrides(x, "async_post_call_failure_hook")]
        self.iterator_hooks = [x for x in loggers if overrides(x, "async_post_call_streaming_iterator_hook")]
        self.chunk_hooks = [x for x in loggers if overrides(x, "async_post_call_streaming_hook")]
        #: whether a stream goes to the client through hooks (:meth:`wrap_stream`)
        self.stream_hooks = bool(self.iterator_hooks or self.chunk_hooks)
        #: Built-in loggers that also see the request itself (metrics, traces).
        self.gateway_loggers = [x for x in loggers if hasattr(x, "request_end")]
        #: Who hears the success/failure events: everyone but the gateway loggers, which see the
        #: same kwargs in request_end (no second pass, no task per request for them).
        self.events = Callbacks([x for x in loggers if x not in self.gateway_loggers],
                                self.callbacks.success, self.callbacks.failure)
        self.metrics = next((x for x in loggers if hasattr(x, "metrics_body")), None)
        self._end_hooks: list[Callable[[Any], Any]] = []
        #: a success only the gateway loggers hear is made by _slim_success (False: by Logging)
        self.fast_event = True
        #: ... or, when every gateway logger takes them (``takes_facts``), as the request's facts
        #: (:meth:`_facts`), read by each logger's ``request_facts``: no event dict at all
        self.facts = bool(self.gateway_loggers) and not self.events and all(
            getattr(x, "takes_facts", False) for x in self.gateway_loggers)
        self._observing = bool(self.callbacks)  # (a plain bool: read twice per request)
        #: the gateway loggers' ``request_start`` (made at the first request: a logger whose
        #: ``request_start`` has nothing to do then, ``idle_start``, is left out)
        self._starts: list[Any] | None = None
        #: the one ``request_start`` to call when it is OpenTelemetry's alone: its
        #: ``upstream_start``, which returns the upstream call's headers (made at the first request)
        self._one_start: Any = None
        #: a plain non-streamed success's metrics and spans in one pass, when the gateway loggers
        #: are the built-in Prometheus and OpenTelemetry ones (:mod:`.observe_fused`; else None)
        self._fused: Any = None
        #: :meth:`upstream` in one function when :attr:`_fused` is there and OpenTelemetry draws
        #: its own ids (:func:`.observe_fused.fused_start`; else None)
        self._fast_start: Any = None
        self._takers: list[Any] | None = None  # (their request_facts, made at the first request)
        self._router_of_models: Any = None  # (self.models' router, read at the first request)
        self.models: Any = None  # the app's ModelTable (for deployment state), set by the app

    # ------------------------------------------------------------------ registration
    def on_request_end(self, hook: Callable[[Any], Any]) -> None:
        """Call ``hook(ctx)`` at the end of every chat request, once, before the callbacks
        (``ctx.usage``, ``ctx.cost``, ``ctx.status``, ``ctx.key_alias`` are final). A hook must
        be quick (queue work, don't do it); its exceptions are logged."""
        self._end_hooks.append(hook)

    @property
    def active(self) -> bool:
        return self._observing or bool(self._end_hooks)  # (read per request: not Callbacks.__bool__'s call)

    # ------------------------------------------------------------------ before the upstream call
    def auth(self, ctx: Any) -> UserAPIKeyAuth:
        auth = getattr(ctx, "auth", None)
        return auth if auth is not None else UserAPIKeyAuth(key_alias=getattr(ctx, "key_alias", None))

    async def pre_call(self, ctx: Any, request: Any) -> None:
        """Run ``async_pre_call_hook``s over the (canonical) request, which they may change;
        their exceptions reject it."""
        field = "input" if request.kind == "embedding" else "messages"
        data = {"model": request.model, field: getattr(request, field), "stream": request.stream, **request.params}
        auth = self.auth(ctx)
        call_type = "aembedding" if request.kind == "embedding" else "completion"
        for logger in self._pre_call_hooks:
            result = await logger.async_pre_call_hook(auth, self.hook_cache, data, call_type)
            if isinstance(result, dict):
                data = result
            elif isinstance(result, str):  # LiteLLM: a string is an answer to the client; reject
                raise _Rejected(400, result)
        if self._moderation_hooks:
            # LiteLLM runs these beside the upstream call and drops its answer when one raises;
            # run before it, the outcome for the client is the same (and no upstream cost is spent)
            kind = "embeddings" if request.kind == "embedding" else "completion"
            await asyncio.gather(*(x.async_moderation_hook(data, auth, kind) for x in self._moderation_hooks))
        data = dict(data)
        request.model = data.pop("model", request.model)
        setattr(request, field, data.pop(field, getattr(request, field)))
        request.stream = bool(data.pop("stream", request.stream))
        request.params = data

    def upstream(self, ctx: Any, request: Any) -> None:
        """The request is about to go upstream: start its record (and add the trace context to
        the upstream call's headers)."""
        if not self._observing:
            return
        fast = self._fast_start
        if fast is not None and ctx.traceparent is None:
            try:
                return fast(ctx, request)
            except Exception:  # noqa: BLE001 - (the steps below make the record anew)
                log.warning("the one-pass start of a request failed", exc_info=True)
        # (_Request's fields set here: the class call and its __init__ frame cost more than they do)
        record = ctx.call = _new_record(_Request)
        record.wall_start = _time() - (_perf() - ctx.start)
        record.messages = request.messages if request.kind == "chat" else request.input
        record.params = request.params
        record.stream = request.stream
        record.state = {}
        record.router = self._router_of_models
        starts = self._starts
        if starts is None:
            starts = self._start_up(record)
        one = self._one_start
        if one is not None:  # (OpenTelemetry's alone: its headers, lines written already)
            try:
                headers = one(ctx, record)
            except Exception:  # noqa: BLE001 - observers never break a request
                log.warning("%s.request_start failed", type(one.__self__).__name__, exc_info=True)
                return
            if headers:
                _upstream_headers.set(headers)
            return
        headers = {}
        for start in starts:
            try:
                start(ctx, record, headers)
            except Exception:  # noqa: BLE001 - observers never break a request
                log.warning("%s.request_start failed", type(start.__self__).__name__, exc_info=True)
        if headers:  # for the upstream call, beside its own headers (its request head stays cached)
            _upstream_headers.set(headers)

    def _start_up(self, record: _Request) -> list[Any]:
        """At the first request: the gateway loggers' ``request_start`` to call (a logger whose
        ``request_start`` has nothing to do, ``idle_start``, left out), and the one-pass paths
        (:attr:`_one_start`, :attr:`_fused`) where the loggers are the built-in ones they know."""
        starts = self._starts = [x.request_start for x in self.gateway_loggers if not getattr(x, "idle_start", False)]
        record.router = self._router_of_models = self._router()
        if len(starts) == 1 and hasattr(starts[0].__self__, "upstream_start"):
            self._one_start = starts[0].__self__.upstream_start
        if self.facts and not self.events:
            from .observe_fused import fused_end, fused_start

            self._fused = fused_end(self.gateway_loggers)
            if self._fused is not None and self._one_start is not None:
                self._fast_start = fused_start(self._fused, _Request, self._router_of_models)
        return starts

    # ------------------------------------------------------------------ after it
    async def post_success(self, ctx: Any, response: Any) -> Any:
        _upstream_headers.set(None)  # (the hooks' own calls are not the upstream call)
        data = self._data(ctx)
        auth = self.auth(ctx)
        for logger in self.success_hooks:
            try:
                replaced = await logger.async_post_call_success_hook(data, auth, response)
            except Exception:  # noqa: BLE001
                log.warning("%s.async_post_call_success_hook failed", type(logger).__name__, exc_info=True)
                continue
            if replaced is not None:
                response = replaced
        return response

    async def post_failure(self, ctx: Any, exc: BaseException) -> None:
        import traceback

        _upstream_headers.set(None)
        data = self._data(ctx)
        auth = self.auth(ctx)
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        for logger in self.failure_hooks:
            try:
                await logger.async_post_call_failure_hook(data, exc, auth, text)
            except Exception:  # noqa: BLE001
                log.warning("%s.async_post_call_failure_hook failed", type(logger).__name__, exc_info=True)

    async def wrap_stream(self, ctx: Any, stream: Any, first: Any) -> tuple[Any, Any]:
        """(the stream the client gets, its first chunk), through the streaming hooks when a logger
        has them: ``first``, read before the response started, goes through them too (an
        iterator hook sees the whole stream, the per-chunk hook every chunk the client gets)."""
        if not self.stream_hooks:
            return stream, first
        hooked = _HookedStream(self, ctx, stream, first)
        try:
            return hooked, await hooked.__anext__()
        except StopAsyncIteration:
            return hooked, None

    def _router(self) -> Any:
        return getattr(self.models, "router", None)

    def _data(self, ctx: Any) -> dict[str, Any]:
        record = getattr(ctx, "call", None)
        if record is None:
            return {"model": ctx.model}
        return {"model": ctx.model, "messages": record.messages, "stream": record.stream, **record.params}

    # ------------------------------------------------------------------ the end-of-request fan-out
    def end(self, ctx: Any) -> None:
        """Once per chat request, after the response went out (see the module docstring)."""
        if ctx.model is None:
            return
        record = ctx.call
        result = ctx.result
        fused = self._fused
        if fused is not None and type(result) is ModelResponse and record is not None:
            # a non-streamed response with the one-pass end there: the same steps, it first
            if ctx.usage is None:
                ctx.usage = result.usage
            if ctx.cost is None:  # (as _cost: a response is priced when made)
                hidden = getattr(result, "_hp", None)
                if type(hidden) is dict:
                    ctx.cost = cache_hit_cost(hidden) if hidden.get("cache_hit") else hidden.get("response_cost")
                else:
                    ctx.cost = self._cost(ctx, result, result)
            for hook in self._end_hooks:
                try:
                    hook(ctx)
                except Exception:  # noqa: BLE001
                    log.warning("request-end hook %r failed", hook, exc_info=True)
            if ctx.status < 400 and ctx.error is None and not ctx.disconnected and self.facts and self.fast_event:
                try:
                    if fused(ctx, record, result):
                        return
                except Exception:  # noqa: BLE001 - never break the request (the loggers' own path follows)
                    log.warning("the one-pass end of a request failed", exc_info=True)
            return self._fan_out(ctx, record, result, result)
        if record is None and self._observing:  # failed before the upstream call
            record = ctx.call = _Request(_time() - (_perf() - ctx.start), None, {}, ctx.stream, self._router())
        response = None
        if type(result) is ModelResponse:  # (a response, not a stream: its fields are attributes)
            if record is not None:
                response = result
                if ctx.usage is None:
                    ctx.usage = result.usage
        elif record is not None and result is not None:
            state = getattr(result, "state", None)  # (a stream's)
            response = state.response() if state is not None else result
            if response is not None and ctx.usage is None:
                ctx.usage = getattr(response, "usage", None)
        if ctx.cost is None:
            # (_cost's common case, a response priced when made, without its call)
            hidden = getattr(result, "_hp", None)
            cost = hidden.get("response_cost") if type(hidden) is dict and not hidden.get("cache_hit") else None
            ctx.cost = self._cost(ctx, result, response) if cost is None else cost
        for hook in self._end_hooks:
            try:
                hook(ctx)
            except Exception:  # noqa: BLE001
                log.warning("request-end hook %r failed", hook, exc_info=True)
        if record is None:
            return
        self._fan_out(ctx, record, result, response)

    def _fan_out(self, ctx: Any, record: _Request, result: Any, response: Any) -> None:
        """The success/failure callbacks, metrics and traces of a request (:meth:`end`'s last step)."""
        if self.facts and self.fast_event and ctx.status < 400 and ctx.error is None and not ctx.disconnected:
            try:
                facts = self._facts(ctx, record, result, response)
            except Exception:  # noqa: BLE001 - never break the request
                log.warning("building the request's facts failed", exc_info=True)
                return
            if facts is not None:
                takers = self._takers
                if takers is None:
                    takers = self._takers = [x.request_facts for x in self.gateway_loggers]
                for take in takers:
                    try:
                        take(ctx, record, facts)
                    except Exception:  # noqa: BLE001
                        log.warning("%s.request_facts failed", type(take.__self__).__name__, exc_info=True)
                return
        _upstream_headers.set(None)  # (the callbacks' own calls, in tasks made now, are not the upstream call)
        kwargs = self._emit(ctx, record, result, response)
        for logger in self.gateway_loggers:
            try:
                logger.request_end(ctx, record, kwargs)
            except Exception:  # noqa: BLE001
                log.warning("%s.request_end failed", type(logger).__name__, exc_info=True)

    @staticmethod
    def _cost(ctx: Any, result: Any, response: Any) -> float | None:
        """Responses are priced when made, streams when they end (with the deployment's prices);
        a cut stream by what it generated."""
        hidden = getattr(result, "_hp", None)  # (our responses' slot, without the property's call)
        if hidden is None:
            hidden = getattr(result, "_hidden_params", None)
            if hidden is None:
                return None
        if hidden.get("cache_hit"):
            return cache_hit_cost(hidden)
        cost = hidden.get("response_cost")
        if cost is None and response is not None and response is not result:
            fill = getattr(hidden, "fill_headers", None)
            if fill is not None:
                fill()
            response._hidden_params = {k: v for k, v in dict.items(hidden) if k != "response_cost"}
            cost = response_cost(response)
        return cost

    def _emit(self, ctx: Any, record: _Request, result: Any, response: Any) -> dict[str, Any]:
        """Build the event (and tell the success/failure callbacks); its kwargs, for the gateway
        loggers. With no callback but the gateway loggers, the kwargs are the slim ones
        (``standard_logging_object`` and ``response_cost``: all they read)."""
        failed = ctx.status >= 400 or ctx.error is not None or ctx.disconnected
        request_id = ctx.request_id.decode()
        params = record.params
        metadata = params.get("metadata")
        meta = {"user_api_key_alias": ctx.key_alias, "requester_request_id": request_id, "model_group": ctx.model}
        if metadata and isinstance(metadata, dict):
            meta.update(metadata)
        auth = getattr(ctx, "auth", None)
        if auth is not None:
            meta.update(user_api_key_hash=getattr(auth, "api_key", None), user_api_key_team_id=auth.team_id,
                        user_api_key_team_alias=auth.team_alias, user_api_key_user_id=auth.user_id)
        if "metadata" in params or "extra_headers" in params:
            params = {k: v for k, v in params.items() if k not in ("metadata", "extra_headers")}
        else:
            params = dict(params)
        listeners = self.events
        end = record.wall_start + (time.perf_counter() - ctx.start)
        if not listeners and not failed and self.fast_event:
            try:
                return self._slim_success(ctx, record, result, response, request_id, meta, params, end)
            except Exception:  # noqa: BLE001 - never break the request (as Logging.success)
                log.warning("building the success event failed", exc_info=True)
                return {}
        entry = Logging(model=ctx.model, messages=record.messages, stream=record.stream, call_type="acompletion",
                        start_time=record.wall_start, litellm_call_id=request_id,
                        callbacks=listeners, is_async=True, optional_params=params, metadata=meta)
        entry.route["model_group"] = ctx.model
        if listeners:
            body = {"model": ctx.model, "messages": record.messages, **params}
            entry.proxy_server_request = {"url": "/v1/chat/completions", "method": "POST", "body": body,
                                          "request_id": request_id}
            if auth is not None:  # what LiteLLM's proxy adds for its callbacks: the key's hash and metadata
                entry.metadata.update(user_api_key=auth.api_key, user_api_key_metadata=auth.metadata,
                                      user_api_key_end_user_id=params.get("user"))
        else:
            entry.plain_response = False
            entry.slim = True
        if result is not None and (failed or result is not response):  # (success() reads a response's)
            entry._route_from(result)
        if record.stream and ctx.ttft:
            entry.completion_start_time = record.wall_start + ctx.ttft
        if failed:
            exc = getattr(ctx, "exc", None)
            if exc is None:
                from ..exceptions import APIConnectionError

                exc = APIConnectionError(ctx.error or "client disconnected", model=ctx.model)
            entry.failure(exc, response, end_time=end)
        else:
            entry.success(response, end_time=end, cost=ctx.cost)
        return entry.model_call_details

    @staticmethod
    def _facts(ctx: Any, record: _Request, result: Any, response: Any) -> tuple | None:
        """The facts of a successful request, for the gateway loggers' ``request_facts`` (a tuple
        laid out as :data:`FACTS`): the values the slim event (:meth:`_slim_success`) gives them,
        without the event (and the request's cost put in the response's ``_hidden_params``, as
        :func:`_charged` does). None when the request's own ``metadata`` is there (it may carry
        the standard metadata keys: the event's path reads it)."""
        params = record.params
        if "metadata" in params:
            return None
        # the route, as Logging._route_from makes it from the result, then from the response
        requested = group = ctx.model
        provider = model_id = api_base = name = None
        retried = False
        hidden = getattr(result, "_hp", None)  # (our responses' slot, without the property's call)
        if hidden is None:
            hidden = getattr(result, "_hidden_params", None)
        if isinstance(hidden, dict):
            get = dict.get  # not a stream's lazy lookups: only what is there
            provider = get(hidden, "custom_llm_provider")
            api_base = get(hidden, "api_base")
            value = get(hidden, "model_group")
            if value is not None:
                group = value
            model_id = get(hidden, "model_id")
            model = get(hidden, "model")
            if model:
                name = f"{provider}/{model}" if provider and "/" not in model else model
            # (PrometheusLogger._after's test: nothing but the deployment that answered)
            retried = group != requested or "router_attempts" in hidden
        elif hidden is not None:
            retried = True  # (not a dict: _after looks)
        if result is not response and result is not None:
            hidden = getattr(response, "_hp", None)
            if hidden is None:
                hidden = getattr(response, "_hidden_params", None)
            if isinstance(hidden, dict):
                get = dict.get
                value = get(hidden, "custom_llm_provider")
                if value is not None:
                    provider = value
                value = get(hidden, "api_base")
                if value is not None:
                    api_base = value
                value = get(hidden, "model_group")
                if value is not None:
                    group = value
                value = get(hidden, "model_id")
                if value is not None:
                    model_id = value
                model = get(hidden, "model")
                if model:
                    name = f"{provider}/{model}" if provider and "/" not in model else model
        cost = ctx.cost
        # as _charged: the cost into the response's hidden params; its tokens (usage_tokens)
        if cost is not None and isinstance(hidden, dict) and response is not None:
            hidden["response_cost"] = cost
        usage = response.usage if type(response) is ModelResponse else getattr(response, "usage", None)
        if type(usage) is Usage:  # (its fields are in its __dict__, 0 by default)
            prompt = usage.prompt_tokens or 0
            completion = usage.completion_tokens or 0
        elif usage is None:
            prompt = completion = 0
        else:
            uget = usage.get if isinstance(usage, dict) else getattr(usage, "__dict__", {}).get
            prompt = uget("prompt_tokens") or 0
            completion = uget("completion_tokens") or 0
        start = record.wall_start
        end = start + (_perf() - ctx.start)
        stream = record.stream
        first = start + ctx.ttft if stream and ctx.ttft else end
        auth = ctx.auth
        user = params.get("user") if params else None
        if auth is not None:
            raw = (user, getattr(auth, "api_key", None), ctx.key_alias, auth.team_id, auth.team_alias, auth.user_id,
                   name, requested, group, model_id, api_base or "", provider, True, stream, requested, ctx.status)
        else:
            raw = (user, None, ctx.key_alias, None, None, None,
                   name, requested, group, model_id, api_base or "", provider, True, stream, requested, ctx.status)
        return raw, start, end, first, prompt, completion, cost, response, params, record.messages, retried

    @staticmethod
    def _slim_success(ctx: Any, record: _Request, result: Any, response: Any, request_id: str,
                      meta: dict[str, Any], params: dict[str, Any], end: float) -> dict[str, Any]:
        """The slim kwargs of a success no callback but the gateway loggers hears: what
        ``Logging(...).success(response, cost=ctx.cost)`` in slim mode makes (``_emit`` above),
        without the ``Logging`` record (tests/callbacks/test_observe_events.py compares the two)."""
        route = _Route(ctx.model)
        if result is not None and result is not response:
            Logging._route_from(route, result)  # (success() reads a response's)
        Logging._route_from(route, response)
        cost = ctx.cost
        prompt, completion, total = _charged(response, cost)
        start = record.wall_start
        first = start + ctx.ttft if record.stream and ctx.ttft else end
        route = route.route
        rget = route.get
        model_id, api_base, cache_key = rget("model_id"), rget("api_base"), rget("cache_key")
        name = rget("litellm_model_name")
        call_id = request_id or _new_id()
        slo = {
            "id": call_id, "trace_id": call_id, "call_type": "acompletion", "stream": record.stream,
            "status": "success", "response_cost": cost or 0.0, "prompt_tokens": prompt,
            "completion_tokens": completion, "total_tokens": total, "startTime": start, "endTime": end,
            "completionStartTime": first, "response_time": end - start, "model": ctx.model, "model_id": model_id,
            "model_group": rget("model_group"), "custom_llm_provider": rget("custom_llm_provider"),
            "api_base": api_base or "", "metadata": {**_STANDARD_METADATA, **meta},
            "cache_hit": bool(rget("cache_hit")), "cache_key": cache_key, "saved_cache_cost": 0.0,
            "error_str": None, "error_information": None, "messages": record.messages, "response": response,
            "model_parameters": params,
            "hidden_params": {"response_cost": cost, "model_id": model_id, "api_base": api_base,
                              "cache_key": cache_key, "litellm_model_name": name, "litellm_overhead_time_ms": None,
                              "additional_headers": {}, "batch_models": None, "usage_object": None},
            "end_user": params.get("user"), "request_tags": list(meta.get("tags") or []),
            "requester_ip_address": None,
            "model_map_information": {"model_map_key": name or ctx.model, "model_map_value": None},
            "response_cost_failure_debug_info": None, "guardrail_information": None, "cost_breakdown": None,
            "status_fields": {"llm_api_status": "success", "guardrail_status": "not_run"},
            "standard_built_in_tools_params": None,
        }
        return {"standard_logging_object": slo, "response_cost": cost}

    # ------------------------------------------------------------------ /metrics and shutdown
    def metrics_body(self) -> tuple[bytes, bytes] | None:
        """(content type, body) of ``/metrics``, or None when Prometheus is not configured."""
        if self.metrics is None:
            return None
        return self.metrics.metrics_body()

    async def close(self) -> None:
        from ..integrations.dispatch import wait_pending

        try:
            await wait_pending()
        except Exception:  # noqa: BLE001
            log.debug("waiting for callbacks failed", exc_info=True)
        for logger in self.callbacks.loggers:
            shutdown = getattr(logger, "shutdown", None)
            if shutdown is not None:
                try:
                    shutdown()
                except Exception:  # noqa: BLE001
                    log.debug("shutting down %r failed", logger, exc_info=True)


def _charged(response: Any, cost: float | None) -> tuple[int, int, int]:
    """Put the request's ``cost`` in the response's ``_hidden_params`` (as the library does);
    the response's ``(prompt, completion, total)`` tokens."""
    hidden = getattr(response, "_hp", None)  # (our responses' slot, without the property's call)
    if hidden is None:
        hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict) and cost is not None:
        hidden["response_cost"] = cost
    return usage_tokens(getattr(response, "usage", None))


class _Rejected(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = message


def rejection(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, message) for an exception a pre-call hook raised (fastapi's HTTPException
    or anything with ``status_code``/``detail``; others are a 400)."""
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 400
    detail = getattr(exc, "detail", None)
    if isinstance(detail, dict):
        detail = detail.get("error") or detail.get("message") or str(detail)
    return status, str(detail if detail is not None else exc) or type(exc).__name__


class _HookedStream:
    """The client's stream through ``async_post_call_streaming_iterator_hook``s and the
    per-chunk ``async_post_call_streaming_hook``s; the app uses it like the library's stream."""

    chunks_ready = 0

    def __init__(self, observe: Observe, ctx: Any, stream: Any, first: Any = None) -> None:
        self._stream = stream
        self.state = getattr(stream, "state", None)
        self._hidden_params = getattr(stream, "_hidden_params", {})
        source: Any = stream if first is None else _prepended(first, stream)
        _upstream_headers.set(None)
        auth = observe.auth(ctx)
        data = observe._data(ctx)
        for logger in observe.iterator_hooks:
            source = logger.async_post_call_streaming_iterator_hook(auth, source, data)
        if observe.chunk_hooks:
            source = _per_chunk(observe.chunk_hooks, auth, source)
        self._it = source.__aiter__()

    def __aiter__(self) -> "_HookedStream":
        return self

    async def __anext__(self) -> Any:
        return await self._it.__anext__()

    async def aclose(self) -> None:
        close = getattr(self._it, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # noqa: BLE001
                log.debug("closing a hooked stream failed", exc_info=True)
        await self._stream.aclose()


async def _prepended(first: Any, stream: Any) -> AsyncIterator[Any]:
    """``first`` (already read from ``stream``), then the rest of ``stream``."""
    yield first
    async for chunk in stream:
        yield chunk


async def _per_chunk(hooks: list[Any], auth: Any, source: Any) -> AsyncIterator[Any]:
    async for chunk in source:
        for logger in hooks:
            try:
                replaced = await logger.async_post_call_streaming_hook(auth, chunk)
            except Exception:  # noqa: BLE001
                log.warning("%s.async_post_call_streaming_hook failed", type(logger).__name__, exc_info=True)
                continue
            if replaced is not None and not isinstance(replaced, (str, bytes)):
                chunk = replaced
        yield chunk
