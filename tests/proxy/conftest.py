"""Fixtures: a fake OpenAI upstream and the real gateway (a subprocess) in front of it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer

UPSTREAM_KEY = "sk-upstream-SECRET-0123456789abcdef"
MASTER_KEY = "sk-master-test-key-42"


#: Sockets of closed_port(): bound for the whole run, never listening.
_HELD: list[socket.socket] = []


def closed_port() -> int:
    """A loopback port where connections are refused. Its socket stays bound (never listening)
    so that no server started later in the run gets the port and answers in its place."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD.append(s)
    return s.getsockname()[1]


def gateway_config(upstream_url: str, *, master_key: str | None = MASTER_KEY, limit: int = 3) -> str:
    general = f"general_settings:\n  master_key: {master_key}\n  max_request_size_mb: 1\n" if master_key else ""
    return f"""
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
  - model_name: alias
    litellm_params:
      model: openai/gpt-4o
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      id: alias-1
  - model_name: slow
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
      timeout: 0.5
      stream_timeout: 0.5
  - model_name: down
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{closed_port()}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
  - model_name: pair
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
  - model_name: pair
    litellm_params:
      model: openai/gpt-4o
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
  - model_name: flaky
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{closed_port()}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
router_settings:
  disable_cooldowns: true
  num_retries: 0
  fallbacks: [{{"flaky": ["alias"]}}]
litellm_settings:
  REPEATED_STREAMING_CHUNK_LIMIT: {limit}
  num_retries: 0
  success_callback: ["langfuse"]
{general}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh_script(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream")._script.clear()


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    path = tmp_path_factory.mktemp("gw") / "config.yaml"
    path.write_text(gateway_config(upstream.url))
    with Gateway(str(path), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        yield gw
