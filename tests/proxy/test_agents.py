"""Full agent loops through the gateway's ``/v1/responses``: openai-agents (its default model is
the Responses API) and pydantic-ai's ``OpenAIResponsesModel``, over OpenAI and Gemini upstreams."""

from __future__ import annotations

import pytest

from proxy.upstreams import MASTER_KEY, gateway3, upstreams  # noqa: F401 - fixtures

LOOP_MODELS = ["gpt", "gemini"]  # fakes that answer a tool result with text


@pytest.mark.parametrize("model", LOOP_MODELS)
async def test_openai_agents_loop(gateway3, upstreams, model):
    agents = pytest.importorskip("agents")
    from openai import AsyncOpenAI

    agents.set_tracing_disabled(True)
    calls = []

    @agents.function_tool
    def get_weather(location: str, unit: str) -> str:
        """The weather in a city."""
        calls.append((location, unit))
        return "sunny"

    client = AsyncOpenAI(base_url=gateway3.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    agent = agents.Agent(name="weather", instructions="Answer with the tool.", tools=[get_weather],
                         model=agents.OpenAIResponsesModel(model=model, openai_client=client))
    result = await agents.Runner.run(agent, "Weather in Paris?")
    assert calls == [("Paris, France", "celsius")]
    if model == "gpt":
        assert result.final_output == "The tool said: sunny"
    else:
        assert result.final_output
    streamed = agents.Runner.run_streamed(agent, "Weather in Paris?")
    kinds = [event.type async for event in streamed.stream_events()]
    assert "raw_response_event" in kinds and streamed.final_output == result.final_output
    assert len(calls) == 2


@pytest.mark.parametrize("model", LOOP_MODELS)
async def test_pydantic_ai_responses_loop(gateway3, model):
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(base_url=gateway3.url + "/v1", api_key=MASTER_KEY)
    agent = Agent(OpenAIResponsesModel(model, provider=provider), instructions="Use the tool.")
    calls = []

    @agent.tool_plain
    def get_weather(location: str, unit: str) -> str:
        """The weather in a city."""
        calls.append(location)
        return "sunny"

    result = await agent.run("Weather in Paris?")
    assert calls == ["Paris, France"]
    if model == "gpt":
        assert result.output == "The tool said: sunny"
    async with agent.run_stream("Weather in Paris?") as run:
        text = await run.get_output()
    assert text == result.output and len(calls) == 2
