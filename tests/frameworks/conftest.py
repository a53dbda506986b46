"""Frameworks built on LiteLLM, run on llmrelay through ``install_as_litellm()``.

The real ``litellm`` package must not be installed (``scripts/setup-env.sh`` installs the
frameworks with ``--no-deps``): every ``import litellm`` here resolves to llmrelay. Each test
module skips when its framework is not importable. The upstream is a loopback OpenAI server.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

import llmrelay

llmrelay.install_as_litellm()

from servers.openai_server import FakeOpenAIServer  # noqa: E402

MODEL = "openai/gpt-4o-mini"


def last_tool_results(body: dict[str, Any]) -> list[str]:
    """Contents of the tool messages after the last assistant turn."""
    out: list[str] = []
    for message in reversed(body["messages"]):
        if message.get("role") != "tool":
            break
        content = message.get("content")
        out.append(content if isinstance(content, str) else json.dumps(content))
    return out


class ScriptedServer(FakeOpenAIServer):
    """A fake OpenAI server whose tool calls are chosen per request by ``decide(body)``
    (a list of ``(name, arguments)``; empty for a text answer)."""

    def __init__(self, text: Any = "Hello from the fake server", decide: Callable | None = None, **kw: Any) -> None:
        super().__init__(text, **kw)
        self.decide = decide

    def _tool_calls_for(self, body: dict[str, Any]) -> list[tuple[str, Any]]:
        if self.decide is None or not body.get("tools") or body.get("tool_choice") == "none":
            return super()._tool_calls_for(body)
        return self.decide(body)


@pytest.fixture
def server_factory():
    started: list[FakeOpenAIServer] = []

    def make(*args: Any, **kw: Any) -> ScriptedServer:
        srv = ScriptedServer(*args, **kw)
        srv.__enter__()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.__exit__(None, None, None)
