"""The gateway as a plain ASGI application (no framework, no per-chunk middleware).

``ProxyApp(config)`` answers the APIs of :mod:`.ingress` (chat completions and the others,
each translated to the canonical chat-completions call) and the models endpoints, with the
library doing every upstream call. Every API goes through one request path
(:meth:`ProxyApp._api` → :meth:`ProxyApp._call_upstream`). Streams are written frame by frame
as chunks arrive: the first chunk is awaited before the response starts, so an error before it
is a normal HTTP error in the API's error shape; an error after it is one error frame or event.
A client that goes away cancels the request task, which closes the upstream connection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from typing import Any, Awaitable, Callable

import orjson

from ..exceptions import LLMRelayError
from ..streaming import CustomStreamWrapper
from ..integrations.prometheus_state import state_gauges
from ..retry_after import DEFAULT_MAX_RETRY_AFTER
from . import cuts, errors, runtime
from .accesslog import direct_handler
from .auth import client_key
from .client_params import ROUTING_KEYS as _ROUTING_KEYS, ClientParamError, ClientParamPolicy
from .fastpath import relay_for
from .config import ConfigError, ProxyConfig
from .ingress import CanonicalRequest, Ingress, IngressError
from .ingress.routes import CHAT, ingress_table, served_endpoints
from .ip_filter import FORBIDDEN_MESSAGE, IPFilter
from .route_policy import RoutePolicy
from .keys import KeyManager, Refusal, deployment_index, end_user_of, float_text
from .management import is_management_path, logged_path
from .limits import ServerLimits
from .db_models import DbModels
from .models import ModelTable
from .observe import Observe, rejection
from .response_cache import build_gateway_cache
from .response_db import responses_db
from .shared import key_limiter, redis_state, start_shared, stop_shared, watch_redis
from .spend import request_tags
from .warmup import warm_tokenizers

__all__ = ["ProxyApp", "create_app", "create_app_from_env", "CONFIG_ENV"]

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

log = logging.getLogger("llmrelay.proxy")
access_log = logging.getLogger("llmrelay.proxy.access")

#: Environment variable through which ``--workers`` processes find the config file.
CONFIG_ENV = "LLMRELAY_PROXY_CONFIG"

_perf = time.perf_counter
_time = time.time
_dumps = orjson.dumps

_NEWLINE = orjson.OPT_APPEND_NEWLINE
_BODY = "http.response.body"
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_MODELS_PATHS = frozenset({"/v1/models", "/models"})
_LIVENESS_PATHS = frozenset({"/health/liveliness", "/health/liveness"})
#: Orchestrators' probes, answered whatever the client's address (allowed_ips does not apply).
_PROBE_PATHS = _LIVENESS_PATHS | {"/health/readiness"}
_MODEL_INFO_PATHS = frozenset({"/v1/model/info", "/model/info"})
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_JSON = (b"content-type", b"application/json")
_DIRECT = "llmrelay.direct"  # server.DIRECT (not imported: the app runs under any ASGI server)


def _add_header_tags(params: dict[str, Any], header: bytes) -> None:
    """LiteLLM's ``x-litellm-tags: a,b`` header: request tags after the body's
    ``metadata.tags`` (routing by tag and the spend log read them there)."""
    tags = [t for t in (part.strip() for part in header.decode("latin-1").split(",")) if t]
    if not tags:
        return
    metadata = params.get("metadata")
    if not isinstance(metadata, dict):
        metadata = params["metadata"] = {}
    own = metadata.get("tags")
    own = own if isinstance(own, list) else []
    metadata["tags"] = list(dict.fromkeys([*own, *tags]))


def _id_source() -> tuple[bytes, Any]:
    return os.urandom(4).hex().encode(), itertools.count(int.from_bytes(os.urandom(5), "big"))


_id_prefix, _id_counter = _id_source()


def _reseed_ids() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = _id_source()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_ids)


def new_request_id() -> bytes:
    """A request id: 32 hex characters like ``uuid4().hex``, but time-ordered (milliseconds,
    then this process's random prefix and counter), so the spend log's primary key is
    appended to rather than written at random places (random keys make every insert slower
    as the table grows), and without a ``urandom`` call per request."""
    return b"%012x%s%012x" % (int(_time() * 1000), _id_prefix, next(_id_counter) & 0xFFFFFFFFFFFF)


class _Disconnected(Exception):
    """The client went away while its request body was being read."""


class _Ctx:
    """What one request did, for its headers and its log line."""

    __slots__ = ("start", "request_id", "model", "status", "upstream", "stream", "chunks",
                 "usage", "error", "done", "disconnected", "ttft", "ingress", "cut", "key_alias", "auth", "cost",
                 "exc", "result", "call", "traceparent", "messages", "extra", "cache", "direct", "fast",
                 "customer", "tags", "routing")

    def __init__(self, start: float, request_id: bytes) -> None:
        self.start = start
        self.request_id = request_id
        self.ingress: Ingress = CHAT  # whose error shape to answer in
        self.model: str | None = None
        self.status = 0
        self.upstream = 0.0  # seconds spent waiting for the upstream
        self.stream = False
        self.chunks = 0
        self.usage: Any = None
        self.error: str | None = None
        self.done = False
        self.disconnected = False
        self.ttft = 0.0
        self.cut: str | None = None  # why the gateway itself ended the request (shutdown)
        self.key_alias: str | None = None  # the caller's key alias (set by key auth)
        self.auth: Any = None  # who the caller is (UserAPIKeyAuth), for the proxy hooks
        self.cost: float | None = None  # USD, set at the end of the request
        self.exc: BaseException | None = None  # the failure, if the request failed
        self.result: Any = None  # the response or the stream
        self.call: Any = None  # observe's record of the request, when something observes
        self.traceparent: bytes | None = None  # the client's W3C trace context
        self.messages: Any = None
        self.extra: list[tuple[bytes, bytes]] | None = None  # rate-limit and spend headers
        self.cache: Any = None  # the request's CacheRequest, when the response cache applies
        self.direct: Any = None  # the server's DirectBody (scope extension), for the stream fast path
        self.fast = 0  # chunks the fast path rewrote without decoding them (see fastpath.py)
        self.customer: bytes | None = None  # LiteLLM's x-litellm-customer-id / x-litellm-end-user-id header
        self.tags: bytes | None = None  # LiteLLM's x-litellm-tags header (comma-separated request tags)
        self.routing: dict[str, bytes] | None = None  # LiteLLM's x-litellm-timeout / -num-retries headers

    def headers(self) -> list[tuple[bytes, bytes]]:
        overhead = (_perf() - self.start - self.upstream) * 1000.0
        headers = [
            (b"x-request-id", self.request_id),
            (b"x-litellm-call-id", self.request_id),  # LiteLLM's name for it (its callbacks' litellm_call_id)
            (b"x-llmrelay-overhead-duration-ms", b"%.3f" % max(overhead, 0.0)),
        ]
        if self.extra:
            headers.extend(self.extra)
        if self.cache is not None:
            headers += self.cache.headers()
        hidden = getattr(self.result, "_hidden_params", None)
        if hidden is not None:
            routed = route_headers(hidden)
            if routed:
                headers += routed
        return headers


#: LiteLLM's request headers for a call's timeout and retries → the body keys they stand for.
_ROUTING_HEADERS = {b"x-litellm-timeout": "timeout", b"x-litellm-num-retries": "num_retries"}


def _header_routing(params: dict[str, Any], headers: dict[str, bytes]) -> None:
    """The ``x-litellm-timeout`` / ``x-litellm-num-retries`` headers as the body's ``timeout`` /
    ``num_retries`` (the body's own value wins); checked with the body's (ClientParamError)."""
    for key, raw in headers.items():
        if key in params:
            continue
        try:
            value = float(raw) if key == "timeout" else int(raw)
        except ValueError:
            header = "x-litellm-timeout" if key == "timeout" else "x-litellm-num-retries"
            raise ClientParamError(header, f"The {header} header must be a number, got {raw.decode('latin-1')!r}.") from None
        params[key] = value


def route_headers(hidden: Any) -> list[tuple[bytes, bytes]] | None:
    """LiteLLM's routing response headers, from a routed answer's ``_hidden_params``: the
    deployment (``x-litellm-model-id``, its ``model_info.id``) and group that answered, and how
    many retries (in the group that answered) and fallbacks (groups before it) it took."""
    if not isinstance(hidden, dict):
        return None
    model_id = hidden.get("model_id")
    if model_id is None:
        return None
    group = hidden.get("model_group") or ""
    retries = fallbacks = 0
    attempts = hidden.get("router_attempts")
    if attempts:
        groups = {a.get("model_group") for a in attempts}
        groups.discard(group)
        fallbacks = len(groups)
        retries = sum(1 for a in attempts if a.get("model_group") == group and a.get("deployment_id") is not None)
    return [
        (b"x-litellm-model-id", str(model_id).encode("utf-8", "replace")),
        (b"x-litellm-model-group", str(group).encode("utf-8", "replace")),
        (b"x-litellm-attempted-retries", b"%d" % retries),
        (b"x-litellm-attempted-fallbacks", b"%d" % fallbacks),
    ]


_FREE = (b"x-litellm-response-cost", b"0.0")  # a cache hit's


def _cost_header(result: Any) -> list[tuple[bytes, bytes]] | None:
    """LiteLLM's ``x-litellm-response-cost`` of a whole response: what the library priced it at
    (the deployment's prices, else the cost table; a cache hit costs nothing), when it did."""
    cost = Observe._cost(None, result, None)  # (the price the end-of-request fan-out reports)
    return None if cost is None else [(b"x-litellm-response-cost", float_text(cost))]


class ProxyApp:
    """The ASGI callable. One instance per process; ``config`` is already validated."""

    #: Set by ``llmrelay proxy``: tune the GC and the GIL switch interval after start-up (proxy/runtime.py).
    tune_runtime = False

    def __init__(self, config: ProxyConfig, models: ModelTable | None = None,
                 limits: ServerLimits | None = None) -> None:
        self.config = config
        self.limits = limits or ServerLimits()
        self.models = models if models is not None else ModelTable(config)
        self.ingresses = ingress_table()
        try:
            self.client_params = ClientParamPolicy(config.deployments)
        except ValueError as exc:
            raise ConfigError(f"{config.path or '<config>'}: {exc}") from None
        self.max_body = config.max_body_bytes
        #: general_settings.always_include_stream_usage: every streamed chat/text completion ends with usage
        self.stream_usage = bool(config.general_settings.get("always_include_stream_usage"))
        #: general_settings.enforce_user_param: every request of the OpenAI APIs names its end user
        self.enforce_user = bool(config.general_settings.get("enforce_user_param"))
        #: general_settings.user_header_mappings / user_header_name: the header naming the end user
        self.customer_header: bytes | None = config.general_settings.get("customer_header")
        #: general_settings.global_max_parallel_requests: API requests this process serves at once.
        self.parallel_cap: int | None = config.general_settings.get("global_max_parallel_requests")
        self.in_flight = 0
        allowed_routes = config.general_settings.get("allowed_routes")
        admin_only = config.general_settings.get("admin_only_routes")
        self.route_policy = None if allowed_routes is None and admin_only is None else RoutePolicy(
            allowed_routes, admin_only)
        allowed_ips = config.general_settings.get("allowed_ips")
        self.ip_filter = None if allowed_ips is None else IPFilter(
            allowed_ips, bool(config.general_settings.get("use_x_forwarded_for")))
        secrets = list(config.secrets)
        if config.master_key:
            secrets.append(config.master_key)
        self._secrets = secrets
        self.redact_secrets = errors.make_redactor(secrets)
        # What clients see also loses the configured upstream hosts (the log keeps them).
        self.redact = errors.make_redactor(secrets + errors.upstream_hosts(config))
        self.health_monitor = None
        if config.general_settings.get("background_health_checks") and getattr(self.models, "router", None):
            from .health import DEFAULT_INTERVAL, HealthMonitor

            self.health_monitor = HealthMonitor(self.models.router, self.redact,
                                                config.general_settings.get("health_check_interval") or DEFAULT_INTERVAL)
        self.max_retry_after = getattr(getattr(self.models, "router", None), "max_retry_after", DEFAULT_MAX_RETRY_AFTER)
        self.created = int(time.time())
        self._models_body = _dumps({"object": "list", "data": [self._model_card(n) for n in self.models.names]})
        self._openapi: bytes | None = None
        self._inflight: dict[asyncio.Task, _Ctx] = {}  # requests waiting on an upstream
        self._drain: asyncio.TimerHandle | None = None
        #: Hooks, callbacks, metrics and traces; the end-of-request fan-out (observe.on_request_end).
        self.observe = Observe(config)
        self.observe.models = self.models
        self.keys: Any = None  # virtual keys, budgets, limits and spend: with a master key
        if config.master_key:
            groups, names = deployment_index(config)
            router = self.models.router
            self.keys = KeyManager(config.master_key, settings=config.general_settings, access_groups=groups,
                                   deployment_models=names,
                                   deployment_lookup=router.get_deployment if router is not None else None,
                                   limiter=key_limiter(router))
            self.keys.key_generate_params = config.key_generate_params
            self.keys.default_end_user_tier = config.end_user_budget_id
            self.keys.default_end_user_budget = config.end_user_max_budget
            self.keys.internal_user_settings = config.internal_user_settings
            self.keys.proxy_budget = config.proxy_budget
            self.observe.on_request_end(self.keys.on_request_end)  # spend rows
            crossed = getattr(self.observe.metrics, "soft_budget_crossed", None)
            if crossed is not None:
                self.keys.soft_budget_listeners.append(crossed)
        self.responses_db = responses_db(self.keys, self.ingresses["/v1/responses"])
        #: Models added through /model/new (general_settings.store_model_in_db).
        self.db_models = DbModels(self)
        if self.keys is not None:
            self.keys.db_models = self.db_models
            self.keys.store_models = self.db_models.enabled
        self.cache = build_gateway_cache(config.cache_params)
        # Cache hits on the chat API go out as bytes unless a hook may rewrite the answer.
        self._served_streams = not (self.observe.iterator_hooks or self.observe.chunk_hooks)
        self._served_plain = not self.observe.success_hooks
        watch_redis(self.observe.metrics, getattr(self.models, "router", None), self.cache)
        self.state_gauges = state_gauges(self.observe.metrics, self.keys, getattr(self.models, "router", None))
        if self.observe.metrics is not None and hasattr(self.observe.metrics, "in_flight"):
            self.observe.metrics.in_flight = self._inflight.values  # (the in-flight gauges, read at each batch)

    def models_changed(self) -> None:
        """Rebuild what the gateway built from the deployments at start (``config.deployments``
        now with the database's models after the config's): the served names and ``/v1/models``,
        the client-param policy, key access groups, the redaction of keys and upstream hosts."""
        config = self.config
        config.deployments[self.db_models.config_count:] = list(self.db_models.deployments.values())
        self.models.refresh_names()
        self._models_body = _dumps({"object": "list", "data": [self._model_card(n) for n in self.models.names]})
        self.client_params = ClientParamPolicy(config.deployments)
        if self.keys is not None:
            self.keys.access_groups, self.keys.deployment_models = deployment_index(config)
        secrets = self._secrets + self.db_models.all_secrets()
        self.redact_secrets = errors.make_redactor(secrets)
        self.redact = errors.make_redactor(secrets + errors.upstream_hosts(config))

    def _model_card(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self.created, "owned_by": "llmrelay"}

    # ------------------------------------------------------------------ ASGI entry
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self._prices():
                    # streams without upstream usage are counted offline: load the
                    # tokenizers now, in a thread, not in the first such request on the loop
                    await warm_tokenizers(m for ms in deployment_index(self.config)[1].values() for m in ms)
                if self.keys is not None:
                    await self.keys.start()
                    self.responses_db.start()
                    await self.db_models.start()
                start_shared(getattr(self.models, "router", None))
                if self.state_gauges is not None:
                    self.state_gauges.start()
                if self.health_monitor is not None:
                    self.health_monitor.start()
                if self.tune_runtime:
                    runtime.settle()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.health_monitor is not None:
                    await self.health_monitor.stop()
                if self.state_gauges is not None:
                    await self.state_gauges.stop()
                if self.keys is not None:
                    await self.db_models.stop()
                    await self.responses_db.stop()
                    await self.keys.stop()
                await self.observe.close()
                await stop_shared(getattr(self.models, "router", None), self.cache)
                try:
                    from ..transport.aio import close_sessions

                    await close_sessions()
                except Exception:  # noqa: BLE001 - shutting down anyway
                    log.debug("closing upstream sessions failed", exc_info=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = _perf()
        authorization = api_key = x_api_key = content_length = request_id = traceparent = customer = end_user = None
        tags = routing = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                content_length = value
            elif name == b"x-request-id":
                request_id = value
            elif name == b"api-key":
                api_key = value
            elif name == b"x-api-key":
                x_api_key = value
            elif name == b"traceparent":
                traceparent = value
            elif name == b"x-litellm-customer-id":
                customer = value
            elif name == b"x-litellm-end-user-id":
                end_user = value
            elif name == b"x-litellm-tags":
                tags = value
            elif name in _ROUTING_HEADERS:
                routing = routing or {}
                routing[_ROUTING_HEADERS[name]] = value
        if request_id is None or not _REQUEST_ID.match(request_id):
            request_id = new_request_id()
        ctx = _Ctx(start, request_id)
        ctx.traceparent = traceparent
        customer = customer or end_user  # (LiteLLM's order: the customer id header first)
        if not customer and self.customer_header is not None:  # then the header the config names
            customer = next((v for n, v in scope["headers"] if n == self.customer_header and v.strip()), None)
        ctx.customer = customer or None
        ctx.tags = tags
        ctx.routing = routing
        extensions = scope.get("extensions")
        if extensions:
            ctx.direct = extensions.get(_DIRECT)
        path = scope["path"]
        method = scope["method"]
        try:
            ingress = self.ingresses.get(path)
            if self.ip_filter is not None and path not in _PROBE_PATHS and not self.ip_filter.allows(scope):
                if ingress is not None:
                    ctx.ingress = ingress  # (the refusal in the shape of the API called)
                return await self._error(ctx, send, 403, FORBIDDEN_MESSAGE, code="ip_not_allowed")
            if self.route_policy is not None and not await self._route_allowed(
                    ctx, send, path, ingress, authorization, api_key, x_api_key):
                return
            if ingress is not None:
                ctx.ingress = ingress
                if method != "POST":
                    return await self._method_not_allowed(ctx, send, b"POST")
                if not await self._authenticate(ctx, send, authorization, api_key, x_api_key):
                    return
                if self.parallel_cap is None:
                    await self._api(ctx, ingress, receive, send, content_length, scope)
                else:
                    await self._api_capped(ctx, ingress, receive, send, content_length, scope)
            elif path in _MODELS_PATHS or path.startswith(("/v1/models/", "/models/")):
                if method != "GET":
                    return await self._method_not_allowed(ctx, send, b"GET")
                if not await self._authenticate(ctx, send, authorization, api_key, x_api_key):
                    return
                await self._models(ctx, send, path)
            elif path.startswith(("/v1/responses/", "/responses/")):
                ctx.ingress = ingress = self.ingresses["/v1/responses"]
                if method not in ("GET", "DELETE"):
                    return await self._method_not_allowed(ctx, send, b"GET, DELETE")
                if not await self._authenticate(ctx, send, authorization, api_key, x_api_key):
                    return
                response_id = path.rsplit("/", 1)[1]
                if self.responses_db is not None:
                    await self.responses_db.load(response_id)
                status, body = ingress.stored(method, response_id)
                await self._json(ctx, send, status, body)
            elif path in _MODEL_INFO_PATHS:
                if method != "GET":
                    return await self._method_not_allowed(ctx, send, b"GET")
                if not await self._authenticate(ctx, send, authorization, api_key, x_api_key):
                    return
                from .model_info import model_info_list

                router = self.models.router
                data = model_info_list(self.config, ids=router.get_model_ids() if router is not None else None)
                visible = await self._visible(ctx)
                if visible is not None:
                    data = [d for d in data if d.get("model_name") in visible]
                await self._json(ctx, send, 200, _dumps({"data": data}))
            elif path == "/health":
                if method != "GET":
                    return await self._method_not_allowed(ctx, send, b"GET")
                if not await self._authenticate(ctx, send, authorization, api_key, x_api_key):
                    return
                await self._health(ctx, send, scope)
            elif path in _LIVENESS_PATHS:
                await self._json(ctx, send, 200, b'"I\'m alive!"')
            elif path == "/health/readiness":
                body = {"status": "healthy" if self.models.names else "no models", "models": len(self.models.names)}
                shared = await redis_state(getattr(self.models, "router", None))
                if shared is not None:  # degraded, not unready: requests go on per instance
                    body["redis"] = "connected" if shared["up"] else "unreachable"
                await self._json(ctx, send, 200 if self.models.names else 503, _dumps(body))
            elif path == "/openapi.json":
                if self._openapi is None:
                    from .openapi import openapi_document

                    self._openapi = _dumps(openapi_document())
                await self._json(ctx, send, 200, self._openapi)
            elif self.keys is not None and is_management_path(path):
                if await self._authenticate(ctx, send, authorization, api_key, x_api_key):
                    await self._manage(ctx, scope, receive, send, method, path)
                path = logged_path(path)
            elif path == "/":
                await self._json(ctx, send, 200, b'{"name":"llmrelay gateway","openapi":"/openapi.json"}')
            elif path in ("/metrics", "/metrics/") and (metrics := self.observe.metrics_body()) is not None:
                await self._metrics(ctx, send, *metrics)
            else:
                await self._error(
                    ctx, send, 404,
                    f"Unknown path: {method} {path}. This gateway serves: {served_endpoints()}.",
                    code="unknown_url",
                )
                path = self.redact_secrets(path)  # (a key sent in the URL by mistake)
        finally:
            if cuts.SCOPE_CUT in scope:  # the server cut the connection (a deadline): say why
                ctx.status, ctx.error = scope[cuts.SCOPE_CUT]
            if ctx.auth is not None:
                await self.keys.finish(ctx.auth, ctx)  # usage, cost, limits (before the fan-out)
            if self._prices():
                self.observe.end(ctx)
            self._log(ctx, method, path)

    # ------------------------------------------------------------------ keys
    async def _authenticate(self, ctx: _Ctx, send: Send, authorization: bytes | None, api_key: bytes | None,
                            x_api_key: bytes | None) -> bool:
        """Whether the caller may go on (else the refusal has been sent)."""
        if self.keys is None:  # no master key: an open gateway
            return True
        who = await self.keys.authenticate(client_key(authorization, api_key, x_api_key))
        if isinstance(who, Refusal):
            await self._refuse(ctx, send, who)
            return False
        ctx.auth = who
        ctx.key_alias = who.key_alias
        return True

    async def _refuse(self, ctx: _Ctx, send: Send, refusal: Refusal) -> None:
        ctx.error = refusal.type
        body = ctx.ingress.error_body(refusal.status, refusal.message, param=refusal.param, code=refusal.code,
                                      type=refusal.type)
        await self._json(ctx, send, refusal.status, body, refusal.headers)

    async def _manage(self, ctx: _Ctx, scope: Scope, receive: Receive, send: Send, method: str, path: str) -> None:
        from .management import handle

        try:
            body = await self._read_body(receive)
        except _Disconnected:
            ctx.status = 499
            return
        if body is None:
            return await self._too_large(ctx, send)
        status, payload, extra = await handle(self.keys, ctx.auth, method, path, scope.get("query_string", b""), body)
        if status != 200:
            ctx.error = errors.ERROR_TYPES.get(status, "refused")
        await self._json(ctx, send, status, payload, extra)

    async def _route_allowed(self, ctx: _Ctx, send: Send, path: str, ingress: Ingress | None,
                             authorization: bytes | None, api_key: bytes | None, x_api_key: bytes | None) -> bool:
        """``allowed_routes`` / ``admin_only_routes`` (else the refusal has been sent)."""
        if ingress is not None:
            ctx.ingress = ingress
        policy = self.route_policy
        if not policy.exposed(path):
            await self._error(ctx, send, 403, f"Route not allowed: {path} is not in general_settings.allowed_routes.",
                              code="route_not_allowed")
            return False
        if policy.admin_only_route(path):
            if not await self._authenticate(ctx, send, authorization, api_key, x_api_key):
                return False
            if ctx.auth is not None and not ctx.auth.master:
                await self._error(ctx, send, 403, f"user not allowed to access this route. Route={path} is an admin "
                                                  "only route", code="admin_only_route")
                return False
        return True

    async def _health(self, ctx: _Ctx, send: Send, scope: Scope) -> None:
        """``GET /health``: one real call per deployment (master key only: each check costs)."""
        from urllib.parse import parse_qs

        from .health import UnknownModel, check_health

        if ctx.auth is not None and not ctx.auth.master:
            return await self._error(ctx, send, 403, "Only the master key (proxy admin) can run /health: each check "
                                                     "calls the upstream.", code="forbidden")
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        try:
            if self.health_monitor is not None:
                report = await self.health_monitor.report(query.get("model"), query.get("model_id"))
            else:
                report = await check_health(getattr(self.models, "router", None), self.redact,
                                            query.get("model"), query.get("model_id"))
        except UnknownModel as exc:
            return await self._error(ctx, send, 404, str(exc), code="model_not_found")
        await self._json(ctx, send, 200, _dumps(report))

    # ------------------------------------------------------------------ small answers
    async def _method_not_allowed(self, ctx: _Ctx, send: Send, allow: bytes) -> None:
        await self._error(ctx, send, 405, f"Method not allowed; use {allow.decode()}.", extra=[(b"allow", allow)])

    async def _json(self, ctx: _Ctx, send: Send, status: int, body: bytes,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
        ctx.status = status
        headers = [_JSON, (b"content-length", b"%d" % len(body)), *ctx.headers()]
        if extra:
            headers.extend(extra)
        await _start(ctx, send, status, headers, body)

    async def _metrics(self, ctx: _Ctx, send: Send, content_type: bytes, body: bytes) -> None:
        ctx.status = 200
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *ctx.headers()]
        await _start(ctx, send, 200, headers, body)

    async def _error(self, ctx: _Ctx, send: Send, status: int, message: str, *, param: str | None = None,
                     code: str | None = None, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        ctx.error = message[:200]
        await self._json(ctx, send, status, ctx.ingress.error_body(status, message, param=param, code=code), extra)

    async def _exception(self, ctx: _Ctx, send: Send, exc: BaseException) -> None:
        if not isinstance(exc, LLMRelayError):
            self._log_unexpected(ctx, exc)
        self._log_upstream_error(ctx, exc)
        status, body, extra = ctx.ingress.exception(exc, self.redact, **self._error_options(ctx))
        ctx.error = type(exc).__name__
        await self._json(ctx, send, status, body, extra)

    async def _visible(self, ctx: _Ctx) -> list[str] | None:
        """The model groups the caller's key may use, or None for all (LiteLLM's /models and
        /model/info show a key only its models)."""
        if self.keys is None or ctx.auth is None:
            return None
        return await self.keys.visible_models(ctx.auth, self.models.names)

    async def _models(self, ctx: _Ctx, send: Send, path: str) -> None:
        visible = await self._visible(ctx)
        if path in _MODELS_PATHS:
            if visible is None:
                return await self._json(ctx, send, 200, self._models_body)
            cards = [self._model_card(n) for n in visible]
            return await self._json(ctx, send, 200, _dumps({"object": "list", "data": cards}))
        name = path.split("/models/", 1)[1]
        if name in self.models and (visible is None or name in visible):
            return await self._json(ctx, send, 200, _dumps(self._model_card(name)))
        await self._error(ctx, send, 404, f"The model {name!r} is not served here.", param="model", code="model_not_found")

    # ------------------------------------------------------------------ the APIs
    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole request body, or None if it is larger than the limit."""
        limit = self.max_body
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                return None
            parts.append(body)
            if not message.get("more_body"):
                return body if len(parts) == 1 else b"".join(parts)

    async def _too_large(self, ctx: _Ctx, send: Send) -> None:
        await self._error(
            ctx, send, 413,
            f"Request body too large: the limit is {self.max_body} bytes "
            "(general_settings.max_request_size_mb).",
            extra=[(b"connection", b"close")],
        )

    async def _api_capped(self, ctx: _Ctx, ingress: Ingress, receive: Receive, send: Send,
                          content_length: bytes | None, scope: Scope) -> None:
        """:meth:`_api` under ``global_max_parallel_requests`` (a 429 when the process is full)."""
        if self.in_flight >= self.parallel_cap:
            return await self._error(
                ctx, send, 429,
                f"Max parallel request limit reached: this gateway serves at most {self.parallel_cap} requests "
                "at once (general_settings.global_max_parallel_requests). Retry shortly.",
                code="max_parallel_requests", extra=[(b"retry-after", b"1")])
        self.in_flight += 1
        try:
            await self._api(ctx, ingress, receive, send, content_length, scope)
        finally:
            self.in_flight -= 1

    async def _api(self, ctx: _Ctx, ingress: Ingress, receive: Receive, send: Send,
                   content_length: bytes | None, scope: Scope) -> None:
        """Every API's request path: read the body, translate it, check it, call upstream."""
        if content_length is not None:
            try:
                too_large = int(content_length) > self.max_body
            except ValueError:
                return await self._error(ctx, send, 400, "Invalid Content-Length header.")
            if too_large:
                return await self._too_large(ctx, send)
        # A body that came with the headers is taken without receive() where the server offers it.
        raw = ctx.direct.take_body() if ctx.direct is not None else None
        if raw is None:
            try:
                raw = await self._read_body(receive)
            except _Disconnected:
                ctx.status = 499
                ctx.disconnected = True
                return
            if raw is None:
                return await self._too_large(ctx, send)
        elif len(raw) > self.max_body:
            return await self._too_large(ctx, send)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return await self._error(ctx, send, 400, f"The request body is not valid JSON: {exc}")
        if type(data) is not dict:
            return await self._error(ctx, send, 400, "The request body must be a JSON object.")
        if self.responses_db is not None and "previous_response_id" in data and ingress.name == "responses":
            await self.responses_db.load(data["previous_response_id"])
        try:
            request = ingress.parse(data)
        except IngressError as exc:
            return await self._error(ctx, send, exc.status, exc.message, param=exc.param, code=exc.code)
        model = request.model
        ctx.model = model
        ctx.stream = request.stream
        if model not in self.models:
            names = ", ".join(self.models.names) or "(none)"
            return await self._error(
                ctx, send, 404,
                f"The model {model!r} is not served by this gateway. Available models: {names}.",
                param="model", code="model_not_found",
            )
        try:
            request.params = params = self.client_params.screen(model, request.params, ingress.known_params)
            if ctx.routing is not None:
                _header_routing(params, ctx.routing)
            fallbacks = self.client_params.routing(params, self.models, ingress.known_params) \
                if not _ROUTING_KEYS.isdisjoint(params) else None
        except ClientParamError as exc:
            return await self._error(ctx, send, 400, str(exc), param=exc.param)
        if self.stream_usage and request.stream and ingress.name in _USAGE_INGRESSES:
            _include_usage(request.params)
        if ctx.tags is not None:
            _add_header_tags(request.params, ctx.tags)
        if self.enforce_user and ingress.name in _OPENAI_INGRESSES and ctx.customer is None \
                and not end_user_of(request.params):
            # (LiteLLM's text; it answers 401 for a missing parameter, this gateway 400)
            return await self._error(ctx, send, 400, "'user' param not passed in. 'enforce_user_param'=True",
                                     param="user")
        # The cache key before the keys' admission (unless a hook may still change the request):
        # in shared mode the admission reads the cache entry in its own Redis round trip.
        early = self.cache is not None and request.kind == "chat" and not self.observe.pre_hooks
        if early:
            try:
                ctx.cache = self.cache.request(scope, request)
            except ValueError as exc:
                return await self._error(ctx, send, 400, str(exc), param="cache")
        who = ctx.auth
        if who is not None:
            # the end user: LiteLLM's headers first, else the request's `user`
            end_user = end_user_of(request.params) if ctx.customer is None else ctx.customer.decode("latin-1")
            refused = await self.keys.admit(who, model, end_user, ctx.cache)
            if refused is None and fallbacks:  # a request's own fallbacks: models the key may use
                refused = self.keys.may_use(who, fallbacks)
            if refused is not None:
                return await self._refuse(ctx, send, refused)
            ctx.extra = self.keys.headers(who)
            ctx.messages = request.messages
            metadata = request.params.get("metadata")
            if metadata is not None:
                who.tags = request_tags(metadata)
        if self.observe.pre_hooks:
            try:
                await self.observe.pre_call(ctx, request)
            except Exception as exc:  # noqa: BLE001 - a hook rejected the request
                ctx.exc = exc
                status, message = rejection(exc)
                return await self._error(ctx, send, status, message)
            ctx.model, ctx.stream = request.model, request.stream
        if self.cache is not None and not early:
            try:
                ctx.cache = self.cache.request(scope, request)
            except ValueError as exc:
                return await self._error(ctx, send, 400, str(exc), param="cache")
        if (ctx.cache is not None and ingress is CHAT
                and (self._served_streams if request.stream else self._served_plain)
                and await self._served(ctx, send, request)):
            return
        await self._call_upstream(ctx, receive, send, request)

    async def _served(self, ctx: _Ctx, send: Send, request: CanonicalRequest) -> bool:
        """Answer a cache hit on the chat API with its stored bytes (``CacheRequest.served``: the
        general replay's bytes, rendered once per entry) in one body write; False: not such a
        hit, the request goes on as usual (without reading the cache again)."""
        t = _perf()
        hit = await ctx.cache.served(request)
        ctx.upstream += _perf() - t
        if hit is None:
            return False
        self.observe.upstream(ctx, request)
        ctx.result = hit
        ctx.usage = hit.usage
        ctx.done = True
        ctx.status = 200
        if request.stream:
            ctx.chunks = hit.chunks
            headers = _SSE_HEADERS + ctx.headers()
        else:
            headers = [_JSON, (b"content-length", b"%d" % len(hit.body)), *ctx.headers(), _FREE]
        start = {"type": "http.response.start", "status": 200, "headers": headers}
        body = {"type": _BODY, "body": hit.body, "more_body": False}
        if ctx.direct is not None:
            await ctx.direct.respond(start, body)
        else:
            await send(start)
            await send(body)
        if request.stream:
            ctx.ttft = _perf() - ctx.start
        return True

    async def _call_upstream(self, ctx: _Ctx, receive: Receive, send: Send, request: CanonicalRequest) -> None:
        """Call the model group for a canonical request and answer in the ingress's format."""
        task = asyncio.current_task()
        self._inflight[task] = ctx
        ingress = ctx.ingress
        stream = request.stream

        def lost() -> None:
            # The client left before our response was complete: stop the upstream call.
            if not ctx.done:
                ctx.disconnected = True
                task.cancel()

        # Our server calls lost() itself when the connection goes; under another ASGI server
        # a task waits for http.disconnect.
        direct = ctx.direct
        watcher = None if direct is not None and direct.on_disconnect(lost) else asyncio.ensure_future(_watch(receive, lost))
        observe = self.observe
        observe.upstream(ctx, request)
        try:
            t = _perf()
            try:
                if ctx.cache is None:
                    result = ctx.result = await self.models.acall(request)
                else:
                    result = ctx.result = await ctx.cache.acall(self.models, request)
                # A stream's first chunk is awaited before the response starts, so that a
                # failure before it is still a normal HTTP error (the stream closes itself).
                first = await _first_chunk(result) if stream else None
                client_stream = result
                if observe.stream_hooks and stream:  # (the hooks see the first chunk too)
                    client_stream, first = await observe.wrap_stream(ctx, result, first)
            except Exception as exc:  # noqa: BLE001 - every failure becomes an HTTP error
                ctx.upstream += _perf() - t
                ctx.done = True
                ctx.exc = exc
                if observe.failure_hooks:
                    await observe.post_failure(ctx, exc)
                return await self._exception(ctx, send, exc)
            ctx.upstream += _perf() - t
            if stream:
                await self._stream(ctx, send, client_stream, first, ingress.encoder(request))
            else:
                if observe.success_hooks:
                    result = ctx.result = await observe.post_success(ctx, result)
                ctx.usage = getattr(result, "usage", None)
                body = ingress.response_body(result, request)
                ctx.done = True
                await self._json(ctx, send, 200, body, _cost_header(result))
        except asyncio.CancelledError:
            if not ctx.disconnected and ctx.cut is None:
                raise
            _uncancel(task)
            if ctx.disconnected:
                ctx.status = 499
                ctx.error = "client disconnected"
            elif not ctx.status:  # cut before the answer started: a 503
                await self._exception(ctx, send, cuts.cut_error(ctx.cut))
        finally:
            ctx.done = True
            if watcher is None:
                direct.on_disconnect(None)
            else:
                watcher.cancel()
            self._inflight.pop(task, None)

    async def _stream(self, ctx: _Ctx, send: Send, stream: Any, first: Any, encoder: Any) -> None:
        try:
            ctx.status = 200
            head = encoder.start()
            if first is None:
                await _start(ctx, send, 200, _SSE_HEADERS + ctx.headers())
                ctx.done = True
                return await send({"type": _BODY, "body": head + encoder.end(), "more_body": False})
            encode = encoder.chunk
            # The headers and the first chunk in one write where the server takes it.
            frame = encode(first)
            headers = _SSE_HEADERS + ctx.headers()
            direct = ctx.direct
            if direct is None or not direct.start(200, headers, head + frame):  # (_start, without its coroutine)
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": _BODY, "body": head + frame, "more_body": True})
            ctx.ttft = _perf() - ctx.start
            count = 1
            last = first
            # The common case (OpenAI-format upstream, chat client) is relayed from the upstream's
            # read callback once the chunks decoded so far are out (see fastpath.py).
            relay = relay_for(stream, encoder, ctx.direct, frame) if ctx.direct is not None and ctx.cache is None else None
            # Chunks the library has already decoded (they arrived in the same upstream read)
            # go out in one write; a chunk is never held back waiting for the upstream.
            parts: list[bytes] = []
            try:
                while True:
                    if relay is not None and not stream.chunks_ready:
                        if relay.attach():
                            try:
                                await relay.run()
                            finally:
                                count += relay.count
                                ctx.fast = relay.fast
                                if relay.last is not None:
                                    last = relay.last
                        relay = None
                    try:
                        chunk = await stream.__anext__()
                    except StopAsyncIteration:
                        break
                    parts.append(encode(chunk))
                    count += 1
                    last = chunk
                    # (the closing chunks of an ended stream go out with its end, in one write)
                    if not stream.chunks_ready and not getattr(stream, "exhausted", False):
                        await send({"type": _BODY, "body": b"".join(parts), "more_body": True})
                        parts.clear()
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - after the first chunk: an error frame
                if isinstance(exc, asyncio.CancelledError):
                    if ctx.cut is None:
                        raise
                    _uncancel(asyncio.current_task())
                    exc = cuts.cut_error(ctx.cut)
                    log.warning("request %s: stream cut after %d chunks: %s", ctx.request_id.decode(), count, ctx.cut)
                elif not isinstance(exc, LLMRelayError):
                    self._log_unexpected(ctx, exc)
                ctx.error = type(exc).__name__
                ctx.exc = exc
                self._log_upstream_error(ctx, exc)
                parts.append(encoder.error(exc, self.redact, **self._error_options(ctx)))
            ctx.chunks = count
            ctx.usage = last.__dict__.get("usage") or _upstream_usage(stream)
            ctx.done = True
            parts.append(encoder.end())
            await send({"type": _BODY, "body": b"".join(parts), "more_body": False})
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    def start_drain(self, grace: float) -> None:
        """Graceful stop (called by the server, once or more): after ``grace`` seconds, end the
        requests still waiting on an upstream (a stream gets an error frame and its end; an
        unanswered request a 503)."""
        if self._drain is None:
            self._drain = asyncio.get_running_loop().call_later(grace, self._cut_inflight, grace)

    def _cut_inflight(self, grace: float) -> None:
        for task, ctx in list(self._inflight.items()):
            ctx.cut = f"the gateway is shutting down (graceful_timeout={grace:g}s)"
            task.cancel()

    def _error_options(self, ctx: _Ctx) -> dict[str, Any]:
        """Keyword arguments for the ingress's error rendering (errors.status_and_body)."""
        return {"request_id": ctx.request_id.decode(), "max_retry_after": self.max_retry_after}

    def _log_upstream_error(self, ctx: _Ctx, exc: BaseException) -> None:
        # The details clients do not get (upstream URL, host, connection error), under the request id.
        if isinstance(exc, LLMRelayError) and errors.status_of(exc) >= 500:
            log.warning("request %s: upstream error: %s", ctx.request_id.decode(), self.redact_secrets(str(exc)))

    def _log_unexpected(self, ctx: _Ctx, exc: BaseException) -> None:
        # A bug, not an upstream error: log the traceback, with secrets removed like everything else.
        import traceback

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("unexpected error handling request %s: %s", ctx.request_id.decode(), self.redact(text))

    def _prices(self) -> bool:
        """Whether anything takes a request's usage and cost (keys and spend, hooks, callbacks,
        metrics, the access log): if nothing does, a stream without upstream usage is not
        counted offline at its end (nor its tokenizer loaded)."""
        return self.observe.active or access_log.isEnabledFor(logging.INFO)

    # ------------------------------------------------------------------ the log line
    def _log(self, ctx: _Ctx, method: str, path: str) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        record: dict[str, Any] = {
            "request_id": ctx.request_id.decode(),
            "method": method,
            "path": path,
            "status": ctx.status,
            "latency_ms": round((_perf() - ctx.start) * 1000.0, 3),
        }
        if ctx.model is not None:
            record["model"] = ctx.model
            record["stream"] = ctx.stream
            record["upstream_ms"] = round(ctx.upstream * 1000.0, 3)
            if ctx.stream:
                record["chunks"] = ctx.chunks
                record["ttft_ms"] = round(ctx.ttft * 1000.0, 3)
                if ctx.fast:
                    record["fast_chunks"] = ctx.fast
            usage = ctx.usage
            if usage is not None:
                get = usage.get if isinstance(usage, dict) else usage.__dict__.get
                record["prompt_tokens"] = get("prompt_tokens")
                record["completion_tokens"] = get("completion_tokens")
            record["cost"] = ctx.cost
            record["key_alias"] = ctx.key_alias
        if ctx.cache is not None:
            record["cache_hit"] = ctx.cache.hit
        if ctx.error:
            record["error"] = self.redact(ctx.error)
        handler = direct_handler(access_log)
        if handler is not None:  # as `llmrelay proxy` configures it: the line's bytes, batched per loop turn
            handler.write_line(_dumps(record, option=_NEWLINE))
        else:  # the user's logging configuration: through logging, to every handler
            access_log.info(_dumps(record).decode())


async def _watch(receive: Receive, lost: Callable[[], None]) -> None:
    """Call ``lost()`` at the first ``http.disconnect`` (the client left before our response was complete)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return lost()


async def _start(ctx: _Ctx, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes | None = None,
                 more: bool = False) -> None:
    """Start the response and send ``body`` (the whole body, or with ``more`` its first part):
    through the server's direct path when it takes it (one check of the whole header block,
    the headers and the body in one write, see ``server.DirectBody.start``), else as ASGI
    messages."""
    direct = ctx.direct
    if direct is not None and direct.start(status, headers, body or b""):
        if not more and body is not None:
            await send({"type": _BODY, "body": b"", "more_body": False})  # the end (nothing to write)
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if body is not None:
        await send({"type": _BODY, "body": body, "more_body": more})


#: The APIs whose streams end with a usage chunk only when the client asks (``stream_options``).
_USAGE_INGRESSES = frozenset({"chat", "completions"})
#: The OpenAI APIs (``general_settings.enforce_user_param`` applies to them, as in LiteLLM).
_OPENAI_INGRESSES = frozenset({"chat", "completions", "embeddings", "responses"})


def _include_usage(params: dict[str, Any]) -> None:
    """Ask for the usage chunk, keeping the client's other ``stream_options`` (LiteLLM's
    ``always_include_stream_usage``)."""
    options = params.get("stream_options")
    params["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}


def _uncancel(task: Any) -> None:
    """Undo one cancel() we handled (Python 3.11+), so later awaits are not cancelled again."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


async def _first_chunk(stream: Any) -> Any:
    """The stream's first chunk, or None if it has none."""
    if type(stream) is CustomStreamWrapper and stream._queue:
        return stream._queue.popleft()  # (what __anext__ returns first: the router's peeked chunk)
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


def _upstream_usage(stream: Any) -> Any:
    state = getattr(stream, "state", None)
    return getattr(state, "upstream_usage", None)


# ====================================================================== factories
def create_app(config: ProxyConfig, limits: ServerLimits | None = None) -> ProxyApp:
    """Apply the config's library settings to this process and build the app (with the
    default upstream timeouts of ``limits`` where the config sets none)."""
    import dataclasses

    config.apply_settings()
    limits = limits or ServerLimits()
    router_settings = limits.router_defaults(config.router_settings, config.litellm_settings.get("request_timeout"))
    return ProxyApp(dataclasses.replace(config, router_settings=router_settings), limits=limits)


def create_app_from_env() -> ProxyApp:
    """For ``--workers``: each worker process loads the config named in ``LLMRELAY_PROXY_CONFIG``."""
    import os

    from .config import default_config, load_config

    path = os.environ.get(CONFIG_ENV)
    config = load_config(path) if path else default_config()
    app = create_app(config, ServerLimits.from_env())
    app.tune_runtime = True  # a worker of `llmrelay proxy --workers N`
    return app
