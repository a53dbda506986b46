"""OpenTelemetry: spans over real OTLP/HTTP to a loopback receiver (the gateway), and through the
SDK's in-memory exporter (the library); GenAI semantic conventions, W3C traceparent in and out."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

import llmrelay
from proxy.harness import Gateway
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer
from timing import DEADLINE

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

MESSAGES = [{"role": "user", "content": "Tell me a secret"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"


class OTLPReceiver:
    """A minimal OTLP/HTTP trace receiver (protobuf bodies on POST /v1/traces)."""

    def __init__(self) -> None:
        self.spans: list = []
        self.paths: list[str] = []
        self.authorizations: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.paths.append(self.path)
                receiver.authorizations.append(self.headers.get("authorization"))
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        receiver.spans.extend(scope_spans.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "OTLPReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout: float = DEADLINE) -> list:
        deadline = time.monotonic() + timeout
        while len(self.spans) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.spans)


def attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        v = kv.value
        kind = v.WhichOneof("value")
        out[kv.key] = list(x.string_value for x in v.array_value.values) if kind == "array_value" else getattr(v, kind)
    return out


def test_gateway_exports_request_and_upstream_spans_over_otlp_http(tmp_path):
    with OTLPReceiver() as receiver, FakeOpenAIServer() as up:
        path = tmp_path / "config.yaml"
        path.write_text(f"model_list:\n  - model_name: m\n    litellm_params: {{model: openai/gpt-4o-mini, "
                        f"api_base: {up.url}/v1, api_key: sk-up}}\nlitellm_settings:\n  callbacks: [otel]\n")
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "50",
               "OTEL_SERVICE_NAME": "gw-test"}
        with Gateway(str(path), env=env) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0, timeout=20)
            stream = client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, temperature=0.5,
                extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            client.chat.completions.create(model="m", messages=MESSAGES)  # no traceparent: a new trace
            # the client's trace is not sampled: no spans, and the upstream hears so
            client.chat.completions.create(model="m", messages=MESSAGES,
                                           extra_headers={"traceparent": f"00-{OTHER_TRACE}-{PARENT_ID}-00"})
            # an invalid traceparent (version ff) is ignored: a new trace
            client.chat.completions.create(model="m", messages=MESSAGES,
                                           extra_headers={"traceparent": f"ff-{OTHER_TRACE}-{PARENT_ID}-01"})
            spans = receiver.wait(6)
            time.sleep(0.3)  # (a span of the unsampled request would come in the same batches)
            spans = list(receiver.spans)
            upstream_headers = [r.headers.get("traceparent") for r in up.requests]
    assert text == DEFAULT_TEXT
    assert receiver.paths[0] == "/v1/traces"
    assert len(spans) == 6
    assert not [s for s in spans if s.trace_id.hex() == OTHER_TRACE]
    assert upstream_headers[2].startswith(f"00-{OTHER_TRACE}-") and upstream_headers[2].endswith("-00")
    assert upstream_headers[2].split("-")[2] != PARENT_ID
    assert upstream_headers[3].split("-")[1] != OTHER_TRACE
    server = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    client_spans = [s for s in spans if s.kind == s.SPAN_KIND_CLIENT]
    assert len(server) == 3 and len(client_spans) == 3
    for span in client_spans:  # each upstream span is its request span's child, within it
        parent = next(s for s in server if s.span_id == span.parent_span_id)
        assert span.trace_id == parent.trace_id
        assert parent.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
        assert span.end_time_unix_nano <= parent.end_time_unix_nano
    streamed = next(s for s in server if s.trace_id.hex() == TRACE_ID)
    assert streamed.parent_span_id.hex() == PARENT_ID  # the client's trace continues here
    upstream = next(s for s in client_spans if s.trace_id.hex() == TRACE_ID)
    assert upstream.parent_span_id == streamed.span_id
    # the upstream call carried the upstream span's context
    assert upstream_headers[0] == f"00-{TRACE_ID}-{upstream.span_id.hex()}-01"
    other = next(s for s in server if s.trace_id.hex() != TRACE_ID)
    other_upstream = next(s for s in client_spans if s.trace_id == other.trace_id)
    # a new trace's: its trace id and the upstream span's id
    assert upstream_headers[1].split("-")[:3] == ["00", other.trace_id.hex(), other_upstream.span_id.hex()]
    a = attrs(streamed)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "m"
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.system"] == "openai"
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["http.response.status_code"] == 200
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a  # not configured
    assert [e.name for e in streamed.events] == ["gen_ai.first_token"]
    first = streamed.events[0].time_unix_nano
    assert streamed.start_time_unix_nano < first <= streamed.end_time_unix_nano
    assert not [e for e in other.events]  # not a stream: no first-token event


@pytest.mark.parametrize("setting", ["callbacks: [langfuse_otel]", 'success_callback: ["langfuse"]'])
def test_langfuse_otel_posts_to_langfuses_endpoint_with_its_keys_and_content_when_configured(tmp_path, setting):
    """``callbacks: [langfuse_otel]``: spans to ``LANGFUSE_HOST``'s OTel endpoint with Basic auth of
    the key pair; ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` records the texts.
    LiteLLM's own ``langfuse`` logger sends the same, with the texts unless told not to."""
    import base64

    with OTLPReceiver() as receiver, FakeOpenAIServer() as up:
        path = tmp_path / "config.yaml"
        path.write_text(f"model_list:\n  - model_name: m\n    litellm_params: {{model: openai/gpt-4o-mini, "
                        f"api_base: {up.url}/v1, api_key: sk-up}}\nlitellm_settings:\n  {setting}\n")
        env = {"LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-2", "LANGFUSE_HOST": receiver.url,
               "OTEL_BSP_SCHEDULE_DELAY": "50"}
        if "langfuse_otel" in setting:
            env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
        with Gateway(str(path), env=env) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0, timeout=20)
            client.chat.completions.create(model="m", messages=MESSAGES)
            spans = receiver.wait(2)
    assert len(spans) == 2
    assert set(receiver.paths) == {"/api/public/otel/v1/traces"}
    assert set(receiver.authorizations) == {"Basic " + base64.b64encode(b"pk-lf-1:sk-lf-2").decode()}
    server = next(s for s in spans if s.kind == s.SPAN_KIND_SERVER)
    a = attrs(server)
    assert "Tell me a secret" in a["gen_ai.input.messages"]
    assert DEFAULT_TEXT in a["gen_ai.output.messages"]


def test_library_spans_with_the_in_memory_exporter():
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmrelay.integrations.dispatch import LIST_NAMES
    from llmrelay.integrations.opentelemetry import OpenTelemetryLogger

    exporter = InMemorySpanExporter()
    saved = {name: list(getattr(llmrelay, name)) for name in LIST_NAMES}
    llmrelay.callbacks = [OpenTelemetryLogger(span_processor=SimpleSpanProcessor(exporter), capture_content=True)]
    try:
        with FakeOpenAIServer() as up:
            kw = {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "api_base": up.url + "/v1", "api_key": "k"}
            llmrelay.completion(**kw)
            assert "".join(c.choices[0].delta.content or "" for c in llmrelay.completion(stream=True, **kw))
            up.enqueue(__import__("servers.openai_server", fromlist=["error_reply"]).error_reply(400, "bad"))
            with pytest.raises(llmrelay.BadRequestError):
                llmrelay.completion(**kw)
    finally:
        for name, value in saved.items():
            setattr(llmrelay, name, value)
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    plain, streamed, failed = spans
    assert plain.attributes["gen_ai.operation.name"] == "chat"
    assert plain.attributes["gen_ai.usage.output_tokens"] > 0
    assert "Tell me a secret" in plain.attributes["gen_ai.input.messages"]
    assert DEFAULT_TEXT in plain.attributes["gen_ai.output.messages"]
    assert [e.name for e in streamed.events] == ["gen_ai.first_token"]
    assert failed.status.status_code.name == "ERROR"
    assert failed.attributes["error.type"] == "BadRequestError"


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"])
def test_grpc_protocol_uses_the_grpc_exporter_or_says_what_to_install(monkeypatch, variable):
    from llmrelay.proxy.config import ConfigError
    from llmrelay.proxy.observe import load_callback

    monkeypatch.setenv(variable, "grpc")
    try:
        import opentelemetry.exporter.otlp.proto.grpc.trace_exporter  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install opentelemetry-exporter-otlp-proto-grpc"):
            load_callback("otel", None)
    else:
        from llmrelay.integrations.opentelemetry import default_exporter

        assert "grpc" in type(default_exporter()).__module__
        load_callback("otel", None).shutdown()
    monkeypatch.setenv(variable, "http/xml")
    with pytest.raises(ConfigError, match="not supported"):
        load_callback("otel", None)


def test_otlp_http_posts_keep_the_standard_variables_over_a_kept_alive_connection(monkeypatch):
    """A plain http:// endpoint is posted to over one kept-alive http.client connection, with the
    headers and compression the OTEL_EXPORTER_OTLP_* variables ask for; a connection the receiver
    closed is opened again; an HTTP proxy from the environment keeps the requests transport."""
    import gzip

    from llmrelay.integrations.opentelemetry import otlp_http_exporter

    seen: list = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            seen.append((self.path, dict(self.headers.items()), gzip.decompress(body), self.client_address))
            self.send_response(200)
            self.send_header("content-length", "0")
            if len(seen) == 2:
                self.send_header("connection", "close")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}/in/t")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,authorization=Bearer%20tok")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    try:
        exporter = otlp_http_exporter()
        assert type(exporter._client._transport).__name__ == "HTTPClientTransport"
        for n in range(4):
            assert exporter._client.export(b"batch%d" % n).success
        exporter.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    assert [s[2] for s in seen] == [b"batch0", b"batch1", b"batch2", b"batch3"]
    path, headers, _, _ = seen[0]
    assert path == "/in/t"
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["x-tenant"] == "acme" and headers["authorization"] == "Bearer tok"
    assert headers["content-encoding"] == "gzip" and headers["content-type"] == "application/x-protobuf"
    ports = [s[3][1] for s in seen]
    assert ports[0] == ports[1] != ports[2] == ports[3]  # kept alive; reopened after the close

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    exporter = otlp_http_exporter()
    assert type(exporter._client._transport).__name__ == "RequestsHTTPTransport"
    exporter.shutdown()


def test_gateway_ids_drawn_in_batches_are_distinct_nonzero_and_a_forked_workers_own():
    """The gateway's span ids are drawn for several requests at once: every request gets ids of
    its own (none zero, as the SDK's), and a worker forked from the gateway draws its own ids,
    not the ones its parent had drawn and not given yet."""
    import os

    from llmrelay.integrations import opentelemetry as otel

    def take() -> tuple[bytes, bytes, bytes]:
        return next(otel._drawn, None) or otel._draw_ids()

    ids = [take() for _ in range(3 * otel.ID_BATCH + 1)]
    assert len(set(ids)) == len(ids)
    assert all(len(t) == 16 and len(u) == 8 and len(s) == 8 and any(t) and any(u) and any(s) for t, u, s in ids)
    if not hasattr(os, "fork"):
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, b"".join(take()))
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != b"".join(take())


@pytest.mark.parametrize("env", [
    {"OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": "{url}", "OTEL_HEADERS": "Authorization=Bearer%20lf-key-1"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "{url}", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
     "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20lf-key-1"},
], ids=["litellm-variables", "http-json"])
def test_litellms_otel_variables_and_http_json(tmp_path, env):
    """LiteLLM's documented OTel set-ups: its own OTEL_EXPORTER / OTEL_ENDPOINT / OTEL_HEADERS, and
    OTEL_EXPORTER_OTLP_PROTOCOL=http/json (sent as protobuf, which OTLP/HTTP receivers take)."""
    with OTLPReceiver() as receiver, FakeOpenAIServer() as up:
        path = tmp_path / "config.yaml"
        path.write_text(f"model_list:\n  - model_name: m\n    litellm_params: {{model: openai/gpt-4o-mini, "
                        f"api_base: {up.url}/v1, api_key: sk-up}}\nlitellm_settings:\n  callbacks: [otel]\n")
        env = {k: v.format(url=receiver.url) for k, v in env.items()} | {"OTEL_BSP_SCHEDULE_DELAY": "50"}
        with Gateway(str(path), env=env) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0, timeout=20)
            client.chat.completions.create(model="m", messages=MESSAGES)
            spans = receiver.wait(2)
    assert len(spans) == 2
    assert set(receiver.paths) == {"/v1/traces"}
    assert set(receiver.authorizations) == {"Bearer lf-key-1"}
