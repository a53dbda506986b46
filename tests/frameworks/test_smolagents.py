"""smolagents' LiteLLMModel on llmrelay: generate, generate_stream, a tool-calling agent."""

from __future__ import annotations

import json

import pytest

from frameworks.conftest import MODEL

smolagents = pytest.importorskip("smolagents", reason="smolagents is not installed (scripts/setup-env.sh installs it)")

from smolagents import LiteLLMModel, ToolCallingAgent, tool  # noqa: E402
from smolagents.models import ChatMessage  # noqa: E402


def _model(srv) -> LiteLLMModel:
    return LiteLLMModel(model_id=MODEL, api_base=srv.url + "/v1", api_key="sk-test")


def _messages(text: str = "Say hello") -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": text}]}]


def test_generate(server_factory):
    srv = server_factory("Hello there, agent")
    out = _model(srv).generate(_messages())
    assert isinstance(out, ChatMessage)
    assert out.content == "Hello there, agent"
    assert out.token_usage.output_tokens > 0
    assert srv.chat_requests[0]["messages"][0]["content"][0]["text"] == "Say hello"


def test_generate_stream(server_factory):
    srv = server_factory("one two three four five")
    deltas = list(_model(srv).generate_stream(_messages()))
    assert len(deltas) > 2
    assert "".join(d.content or "" for d in deltas) == "one two three four five"
    assert srv.chat_requests[0]["stream"] is True


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first integer.
        b: The second integer.
    """
    return a + b


def _decide(body):
    """The fake model: call ``add``, then answer from the tool's observation."""
    # smolagents sends the tool's observation back as a message after the assistant turn
    if any(m["role"] == "assistant" for m in body["messages"]):
        observed = json.dumps(body["messages"][-1]["content"])
        return [("final_answer", {"answer": "the sum is 42" if "42" in observed else "unknown"})]
    return [("add", {"a": 2, "b": 40})]


def test_tool_calling_agent(server_factory):
    srv = server_factory(decide=_decide)
    agent = ToolCallingAgent(tools=[add], model=_model(srv), max_steps=4)
    answer = agent.run("What is 2 + 40?")
    assert "42" in str(answer)
    first = srv.chat_requests[0]
    assert {t["function"]["name"] for t in first["tools"]} >= {"add", "final_answer"}
    assert len(srv.chat_requests) == 2
    assert json.dumps(srv.chat_requests[1]["messages"]).count("42") >= 1


def test_tool_calling_agent_streaming(server_factory):
    """The same agent with stream_outputs: tool calls assembled from streamed deltas."""
    srv = server_factory(decide=_decide)
    agent = ToolCallingAgent(tools=[add], model=_model(srv), max_steps=4, stream_outputs=True)
    answer = agent.run("What is 2 + 40?")
    assert "42" in str(answer)
    assert len(srv.chat_requests) == 2 and all(r["stream"] for r in srv.chat_requests)
