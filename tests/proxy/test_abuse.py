"""Hostile clients and broken upstreams, through the real gateway (a subprocess).

Each test here closes one hole of issue 15 and fails on a gateway that has it: client-chosen
upstream parameters, hostile Retry-After values, upstream topology in errors, missing default
timeouts, HTTP/1.0 streams, slow or oversized requests, clients that never read, shutdown.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from proxy.conftest import MASTER_KEY, UPSTREAM_KEY
from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer

MESSAGES = [{"role": "user", "content": "Hi"}]
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def abuse_config(upstream_url: str) -> str:
    return f"""
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      allowed_client_params: [top_k, guided_json]
  - model_name: plain
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
router_settings:
  num_retries: 0
litellm_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    path = tmp_path_factory.mktemp("abuse") / "config.yaml"
    path.write_text(abuse_config(upstream.url))
    with Gateway(str(path), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        yield gw


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=10) as h:
        yield h


def chat(http: httpx.Client, **body) -> httpx.Response:
    body.setdefault("model", "gpt")
    body.setdefault("messages", MESSAGES)
    return http.post("/v1/chat/completions", json=body)


# ============================================================ 1. client-steered upstream params
@pytest.mark.parametrize(
    "body, param",
    [
        ({"extra_body": {"model": "some-expensive-model"}}, "extra_body.model"),
        ({"extra_body": {"stream": True}}, "extra_body.stream"),
        ({"extra_body": {"stream_options": {"include_usage": True}}}, "extra_body.stream_options"),
        ({"extra_body": {"messages": []}}, "extra_body.messages"),
        ({"extra_body": {"api_base": "http://evil"}}, "extra_body.api_base"),
        ({"extra_body": {"api_key": "sk-mine"}}, "extra_body.api_key"),
        ({"extra_body": {"smuggled": 1}}, "extra_body.smuggled"),
        ({"extra_body": {"extra_body": {"model": "x"}}}, "extra_body.extra_body"),
        ({"extra_body": "model=x"}, "extra_body"),
        ({"smuggled": 1}, "smuggled"),
        ({"fallbacks": ["plain"]}, "fallbacks"),
        ({"mock_response": "free"}, "mock_response"),
        ({"stream_timeout": 1000}, "stream_timeout"),
        ({"top_k": 3}, None),  # allowed for 'gpt' only
    ],
)
def test_client_cannot_steer_the_upstream(http, upstream, body, param):
    model = "plain" if param is None else "gpt"
    param = param or "top_k"
    before = len(upstream.requests)
    r = chat(http, model=model, **body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param
    assert repr(param) in error["message"]
    assert error["type"] == "invalid_request_error"
    assert len(upstream.requests) == before  # nothing went upstream


def test_extra_body_model_via_openai_sdk_is_not_a_way_around(gateway, upstream):
    # The SDK merges extra_body into the top level: the model is then checked against model_list.
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        before = len(upstream.requests)
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model="gpt", messages=MESSAGES, extra_body={"model": "some-expensive-model"})
        assert len(upstream.requests) == before


def test_allowed_params_reach_the_upstream(http, upstream):
    r = chat(http, temperature=0.5, metadata={"a": "b"}, top_k=4,
             extra_body={"guided_json": {"type": "object"}, "seed": 7})
    assert r.status_code == 200, r.text
    sent = upstream.last_json
    assert sent["model"] == "gpt-4o-mini"
    assert sent["temperature"] == 0.5 and sent["seed"] == 7 and sent["top_k"] == 4
    assert sent["guided_json"] == {"type": "object"}
    assert "extra_body" not in sent
    assert upstream.last_request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_bad_allow_list_stops_the_start(tmp_path):
    from proxy.harness import run_cli

    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: sk-123456}\n"
        "    model_info: {allowed_client_params: [top_k, api_base]}\n"
    )
    status, err = run_cli(["--config", str(path), "--port", "0"])
    assert status == 2
    assert "allowed_client_params" in err and "api_base" in err
    assert "Traceback" not in err
