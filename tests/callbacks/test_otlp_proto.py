"""llmrelay's own OTLP protobuf encoding of spans equals the OpenTelemetry exporter's, message for
message, for spans made by the SDK (every field kind: attributes of each value type, events,
links, status, remote and local parents, trace state, several resources and scopes)."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.common")
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags  # noqa: E402
from opentelemetry.trace import TraceState, set_span_in_context  # noqa: E402
from opentelemetry.trace import NonRecordingSpan  # noqa: E402

from llmrelay.integrations.otlp_proto import encode_spans  # noqa: E402


def _spans() -> list:
    exporter = InMemorySpanExporter()
    spans = []
    for service in ("one", "two"):
        provider = TracerProvider(resource=Resource.create({"service.name": service, "n": 3}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        plain = provider.get_tracer("llmrelay")
        versioned = provider.get_tracer("other", "1.2.3", schema_url="https://example.com/schema",
                                        attributes={"scope.attr": "x"})
        remote = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=True,
                             trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1"), ("b", "2")]))
        parent = plain.start_span("chat m", context=set_span_in_context(NonRecordingSpan(remote)),
                                  kind=SpanKind.SERVER, start_time=1_700_000_000_123_456_789)
        parent.set_attributes({
            "s": "text é", "empty": "", "t": True, "f": False, "i": 7, "zero": 0, "neg": -5, "big": 2**62,
            "d": 0.25, "dz": 0.0, "strs": ["stop", "length"], "ints": [1, -2], "floats": [0.5], "bools": [True],
        })
        parent.add_event("gen_ai.first_token", timestamp=1_700_000_000_200_000_000)
        parent.add_event("with.attrs", {"k": "v", "n": 1}, timestamp=1_700_000_000_300_000_000)
        child = plain.start_span("chat m upstream", context=set_span_in_context(parent), kind=SpanKind.CLIENT,
                                 links=[Link(remote, {"why": "because"})])
        child.set_status(Status(StatusCode.ERROR, "upstream said no"))
        child.end(end_time=1_700_000_000_400_000_000)
        parent.set_status(Status(StatusCode.OK))
        parent.end(end_time=1_700_000_000_500_000_000)
        other = versioned.start_span("internal", kind=SpanKind.INTERNAL)
        other.end()
        for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER):
            plain.start_span(f"k{kind.value}", kind=kind).end()
    spans.extend(exporter.get_finished_spans())
    return spans


def test_the_bytes_parse_to_the_sdk_encoders_message():
    spans = _spans()
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    theirs = sdk_encode(spans)
    assert ours == theirs
    assert len(ours.resource_spans) == 2 and len(ours.resource_spans[0].scope_spans) == 2


def test_one_span_at_a_time_and_none():
    spans = _spans()
    for span in spans:
        assert ExportTraceServiceRequest.FromString(encode_spans([span])) == sdk_encode([span])
    assert encode_spans([]) == b""


def test_a_changed_field_is_seen():
    """The comparison can fail: a span whose name differs does not encode to the same message."""
    spans = _spans()
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans[:1]))
    ours.resource_spans[0].scope_spans[0].spans[0].name = "something else"
    assert ours != sdk_encode(spans[:1])


# ---------------------------------------------------------------------- the gateway's span records
class _Ctx:
    def __init__(self, **kw) -> None:
        self.traceparent = self.tracestate = None
        self.model, self.stream, self.upstream, self.status = "m", False, 0.25, 200
        self.__dict__.update(kw)


class _Record:
    def __init__(self) -> None:
        self.state: dict = {}
        self.wall_start = 1_700_000_000.125


def _slo(**kw) -> dict:
    slo = {"model_group": "m", "model": "m", "prompt_tokens": 9, "completion_tokens": 300,
           "custom_llm_provider": "openai", "status": "success", "response_cost": 0.00125, "stream": False,
           "startTime": 1_700_000_000.125, "endTime": 1_700_000_000.5, "completionStartTime": 1_700_000_000.5,
           "messages": [{"role": "user", "content": "hi é"}], "model_parameters": {},
           "response": {"id": "chatcmpl-1", "model": "gpt-4o-mini",
                        "choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "yo"}}]}}
    slo.update(kw)
    return slo


_CASES = [
    (dict(), _slo(), True),
    (dict(stream=True, traceparent=b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
          tracestate=b"vendor=v1,b=2"),
     _slo(stream=True, completionStartTime=1_700_000_000.25, response_cost=0, response={"id": "x" * 200},
          model_parameters={"temperature": 0.5, "max_tokens": 10, "max_completion_tokens": 20, "seed": True,
                            "top_p": "no", "user": "u"}), True),
    (dict(status=502), _slo(status="failure", error_str="upstream said no " * 30, response=None, response_cost=None,
                            error_information={"error_class": "APIError"}, custom_llm_provider=None,
                            prompt_tokens=None, completion_tokens=2**40), True),
    (dict(status=429, model="other"), _slo(status="failure", error_str="", model_group=None, model="x",
                                           response={"choices": [{"finish_reason": "length"}, {}]}), False),
    # written as a pair from a template (no parent, trace state, error or content): a long
    # response id, no cost, a first token; no response id; counts of other lengths
    (dict(stream=True), _slo(stream=True, completionStartTime=1_700_000_000.25, response_cost=None,
                             response={"id": "y" * 150, "model": "m2", "choices": [{"finish_reason": "stop"}]}), True),
    (dict(), _slo(prompt_tokens=0, completion_tokens=2**20, response={"model": "m3"},
                  model_parameters={"temperature": 1}), True),
    (dict(), _slo(prompt_tokens=130, completion_tokens=7), True),
]


@pytest.mark.parametrize("capture", [False, True])
def test_gateway_span_records_encode_as_the_sdk_spans_do(capture):
    """The gateway's fast path (span records written by otlp_proto.gateway_span) and its SDK path
    (ReadableSpans, encoded by the SDK's encoder) send the same message, case for case."""
    import itertools

    from llmrelay.integrations.opentelemetry import OpenTelemetryLogger, otlp_http_exporter

    exporter = otlp_http_exporter(endpoint="http://127.0.0.1:9/v1/traces")
    fast = OpenTelemetryLogger(exporter=exporter, capture_content=capture, service_name="svc")
    assert fast._emit is not None and exporter.gateway_group is not None
    assert fast._queue is fast._batch._queue  # (appended to directly)
    records: list = []
    fast._emit, fast._queue = records.append, None
    memory = InMemorySpanExporter()
    sdk = OpenTelemetryLogger(span_processor=SimpleSpanProcessor(memory), capture_content=capture,
                              service_name="svc")
    assert sdk._emit is None
    try:
        for ctx_kw, slo, started in _CASES:
            for logger in (fast, sdk):
                ids = itertools.count(0xABCDEF0123)
                logger._new_trace_id = logger._new_span_id = lambda ids=ids: next(ids)
            ctx, record = _Ctx(**ctx_kw), _Record()
            if started:
                fast.request_start(ctx, record, {})
                record.state[id(sdk)] = record.state[id(fast)]
            state = dict(record.state)
            fast.request_end(ctx, record, {"standard_logging_object": slo})
            record.state = state
            sdk.request_end(ctx, record, {"standard_logging_object": slo})
        spans = memory.get_finished_spans()
        assert len(spans) == len(records) == 13
        ours = ExportTraceServiceRequest.FromString(encode_spans(records, exporter.gateway_group))
        assert ours == sdk_encode(spans)
        # a request's two records are written at once when they come together; not when a batch
        # splits them, nor when the order differs
        shifted = records[1:] + records[:1]
        ours = ExportTraceServiceRequest.FromString(encode_spans(shifted, exporter.gateway_group))
        assert ours == sdk_encode(spans[1:] + spans[:1])
        reversed_ = records[::-1]
        ours = ExportTraceServiceRequest.FromString(encode_spans(reversed_, exporter.gateway_group))
        assert ours == sdk_encode(spans[::-1])
        from opentelemetry.proto.trace.v1.trace_pb2 import Span

        from llmrelay.integrations.otlp_proto import gateway_span

        sent = sdk_encode(spans).resource_spans[0].scope_spans[0].spans
        assert [Span.FromString(gateway_span(r)) for r in records] == list(sent)
        # and one at a time, mixed with SDK spans of the same provider (one resource, one scope)
        for record, span in zip(records, spans):
            ours = ExportTraceServiceRequest.FromString(encode_spans([record, span], exporter.gateway_group))
            assert ours == sdk_encode([span, span])
    finally:
        fast.shutdown()
        sdk.shutdown()


def test_a_gateway_record_with_unconverted_values_encodes_as_its_converted_one():
    """A record's request model, system, response model and finish reasons are converted by the
    encoder (once per kind of request); an unhashable one (an odd upstream's finish reason) too."""
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from llmrelay.integrations.otlp_proto import _converted

    group = (Resource.create({"service.name": "svc"}), InstrumentationScope("llmrelay"))
    t = 1_700_000_000_000_000_000
    for model, reasons in ((123, ("stop",)), ("m2", (["stop"],)), (None, None)):
        fields = (b"\x01" * 16, b"\x02" * 8, b"\x03" * 8, None, None, "chat m", t, t + 5, t + 1, t + 4, "m", 5, 7,
                  "openai", model, "id-1", reasons, None, None, None, 0.5, 200, False, None, None, None)
        converted = _converted(fields)
        assert converted[14] == (None if model is None else str(model))
        for records in ([(True, fields), (False, fields)], [(False, fields)], [(True, fields)]):
            want = encode_spans([(upstream, converted) for upstream, _ in records], group)
            assert encode_spans(records, group) == want
            assert ExportTraceServiceRequest.FromString(want).resource_spans[0].scope_spans[0].spans


def test_a_requests_entries_written_at_once_are_what_its_record_encodes_to():
    """The gateway's common case queues a request's two spans as entries written as it ends
    (otlp_proto.request_entries) instead of its record: the batch's bytes are the same, also
    mixed with records and SDK spans."""
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from llmrelay.integrations.otlp_proto import request_entries

    group = (Resource.create({"service.name": "svc"}), InstrumentationScope("llmrelay"))
    t = 1_700_000_000_000_000_000
    cases = [
        ("m", 5, 7, "openai", "gpt-4o-mini", "chatcmpl-1", ("stop",), 0.5, 200, False, None),
        ("m", 0, 2**20, None, None, None, None, 0.0, 200, True, t + 3),
        ("other", 130, 300, "anthropic", "claude", "y" * 150, ("length",), 1e-6, 201, True, None),
    ]
    for model, prompt, completion, system, response_model, response_id, reasons, cost, status, stream, first in cases:
        ids = (bytes(range(1, 17)), bytes(range(17, 25)), bytes(range(25, 33)))
        values = (*ids, f"chat {model}", t, t + 5, t + 1, t + 4, model, prompt, completion, system, response_model,
                  response_id, reasons, cost, status, stream, first)
        up, req = request_entries(*values)
        fields = (ids[0], ids[1], ids[2], None, None, f"chat {model}", t, t + 5, t + 1, t + 4, model, prompt,
                  completion, system, response_model, response_id, reasons, None, None, None, cost, status, stream,
                  first, None, None)
        want = encode_spans([(True, fields), (False, fields)], group)
        assert encode_spans([up, req], group) == want
        assert ExportTraceServiceRequest.FromString(want).resource_spans[0].scope_spans[0].spans
        # one at a time, and beside a record of another request (whose pair they don't split)
        assert encode_spans([up], group) == encode_spans([(True, fields)], group)
        assert encode_spans([req], group) == encode_spans([(False, fields)], group)
        assert (encode_spans([(True, fields), up, req, (False, fields)], group)
                == encode_spans([(True, fields), (True, fields), (False, fields), (False, fields)], group))
