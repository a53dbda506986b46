"""``OpenTelemetryLogger``: one span per call, GenAI semantic conventions (``callbacks: [otel]``).

Needs ``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-http``
(``pip install 'llmrelay[observability]'``). Spans go out over OTLP/HTTP, configured by the
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
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (or ``capture_content=True``).

In the gateway the span starts with the request, is the child of the client's W3C
``traceparent`` when one came, and has the upstream call as a child span whose context is sent
upstream in ``traceparent``.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import orjson

from .custom_logger import CustomLogger

__all__ = ["OpenTelemetryLogger", "langfuse_logger"]

_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "seed": "gen_ai.request.seed",
}


def _json(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if dump is not None else str(value)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class OpenTelemetryLogger(CustomLogger):
    """Exports spans of calls (library) and of gateway requests."""

    def __init__(self, exporter: Any = None, span_processor: Any = None, tracer_provider: Any = None,
                 capture_content: bool | None = None, service_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        if tracer_provider is None:
            name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "llmrelay"
            tracer_provider = TracerProvider(resource=Resource.create({"service.name": name}))
            if span_processor is None:
                from opentelemetry.sdk.trace.export import BatchSpanProcessor

                if exporter is None:
                    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                    exporter = OTLPSpanExporter()
                span_processor = BatchSpanProcessor(exporter)
            tracer_provider.add_span_processor(span_processor)
        self.provider = tracer_provider
        self.tracer = tracer_provider.get_tracer("llmrelay")
        if capture_content is None:
            capture_content = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").lower() == "true"
        self.capture_content = capture_content
        self._kind = SpanKind
        self._status = (Status, StatusCode)
        self._in_context = set_span_in_context
        self._propagator = TraceContextTextMapPropagator()
        from opentelemetry.context import Context

        self._root = Context()

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
    def request_start(self, ctx: Any, record: Any, headers: dict[str, str]) -> None:
        parent = self._root  # a new trace, unless the client sent its context
        traceparent = getattr(ctx, "traceparent", None)
        if traceparent:
            carrier = {"traceparent": traceparent.decode("latin-1")}
            tracestate = getattr(ctx, "tracestate", None)
            if tracestate:
                carrier["tracestate"] = tracestate.decode("latin-1")
            parent = self._propagator.extract(carrier)
        span = self.tracer.start_span(f"chat {ctx.model}", context=parent, kind=self._kind.SERVER,
                                      start_time=_ns(record.wall_start))
        upstream = self.tracer.start_span(f"chat {ctx.model} upstream", context=self._in_context(span),
                                          kind=self._kind.CLIENT)
        sc = upstream.get_span_context()
        headers["traceparent"] = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"
        if sc.trace_state:
            headers["tracestate"] = sc.trace_state.to_header()
        record.state[id(self)] = (span, upstream)

    def request_end(self, ctx: Any, record: Any, kwargs: dict[str, Any]) -> None:
        spans = record.state.pop(id(self), None)
        slo = kwargs.get("standard_logging_object") or {}
        if spans is None:  # the request failed before the upstream call
            span = self.tracer.start_span(f"chat {ctx.model}", context=self._root, kind=self._kind.SERVER,
                                          start_time=_ns(record.wall_start))
            spans = (span, None)
        span, upstream = spans
        if upstream is not None:
            # a stream's upstream call lasts until its end; a response's until it arrived
            end = slo.get("endTime") or record.wall_start
            if not ctx.stream:
                end = record.wall_start + (ctx.upstream or 0.0)
            self._finish(upstream, slo, kwargs, None, _ns(end), upstream_only=True)
        self._finish(span, slo, kwargs, ctx, None)

    # ------------------------------------------------------------------ attributes
    def _finish(self, span: Any, slo: dict[str, Any], kwargs: dict[str, Any], ctx: Any, end_ns: int | None,
                upstream_only: bool = False) -> None:
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
        if response.get("model"):
            attributes["gen_ai.response.model"] = str(response["model"])
        if response.get("id"):
            attributes["gen_ai.response.id"] = str(response["id"])
        reasons = [str(c.get("finish_reason")) for c in response.get("choices") or () if c.get("finish_reason")]
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
        if not upstream_only:
            params = slo.get("model_parameters") or {}
            for name, attr in _PARAMS.items():
                value = params.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    attributes[attr] = value
            if slo.get("response_cost") is not None:
                attributes["llmrelay.cost_usd"] = float(slo.get("response_cost") or 0.0)
            if ctx is not None:
                attributes["http.response.status_code"] = ctx.status
            if slo.get("stream"):
                attributes["llmrelay.stream"] = True
                first = slo.get("completionStartTime")
                if first and first != slo.get("endTime"):  # it defaults to the end when nothing came
                    span.add_event("gen_ai.first_token", timestamp=_ns(first))
            if self.capture_content:
                attributes["gen_ai.input.messages"] = orjson.dumps(slo.get("messages") or [], default=_json).decode()
                out = [c.get("message") for c in response.get("choices") or ()]
                attributes["gen_ai.output.messages"] = orjson.dumps(out, default=_json).decode()
        if slo.get("status") == "failure":
            info = slo.get("error_information") or {}
            attributes["error.type"] = str(info.get("error_class") or "error")
            Status, StatusCode = self._status
            span.set_status(Status(StatusCode.ERROR, str(slo.get("error_str") or "")[:300]))
        span.set_attributes(attributes)
        span.end(end_time=end_ns if end_ns is not None else _ns(slo.get("endTime") or 0.0) or None)

    def shutdown(self) -> None:
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


def langfuse_logger() -> OpenTelemetryLogger:
    """``langfuse_otel``: spans to Langfuse's OpenTelemetry endpoint (``LANGFUSE_PUBLIC_KEY``,
    ``LANGFUSE_SECRET_KEY``, ``LANGFUSE_HOST`` or ``LANGFUSE_OTEL_HOST``, default Langfuse Cloud)."""
    public = os.environ.get("LANGFUSE_PUBLIC_KEY")
    secret = os.environ.get("LANGFUSE_SECRET_KEY")
    if not public or not secret:
        raise ValueError("langfuse_otel needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY in the environment")
    host = (os.environ.get("LANGFUSE_OTEL_HOST") or os.environ.get("LANGFUSE_HOST")
            or "https://cloud.langfuse.com").rstrip("/")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    token = base64.b64encode(f"{public}:{secret}".encode()).decode()
    exporter = OTLPSpanExporter(endpoint=f"{host}/api/public/otel/v1/traces", headers={"Authorization": f"Basic {token}"})
    return OpenTelemetryLogger(exporter=exporter)
