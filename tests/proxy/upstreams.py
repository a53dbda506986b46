"""A gateway with upstreams of three wire formats (OpenAI, Anthropic, Gemini) behind it.

Used by the ingress tests: every API the gateway speaks is driven with its official client
against each of these upstreams. The OpenAI fake here answers a tool result with text (so agent
loops end); otherwise it is :class:`servers.openai_server.FakeOpenAIServer`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from proxy.conftest import closed_port
from proxy.harness import Gateway
from servers.anthropic_server import FakeAnthropicServer
from servers.gemini_server import FakeGeminiServer
from servers.openai_server import FakeOpenAIServer

MASTER_KEY = "sk-master-ingress-test-42"
OPENAI_KEY = "sk-upstream-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-upstream-0123456789"
GEMINI_KEY = "gemini-upstream-key"

#: What the OpenAI fake answers when asked for a JSON schema.
STRUCTURED = '{"city": "Paris", "temperature": 21}'

#: Public model name → the wire format behind it.
MODELS = {"gpt": "openai", "claude": "anthropic", "gemini": "gemini"}


class LoopOpenAIServer(FakeOpenAIServer):
    """Calls a tool when tools are offered, but answers text once the last message is a tool result."""

    def _tool_calls_for(self, body: dict[str, Any]) -> list[tuple[str, Any]]:
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "tool":
            return []
        return super()._tool_calls_for(body)

    def _text_for(self, body: dict[str, Any]) -> str:
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "tool":
            return f"The tool said: {messages[-1].get('content')}"
        if (body.get("response_format") or {}).get("type") == "json_schema":
            return STRUCTURED
        return super()._text_for(body)


def config_text(openai_url: str, anthropic_url: str, gemini_url: str) -> str:
    return f"""
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {openai_url}/v1
      api_key: os.environ/T_OPENAI_KEY
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {anthropic_url}
      api_key: os.environ/T_ANTHROPIC_KEY
  - model_name: gemini
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_base: {gemini_url}
      api_key: os.environ/T_GEMINI_KEY
  - model_name: flaky
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{closed_port()}/v1
      api_key: os.environ/T_OPENAI_KEY
router_settings:
  num_retries: 0
  fallbacks: [{{"flaky": ["gpt"]}}]
litellm_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"""


class Upstreams:
    def __init__(self, openai: LoopOpenAIServer, anthropic: FakeAnthropicServer, gemini: FakeGeminiServer) -> None:
        self.openai = openai
        self.anthropic = anthropic
        self.gemini = gemini

    def of(self, model: str) -> Any:
        return getattr(self, MODELS[model])


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with LoopOpenAIServer(api_key=OPENAI_KEY) as o, FakeAnthropicServer(api_key=ANTHROPIC_KEY) as a, \
            FakeGeminiServer(api_key=GEMINI_KEY) as g:
        yield Upstreams(o, a, g)


@pytest.fixture(scope="module")
def gateway3(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    path = tmp_path_factory.mktemp("gw3") / "config.yaml"
    path.write_text(config_text(upstreams.openai.url, upstreams.anthropic.url, upstreams.gemini.url))
    env = {"T_OPENAI_KEY": OPENAI_KEY, "T_ANTHROPIC_KEY": ANTHROPIC_KEY, "T_GEMINI_KEY": GEMINI_KEY}
    with Gateway(str(path), env=env) as gw:
        yield gw
