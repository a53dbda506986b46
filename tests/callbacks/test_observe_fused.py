"""The one-pass end of a plain non-streamed success (proxy/observe_fused.py): with the built-in
Prometheus and OpenTelemetry loggers alone, what it makes is what the loggers' own path makes
(Observe._facts → request_facts) — the same Prometheus values and the same span bytes, request for
request — and each request is counted exactly once, whichever path takes it."""

from __future__ import annotations

import collections
import threading
import types
from typing import Any

import pytest

from llmrelay.proxy.app import _Ctx
from llmrelay.proxy.observe import UserAPIKeyAuth
from llmrelay.transport.base import HeaderLines, upstream_headers
from llmrelay.types import ModelResponse, Usage

pytest.importorskip("prometheus_client")
pytest.importorskip("opentelemetry.sdk")

IDS = [(bytes([i + 1]) * 16, bytes([i + 101]) * 8, bytes([i + 201]) * 8) for i in range(40)]


@pytest.fixture(autouse=True)
def _task_headers():
    token = upstream_headers.set(None)
    yield
    upstream_headers.reset(token)


@pytest.fixture()
def clocks(monkeypatch):
    """Fixed clocks (both paths read them at different moments), fixed span ids."""
    from llmrelay.integrations import opentelemetry, prometheus
    from llmrelay.proxy import observe, observe_fused

    clock = types.SimpleNamespace(perf_counter=lambda: 100.25)  # (the event path's module reads)
    monkeypatch.setattr(observe, "time", clock)
    monkeypatch.setattr(prometheus, "time", clock)
    monkeypatch.setattr(observe, "_perf", lambda: 100.25)
    monkeypatch.setattr(observe_fused, "_perf", lambda: 100.25)
    monkeypatch.setattr(observe, "_time", lambda: 1_700_000_000.5)
    monkeypatch.setattr(observe_fused, "_time", lambda: 1_700_000_000.5)
    monkeypatch.setattr(opentelemetry, "_time_ns", lambda: 1_700_000_000_100_000_000)

    def ids(monkeypatch=monkeypatch):
        monkeypatch.setattr(opentelemetry, "_drawn", iter(IDS))

    return ids


def _gateway(tmp_path, fused: bool):
    """An Observe with the built-in loggers (Prometheus in its own registry, in-flight gauges
    read from the gateway's table; OpenTelemetry's span entries into a queue of ours)."""
    import prometheus_client

    from llmrelay.integrations.opentelemetry import OpenTelemetryLogger, otlp_http_exporter
    from llmrelay.integrations.prometheus import PrometheusLogger
    from llmrelay.proxy.config import load_config
    from llmrelay.proxy.observe import Observe

    path = tmp_path / "config.yaml"
    path.write_text("model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
                    "litellm_settings:\n  callbacks: [probe_fused.logger]\n")
    (tmp_path / "probe_fused.py").write_text(
        "class Logger:\n    def log_success_event(self, kwargs, response, start, end): pass\n"
        "    def request_start(self, ctx, record, headers): pass\n"
        "    def request_end(self, ctx, record, kwargs): pass\n    takes_facts = True\n"
        "    def request_facts(self, ctx, record, facts): pass\nlogger = Logger()\n")
    import sys

    sys.modules.pop("probe_fused", None)
    observe = Observe(load_config(str(path)))
    prom = PrometheusLogger(registry=prometheus_client.CollectorRegistry())
    prom.in_flight = lambda: ()
    otel = OpenTelemetryLogger(exporter=otlp_http_exporter(endpoint="http://127.0.0.1:9/v1/traces"))
    otel._queue = collections.deque(maxlen=256)
    otel._batch = types.SimpleNamespace(_shutdown=False, _worker_awaken=threading.Event())
    otel._queue_limit, otel._batch_size = 256, 128
    observe.gateway_loggers = [prom, otel]
    observe.facts = True
    taken = []
    if fused:
        from llmrelay.proxy.observe import _Request
        from llmrelay.proxy.observe_fused import fused_end, fused_start

        fast = fused_end(observe.gateway_loggers)
        assert fast is not None
        observe._starts = [otel.request_start]
        observe._one_start = otel.upstream_start
        observe._fused = lambda *a: taken.append(fast(*a)) or taken[-1]
        observe._fast_start = fused_start(fast, _Request, None)
        assert observe._fast_start is not None
    else:
        observe._starts = [otel.request_start]  # (the loggers' own path: no one-pass end)
    return observe, prom, otel, taken


def _response(kind: str) -> ModelResponse:
    choices = [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]
    if kind == "two choices":
        choices.append({"index": 1, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"})
    response = ModelResponse(id=f"chatcmpl-{kind[:3]}", model="gpt-4o-mini",
                             choices=choices,
                             usage=Usage(prompt_tokens=5 if kind != "many tokens" else 300, completion_tokens=2,
                                         total_tokens=7))
    if kind == "no id":
        response.id = None
    response._hidden_params = {"custom_llm_provider": "openai", "model_group": "fallback" if kind == "fallback" else "m",
                               "model_id": "d1", "api_base": "http://upstream/v1", "model": "gpt-4o-mini"}
    return response


#: requests of several kinds; the one-pass end takes the first ones, the loggers' path the others
KINDS = ["plain", "keyed", "user", "no id", "many tokens", "free", "plain", "keyed",
         "temperature", "metadata", "fallback", "two choices", "plain"]
FUSED = {"plain", "keyed", "user", "no id", "many tokens", "free"}


def _run(observe: Any, kinds: list[str]) -> None:
    class Request:
        kind = "chat"
        model = "m"
        stream = False
        messages = [{"role": "user", "content": "hi"}]

    for kind in kinds:
        ctx = _Ctx(100.0, b"req-1")
        ctx.model = "m"
        if kind == "keyed":
            ctx.auth = UserAPIKeyAuth(api_key="hash", key_alias="alias", team_id="t1", team_alias="ta", user_id="u9")
            ctx.key_alias = "alias"
        request = Request()
        request.params = {"temperature": 0.5} if kind == "temperature" else {
            "metadata": {"tags": ["t"]}} if kind == "metadata" else {"user": "u1"} if kind == "user" else {}
        observe.upstream(ctx, request)
        ctx.result = _response(kind)
        ctx.status = 200
        ctx.upstream = 0.125
        if kind != "free":
            ctx.cost = 1.5e-5
        observe.end(ctx)


def test_the_one_pass_end_makes_what_the_loggers_make(tmp_path, clocks):
    """The same requests through the one-pass end and through the loggers' own path: the same
    Prometheus values (scraped), the same span entries (bytes, in order), the same response_cost
    left on the responses; the one-pass end took the plain ones, and declined the others."""
    import prometheus_client
    from prometheus_client.parser import text_string_to_metric_families

    made = []
    for fused in (True, False):
        clocks()
        observe, prom, otel, taken = _gateway(tmp_path, fused)
        _run(observe, KINDS)
        spans = list(otel._queue)
        prom.flush()
        made.append((prometheus_client.generate_latest(prom.registry), spans, taken))
    (fused_metrics, fused_spans, taken), (metrics, spans, _) = made
    assert taken == [kind in FUSED for kind in KINDS]
    assert len(spans) == 2 * len(KINDS) and len(fused_spans) == len(spans)
    assert fused_spans == spans
    assert _values(fused_metrics) == _values(metrics)
    assert b'litellm_proxy_total_requests_metric_total{' in metrics
    total = sum(s.value for f in text_string_to_metric_families(metrics.decode())
                if f.name == "litellm_proxy_total_requests_metric" for s in f.samples if s.name.endswith("_total"))
    assert total == len(KINDS)  # exactly once each


def _values(text: bytes) -> list[str]:
    """The exposition's lines but the series' creation times (when each was first made)."""
    return [line for line in text.decode().splitlines() if "_created{" not in line and "_created " not in line]


def test_the_one_pass_end_batches_and_flushes_as_the_logger(tmp_path, clocks):
    """Its rows wait in Prometheus's batches like the logger's own (a scrape flushes them, and a
    full batch is applied at once); span entries wake the export thread when a batch is full."""
    from llmrelay.integrations import prometheus

    clocks()
    observe, prom, otel, taken = _gateway(tmp_path, True)
    _run(observe, ["plain"] * 3)
    assert taken == [True] * 3 and prom._rows == 3 and sum(len(k.rows) for k in prom._waiting) == 3
    body = prom.metrics_body()[1]  # the scrape applies what waits
    assert prom._rows == 0 and b'litellm_proxy_total_requests_metric_total{' in body
    prom._rows = prometheus.BATCH - 1  # (as if a batch were nearly full)
    _run(observe, ["plain"])
    assert prom._rows == 0 and not prom._waiting
    otel._batch_size = len(otel._queue) + 2
    assert not otel._batch._worker_awaken.is_set()
    _run(observe, ["plain"])
    assert otel._batch._worker_awaken.is_set()


def test_the_upstream_call_gets_its_traceparent_line_written(tmp_path, clocks):
    """OpenTelemetry alone starts the request through ``upstream_start``: the upstream headers
    are a HeaderLines whose line is the traceparent's, as the lean client would write it."""
    from llmrelay.transport.lean import _extra_lines

    clocks()
    observe, prom, otel, _ = _gateway(tmp_path, True)
    _run(observe, ["plain"])
    headers = upstream_headers.get()
    trace_id, upstream_id, _ = IDS[0]
    assert type(headers) is HeaderLines
    assert headers == {"traceparent": f"00-{trace_id.hex()}-{upstream_id.hex()}{otel._new_flags_suffix}"}
    assert headers.lines == _extra_lines(dict(headers))


def test_a_head_with_header_lines_is_the_head_with_their_dict():
    """The lean client's request head: the same bytes from a HeaderLines as from its dict."""
    from llmrelay.providers.base import HttpRequest
    from llmrelay.transport import lean

    request = HttpRequest("POST", "http://127.0.0.1:1/v1/chat/completions",
                          {"content-type": "application/json", "authorization": "Bearer x"}, b"{}")
    where = lean.target(request.url)
    heads = []
    for extra in (None, {"traceparent": "00-ab-cd-01"}, "lines"):
        if extra == "lines":
            extra = HeaderLines(traceparent="00-ab-cd-01")
            extra.lines = b"traceparent: 00-ab-cd-01\r\n"
        token = upstream_headers.set(extra)
        try:
            heads.append(lean._head("POST", where, request))
        finally:
            upstream_headers.reset(token)
    assert heads[1] == heads[2] != heads[0]
    assert b"traceparent: 00-ab-cd-01\r\n" in heads[2]
