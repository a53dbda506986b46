"""``OpenTelemetryLogger``: one span per call, GenAI semantic conventions (``callbacks: [otel]``).

Needs ``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-http``
(``pip install 'llmrelay[observability]'``); ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` needs
``opentelemetry-exporter-otlp-proto-grpc`` too. Spans go out over OTLP/HTTP, configured by the
standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``, ``OTEL_BSP_*``…) through a batch processor,
off the request path. The logger has its own tracer provider; it does not replace the
process's global one.

Attributes: ``gen_ai.operation.name`` (``chat``), ``gen_ai.system``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.response.id``, ``gen_ai.usage.input_tokens`` /
``output_tokens``, ``gen_ai.response.finish_reasons``, request parameters
(``gen_ai.request.temperature``…), ``llmrelay.cost_usd``; an event ``gen_ai.first_token`` at the
first streamed token; ``error.type`` and an error status on failures. The text of prompts and
completions (``gen_ai.input.messages`` / ``gen_ai.output.messages``) is recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (or ``capture_content=True``), and
never while ``turn_off_message_logging`` is set.

In the gateway the span covers the request, is the child of the client's W3C ``traceparent``
when one came, and has the upstream call as a child span whose context is sent upstream in
``traceparent``. Both are made when the request ends, as finished spans handed to the provider's
span processors (their ids are drawn when the upstream call starts): no SDK ``Span`` objects and
no context switching on the request path. The provider's sampler decides as the SDK's would
(processors' ``on_start`` is not called for them). Batches are encoded by :mod:`.otlp_proto`.
With the logger's own batch processor and OTLP/HTTP exporter (no ``tracer_provider`` or
``span_processor`` given) the two spans are not even ``ReadableSpan`` objects: each is a tuple of
plain values queued in the batch processor and written by :func:`.otlp_proto.gateway_span` in
the export thread, to the same bytes (a provider or processor of your own gets ``ReadableSpan`` objects);
in the common case (:meth:`OpenTelemetryLogger.request_facts`: no parent, trace state, error,
parameters or content) they are written as the request ends (:func:`.otlp_proto.request_entries`)
and queued as bytes.
"""

from __future__ import annotations

import base64
import collections
import logging
import math
import os
import random
import re
import struct
from time import time_ns as _time_ns
from typing import Any

import orjson

from .. import settings as _settings
from ..transport.base import HeaderLines
from ..types import Choices, ModelResponse
from .custom_logger import CustomLogger
from .otlp_proto import request_entries as _request_entries

__all__ = ["OpenTelemetryLogger", "langfuse_logger", "default_exporter", "otlp_http_exporter"]

log = logging.getLogger("llmrelay.callbacks")

_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "seed": "gen_ai.request.seed",
}

_PARAM_NAMES = frozenset(_PARAMS)


def _json(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if dump is not None else str(value)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


_TRACEPARENT = re.compile(rb"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*|[ \t]*)")


def _traceparent(header: bytes | None) -> tuple[int, int, int] | None:
    """(trace id, parent span id, flags) of a W3C ``traceparent`` header, or None when absent or
    invalid (the rules of the SDK's TraceContextTextMapPropagator)."""
    if not header or len(header) > 512:
        return None
    match = _TRACEPARENT.fullmatch(header)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest.strip(b" \t")):
        return None
    trace, span = int(trace_id, 16), int(span_id, 16)
    if not trace or not span:
        return None
    return trace, span, int(flags, 16)


#: one finish reason's tuple, shared by the span records that have it (one object fewer per request)
_REASONS: dict[str, tuple[str]] = {}
#: a gateway request span's name by the requested model (one string per model, not per request)
_NAME_OF: dict[Any, str] = {}


def _name_of(model: Any) -> str:
    name = f"chat {model}"
    if type(model) is str and len(_NAME_OF) < 1024:
        _NAME_OF[model] = name
    return name

_getrandbits = random.getrandbits
_floor = math.floor
#: Requests whose ids are drawn at once (one getrandbits call and one conversion, not one each).
ID_BATCH = 64
_split_ids = struct.Struct("16s8s8s").iter_unpack  # 32 random bytes each → trace id, upstream span id, request span id
_drawn: Any = iter(())  # the (trace id, upstream span id, request span id) drawn and not given yet


def _draw_ids() -> tuple[bytes, bytes, bytes]:
    """The next request's ids (:data:`ID_BATCH` requests' drawn at once; none of them zero)."""
    global _drawn
    drawn = _getrandbits(256 * ID_BATCH).to_bytes(32 * ID_BATCH, "big")
    while _ZERO8 in drawn:  # (eight zero bytes anywhere, which a zero id would be: drawn again, ~never)
        drawn = _getrandbits(256 * ID_BATCH).to_bytes(32 * ID_BATCH, "big")
    _drawn = _split_ids(drawn)
    return next(_drawn)


def _forget_ids() -> None:
    global _drawn
    _drawn = iter(())  # (a forked worker draws its own: the random module is reseeded in it)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_ids)
_ZERO16, _ZERO8 = bytes(16), bytes(8)


def _random_trace_id() -> int:
    return random.getrandbits(128) or _random_trace_id()


def _random_span_id() -> int:
    return random.getrandbits(64) or _random_span_id()


class OpenTelemetryLogger(CustomLogger):
    """Exports spans of calls (library) and of gateway requests."""

    #: where the gateway's span records go (the batch processor's ``emit``), when the spans are
    #: exported by llmrelay's own batch processor and OTLP/HTTP exporter; else None
    _emit: Any = None
    #: the batch processor's queue, appended to directly (as its ``emit`` does) when its shape is
    #: the one known (opentelemetry-sdk's BatchProcessor); else None
    _queue: Any = None
    _batch: Any = None
    _queue_limit = _batch_size = 0

    def __init__(self, exporter: Any = None, span_processor: Any = None, tracer_provider: Any = None,
                 capture_content: bool | None = None, service_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._key = id(self)  # (this logger's entry in a gateway request's record.state)
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

        if tracer_provider is None:
            name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "llmrelay"
            tracer_provider = TracerProvider(resource=Resource.create({"service.name": name}))
            if span_processor is None:
                from opentelemetry.sdk.trace.export import BatchSpanProcessor

                if exporter is None:
                    exporter = default_exporter()
                span_processor = BatchSpanProcessor(exporter)
            tracer_provider.add_span_processor(span_processor)
            # our own batch processor and OTLP/HTTP exporter: the gateway's spans go in as records
            # (tuples) the exporter writes itself (otlp_proto.gateway_span), not as ReadableSpans
            batch = getattr(span_processor, "_batch_processor", None)
            if getattr(exporter, "gateway_records", False) and callable(getattr(batch, "emit", None)):
                self._emit = batch.emit
                queue = getattr(batch, "_queue", None)
                if (isinstance(queue, collections.deque) and queue.maxlen
                        and isinstance(getattr(batch, "_max_export_batch_size", None), int)
                        and hasattr(batch, "_worker_awaken") and isinstance(getattr(batch, "_shutdown", None), bool)):
                    self._batch, self._queue = batch, queue
                    self._queue_limit, self._batch_size = queue.maxlen, batch._max_export_batch_size
        self.provider = tracer_provider
        self.tracer = tracer_provider.get_tracer("llmrelay")
        if capture_content is None:
            capture_content = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").lower() == "true"
        self.capture_content = capture_content
        self._kind = SpanKind
        self._status = (Status, StatusCode)
        self._in_context = set_span_in_context
        from opentelemetry.sdk.trace import Event
        from opentelemetry.trace import TraceFlags
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import DEFAULT_ON
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._event = Event
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, TraceState

        self._types = (SpanContext, TraceFlags, ReadableSpan)
        self._trace_state = lambda header: TraceState.from_header([header])
        self._unset = Status(StatusCode.UNSET)
        self._scope = InstrumentationScope("llmrelay")
        if self._emit is not None:
            exporter.gateway_group = (tracer_provider.resource, self._scope)
        #: where the gateway's finished spans go (the provider's span processors)
        self._processor = getattr(tracer_provider, "_active_span_processor", None)
        self._flags: dict[int, Any] = {}  # TraceFlags by value (made once each)
        ids = getattr(tracer_provider, "id_generator", None)
        if ids is None or type(ids) is RandomIdGenerator:
            self._new_trace_id, self._new_span_id = _random_trace_id, _random_span_id
        else:
            self._new_trace_id, self._new_span_id = ids.generate_trace_id, ids.generate_span_id
        # the flags of a new trace, as the SDK sets them (sampled; random trace id where it knows it)
        random_flag = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
        random_ids = ids is None or getattr(ids, "is_trace_id_random", lambda: False)()
        self._new_flags = 1 | (random_flag if random_ids else 0)
        self._new_flags_suffix = f"-{self._new_flags:02x}"  # (of a new trace's traceparent)
        sampler = getattr(tracer_provider, "sampler", None)
        default = sampler is None or sampler.get_description() == DEFAULT_ON.get_description()
        self._should_sample = None if default else sampler.should_sample

    # ------------------------------------------------------------------ library calls
    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._span_after(kwargs)

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._span_after(kwargs)

    async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self._span_after(kwargs)

    async def async_log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self._span_after(kwargs)

    def _span_after(self, kwargs: dict[str, Any]) -> None:
        if (kwargs.get("litellm_params") or {}).get("proxy_server_request"):
            return  # the gateway's request span (request_start / request_end) covers it
        slo = kwargs.get("standard_logging_object") or {}
        start = slo.get("startTime") or 0.0
        span = self.tracer.start_span(f"chat {slo.get('model')}", kind=self._kind.CLIENT, start_time=_ns(start))  # in the caller's trace
        self._finish(span, slo, kwargs, None, None)

    # ------------------------------------------------------------------ gateway requests
    # The gateway's two spans are made at the request's end, as finished spans handed straight
    # to the span processors (no SDK Span objects, no context attach/detach during the request):
    # at its start only the ids are drawn, so that the upstream call carries its traceparent.
    def request_start(self, ctx: Any, record: Any, headers: dict[str, str]) -> None:
        if (self._should_sample is None and self._new_trace_id is _random_trace_id
                and ctx.traceparent is None):  # (most requests: _ids's case, at once)
            # the trace id, the upstream span's id, the request span's
            trace_id, upstream_id, span_id = next(_drawn, None) or _draw_ids()
            if trace_id != _ZERO16 and upstream_id != _ZERO8 and span_id != _ZERO8:  # (none is zero)
                record.state[self._key] = (trace_id, span_id, upstream_id, None, self._new_flags, None, True,
                                           _time_ns())
                headers["traceparent"] = f"00-{trace_id.hex()}-{upstream_id.hex()}{self._new_flags_suffix}"
                return
        ids = self._ids(ctx)
        record.state[self._key] = ids
        trace_id, _, upstream_id, _, flags, tracestate, _, _ = ids
        headers["traceparent"] = f"00-{trace_id.hex()}-{upstream_id.hex()}-{flags:02x}"
        if tracestate:
            headers["tracestate"] = tracestate

    def upstream_start(self, ctx: Any, record: Any) -> dict[str, str]:
        """:meth:`request_start` returning the upstream call's headers: in the common case (a new
        trace, the default sampler and ids) a :class:`~..transport.base.HeaderLines` with the
        ``traceparent`` line written (the lean client adds it to its request head as it is)."""
        if self._should_sample is None and self._new_trace_id is _random_trace_id and ctx.traceparent is None:
            trace_id, upstream_id, span_id = next(_drawn, None) or _draw_ids()  # (none zero)
            record.state[self._key] = (trace_id, span_id, upstream_id, None, self._new_flags, None, True, _time_ns())
            value = f"00-{trace_id.hex()}-{upstream_id.hex()}{self._new_flags_suffix}"
            headers = HeaderLines()
            headers["traceparent"] = value
            headers.lines = f"traceparent: {value}\r\n".encode()
            return headers
        headers: dict[str, str] = {}
        self.request_start(ctx, record, headers)
        return headers

    def _ids(self, ctx: Any) -> tuple:
        """(trace id, request span id, upstream span id, parent span id or None, trace flags,
        tracestate header or None, sampled, time the upstream call starts in ns); the ids as
        bytes (big-endian, as OTLP and ``traceparent`` write them)."""
        parent = _traceparent(getattr(ctx, "traceparent", None))
        tracestate = None
        if parent is not None:
            trace_id, parent_id, parent_flags = parent
            raw = getattr(ctx, "tracestate", None)
            tracestate = raw.decode("latin-1") if raw else None
        else:
            trace_id, parent_id, parent_flags = self._new_trace_id(), None, self._new_flags
        if self._should_sample is None:  # the default sampler: the parent's decision, else sample
            sampled = bool(parent_flags & 1) if parent is not None else True
        else:
            sampled = self._sample(trace_id, parent_id, parent_flags, tracestate, f"chat {ctx.model}")
        flags = (parent_flags & ~1) | (1 if sampled else 0)
        return (trace_id.to_bytes(16, "big"), self._new_span_id().to_bytes(8, "big"),
                self._new_span_id().to_bytes(8, "big"), None if parent_id is None else parent_id.to_bytes(8, "big"),
                flags, tracestate, sampled, _time_ns())

    def _sample(self, trace_id: int, parent_id: int | None, parent_flags: int, tracestate: str | None,
                name: str) -> bool:
        """A configured sampler's decision (OTEL_TRACES_SAMPLER other than the default)."""
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

        context = None
        if parent_id is not None:
            state = TraceState.from_header([tracestate]) if tracestate else None
            parent = SpanContext(trace_id, parent_id, True, TraceFlags(parent_flags), state)
            context = self._in_context(NonRecordingSpan(parent))
        return self._should_sample(context, trace_id, name, self._kind.SERVER).decision.is_sampled()

    def request_end(self, ctx: Any, record: Any, kwargs: dict[str, Any]) -> None:
        ids = record.state.pop(self._key, None)
        upstream = ids is not None
        if ids is None:  # the request failed before the upstream call
            ids = self._ids(ctx)
        trace_id, span_id, upstream_id, parent_id, flags, tracestate, sampled, upstream_start = ids
        if not sampled or self._processor is None:
            return
        slo = kwargs.get("standard_logging_object") or {}
        if self._emit is not None:
            get = slo.get
            error_type = error = None
            if get("status") == "failure":
                info = get("error_information") or {}
                error_type = str(info.get("error_class") or "error")
                error = str(get("error_str") or "")[:300]
            first = None
            if get("stream"):
                first = get("completionStartTime")
                if first == get("endTime"):  # it defaults to the end when nothing came
                    first = None
            return self._record(ctx, record, ids, upstream, get("endTime"), get("model_group") or get("model"),
                                get("prompt_tokens"), get("completion_tokens"), get("custom_llm_provider"),
                                get("response"), error_type, error, get("model_parameters"), get("response_cost"),
                                bool(get("stream")), first, get("messages"))
        SpanContext, TraceFlags, ReadableSpan = self._types
        trace_id, span_id, upstream_id = (int.from_bytes(x, "big") for x in (trace_id, span_id, upstream_id))
        if parent_id is not None:
            parent_id = int.from_bytes(parent_id, "big")
        state = self._trace_state(tracestate) if tracestate else None
        trace_flags = self._flags.get(flags)
        if trace_flags is None:
            trace_flags = self._flags[flags] = TraceFlags(flags)
        context = SpanContext(trace_id, span_id, False, trace_flags, state)
        parent = SpanContext(trace_id, parent_id, True, trace_flags, state) if parent_id is not None else None
        end = _ns(slo.get("endTime") or record.wall_start)
        name = f"chat {ctx.model}"
        on_end = self._processor.on_end
        resource = self.provider.resource
        attributes, status = self._common(slo)
        if upstream:
            # a stream's upstream call lasts until its end; a response's until it arrived
            upstream_end = end if ctx.stream else _ns(record.wall_start + (ctx.upstream or 0.0))
            on_end(ReadableSpan(
                name + " upstream", SpanContext(trace_id, upstream_id, False, trace_flags, state), context,
                resource, attributes, (), (), self._kind.CLIENT, None, status,
                min(upstream_start, upstream_end), upstream_end, self._scope))
            attributes = dict(attributes)
        events = self._request(attributes, slo, ctx)
        on_end(ReadableSpan(
            name, context, parent, resource, attributes, events, (), self._kind.SERVER, None,
            status, _ns(record.wall_start), end, self._scope))

    @property
    def takes_facts(self) -> bool:
        """Whether the gateway's observer may hand this logger a successful request's facts
        (``request_facts``) instead of an event's kwargs: with span records (see ``_emit``)."""
        return self._emit is not None

    def request_facts(self, ctx: Any, record: Any, facts: tuple) -> None:
        """A successful gateway request, from its facts (:data:`..proxy.observe.FACTS`): what
        :meth:`request_end` does with its event's kwargs, on the span records' path."""
        ids = record.state.pop(self._key, None)
        if ids is None or ids[5] or not ids[6] or self.capture_content:  # (no upstream call, a tracestate, ...)
            return self._record_facts(ctx, record, ids, facts)
        raw, start, end_time, first, prompt, completion, cost, response, params, _, _ = facts
        queue = self._queue
        batch = self._batch
        if (queue is None or batch._shutdown or len(queue) + 2 > self._queue_limit
                or (params and not _PARAM_NAMES.isdisjoint(params)) or self._processor is None):
            return self._record_facts(ctx, record, ids, facts)
        # what _record makes of them (no parent's tracestate, request parameters, content, error)
        trace_id, span_id, upstream_id, parent_id, _, _, _, upstream_start = ids
        # (ns, as _ns: int() of these positive values, without the int type's call)
        end = _floor(end_time * 1e9)
        upstream_end = end if ctx.stream else _floor((start + (ctx.upstream or 0.0)) * 1e9)
        if upstream_start > upstream_end:
            upstream_start = upstream_end
        if type(response) is ModelResponse:  # (these are attributes, with class defaults)
            model, response_id, choices = response.model, response.id, response.choices
        elif response is None:
            model = response_id = choices = None
        elif type(response) is dict:
            rget = response.get
            model, response_id, choices = rget("model"), rget("id"), rget("choices")
        else:  # the response object itself (its get(key) is getattr(key, None))
            model = getattr(response, "model", None)
            response_id = getattr(response, "id", None)
            choices = getattr(response, "choices", None)
        if choices and len(choices) == 1:
            choice = choices[0]
            if type(choice) is Choices:
                reason = choice.finish_reason
            else:
                reason = choice.get("finish_reason") if type(choice) is dict else getattr(choice, "finish_reason", None)
            if reason:
                reasons = _REASONS.get(reason) if type(reason) is str else None
                if reasons is None:
                    reasons = (reason,)
                    if type(reason) is str and len(_REASONS) < 64:
                        _REASONS[reason] = reasons
            else:
                reasons = None
        else:
            reasons = tuple([c.get("finish_reason") for c in choices or () if c.get("finish_reason")]) or None
        stream = raw[13]
        name = (_NAME_OF.get(ctx.model) if type(ctx.model) is str else None) or _name_of(ctx.model)
        start = _floor(start * 1e9)
        request_model = raw[8] or raw[7] or ""
        # (converted as _record does, the type call only where the value is not of its type yet)
        if type(prompt) is not int:
            prompt = int(prompt or 0)
        if type(completion) is not int:
            completion = int(completion or 0)
        system = raw[11] or None
        model = model or None
        if not response_id:
            response_id = None
        elif type(response_id) is not str:
            response_id = str(response_id)
        if type(cost) is not float:
            cost = float(cost or 0.0)
        first = _floor(first * 1e9) if stream and first and first != end_time else None
        if parent_id is None:
            try:  # the spans' entries written now (otlp_proto.request_entries: the common case)
                up, req = _request_entries(trace_id, span_id, upstream_id, name, start, end, upstream_start,
                                           upstream_end, request_model, prompt, completion, system, model,
                                           response_id, reasons, cost, ctx.status, stream, first)
            except TypeError:  # (an unhashable value: the encoder converts the record's)
                up = None
        else:
            up = None
        if up is None:
            # (the request model, system, response model and reasons converted by the encoder,
            # once per kind of request: see otlp_proto.GATEWAY_FIELDS)
            fields = (trace_id, span_id, upstream_id, parent_id, None, name, start, end, upstream_start, upstream_end,
                      request_model, prompt, completion, system, model, response_id, reasons, None, None, None, cost,
                      ctx.status, stream, first, None, None)
            up, req = (True, fields), (False, fields)
        # what BatchProcessor.emit does, for two spans at once
        queue.appendleft(up)
        queue.appendleft(req)
        if len(queue) >= self._batch_size:
            awaken = batch._worker_awaken
            if not awaken.is_set():
                awaken.set()

    def _record_facts(self, ctx: Any, record: Any, ids: tuple | None, facts: tuple) -> None:
        """:meth:`request_facts` through :meth:`_record` (the uncommon cases)."""
        upstream = ids is not None
        if ids is None:
            ids = self._ids(ctx)
        if not ids[6] or self._processor is None:  # (not sampled)
            return
        raw, start, end, first, prompt, completion, cost, response, params, messages, _ = facts
        stream = raw[13]
        self._record(ctx, record, ids, upstream, end, raw[8] or raw[7], prompt, completion, raw[11], response, None,
                     None, params, 0.0 if cost is None else cost, stream,
                     first if stream and first != end else None, messages)

    def _record(self, ctx: Any, record: Any, ids: tuple, upstream: bool, end_time: float, request_model: Any,
                prompt: Any, completion: Any, provider: Any, response: Any, error_type: str | None,
                error: str | None, params: Any, cost: Any, stream: bool, first: float | None, messages: Any) -> None:
        """The fast path of :meth:`request_end`: the request's spans as two records for the batch
        processor, holding what the SDK path puts in its ReadableSpans (written to the same bytes
        by :func:`.otlp_proto.gateway_span`)."""
        trace_id, span_id, upstream_id, parent_id, flags, tracestate, sampled, upstream_start = ids
        wall_start = record.wall_start
        end = int((end_time or wall_start) * 1e9)  # (ns, as _ns)
        if upstream:
            upstream_end = end if ctx.stream else int((wall_start + (ctx.upstream or 0.0)) * 1e9)
            if upstream_start > upstream_end:
                upstream_start = upstream_end
        else:
            upstream_end = upstream_id = None
        if response is None:
            model = response_id = choices = None
        elif type(response) is dict:
            rget = response.get
            model, response_id, choices = rget("model"), rget("id"), rget("choices")
        else:  # the response object itself (its get(key) is getattr(key, None))
            model = getattr(response, "model", None)
            response_id = getattr(response, "id", None)
            choices = getattr(response, "choices", None)
        if choices and len(choices) == 1:
            choice = choices[0]
            reason = choice.get("finish_reason") if type(choice) is dict else getattr(choice, "finish_reason", None)
            reasons = (str(reason),) if reason else ()
        else:
            reasons = tuple([str(c.get("finish_reason")) for c in choices or () if c.get("finish_reason")])
        if params and not _PARAM_NAMES.isdisjoint(params):
            found = {}
            for name, attr in _PARAMS.items():
                value = params.get(name)
                if value is not None and type(value) in (int, float):
                    found[attr] = value
            params = tuple(found.items()) or None
        else:
            params = None
        first = int(first * 1e9) if first else None
        out = None
        if self.capture_content and not _settings.get("turn_off_message_logging"):
            messages = orjson.dumps(messages or [], default=_json).decode()
            out = orjson.dumps([c.get("message") for c in choices or ()], default=_json).decode()
        else:
            messages = None
        if tracestate:
            tracestate = ",".join(f"{k}={v}" for k, v in self._trace_state(tracestate).items()) or None
        fields = (trace_id, span_id, upstream_id, parent_id, tracestate, f"chat {ctx.model}", int(wall_start * 1e9),
                  end, upstream_start, upstream_end, str(request_model or ""),
                  int(prompt or 0), int(completion or 0),
                  str(provider) if provider else None, str(model) if model else None,
                  str(response_id) if response_id else None, reasons or None, error_type, error, params,
                  None if cost is None else float(cost or 0.0), ctx.status, stream, first, messages, out)
        queue = self._queue
        batch = self._batch
        if queue is None or batch._shutdown or len(queue) + 2 > self._queue_limit:
            emit = self._emit  # (its checks, warnings and drops)
            if upstream:
                emit((True, fields))
            return emit((False, fields))
        # what BatchProcessor.emit does, for two spans at once
        if upstream:
            queue.appendleft((True, fields))
        queue.appendleft((False, fields))
        if len(queue) >= self._batch_size:
            awaken = batch._worker_awaken
            if not awaken.is_set():
                awaken.set()

    # ------------------------------------------------------------------ attributes
    def _finish(self, span: Any, slo: dict[str, Any], kwargs: dict[str, Any], ctx: Any, end_ns: int | None,
                upstream_only: bool = False) -> None:
        """End an SDK span (a library call's) with the call's attributes, events and status."""
        attributes, status, events = self._attributes(slo, ctx, upstream_only)
        for event in events:
            span.add_event(event.name, timestamp=event.timestamp)
        if status is not self._unset:
            span.set_status(status)
        span.set_attributes(attributes)
        span.end(end_time=end_ns if end_ns is not None else _ns(slo.get("endTime") or 0.0) or None)

    def _attributes(self, slo: dict[str, Any], ctx: Any, upstream_only: bool) -> tuple[dict[str, Any], Any, tuple]:
        """(attributes, status, events) of a call's span (``upstream_only``: the upstream call's)."""
        attributes, status = self._common(slo)
        return attributes, status, () if upstream_only else self._request(attributes, slo, ctx)

    def _common(self, slo: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """The attributes both spans of a request have (GenAI conventions), and the status."""
        response = slo.get("response") or {}
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": str(slo.get("model_group") or slo.get("model") or ""),
            "gen_ai.usage.input_tokens": int(slo.get("prompt_tokens") or 0),
            "gen_ai.usage.output_tokens": int(slo.get("completion_tokens") or 0),
        }
        provider = slo.get("custom_llm_provider")
        if provider:
            attributes["gen_ai.system"] = str(provider)
        get = response.get
        model = get("model")
        if model:
            attributes["gen_ai.response.model"] = str(model)
        response_id = get("id")
        if response_id:
            attributes["gen_ai.response.id"] = str(response_id)
        reasons = [str(c.get("finish_reason")) for c in get("choices") or () if c.get("finish_reason")]
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
        status = self._unset
        if slo.get("status") == "failure":
            info = slo.get("error_information") or {}
            attributes["error.type"] = str(info.get("error_class") or "error")
            Status, StatusCode = self._status
            status = Status(StatusCode.ERROR, str(slo.get("error_str") or "")[:300])
        return attributes, status

    def _request(self, attributes: dict[str, Any], slo: dict[str, Any], ctx: Any) -> tuple:
        """Add the request's own attributes (parameters, cost, status code, content); its events."""
        params = slo.get("model_parameters")
        if params:
            for name, attr in _PARAMS.items():
                value = params.get(name)
                if value is not None and type(value) in (int, float):
                    attributes[attr] = value
        cost = slo.get("response_cost")
        if cost is not None:
            attributes["llmrelay.cost_usd"] = float(cost or 0.0)
        if ctx is not None:
            attributes["http.response.status_code"] = ctx.status
        events: tuple = ()
        if slo.get("stream"):
            attributes["llmrelay.stream"] = True
            first = slo.get("completionStartTime")
            if first and first != slo.get("endTime"):  # it defaults to the end when nothing came
                events = (self._event("gen_ai.first_token", timestamp=_ns(first)),)
        if self.capture_content and not _settings.get("turn_off_message_logging"):
            response = slo.get("response") or {}
            attributes["gen_ai.input.messages"] = orjson.dumps(slo.get("messages") or [], default=_json).decode()
            out = [c.get("message") for c in response.get("choices") or ()]
            attributes["gen_ai.output.messages"] = orjson.dumps(out, default=_json).decode()
        return events

    def shutdown(self) -> None:
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


def langfuse_logger(capture_content: bool | None = None, name: str = "langfuse_otel") -> OpenTelemetryLogger:
    """``langfuse_otel``: spans to Langfuse's OpenTelemetry endpoint (``LANGFUSE_PUBLIC_KEY``,
    ``LANGFUSE_SECRET_KEY``, ``LANGFUSE_HOST`` or ``LANGFUSE_OTEL_HOST``, default Langfuse Cloud)."""
    public = os.environ.get("LANGFUSE_PUBLIC_KEY")
    secret = os.environ.get("LANGFUSE_SECRET_KEY")
    if not public or not secret:
        raise ValueError(f"{name} needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY in the environment")
    host = (os.environ.get("LANGFUSE_OTEL_HOST") or os.environ.get("LANGFUSE_HOST")
            or "https://cloud.langfuse.com").rstrip("/")
    token = base64.b64encode(f"{public}:{secret}".encode()).decode()
    exporter = otlp_http_exporter(endpoint=f"{host}/api/public/otel/v1/traces", headers={"Authorization": f"Basic {token}"})
    return OpenTelemetryLogger(exporter=exporter, capture_content=capture_content)


def langfuse_callback_logger() -> OpenTelemetryLogger:
    """``langfuse`` (LiteLLM's own Langfuse logger): the same spans as ``langfuse_otel``, with the
    messages and the answer recorded as LiteLLM's logger records them, unless
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=false`` or ``turn_off_message_logging``."""
    flag = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").strip().lower()
    return langfuse_logger(capture_content=flag != "false", name="langfuse")


def default_exporter() -> Any:
    """The span exporter ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL``
    ask for: ``http/protobuf`` (the default, :func:`otlp_http_exporter`) or ``grpc`` (the
    ``opentelemetry-exporter-otlp-proto-grpc`` package, not installed by llmrelay's extras).
    ``http/json`` is sent as ``http/protobuf`` (the Python OTLP exporter has no JSON encoding;
    OTLP/HTTP receivers take protobuf). LiteLLM's own variables work too: ``OTEL_EXPORTER``
    (``otlp_http``, ``otlp_grpc``, ``console``), ``OTEL_ENDPOINT`` (for OTLP/HTTP the base URL,
    ``/v1/traces`` appended as for ``OTEL_EXPORTER_OTLP_ENDPOINT``) and ``OTEL_HEADERS``
    (``Authorization=Bearer%20key,x=y``); the standard ``OTEL_EXPORTER_OTLP_*`` ones win."""
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip().lower()
    kwargs: dict[str, Any] = {}
    kind = os.environ.get("OTEL_EXPORTER", "").strip().lower()
    if kind:
        if kind == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter()
        if kind in ("otlp_grpc", "grpc"):
            protocol = "grpc"
        elif kind not in ("otlp_http", "otlp", "http", "http/protobuf", "http/json"):
            raise RuntimeError(f"OTEL_EXPORTER={kind!r} is not supported: use otlp_http, otlp_grpc or console "
                               "(or the standard OTEL_EXPORTER_OTLP_* variables)")
        kwargs = _litellm_otlp_settings(grpc=protocol == "grpc")
    if protocol == "http/json":
        log.info("OTEL_EXPORTER_OTLP_PROTOCOL=http/json: spans are sent as http/protobuf, which OTLP/HTTP receivers take")
        protocol = "http/protobuf"
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise RuntimeError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the OTLP gRPC exporter: "
                "pip install opentelemetry-exporter-otlp-proto-grpc (or use http/protobuf, the default)") from None
        return OTLPSpanExporter(**kwargs)
    if protocol != "http/protobuf":
        raise RuntimeError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: "
                           "use http/protobuf (the default), http/json or grpc")
    return otlp_http_exporter(**kwargs)


def _litellm_otlp_settings(grpc: bool) -> dict[str, Any]:
    """``OTEL_ENDPOINT`` / ``OTEL_HEADERS`` (LiteLLM's names) as exporter arguments, unless the
    standard variables set the same thing."""
    from urllib.parse import unquote

    out: dict[str, Any] = {}
    endpoint = os.environ.get("OTEL_ENDPOINT", "").strip()
    if endpoint and not (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        if not grpc and not endpoint.rstrip("/").endswith("/v1/traces"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        out["endpoint"] = endpoint
    headers = os.environ.get("OTEL_HEADERS", "").strip()
    if headers and not (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or os.environ.get("OTEL_EXPORTER_OTLP_HEADERS")):
        pairs = (item.split("=", 1) for item in headers.split(",") if "=" in item)
        out["headers"] = {unquote(k).strip().lower(): unquote(v).strip() for k, v in pairs}
    return out


def otlp_http_exporter(**kwargs: Any) -> Any:
    """The OTLP/HTTP span exporter (``opentelemetry-exporter-otlp-proto-http``: endpoint, headers,
    TLS, compression, retries from the standard variables or ``kwargs``), with each batch encoded
    by :mod:`.otlp_proto` instead of the generated protobuf classes (the same message, ~4× less
    CPU). Exporter versions without the client it sends through encode as usual."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from .otlp_proto import encode_spans

    class _Exporter(OTLPSpanExporter):
        #: (resource, scope) of the gateway's span records (set by the OpenTelemetryLogger that
        #: sends them, see its ``_emit``)
        gateway_group: Any = None

        def export(self, spans: Any) -> Any:
            client = getattr(self, "_client", None)
            if getattr(self, "_shutdown", False) or not hasattr(client, "export"):
                if self.gateway_group is not None:  # (not with this exporter version: see gateway_records)
                    spans = [s for s in spans if type(s) is not tuple and type(s) is not bytes]
                return super().export(spans)
            try:
                data = encode_spans(spans, self.gateway_group)
            except Exception:  # noqa: BLE001 - an unencodable attribute drops its batch, as the SDK does
                log.exception("encoding a span batch failed")
                return SpanExportResult.FAILURE
            result = client.export(data)
            return SpanExportResult.SUCCESS if getattr(result, "success", False) else SpanExportResult.FAILURE

    _Exporter.__name__ = _Exporter.__qualname__ = "OTLPSpanExporter"
    exporter = _Exporter(**kwargs)
    client = getattr(exporter, "_client", None)
    if (type(getattr(client, "_transport", None)).__name__ == "RequestsHTTPTransport"
            and "session" not in kwargs and "_transport" not in kwargs
            and not any(os.environ.get(f"OTEL_PYTHON_EXPORTER_OTLP_HTTP{kind}_CREDENTIAL_PROVIDER")
                        for kind in ("", "_TRACES"))):
        from .otlp_transport import light_transport_for

        transport = light_transport_for(getattr(exporter, "_endpoint", ""))
        if transport is not None:  # a plain http:// endpoint: posts over one kept-alive connection
            client._transport.close()
            client._transport = transport
    #: whether the gateway's span records may be sent here (the exporter encodes them itself)
    exporter.gateway_records = hasattr(getattr(exporter, "_client", None), "export")
    return exporter
