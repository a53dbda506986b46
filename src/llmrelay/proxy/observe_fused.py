"""A plain non-streamed success's metrics and spans in one pass (the gateway's common request).

With the built-in Prometheus (one process, batched, in-flight gauges read from the gateway's
table) and OpenTelemetry (its own batch processor and OTLP/HTTP exporter, spans written as the
request ends) loggers alone, :meth:`.observe.Observe.end` hands a successful non-streamed
request here first. What the request's facts (``Observe._facts``) and the two loggers'
``request_facts`` make of it is made in one function: the same Prometheus row into the same
kind's batch, the same two span entries (bytes) into the batch processor's queue. What repeats
from request to request of a kind (same caller, model group, deployment, status, response model
and finish reason) is looked up once per request by one key: the Prometheus kind, the span name,
the converted attributes and the spans' templates by the lengths of the token counts and response
id. Anything else (parameters the span records, ``metadata``, retries and fallbacks, a client's
``traceparent``, content capture, a full queue, values of unexpected types) is left to the
loggers' own path: :func:`fused_end`'s function returns False for it, before changing anything.
``tests/callbacks/test_observe_fused.py`` checks that both paths give the same rows and bytes.
"""

from __future__ import annotations

import logging
from math import floor as _floor
from time import perf_counter as _perf, time as _time
from typing import Any, Callable

from ..transport.base import HeaderLines, upstream_headers
from ..types import Choices, Usage

__all__ = ["fused_end", "fused_start"]

_new_record = object.__new__
_set_headers = upstream_headers.set

log = logging.getLogger("llmrelay.proxy")

#: kinds of request kept (beyond: each request's kind is made anew, as correct, only slower)
KINDS = 4096


def fused_end(loggers: list[Any]) -> Callable[[Any, Any, Any], bool] | None:
    """``end(ctx, record, response) -> bool`` for the gateway loggers ``loggers`` when they are
    exactly the built-in Prometheus and OpenTelemetry ones in the configuration it knows (see the
    module docstring); else None."""
    from ..integrations.opentelemetry import OpenTelemetryLogger
    from ..integrations.prometheus import PrometheusLogger

    if len(loggers) != 2:
        return None
    prom = next((x for x in loggers if type(x) is PrometheusLogger), None)
    otel = next((x for x in loggers if type(x) is OpenTelemetryLogger), None)
    if (prom is None or otel is None or not prom.batched or not prom.idle_start or otel._queue is None
            or otel._processor is None or otel._should_sample is not None):
        return None
    return _Fused(prom, otel).end


def fused_start(end: Any, record_type: type, router: Any) -> Callable[[Any, Any], None] | None:
    """``start(ctx, request)`` for :func:`fused_end`'s ``end`` when OpenTelemetry draws its own
    ids (the SDK's default generator): :meth:`.observe.Observe.upstream` of a request without a
    client's ``traceparent`` in one function (see :meth:`_Fused.start`); else None."""
    fused = getattr(end, "__self__", None)
    if type(fused) is not _Fused or fused.otel._new_trace_id is not fused._otel._random_trace_id:
        return None
    fused._record_type = record_type
    fused._router = router
    fused._flags, fused._suffix = fused.otel._new_flags, fused.otel._new_flags_suffix
    return fused.start


class _Fused:
    """:func:`fused_end`'s state: the two loggers and the kinds of request seen."""

    def __init__(self, prom: Any, otel: Any) -> None:
        from ..integrations import opentelemetry, otlp_proto, prometheus

        self.prom = prom
        self.otel = otel
        self.kinds: dict[tuple, tuple] = {}
        self._batch = prometheus.BATCH
        self._param_names = opentelemetry._PARAM_NAMES
        self._tokens_of = otlp_proto._TOKENS
        self._tokens = otlp_proto._tokens
        self._template = otlp_proto.pair_template
        self._otel = opentelemetry
        self._key = otel._key
        self._record_type: Any = None  # (set by fused_start)
        self._router: Any = None
        self._flags, self._suffix = 1, "-01"  # (the new trace's flags, set by fused_start)

    def start(self, ctx: Any, request: Any) -> None:
        """The request's record and the upstream call's ``traceparent``, as
        :meth:`.observe.Observe.upstream` and ``OpenTelemetryLogger.upstream_start`` make them for
        a request without a client's ``traceparent`` (the caller checks): a new trace, its ids
        drawn, the header line written."""
        record = ctx.call = _new_record(self._record_type)
        record.wall_start = _time() - (_perf() - ctx.start)
        record.messages = request.messages if request.kind == "chat" else request.input
        record.params = request.params
        record.stream = request.stream
        record.router = self._router
        otel = self._otel
        trace_id, upstream_id, span_id = next(otel._drawn, None) or otel._draw_ids()  # (none zero)
        record.state = {self._key: (trace_id, span_id, upstream_id, None, self._flags, None, True, otel._time_ns())}
        value = f"00-{trace_id.hex()}-{upstream_id.hex()}{self._suffix}"
        headers = HeaderLines()
        headers["traceparent"] = value
        headers.lines = f"traceparent: {value}\r\n".encode()
        _set_headers(headers)

    def end(self, ctx: Any, record: Any, response: Any) -> bool:
        """The request's metrics and spans, or False (nothing done) when its case is not this
        path's. ``response`` is the request's result, a ModelResponse."""
        now = _perf()
        params = record.params
        if params and ("metadata" in params or not self._param_names.isdisjoint(params)):
            return False
        otel = self.otel
        ids = record.state.get(self._key)
        if ids is None or ids[3] is not None or ids[5] or not ids[6] or otel.capture_content:
            return False  # (no upstream call, a client's trace, not sampled, content)
        if record.stream or ctx.stream:
            return False
        hidden = getattr(response, "_hp", None)
        if type(hidden) is not dict or "router_attempts" in hidden:
            return False
        get = hidden.get
        requested = ctx.model
        group = get("model_group")
        if group is not None and group != requested:
            return False  # a fallback group answered (retries, fallbacks to count)
        usage = response.usage
        if type(usage) is not Usage:
            return False
        prompt = usage.prompt_tokens or 0
        completion = usage.completion_tokens or 0
        if type(prompt) is not int or type(completion) is not int:
            return False
        try:
            (choice,) = response.choices
        except (TypeError, ValueError):  # (not one choice)
            return False
        if type(choice) is not Choices:
            return False
        reason = choice.finish_reason
        model = response.model
        queue = otel._queue
        batch = otel._batch
        if batch._shutdown or len(queue) + 2 > otel._queue_limit:
            return False
        user = params.get("user") if params else None
        auth = ctx.auth
        status = ctx.status
        if auth is None:
            key = (user, ctx.key_alias, requested, status, model, reason, get("model"), get("custom_llm_provider"),
                   get("model_id"), get("api_base"))
        else:
            key = (user, ctx.key_alias, requested, status, model, reason, get("model"), get("custom_llm_provider"),
                   get("model_id"), get("api_base"), getattr(auth, "api_key", None), auth.team_id, auth.team_alias,
                   auth.user_id)
        try:
            kind = self.kinds.get(key)
        except TypeError:  # (an unhashable value, e.g. a client's ``user``)
            return False
        if kind is None:
            kind = self._kind(key, ctx, hidden, user)
        prom_kind, name, request_model, system, response_model, reasons, templates = kind
        # the facts (Observe._facts): the cost into the response's hidden params, the times
        cost = ctx.cost
        if cost is not None:
            hidden["response_cost"] = cost
        start = record.wall_start
        end = start + (now - ctx.start)
        # Prometheus's row (PrometheusLogger.request_facts)
        latency = end - start if end > start else 0.0
        upstream = ctx.upstream
        overhead = end - start - upstream
        row = (cost or 0.0, prompt, completion, latency, latency, None, overhead if overhead > 0 else 0.0)
        # the two spans' entries (OpenTelemetryLogger.request_facts → otlp_proto.request_entries)
        trace_id, span_id, upstream_id, _, _, _, _, upstream_start = ids
        end_ns = _floor(end * 1e9)
        upstream_end = _floor((start + (upstream or 0.0)) * 1e9)
        if upstream_start > upstream_end:
            upstream_start = upstream_end
        tokens = self._tokens_of.get((prompt, completion)) or self._tokens(prompt, completion)
        response_id = response.id
        if response_id:
            rid = response_id.encode() if type(response_id) is str else str(response_id).encode()
            shape = (len(tokens), len(rid))
        else:
            rid = b""
            shape = (len(tokens), -1)
        template = templates.get(shape)
        if template is None:
            template = templates[shape] = self._template(name, request_model, system, response_model, reasons, status,
                                                         False, shape[0], shape[1], False)
        pack, split, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13 = template
        pair = pack(c0, trace_id, c1, upstream_id, c2, span_id, c3, 0x39, upstream_start, 0x41, upstream_end, c4, tokens,
                    c5, rid, c6, trace_id, c7, span_id, c8, 0x39, _floor(start * 1e9), 0x41, end_ns, c9, tokens, c10,
                    rid, c11, cost if type(cost) is float else float(cost or 0.0), c12, b"", c13)
        # nothing above changed the loggers' state; now both at once (nothing below raises)
        rows = prom_kind.rows
        if not rows:
            self.prom._waiting.append(prom_kind)
        rows.append(row)
        queue.appendleft(pair[:split])  # (what BatchProcessor.emit does, for two spans at once)
        queue.appendleft(pair[split:])
        if len(queue) >= otel._batch_size:
            awaken = batch._worker_awaken
            if not awaken.is_set():
                awaken.set()
        prom = self.prom
        prom._rows += 1
        if prom._rows >= self._batch:
            try:
                prom.flush()
            except Exception:  # noqa: BLE001 - (as the loggers' own path: logged, the request goes on)
                log.warning("PrometheusLogger.request_facts failed", exc_info=True)
        return True

    def _kind(self, key: tuple, ctx: Any, hidden: dict, user: Any) -> tuple:
        """What a kind of request's metrics and spans share (see :meth:`end`)."""
        otel = self._otel
        requested = ctx.model
        provider = hidden.get("custom_llm_provider")
        model = hidden.get("model")
        name = (f"{provider}/{model}" if provider and "/" not in model else model) if model else None
        auth = ctx.auth
        if auth is not None:
            raw = (user, getattr(auth, "api_key", None), ctx.key_alias, auth.team_id, auth.team_alias, auth.user_id,
                   name, requested, requested, hidden.get("model_id"), hidden.get("api_base") or "", provider, True,
                   False, requested, ctx.status)
        else:
            raw = (user, None, ctx.key_alias, None, None, None, name, requested, requested, hidden.get("model_id"),
                   hidden.get("api_base") or "", provider, True, False, requested, ctx.status)
        reason = key[5]
        if reason:
            reasons = otel._REASONS.get(reason) if type(reason) is str else None
            if reasons is None:
                reasons = (reason,)
                if type(reason) is str and len(otel._REASONS) < 64:
                    otel._REASONS[reason] = reasons
        else:
            reasons = None
        span_name = (otel._NAME_OF.get(requested) if type(requested) is str else None) or otel._name_of(requested)
        kind = (self.prom._kind_of(raw, True), span_name, requested or "", provider or None, key[4] or None, reasons, {})
        if len(self.kinds) < KINDS:
            self.kinds[key] = kind
        return kind
