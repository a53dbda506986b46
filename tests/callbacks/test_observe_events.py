"""The gateway's end-of-request event (proxy/observe.py): what its own loggers are handed.

With no callback but the gateway's loggers (metrics, traces), the event's kwargs are the slim
ones: ``standard_logging_object`` and ``response_cost``, all those loggers read (LiteLLM's other
keys are not built per request). A success/failure callback next to them gets the full kwargs,
and so do they."""

from __future__ import annotations

import time

import pytest

from llmrelay.logging_obj import Logging
from llmrelay.proxy.app import _Ctx
from llmrelay.proxy.config import load_config
from llmrelay.proxy.observe import Observe
from llmrelay.transport.base import upstream_headers
from llmrelay.types import ModelResponse, Usage

MODULE = '''
seen = []


class GatewayLogger:
    """The gateway-logger protocol of the built-in Prometheus / OpenTelemetry loggers."""

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        pass

    def request_start(self, ctx, record, headers):
        headers["x-probe"] = "1"

    def request_end(self, ctx, record, kwargs):
        seen.append(("gateway", kwargs))


def on_success(kwargs, response, start, end):
    seen.append(("function", kwargs))


gateway_logger = GatewayLogger()
'''


@pytest.fixture(autouse=True)
def _task_headers():
    """Observe.upstream sets the upstream headers of the task (here: the test's thread)."""
    token = upstream_headers.set(None)
    yield
    upstream_headers.reset(token)


def _observe(tmp_path, names: list[str]):
    (tmp_path / "probe_loggers.py").write_text(MODULE)
    path = tmp_path / "config.yaml"
    path.write_text("model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
                    "litellm_settings:\n  callbacks: [" + ", ".join(names) + "]\n")
    import sys

    sys.modules.pop("probe_loggers", None)
    observe = Observe(load_config(str(path)))
    return observe, sys.modules["probe_loggers"].seen


class _Request:
    kind = "chat"
    model = "m"
    stream = False

    def __init__(self) -> None:
        self.messages = [{"role": "user", "content": "hi"}]
        self.params = {"temperature": 0.5, "user": "u1", "metadata": {"tags": ["t"]}}


def _one_request(observe: Observe) -> None:
    ctx = _Ctx(time.perf_counter(), b"req-1")
    ctx.model = "m"
    request = _Request()
    observe.upstream(ctx, request)
    # for the upstream call: the task's side channel, not the request's parameters
    assert upstream_headers.get() == {"x-probe": "1"} and "extra_headers" not in request.params
    response = ModelResponse(id="chatcmpl-1", model="gpt-4o-mini",
                             choices=[{"index": 0, "message": {"role": "assistant", "content": "hello"},
                                       "finish_reason": "stop"}],
                             usage=Usage(prompt_tokens=5, completion_tokens=2, total_tokens=7))
    response._hidden_params = {"custom_llm_provider": "openai", "model_group": "m", "model_id": "d1",
                               "api_base": "http://upstream/v1", "response_cost": 1e-5}
    ctx.result = response
    ctx.status = 200
    observe.end(ctx)


def _check_slo(slo: dict) -> None:
    assert slo["id"] == "req-1" and slo["status"] == "success" and slo["model_group"] == "m"
    assert (slo["prompt_tokens"], slo["completion_tokens"], slo["total_tokens"]) == (5, 2, 7)
    assert slo["response_cost"] == 1e-5 and slo["custom_llm_provider"] == "openai" and slo["model_id"] == "d1"
    assert slo["model_parameters"] == {"temperature": 0.5, "user": "u1"} and slo["end_user"] == "u1"
    assert slo["metadata"]["requester_request_id"] == "req-1" and slo["request_tags"] == ["t"]
    assert slo["response"]["choices"][0]["finish_reason"] == "stop"



def _answer(ctx, kind: str, cost: float | None = None) -> ModelResponse:
    """The request's result for ``kind`` ("stream", "no response", "no usage", else a response)
    set on ``ctx`` (a non-stream's cost ``cost``): the response."""
    usage = None if kind == "no usage" else Usage(prompt_tokens=5, completion_tokens=2, total_tokens=7)
    response = ModelResponse(id="chatcmpl-1", model="gpt-4o-mini", usage=usage,
                             choices=[{"index": 0, "message": {"role": "assistant", "content": "hello"},
                                       "finish_reason": "stop"}])
    response._hidden_params = {"custom_llm_provider": "openai", "model_group": "m", "model_id": "d1",
                               "api_base": "http://upstream/v1", "response_cost": 1e-5, "model": "gpt-4o-mini"}
    if kind == "stream":
        ctx.result = _Stream(response)
        ctx.ttft = 0.01
        ctx.cost = 2e-5
    elif kind == "no response":
        ctx.result = _Stream(None)
    else:
        ctx.result = response
        if cost is not None:
            ctx.cost = cost
    return response

def test_gateway_loggers_alone_get_the_slim_kwargs(tmp_path):
    observe, seen = _observe(tmp_path, ["probe_loggers.gateway_logger"])
    _one_request(observe)
    [(who, kwargs)] = seen
    assert who == "gateway"
    assert set(kwargs) == {"standard_logging_object", "response_cost"}
    assert kwargs["response_cost"] == 1e-5
    _check_slo(kwargs["standard_logging_object"])


@pytest.mark.asyncio
async def test_with_a_callback_everyone_gets_litellms_kwargs(tmp_path):
    observe, seen = _observe(tmp_path, ["probe_loggers.gateway_logger", "probe_loggers.on_success"])
    _one_request(observe)
    from llmrelay.integrations.dispatch import wait_pending

    await wait_pending()
    assert sorted(who for who, _ in seen) == ["function", "gateway"]
    for _, kwargs in seen:
        assert kwargs["litellm_params"]["proxy_server_request"]["request_id"] == "req-1"
        assert kwargs["litellm_call_id"] == "req-1" and kwargs["start_time"] is not None
        assert kwargs["optional_params"] == {"temperature": 0.5, "user": "u1"}
        _check_slo(kwargs["standard_logging_object"])


def test_slim_event_has_the_same_standard_logging_object():
    def entry(slim: bool) -> Logging:
        record = Logging(model="m", messages=[{"role": "user", "content": "hi"}], start_time=1000.0,
                         litellm_call_id="id-1", optional_params={"user": "u"}, metadata={"k": "v"})
        record.slim = slim
        return record

    response = ModelResponse(id="r", model="gpt-4o-mini",
                             choices=[{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
                             usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2))
    full, slim = entry(False), entry(True)
    full.success(response, end_time=1001.0, cost=0.5)
    slim.success(response, end_time=1001.0, cost=0.5)
    assert set(slim.model_call_details) == {"standard_logging_object", "response_cost"}
    assert slim.model_call_details["standard_logging_object"] == full.model_call_details["standard_logging_object"]
    assert "litellm_params" in full.model_call_details


class _Stream:
    """What the app's ctx.result is for a stream: not the response; its state assembles it."""

    def __init__(self, response) -> None:
        self._hidden_params = {"custom_llm_provider": "openai", "model_group": "m", "model_id": "d2",
                               "api_base": "http://other/v1", "model": "gpt-4o", "cache_key": "k"}
        self.state = self
        self._response = response

    def response(self):
        return self._response


@pytest.mark.parametrize("kind", ["response", "stream", "no usage", "no response"])
def test_the_fast_slim_success_is_what_logging_makes(tmp_path, kind):
    """A success only the gateway loggers hear is built without a Logging record: the same
    kwargs, key for key (timings apart), and the same response_cost left on the response."""
    from llmrelay.proxy.observe import UserAPIKeyAuth

    observe, seen = _observe(tmp_path, ["probe_loggers.gateway_logger"])
    made = []
    for fast in (True, False):
        observe.fast_event = fast
        ctx = _Ctx(time.perf_counter(), b"req-1")
        ctx.model = "m"
        ctx.auth = UserAPIKeyAuth(api_key="hash", key_alias="alias", team_id="t1", user_id="u9")
        ctx.key_alias = "alias"
        request = _Request()
        request.stream = kind == "stream"
        observe.upstream(ctx, request)
        response = _answer(ctx, kind)
        ctx.status = 200
        observe.end(ctx)
        [(_, kwargs)] = seen
        seen.clear()
        made.append((kwargs, response._hidden_params))
    (fast_kwargs, fast_hidden), (kwargs, hidden) = made
    assert fast_hidden == hidden
    slo, fast_slo = kwargs["standard_logging_object"], fast_kwargs["standard_logging_object"]
    assert slo["status"] == "success" and slo["metadata"]["user_api_key_alias"] == "alias"
    for times in (slo, fast_slo):
        assert times.pop("endTime") - times.pop("response_time") == times["startTime"]
        if kind == "stream":
            assert times.pop("completionStartTime") == pytest.approx(times["startTime"] + 0.01)
        else:
            times.pop("completionStartTime")
        times.pop("startTime")
    assert fast_slo == slo
    assert list(fast_slo) == list(slo)
    assert fast_kwargs.keys() == kwargs.keys() and fast_kwargs["response_cost"] == kwargs["response_cost"]


@pytest.mark.parametrize("where", ["emit", "queue", "queue, no parameters"])
@pytest.mark.parametrize("kind", ["response", "stream", "no usage", "no response", "keyed"])
def test_the_request_facts_give_what_the_event_gives(tmp_path, kind, where):
    """With Prometheus and OpenTelemetry alone, a success reaches them as the request's facts
    (Observe._facts → request_facts), not as an event: the same Prometheus rows and labels, and
    the same span records, as the event's kwargs give them (request_end)."""
    pytest.importorskip("prometheus_client")
    pytest.importorskip("opentelemetry.sdk")
    import prometheus_client

    from llmrelay.integrations.opentelemetry import OpenTelemetryLogger, otlp_http_exporter
    from llmrelay.integrations.prometheus import PrometheusLogger
    from llmrelay.proxy.observe import UserAPIKeyAuth

    observe, _ = _observe(tmp_path, ["probe_loggers.gateway_logger"])
    prom = PrometheusLogger(registry=prometheus_client.CollectorRegistry())
    otel = OpenTelemetryLogger(exporter=otlp_http_exporter(endpoint="http://127.0.0.1:9/v1/traces"))
    records: list = []
    if where == "emit":
        otel._emit, otel._queue = records.append, None
    else:  # the batch processor's queue, appended to directly (OpenTelemetryLogger.request_facts' own path)
        import collections
        import threading
        import types

        otel._queue = collections.deque(maxlen=64)
        otel._batch = types.SimpleNamespace(_shutdown=False, _worker_awaken=threading.Event())
        otel._queue_limit, otel._batch_size = 64, 32
    observe.gateway_loggers = [prom, otel]
    observe.facts = True
    calls: list = []
    prom.request_facts = lambda *a, f=prom.request_facts: (calls.append(1), f(*a))[1]
    made = []
    for facts in (True, False):
        observe.fast_event = facts  # False: the slim event's kwargs, to request_end
        ctx = _Ctx(time.perf_counter(), b"req-1")
        ctx.model = "m"
        if kind == "keyed":
            ctx.auth = UserAPIKeyAuth(api_key="hash", key_alias="alias", team_id="t1", team_alias="ta", user_id="u9")
            ctx.key_alias = "alias"
        request = _Request()
        request.params = {"user": "u1"} if where == "queue, no parameters" else {"temperature": 0.5, "user": "u1"}
        request.stream = kind == "stream"
        ctx.stream = request.stream
        otel._new_trace_id = otel._new_span_id = lambda: 0xABC
        observe.upstream(ctx, request)
        response = _answer(ctx, kind, cost=1e-5)
        ctx.status = 200
        ctx.upstream = 0.002
        observe.end(ctx)
        [(kind_, rows)] = [(k, k.rows) for k in prom._waiting]
        [row] = rows
        if where == "emit":
            made.append((kind_, row, records.pop(), records.pop()))
        else:
            made.append((kind_, row, otel._queue.popleft(), otel._queue.popleft()))
            assert not otel._queue
        prom.flush()
    (fast_kind, fast_row, fast_request, fast_upstream), (kind_, row, request_, upstream) = made
    assert calls == [1]  # (the facts' path, then the event's)
    assert fast_kind is kind_ and fast_kind.who == kind_.who
    if kind == "keyed":
        assert kind_.who == ("u1", "hash", "alias", "t1", "ta", "u9")
    # timings apart (taken at different moments), the same values
    assert fast_row[:3] == row[:3] and (fast_row[5] is None) == (row[5] is None)
    if where == "queue, no parameters":  # the common case: the spans' entries queued, written already
        assert type(fast_request) is bytes and type(fast_upstream) is bytes
        assert type(request_) is tuple and type(upstream) is tuple  # (the event's path queues records)
        assert _timeless_span(fast_request) == _timeless_span(request_)
        assert _timeless_span(fast_upstream) == _timeless_span(upstream)
        return
    for fast, slow in ((fast_request, request_), (fast_upstream, upstream)):
        assert fast[0] == slow[0]
        f, s = list(fast[1]), list(slow[1])
        for i in (6, 7, 8, 9, 23):  # start, end, upstream start and end, first token (ns)
            assert (f[i] is None) == (s[i] is None)
            f[i] = s[i] = None
        assert f == s


def _timeless_span(item):
    """The Span message of a queued gateway span (a record, or its entry written already),
    its times (start, end, events') zeroed: two requests' spans taken at different moments."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from llmrelay.integrations.otlp_proto import gateway_span

    if type(item) is bytes:  # an entry of ScopeSpans.spans: its tag, its length, the span
        i = 1
        while item[i] & 0x80:
            i += 1
        item = item[i + 1:]
    else:
        item = gateway_span(item)
    span = Span.FromString(item)
    span.start_time_unix_nano = span.end_time_unix_nano = 0
    for event in span.events:
        event.time_unix_nano = 0
    return span
