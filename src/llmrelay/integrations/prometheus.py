"""``PrometheusLogger``: LiteLLM's Prometheus metrics (``callbacks: [prometheus]``).

Needs the ``prometheus_client`` package (``pip install 'llmrelay[observability]'``). The metric
names are LiteLLM's, so existing Grafana dashboards keep working; the full list, with labels,
is in ``docs/observability.md``. With ``PROMETHEUS_MULTIPROC_DIR`` set (the gateway sets it for
``--workers N``) every worker writes its samples there and ``/metrics`` reports the sum.

As a library callback it counts calls, tokens, spend and latencies from each event's
``standard_logging_object``; in the gateway it also sees the request itself (status code,
in-flight requests and streams, gateway overhead, retries, fallbacks, cooldowns).

In a single gateway process (no ``PROMETHEUS_MULTIPROC_DIR``) the requests' values are applied
in batches: kept per kind of request (same labels) and added to ``prometheus_client``'s values
at every ``/metrics`` scrape and every :data:`BATCH` requests, so a scrape always reports every
request that ended before it, and a batch of N requests of one kind costs one update per counter
(not N). With workers sharing a directory each request is applied at once (the other workers'
scrapes read it). Library events are applied at once.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left, bisect_right
from operator import truediv
from time import perf_counter as _perf
from typing import Any

from .custom_logger import CustomLogger

__all__ = ["PrometheusLogger", "METRICS", "BATCH"]

#: Most gateway requests whose metrics wait for a scrape (a single process; see the docstring).
BATCH = 256

_KEY = ["hashed_api_key", "api_key_alias", "team", "team_alias"]
_USER = ["end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user"]
_DEPLOYMENT = ["requested_model", "litellm_model_name", "model_id", "api_base", "api_provider", *_KEY]
_EXC = ["exception_status", "exception_class"]

#: name → (kind, labels, help). Counters are exposed with the ``_total`` suffix.
METRICS: dict[str, tuple[str, list[str], str]] = {
    "litellm_requests_metric": ("counter", ["end_user", "hashed_api_key", "api_key_alias", "model", "team",
                                            "team_alias", "user"], "LLM calls (successful and failed)"),
    "litellm_spend_metric": ("counter", ["end_user", "hashed_api_key", "api_key_alias", "model", "team",
                                         "team_alias", "user"], "Spend in USD"),
    "litellm_input_tokens_metric": ("counter", [*_USER, "model"], "Input (prompt) tokens"),
    "litellm_output_tokens_metric": ("counter", [*_USER, "model"], "Output (completion) tokens"),
    "litellm_total_tokens_metric": ("counter", [*_USER, "model"], "Input + output tokens"),
    "litellm_proxy_total_requests_metric": ("counter", [*_USER, "status_code"], "Requests to the gateway"),
    "litellm_proxy_failed_requests_metric": ("counter", [*_USER, *_EXC], "Gateway requests that failed"),
    "litellm_request_total_latency_metric": ("histogram", [*_USER, "model"], "Whole request latency (s)"),
    "litellm_llm_api_latency_metric": ("histogram", [*_USER, "model"], "Upstream LLM API latency (s)"),
    "litellm_llm_api_time_to_first_token_metric": ("histogram", ["model", *_KEY], "Time to first token (s), streams"),
    "litellm_overhead_latency_metric": ("histogram", [*_USER, "model"], "Latency the gateway added (s)"),
    "litellm_deployment_success_responses": ("counter", _DEPLOYMENT, "Successful calls per deployment"),
    "litellm_deployment_failure_responses": ("counter", [*_DEPLOYMENT, *_EXC], "Failed calls per deployment"),
    "litellm_deployment_total_requests": ("counter", _DEPLOYMENT, "Calls per deployment"),
    "litellm_deployment_latency_per_output_token": ("histogram", ["litellm_model_name", "model_id", "api_base",
                                                                  "api_provider", *_KEY], "Latency per output token (s)"),
    "litellm_deployment_cooled_down": ("counter", ["litellm_model_name", "model_id", "api_base", "api_provider",
                                                   "exception_status"], "Times a deployment was put in cooldown"),
    "litellm_deployment_successful_fallbacks": ("counter", ["requested_model", "fallback_model", *_KEY, *_EXC],
                                                "Requests answered by a fallback model group"),
    "litellm_deployment_failed_fallbacks": ("counter", ["requested_model", "fallback_model", *_KEY, *_EXC],
                                            "Fallbacks that failed too"),
    "llmrelay_deployment_retries": ("counter", ["requested_model", "litellm_model_name", "model_id",
                                                "exception_status"], "Retries after a failed attempt"),
    "llmrelay_in_flight_requests": ("gauge", ["requested_model"], "Chat requests being answered"),
    "llmrelay_in_flight_streams": ("gauge", ["requested_model"], "Streams being answered"),
    "llmrelay_redis_up": ("gauge", ["redis"], "1 while the shared Redis answers this worker, else 0"),
    "llmrelay_soft_budget_crossed": ("counter", ["budget_type", "hashed_api_key", "api_key_alias", "team", "user",
                                                 "end_user"],
                                     "Soft budgets crossed (key, team, user, end_user): once per budget period"),
    "llmrelay_redis_state_changes": ("counter", ["redis", "state"],
                                     "Times the shared Redis went down or came back (per worker)"),
}

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0,
            300.0, float("inf"))
_PER_TOKEN_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, float("inf"))


class PrometheusLogger(CustomLogger):
    """Counts and times calls into ``prometheus_client`` metrics (one instance per process)."""

    def __init__(self, registry: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        import prometheus_client as prom

        self._prom = prom
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = registry if registry is not None else prom.REGISTRY
        self.m: dict[str, Any] = {}
        for name, (kind, labels, doc) in METRICS.items():
            if kind == "counter":
                metric = prom.Counter(name, doc, labels, registry=self.registry)
            elif kind == "histogram":
                buckets = _PER_TOKEN_BUCKETS if name.endswith("per_output_token") else _BUCKETS
                metric = prom.Histogram(name, doc, labels, buckets=buckets, registry=self.registry)
            else:
                metric = prom.Gauge(name, doc, labels, registry=self.registry, multiprocess_mode="livesum")
            self.m[name] = metric
        self._cooldowns: dict[str, float] = {}
        self._children: dict[tuple, Any] = {}
        # The hot path updates prometheus_client's own value objects directly (the same values
        # /metrics and the multiprocess files report), skipping inc()/observe()'s checks.
        self._incs: dict[tuple, Any] = {}
        self._observes: dict[tuple, Any] = {}
        self._kinds: dict[tuple, _Kind] = {}
        self._raw_kinds: dict[tuple, _Kind] = {}  # the same, by the raw values of the labels
        #: gateway requests are applied in batches (one process; the loop's thread alone updates
        #: these): the kinds with waiting rows, their count, the in-flight gauges' changes
        self.batched = not self.multiprocess
        self._waiting: list[_Kind] = []
        self._rows = 0
        self._gauges: dict[tuple[str, str], int] = {}
        #: called before every /metrics page is written (``StateGauges.refresh``)
        self.before_scrape: list[Any] = []
        #: the requests being answered (a callable returning their contexts: ``model``,
        #: ``stream``), when the gateway tells; in one process the in-flight gauges are then read
        #: from it at each batch instead of being changed twice per request (see :meth:`flush`)
        self.in_flight: Any = None
        self._shown: dict[str, dict[str, int]] = {}  # in-flight gauge → model → value last set

    def _at(self, name: str, *values: str) -> Any:
        """The metric's child for these label values (cached: ``labels()`` costs microseconds)."""
        key = (name, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.m[name].labels(*values)
        return child

    def _inc(self, name: str, *values: str) -> Any:
        """``inc(amount)`` of a counter's or gauge's child, straight on its value (cached)."""
        key = (name, values)
        inc = self._incs.get(key)
        if inc is None:
            child = self._at(name, *values)
            value = getattr(child, "_value", None)
            inc = self._incs[key] = value.inc if hasattr(value, "inc") else child.inc
        return inc

    def _obs(self, name: str, *values: str) -> Any:
        """``observe(amounts)`` of a histogram's child (see :func:`_observer`), cached."""
        key = (name, values)
        observe = self._observes.get(key)
        if observe is None:
            observe = self._observes[key] = _observer(self._at(name, *values))
        return observe

    def redis_state(self, where: str, up: bool, changed: bool = True) -> None:
        """The shared Redis at ``where`` (host:port/db) answers or not (``RedisLink`` listener)."""
        self._at("llmrelay_redis_up", where).set(1 if up else 0)
        if changed:
            self._at("llmrelay_redis_state_changes", where, "up" if up else "down").inc()

    def soft_budget_crossed(self, budget_type: str, labels: dict[str, str]) -> None:
        """A soft_budget was crossed (``KeyManager.soft_budget_listeners``)."""
        self._at("llmrelay_soft_budget_crossed", budget_type, labels.get("hashed_api_key", ""),
                 labels.get("api_key_alias", ""), labels.get("team", ""), labels.get("user", ""),
                 labels.get("end_user", "")).inc()

    # ------------------------------------------------------------------ /metrics
    def metrics_body(self) -> tuple[bytes, bytes]:
        self.flush()
        for refresh in self.before_scrape:  # the state gauges (integrations/prometheus_state.py)
            refresh()
        prom = self._prom
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return prom.CONTENT_TYPE_LATEST.encode(), prom.generate_latest(registry)
        return prom.CONTENT_TYPE_LATEST.encode(), prom.generate_latest(self.registry)

    # ------------------------------------------------------------------ LLM call events
    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, True)

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, False)

    async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self._record(kwargs, True)

    async def async_log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self._record(kwargs, False)

    def flush(self) -> None:
        """Apply the gateway requests' waiting values (before a scrape reads them)."""
        waiting, self._waiting = self._waiting, []
        self._rows = 0
        for kind in waiting:
            rows, kind.rows = kind.rows, []
            if rows:
                kind.apply(rows)
        gauges, self._gauges = self._gauges, {}
        for (name, model), change in gauges.items():
            if change:
                self._inc(name, model)(change)
        if self.in_flight is not None and self.batched:
            requests: dict[str, int] = {}
            streams: dict[str, int] = {}
            for ctx in list(self.in_flight()):
                model = ctx.model
                requests[model] = requests.get(model, 0) + 1
                if ctx.stream:
                    streams[model] = streams.get(model, 0) + 1
            for name, now in (("llmrelay_in_flight_requests", requests), ("llmrelay_in_flight_streams", streams)):
                shown = self._shown.setdefault(name, {})
                for model in [*shown, *(m for m in now if m not in shown)]:
                    value = now.get(model, 0)
                    if shown.get(model) != value:
                        self._at(name, model).set(value)
                        shown[model] = value

    def _record(self, kwargs: dict[str, Any], ok: bool, ctx: Any = None) -> tuple[str, ...]:
        """The LLM call's metrics (and with the gateway's ``ctx``, the request's); returns
        the caller's labels (end user, key hash, key alias, team, team alias, user). The update functions of each kind of call (same caller, model,
        deployment, status) are looked up once and kept in a :class:`_Kind`; a gateway
        request's values wait in it for the next batch (:attr:`batched`)."""
        slo = kwargs.get("standard_logging_object") or {}
        get = slo.get
        hidden = get("hidden_params") or {}
        meta = get("metadata") or {}
        mget = meta.get
        stream = get("stream")
        # the kind is found by the raw values its labels are made of (made once per kind)
        raw = (get("end_user"), mget("user_api_key_hash"), mget("user_api_key_alias"), mget("user_api_key_team_id"),
               mget("user_api_key_team_alias"), mget("user_api_key_user_id"), hidden.get("litellm_model_name"),
               get("model"), get("model_group"), get("model_id"), get("api_base"), get("custom_llm_provider"), ok,
               stream, ctx.model if ctx is not None else None, ctx.status if ctx is not None else None)
        kind = self._kind_of(raw, ctx is not None)
        start = get("startTime") or 0.0
        end = get("endTime") or start
        latency = end - start if end > start else 0.0
        api = get("llm_api_duration")
        ttft = None
        if ok and stream:
            first = get("completionStartTime")
            if first:
                ttft = max(first - start, 0.0)
        overhead = None
        if ctx is not None:
            overhead = time.perf_counter() - ctx.start - ctx.upstream
            if overhead < 0:
                overhead = 0.0
        row = (get("response_cost") or 0.0, get("prompt_tokens") or 0, get("completion_tokens") or 0, latency,
               latency if api is None else max(api, 0.0), ttft, overhead)
        self._add(kind, row, ctx is not None)
        return kind.who

    def _kind_of(self, raw: tuple, gateway: bool) -> "_Kind":
        """The kind of call of the raw label values ``raw`` (see :data:`..proxy.observe.FACTS`)."""
        try:
            kind = self._raw_kinds.get(raw)
        except TypeError:  # an unhashable value (a client's ``user`` may be any JSON): by the labels
            kind = raw = None
        if kind is None:
            who = tuple([str(v or "") for v in raw[:6]])
            name, model, group, model_id, api_base, provider, ok, stream, gateway_model, status = raw[6:]
            key = (who, name or model or "", group or model or "", model_id or "", api_base or "", provider or "",
                   ok, bool(stream), gateway_model if gateway else None, status if gateway else None,
                   (name or "") if gateway else None)
            kind = self._kinds.get(key)
            if kind is None:
                kind = self._kind(key)
            if raw is not None and len(self._raw_kinds) < 10000:
                self._raw_kinds[raw] = kind
        return kind

    def _add(self, kind: "_Kind", row: tuple, gateway: bool) -> None:
        """A call's values: into its kind's batch (a gateway request, one process), else at once."""
        if gateway and self.batched:
            if not kind.rows:
                self._waiting.append(kind)
            kind.rows.append(row)
            self._rows += 1
            if self._rows >= BATCH:
                self.flush()
        else:
            kind.apply((row,))

    def _kind(self, key: tuple) -> "_Kind":
        who, model, requested, model_id, api_base, provider, ok, stream, gateway_model, status, gateway_name = key
        end_user, hashed, alias, team, team_alias, user_id = who
        keys = (hashed, alias, team, team_alias)
        user = (end_user, hashed, alias, requested, team, team_alias, user_id, model)
        deployment = (requested, model, model_id, api_base, provider, *keys)
        by_model = (end_user, hashed, alias, model, team, team_alias, user_id)
        labels: dict[str, tuple[str, tuple]] = {
            "requests": ("litellm_requests_metric", by_model),
            "spend": ("litellm_spend_metric", by_model),
            "input": ("litellm_input_tokens_metric", user),
            "output": ("litellm_output_tokens_metric", user),
            "total": ("litellm_total_tokens_metric", user),
            "latency": ("litellm_request_total_latency_metric", user),
            "api_latency": ("litellm_llm_api_latency_metric", user),
            "ttft": ("litellm_llm_api_time_to_first_token_metric", (model, *keys)),
            "success": ("litellm_deployment_success_responses", deployment),
            "deployment": ("litellm_deployment_total_requests", deployment),
            "per_token": ("litellm_deployment_latency_per_output_token", deployment[1:]),
        }
        if gateway_model is not None:
            requester = (end_user, hashed, alias, gateway_model, team, team_alias, user_id)
            labels["proxy"] = ("litellm_proxy_total_requests_metric", (*requester, str(status)))
            labels["overhead"] = ("litellm_overhead_latency_metric", (*requester, gateway_name))
        kind = _Kind(self, labels, ok, gateway_model is not None)
        kind.who = who
        # what every call of this kind updates is made now; the rest on first use (a series
        # appears in /metrics only once it has been updated, as with prometheus_client's own calls)
        for slot in ("requests", "latency", "api_latency"):
            kind.make(slot)
        if ok:
            kind.make("success")
            kind.make("deployment")
        if gateway_model is not None:
            kind.make("proxy")
            kind.make("overhead")
            if self.in_flight is not None and self.batched:  # (their series appear with the first request)
                for name in ("llmrelay_in_flight_requests", "llmrelay_in_flight_streams") if stream else (
                        "llmrelay_in_flight_requests",):
                    shown = self._shown.setdefault(name, {})
                    if gateway_model not in shown:
                        self._at(name, gateway_model).set(0)
                        shown[gateway_model] = 0
        if len(self._kinds) < 10000:
            self._kinds[key] = kind
        return kind

    # ------------------------------------------------------------------ the gateway's requests
    @property
    def idle_start(self) -> bool:
        """Whether :meth:`request_start` has nothing to do (the in-flight gauges are read from
        the gateway's requests at each batch): the gateway's observer may leave it out."""
        return self.in_flight is not None and self.batched

    def request_start(self, ctx: Any, record: Any, headers: dict[str, str]) -> None:
        if self.in_flight is not None and self.batched:
            return  # (read from the gateway's own table of requests in flight at each batch)
        self._gauge("llmrelay_in_flight_requests", ctx.model, 1)
        if ctx.stream:
            self._gauge("llmrelay_in_flight_streams", ctx.model, 1)
        record.state[id(self)] = (ctx.model, ctx.stream)

    def _gauge(self, name: str, model: str, change: int) -> None:
        """Change an in-flight gauge (batched: the net change is applied at the next flush)."""
        if self.batched:
            key = (name, model)
            gauges = self._gauges
            gauges[key] = gauges.get(key, 0) + change
        else:
            self._inc(name, model)(change)

    #: the gateway's observer hands this logger a successful request's facts
    #: (``request_facts``) instead of an event's kwargs
    takes_facts = True

    def request_facts(self, ctx: Any, record: Any, facts: tuple) -> None:
        """A successful gateway request, from its facts (:data:`..proxy.observe.FACTS`): what
        :meth:`request_end` does with its event's kwargs."""
        if self.in_flight is None or not self.batched:  # (else request_start kept nothing)
            started = record.state.pop(id(self), None)
            if started is not None:
                self._gauge("llmrelay_in_flight_requests", started[0], -1)
                if started[1]:
                    self._gauge("llmrelay_in_flight_streams", started[0], -1)
        raw, start, end, first, prompt, completion, cost, _, _, _, retried = facts
        try:
            kind = self._raw_kinds[raw]
        except (KeyError, TypeError):  # (new, or an unhashable value: _kind_of finds it by the labels)
            kind = self._kind_of(raw, True)
        latency = end - start if end > start else 0.0
        overhead = end - start - ctx.upstream  # (the end: the clock read for the facts, a moment ago)
        row = (cost or 0.0, prompt, completion, latency, latency,
               (first - start if first > start else 0.0) if raw[13] else None, overhead if overhead > 0 else 0.0)
        if self.batched:  # (as _add)
            rows = kind.rows
            if not rows:
                self._waiting.append(kind)
            rows.append(row)
            self._rows += 1
            if self._rows >= BATCH:
                self.flush()
        else:
            kind.apply((row,))
        if retried:  # (else _after has nothing to count)
            self._after(ctx, record, kind.who, False)

    def request_end(self, ctx: Any, record: Any, kwargs: dict[str, Any]) -> None:
        started = record.state.pop(id(self), None)
        if started is not None:
            self._gauge("llmrelay_in_flight_requests", started[0], -1)
            if started[1]:
                self._gauge("llmrelay_in_flight_streams", started[0], -1)
        slo = kwargs.get("standard_logging_object") or {}
        status = slo.get("status")
        self._after(ctx, record, self._record(kwargs, status == "success", ctx), status == "failure")

    def _after(self, ctx: Any, record: Any, who: tuple, failed: bool) -> None:
        """A gateway request's failure, retries, fallbacks and cooldowns (none in a plain success)."""
        result = getattr(ctx, "result", None)
        hidden = getattr(result, "_hp", None)  # (our responses' slot, without the property's call)
        if hidden is None:
            hidden = getattr(result, "_hidden_params", None)
        requested = ctx.model
        # retries, fallbacks, cooldowns: only after a failure somewhere (a plain success has none)
        attempts = failed or (hidden is not None and (hidden.get("router_attempts")
                                                      or hidden.get("model_group") not in (None, requested)))
        if not attempts:
            return
        exc = getattr(ctx, "exc", None)
        exc_status = str(getattr(exc, "status_code", None) or (ctx.status if ctx.status >= 400 else ""))
        exc_class = type(exc).__name__ if exc is not None else (ctx.error or "")
        if failed:
            self._inc("litellm_proxy_failed_requests_metric", who[0], who[1], who[2], requested, who[3], who[4],
                      who[5], exc_status, exc_class)(1)
        self._attempts(ctx, record, requested, who[1:5], failed, exc_status, exc_class)

    def _attempts(self, ctx: Any, record: Any, requested: str, key: tuple, failed: bool, exc_status: str,
                  exc_class: str) -> None:
        """Deployment failures, retries, fallbacks and cooldowns, from the router's attempts."""
        result = getattr(ctx, "result", None)
        hidden = getattr(result, "_hidden_params", None) or {}
        exc = getattr(ctx, "exc", None)
        attempts = hidden.get("router_attempts") or getattr(exc, "attempts", None) or []
        groups = [requested]
        final_group = hidden.get("model_group") if not failed else None
        for i, attempt in enumerate(attempts):
            group = attempt.get("model_group") or requested
            if group not in groups:
                groups.append(group)
            if attempt.get("error") is None or attempt.get("deployment_id") is None:
                continue
            status = str(attempt.get("status_code") or "")
            model = attempt.get("model") or ""
            provider = model.split("/", 1)[0] if "/" in model else ""
            deployment = (group, model, attempt["deployment_id"], attempt.get("api_base") or "", provider, *key)
            self._at("litellm_deployment_failure_responses", *deployment, status, attempt["error"]).inc()
            self._at("litellm_deployment_total_requests", *deployment).inc()
            after = attempts[i + 1].get("model_group") if i + 1 < len(attempts) else final_group
            if after == group:  # the next attempt is in the same group: a retry
                self._at("llmrelay_deployment_retries", group, model, attempt["deployment_id"], status).inc()
            self._cooled(record.router, attempt, model, provider, status)
        if final_group and final_group not in groups:
            groups.append(final_group)
        for group in groups[1:]:
            if not failed and group == final_group:
                self._at("litellm_deployment_successful_fallbacks", requested, group, *key, exc_status, exc_class).inc()
            else:
                self._at("litellm_deployment_failed_fallbacks", requested, group, *key, exc_status, exc_class).inc()

    def _cooled(self, router: Any, attempt: dict, model: str, provider: str, status: str) -> None:
        """Count a cooldown the first time an attempt's deployment is seen cooling down."""
        if router is None:
            return
        dep = router._by_id.get(attempt["deployment_id"])
        until = getattr(dep, "cooldown_until", 0.0) if dep is not None else 0.0
        if until and until > self._cooldowns.get(attempt["deployment_id"], 0.0):
            self._cooldowns[attempt["deployment_id"]] = until
            self._at("litellm_deployment_cooled_down", model, attempt["deployment_id"],
                                                            attempt.get("api_base") or "", provider, status).inc()


class _Kind:
    """The update functions of one kind of call (``PrometheusLogger._record``): slots filled
    with the metric children's ``inc`` and (histograms) an ``observe`` of several values at
    once, by :meth:`make` on first use; and the rows of values waiting for the next batch."""

    __slots__ = ("_logger", "_labels", "ok", "gateway", "rows", "who", "requests", "spend", "input", "output", "total",
                 "latency", "api_latency", "ttft", "success", "deployment", "per_token", "proxy", "overhead")

    def __init__(self, logger: PrometheusLogger, labels: dict[str, tuple[str, tuple]], ok: bool = True,
                 gateway: bool = False) -> None:
        self._logger = logger
        self._labels = labels
        self.ok = ok
        self.gateway = gateway
        #: (cost, prompt tokens, completion tokens, latency, upstream latency, ttft or None,
        #: gateway overhead or None) of each call not applied yet
        self.rows: list[tuple] = []
        #: the caller's labels (end user, key hash, key alias, team, team alias, user)
        self.who: tuple = ()
        for slot in self.__slots__[6:]:
            setattr(self, slot, None)

    def make(self, slot: str) -> Any:
        name, values = self._labels[slot]
        kind = METRICS[name][0]
        fn = self._logger._obs(name, *values) if kind == "histogram" else self._logger._inc(name, *values)
        setattr(self, slot, fn)
        return fn

    def apply(self, rows: Any) -> None:
        """Add ``rows`` (see :attr:`rows`) to the metrics: one update per counter, and each
        histogram's sum once and its buckets once each (columns summed and bucketed in C)."""
        n = len(rows)
        self.requests(n)
        costs, prompts, completions, latencies, api_latencies, ttfts, overheads = zip(*rows)
        cost = sum(costs)
        if not (cost > 0 and min(costs) >= 0):  # (the positive costs alone: a NaN or a negative one left out)
            cost = sum([c for c in costs if c > 0])
        if cost > 0:
            (self.spend or self.make("spend"))(cost)
        prompt = sum(prompts)
        completion = sum(completions)
        if prompt or completion:  # (token counts are never negative)
            (self.input or self.make("input"))(prompt)
            (self.output or self.make("output"))(completion)
            (self.total or self.make("total"))(prompt + completion)
        if n > 1 and latencies == api_latencies:  # (the gateway's rows: the same column, sorted once)
            ordered = sorted(latencies)
            self.latency(ordered, True)
            self.api_latency(ordered, True)
        else:
            self.latency(latencies)
            self.api_latency(api_latencies)
        if self.ok:
            ttft = [t for t in ttfts if t is not None] if ttfts.count(None) != n else None
            if ttft:
                (self.ttft or self.make("ttft"))(ttft)
            self.success(n)
            self.deployment(n)
            if 0 in completions:
                per_token = [latency / tokens for latency, tokens in zip(latencies, completions) if tokens]
            else:  # (every row has output tokens: divided in C)
                per_token = list(map(truediv, latencies, completions))
            if per_token:
                (self.per_token or self.make("per_token"))(per_token)
        if self.gateway:
            self.overhead(overheads)
            self.proxy(n)


def _observer(child: Any) -> Any:
    """``observe`` of several values of a histogram child: the sum once, and each bucket the
    values fall in once (the client's cumulative counts are made at exposition), through its
    value objects. ``observe(amounts, ordered=True)``: the amounts are sorted already."""
    total, buckets, bounds = (getattr(child, name, None) for name in ("_sum", "_buckets", "_upper_bounds"))
    if total is None or buckets is None or bounds is None or len(buckets) != len(bounds):
        def observe_each(amounts: Any, ordered: bool = False) -> None:
            for amount in amounts:
                child.observe(amount)

        return observe_each
    add = total.inc
    incs = [b.inc for b in buckets]
    bounds = list(bounds)
    last = len(incs)

    def observe(amounts: Any, ordered: bool = False) -> None:
        if len(amounts) == 1:
            amount = amounts[0]
            add(amount)
            i = bisect_left(bounds, amount)
            if i < last:
                incs[i](1)
            return
        add(sum(amounts))
        # sorted once (in C), each bucket's count is where its bound falls among the values:
        # a few bisections, not one per value (nor a Counter of them)
        values = amounts if ordered else sorted(amounts)
        n = len(values)
        done = i = 0
        while done < n:
            i = bisect_left(bounds, values[done], i)  # the bucket of the smallest value left
            if i >= last:
                break
            upto = bisect_right(values, bounds[i], done)
            if upto <= done:  # (a NaN: sorted anywhere)
                upto = done + 1
            incs[i](upto - done)
            done = upto

    return observe
