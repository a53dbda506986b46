"""Prometheus at /metrics: LiteLLM's metric names, scraped from the real gateway under
``--workers 2`` and parsed with prometheus_client's own parser."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer, error_reply

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
def test_metrics_add_up_across_two_workers(tmp_path):
    with FakeOpenAIServer() as up, FakeOpenAIServer() as down:
        path = tmp_path / "config.yaml"
        path.write_text(two_groups_config(up.url, down.url, "prometheus"))
        with Gateway(str(path), ["--workers", "2"]) as gw:
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
            client.close()
            deadline = time.monotonic() + 10
            while True:  # the success events are counted off the request path: wait for them
                families = scrape(gw.url)
                if total(families, "litellm_requests_metric_total") >= 22 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            # every scrape answers for both workers: two scrapes agree
            again = scrape(gw.url)
    assert total(families, "litellm_proxy_total_requests_metric_total") == 22
    assert total(again, "litellm_proxy_total_requests_metric_total") == 22
    assert total(families, "litellm_proxy_total_requests_metric_total", requested_model="m", status_code="200") == 20
    assert total(families, "litellm_proxy_failed_requests_metric_total", exception_class="InternalServerError") == 1
    assert total(families, "litellm_requests_metric_total") == 22
    assert total(families, "litellm_input_tokens_metric_total") > 0
    assert total(families, "litellm_output_tokens_metric_total") > 0
    assert total(families, "litellm_total_tokens_metric_total") == (
        total(families, "litellm_input_tokens_metric_total") + total(families, "litellm_output_tokens_metric_total"))
    assert total(families, "litellm_llm_api_time_to_first_token_metric_count") == 10  # the streams
    assert total(families, "litellm_request_total_latency_metric_count") == 22
    assert total(families, "litellm_overhead_latency_metric_count") == 22
    assert total(families, "litellm_deployment_failure_responses_total") == 4  # 2 attempts on m, 2 on flaky
    assert total(families, "llmrelay_deployment_retries_total") == 2
    assert total(families, "litellm_deployment_successful_fallbacks_total", requested_model="flaky",
                 fallback_model="m") == 1
    assert total(families, "llmrelay_in_flight_requests") == 0
    assert total(families, "litellm_deployment_success_responses_total") == 21


def test_no_metrics_endpoint_without_prometheus(tmp_path):
    with FakeOpenAIServer() as up:
        path = tmp_path / "config.yaml"
        path.write_text(f"model_list:\n  - model_name: m\n    litellm_params: {{model: openai/x, api_base: {up.url}/v1}}\n")
        with Gateway(str(path)) as gw:
            assert httpx.get(gw.url + "/metrics").status_code == 404
