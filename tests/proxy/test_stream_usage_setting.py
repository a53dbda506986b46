"""LiteLLM's ``general_settings.always_include_stream_usage`` (and ``LITELLM_ENFORCE_STREAMED_USAGE``):
every streamed chat or text completion ends with a usage chunk, asked of the upstream for the client."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from llmrelay.proxy.config import ConfigError, parse_config

from proxy.conftest import MASTER_KEY, UPSTREAM_KEY, gateway_config
from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer

MESSAGES = [{"role": "user", "content": "Hi"}]


def _config(upstream_url: str, setting: str = "") -> str:
    """The gateway tests' config (its general_settings come last) plus ``setting`` there."""
    return gateway_config(upstream_url) + setting + "\n"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


def _start(upstream: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory, setting: str,
           env: dict[str, str] | None = None) -> Gateway:
    path = tmp_path_factory.mktemp("usage") / "config.yaml"
    path.write_text(_config(upstream.url, setting))
    return Gateway(str(path), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY, **(env or {})})


def _client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=10)


def _assert_usage_last(chunks: list) -> None:
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize("how", ["config", "env"])
def test_streams_end_with_usage_unasked(upstream, tmp_path_factory, how):
    setting, env = ("  always_include_stream_usage: true", None) if how == "config" else \
        ("", {"LITELLM_ENFORCE_STREAMED_USAGE": "true"})
    with _start(upstream, tmp_path_factory, setting, env) as gw, _client(gw) as client:
        _assert_usage_last(list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)))
        assert upstream.last_json["stream_options"] == {"include_usage": True}
        # the client's own stream_options are kept, include_usage added
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                     stream_options={"include_usage": False}))
        _assert_usage_last(chunks)
        text = list(client.completions.create(model="gpt-4o-mini", prompt="Hi", stream=True))
        assert text[-1].usage is not None and text[-1].usage.completion_tokens > 0
        # non-streamed requests are not touched
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert "stream_options" not in upstream.last_json


def test_off_by_default(upstream, tmp_path_factory):
    with _start(upstream, tmp_path_factory, "") as gw, _client(gw) as client:
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
        assert all(c.usage is None for c in chunks)
        assert "stream_options" not in upstream.last_json


def test_must_be_a_boolean(monkeypatch):
    monkeypatch.setenv("TEST_UPSTREAM_KEY", "sk-x")
    with pytest.raises(ConfigError, match="always_include_stream_usage must be true or false"):
        parse_config(_config("http://127.0.0.1:9", "  always_include_stream_usage: sometimes"))
    assert parse_config(_config("http://127.0.0.1:9", "  always_include_stream_usage: true")) \
        .general_settings["always_include_stream_usage"] is True
