"""The OpenAI Agents SDK's LitellmModel on llmrelay: a run with a function tool."""

from __future__ import annotations

import json

import pytest

from frameworks.conftest import MODEL

pytest.importorskip("agents", reason="openai-agents is not installed (the test extra installs it)")
litellm_model = pytest.importorskip("agents.extensions.models.litellm_model", reason="openai-agents has no LitellmModel")

from agents import Agent, Runner, function_tool  # noqa: E402


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_agent_run_with_tool(server_factory):
    def decide(body):
        return [] if any(m["role"] == "tool" for m in body["messages"]) else [("add", {"a": 2, "b": 40})]

    srv = server_factory(lambda body: "The sum is " + str(body["messages"][-1]["content"]), decide=decide)
    model = litellm_model.LitellmModel(model=MODEL, base_url=srv.url + "/v1", api_key="sk-test")
    agent = Agent(name="adder", instructions="Add numbers.", model=model, tools=[add])
    result = Runner.run_sync(agent, "What is 2 + 40?")
    assert result.final_output == "The sum is 42"
    first, second = srv.chat_requests
    assert first["tools"][0]["function"]["name"] == "add"
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "42"
    assert json.loads(second["messages"][-2]["tool_calls"][0]["function"]["arguments"]) == {"a": 2, "b": 40}
