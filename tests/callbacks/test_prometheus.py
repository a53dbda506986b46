"""Prometheus at /metrics: LiteLLM's metric names, scraped from the real gateway under
``--workers 2`` and parsed with prometheus_client's own parser."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

import llmrelay

from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer, error_reply
from timing import DEADLINE

from .conftest import two_groups_config

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


def scrape(url: str) -> dict[str, list]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def total(families: dict[str, list], sample_name: str, **labels: str) -> float:
    out = 0.0
    for samples in families.values():
        for s in samples:
            if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
                out += s.value
    return out


@pytest.mark.slow
@pytest.mark.parametrize("workers", [["--workers", "2"], []], ids=["two-workers", "one-process-batched"])
def test_metrics_add_up_across_two_workers(tmp_path, workers):
    """With two workers each request is written to the shared files at once; in one process the
    requests' values are applied in batches, at the latest when /metrics is scraped."""
    with FakeOpenAIServer() as up, FakeOpenAIServer() as down:
        path = tmp_path / "config.yaml"
        path.write_text(two_groups_config(up.url, down.url, "prometheus"))
        with Gateway(str(path), workers) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0, timeout=20)

            def chat(i: int) -> None:
                if i % 2:
                    list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"hi {i}"}],
                                                        stream=True))
                else:
                    client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"hi {i}"}])

            with ThreadPoolExecutor(6) as pool:
                list(pool.map(chat, range(20)))
            up.enqueue(error_reply(500), error_reply(500))
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            down.enqueue(error_reply(503), error_reply(503))
            client.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "y"}])
            # a fallback that fails too: flaky's two attempts, then m's two
            down.enqueue(error_reply(503), error_reply(503))
            up.enqueue(error_reply(500), error_reply(500))
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "z"}])
            client.close()
            deadline = time.monotonic() + DEADLINE
            while True:  # the success events are counted off the request path: wait for them
                families = scrape(gw.url)
                if total(families, "litellm_requests_metric_total") >= 23 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            # every scrape answers for both workers: two scrapes agree
            again = scrape(gw.url)
    assert total(families, "litellm_proxy_total_requests_metric_total") == 23
    assert total(again, "litellm_proxy_total_requests_metric_total") == 23
    assert total(families, "litellm_proxy_total_requests_metric_total", requested_model="m", status_code="200") == 20
    assert total(families, "litellm_proxy_failed_requests_metric_total", exception_class="InternalServerError") == 2
    assert total(families, "litellm_requests_metric_total") == 23
    tokens_in = total(families, "litellm_input_tokens_metric_total")
    tokens_out = total(families, "litellm_output_tokens_metric_total")
    assert tokens_in > 0 and tokens_out > 0
    assert total(families, "litellm_total_tokens_metric_total") == tokens_in + tokens_out
    # the spend is what the price table makes of those tokens (gpt-4o-mini, every deployment)
    prices = llmrelay.cost_per_token(model="gpt-4o-mini", prompt_tokens=int(tokens_in), completion_tokens=int(tokens_out))
    assert total(families, "litellm_spend_metric_total") == pytest.approx(sum(prices))
    assert total(families, "litellm_llm_api_time_to_first_token_metric_count") == 10  # the streams
    assert total(families, "litellm_request_total_latency_metric_count") == 23
    assert total(families, "litellm_llm_api_latency_metric_count") == 23
    assert total(families, "litellm_overhead_latency_metric_count") == 23
    # per deployment: 21 answers and 8 failed attempts (2 on m; 2 on flaky; 2 + 2 in the failed fallback)
    assert total(families, "litellm_deployment_failure_responses_total") == 8
    assert total(families, "litellm_deployment_total_requests_total") == 29
    assert total(families, "litellm_deployment_latency_per_output_token_count") == 21
    assert total(families, "llmrelay_deployment_retries_total") == 4
    assert total(families, "litellm_deployment_successful_fallbacks_total", requested_model="flaky",
                 fallback_model="m") == 1
    assert total(families, "litellm_deployment_failed_fallbacks_total", requested_model="flaky",
                 fallback_model="m") == 1
    assert total(families, "llmrelay_in_flight_requests") == 0
    assert total(families, "llmrelay_in_flight_streams") == 0
    assert total(families, "litellm_deployment_success_responses_total") == 21


def test_no_metrics_endpoint_without_prometheus(tmp_path):
    with FakeOpenAIServer() as up:
        path = tmp_path / "config.yaml"
        path.write_text(f"model_list:\n  - model_name: m\n    litellm_params: {{model: openai/x, api_base: {up.url}/v1}}\n")
        with Gateway(str(path)) as gw:
            assert httpx.get(gw.url + "/metrics").status_code == 404


# ---------------------------------------------------------------------- batches, in one process
class _Ctx:
    def __init__(self, model: str, stream: bool = False, status: int = 200) -> None:
        self.model, self.stream, self.status = model, stream, status
        self.start, self.upstream = time.perf_counter(), 0.0
        self.result = self.exc = self.error = None


class _Record:
    def __init__(self) -> None:
        self.state: dict = {}
        self.router = None


def _slo(i: int, stream: bool) -> dict:
    start = 1000.0 + i
    return {"status": "success", "model": "gpt-4o-mini", "model_group": "m", "custom_llm_provider": "openai",
            "model_id": "d1", "api_base": "http://u/v1", "stream": stream, "response_cost": 0.001 * (i + 1),
            "prompt_tokens": 10 + i, "completion_tokens": 5 + i, "startTime": start, "endTime": start + 0.01 * (i + 1),
            "completionStartTime": start + 0.002 * (i + 1) if stream else None,
            "hidden_params": {"litellm_model_name": "openai/gpt-4o-mini"}, "metadata": {"user_api_key_alias": "k"}}


def _logger():
    from prometheus_client import CollectorRegistry

    from llmrelay.integrations.prometheus import PrometheusLogger

    return PrometheusLogger(registry=CollectorRegistry())


def _samples(logger, skip=("llmrelay_in_flight",)) -> dict:
    out = {}
    for family in logger.registry.collect():
        for s in family.samples:
            if s.name.endswith("_created") or s.name.startswith(skip):
                continue
            if "overhead" in s.name and not s.name.endswith("_count"):
                continue  # measured from the clock at each request's end (its count is compared)
            out[(s.name, tuple(sorted(s.labels.items())))] = round(s.value, 9)
    return out


def _requests(logger, n: int) -> None:
    for i in range(n):
        ctx, record = _Ctx("m", stream=bool(i % 2)), _Record()
        logger.request_start(ctx, record, {})
        logger.request_end(ctx, record, {"standard_logging_object": _slo(i, bool(i % 2))})


def test_one_process_applies_gateway_requests_in_batches_at_the_scrape():
    logger = _logger()
    assert logger.batched
    ctx, record = _Ctx("m", stream=True), _Record()
    logger.request_start(ctx, record, {})
    _requests(logger, 7)
    # nothing applied yet: the values wait for the scrape
    assert not logger.registry.get_sample_value("litellm_proxy_total_requests_metric_total", _proxy_labels("200"))
    logger.metrics_body()  # what /metrics calls: the waiting values first
    assert logger.registry.get_sample_value("litellm_proxy_total_requests_metric_total", _proxy_labels("200")) == 7
    assert logger.registry.get_sample_value("llmrelay_in_flight_requests", {"requested_model": "m"}) == 1
    assert logger.registry.get_sample_value("llmrelay_in_flight_streams", {"requested_model": "m"}) == 1


def _proxy_labels(status: str) -> dict:
    return {"end_user": "", "hashed_api_key": "", "api_key_alias": "k", "requested_model": "m", "team": "",
            "team_alias": "", "user": "", "status_code": status}


def test_batched_values_equal_the_values_applied_one_by_one():
    batched, at_once = _logger(), _logger()
    at_once.batched = False
    _requests(batched, 9)
    _requests(at_once, 9)
    batched.flush()
    got, want = _samples(batched), _samples(at_once)
    assert got == want
    assert want[("litellm_llm_api_time_to_first_token_metric_count",
                 (("api_key_alias", "k"), ("hashed_api_key", ""), ("model", "openai/gpt-4o-mini"), ("team", ""),
                  ("team_alias", "")))] == 4


def test_a_batch_counts_only_positive_costs_and_rows_with_output_tokens():
    """A batch's spend is the sum of its positive costs (a negative or NaN one is left out, as
    one by one), its latency per output token only that of the rows with output tokens."""
    batched, at_once = _logger(), _logger()
    at_once.batched = False
    odd = [(0.0, 5), (-1.0, 0), (float("nan"), 3), (0.002, 0), (0.001, 7)]
    for logger in (batched, at_once):
        for i, (cost, completion) in enumerate(odd):
            ctx, record = _Ctx("m"), _Record()
            slo = _slo(i, False)
            slo.update(response_cost=cost, completion_tokens=completion)
            logger.request_start(ctx, record, {})
            logger.request_end(ctx, record, {"standard_logging_object": slo})
    batched.flush()
    got, want = _samples(batched), _samples(at_once)
    assert got == want
    spend = [v for (name, _), v in got.items() if name == "litellm_spend_metric_total"]
    per_token = [v for (name, _), v in got.items() if name == "litellm_deployment_latency_per_output_token_count"]
    assert spend == [pytest.approx(0.003)] and per_token == [3]


def test_a_histograms_batch_observe_equals_its_own_observe_of_each_value():
    """_observer: several values at once (sorted, bucketed by bisection) land in the buckets and
    sum prometheus_client's own ``observe`` gives them one by one; bounds exactly hit included."""
    import itertools
    import random

    from prometheus_client import CollectorRegistry, Histogram

    from llmrelay.integrations.prometheus import _BUCKETS, _observer

    rng = random.Random(7)
    batches = [[0.01], [0.0, 0.005, 0.005, 0.01, 300.0, 301.0, 1e9, -1.0],
               [rng.choice([rng.uniform(0, 0.1), rng.uniform(0, 400), rng.choice(_BUCKETS[:-1])]) for _ in range(300)]]
    for values, ordered in itertools.product(batches, (False, True)):
        registry = CollectorRegistry()
        mine, theirs = (Histogram(name, "h", buckets=_BUCKETS, registry=registry) for name in ("mine", "theirs"))
        _observer(mine)(sorted(values), True) if ordered else _observer(mine)(values)
        for value in values:
            theirs.observe(value)
        got = {s.name[4:] + str(s.labels): s.value for m in registry.collect() for s in m.samples
               if s.name.startswith("mine") and not s.name.endswith("_created")}
        want = {s.name[6:] + str(s.labels): s.value for m in registry.collect() for s in m.samples
                if s.name.startswith("theirs") and not s.name.endswith("_created")}
        assert len(want) == len(_BUCKETS) + 2 and got.keys() == want.keys()
        assert all(got[k] == pytest.approx(want[k]) for k in want), (got, want)


def test_a_full_batch_is_applied_without_a_scrape():
    from llmrelay.integrations import prometheus

    logger = _logger()
    _requests(logger, prometheus.BATCH)
    assert logger.registry.get_sample_value("litellm_proxy_total_requests_metric_total",
                                            _proxy_labels("200")) == prometheus.BATCH
    assert not logger._waiting and logger._rows == 0


def test_one_process_reads_the_requests_in_flight_at_the_scrape(tmp_path):
    """In one process the in-flight gauges are read from the gateway's own table of requests in
    flight when /metrics is scraped (not changed twice per request): a stream being answered is
    there, and gone once it ended; the series stays, at 0."""
    from servers.openai_server import slow_stream_reply

    with FakeOpenAIServer() as up, FakeOpenAIServer() as down:
        path = tmp_path / "config.yaml"
        path.write_text(two_groups_config(up.url, down.url, "prometheus"))
        with Gateway(str(path)) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0, timeout=20)
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
            families = scrape(gw.url)
            assert total(families, "llmrelay_in_flight_requests", requested_model="m") == 0
            assert [s for s in families["llmrelay_in_flight_requests"] if s.labels.get("requested_model") == "m"]
            up.enqueue(slow_stream_reply(0.3))
            stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "b"}],
                                                    stream=True)
            next(iter(stream))
            families = scrape(gw.url)
            assert total(families, "llmrelay_in_flight_requests", requested_model="m") == 1
            assert total(families, "llmrelay_in_flight_streams", requested_model="m") == 1
            list(stream)
            deadline = time.monotonic() + DEADLINE
            while total(scrape(gw.url), "llmrelay_in_flight_requests", requested_model="m") and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            families = scrape(gw.url)
            assert total(families, "llmrelay_in_flight_requests", requested_model="m") == 0
            assert total(families, "llmrelay_in_flight_streams", requested_model="m") == 0
            assert total(families, "litellm_proxy_total_requests_metric_total") == 2
            client.close()
