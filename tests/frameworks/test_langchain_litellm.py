"""langchain-litellm's ChatLiteLLM on llmrelay: invoke, stream, ainvoke, astream, bind_tools
(invoke and stream, arguments intact) and with_structured_output."""

from __future__ import annotations

import asyncio
import json

import pytest

from frameworks.conftest import MODEL

pytest.importorskip("langchain_litellm", reason="langchain-litellm is not installed (scripts/setup-env.sh installs it)")

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage  # noqa: E402
from langchain_litellm import ChatLiteLLM  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog"
WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}


class GetWeather(BaseModel):
    """Get the current weather in a city."""

    city: str = Field(description="The city")
    unit: str = Field(description="celsius or fahrenheit")


def _chat(srv, **kw) -> ChatLiteLLM:
    return ChatLiteLLM(model=MODEL, api_base=srv.url + "/v1", api_key="sk-test", **kw)


def test_invoke(server_factory):
    srv = server_factory(TEXT)
    out = _chat(srv).invoke([HumanMessage("Tell me something")])
    assert isinstance(out, AIMessage) and out.content == TEXT
    assert srv.chat_requests[0]["messages"] == [{"role": "user", "content": "Tell me something"}]


def test_stream(server_factory):
    srv = server_factory(TEXT)
    chunks = list(_chat(srv).stream("Tell me something"))
    assert len(chunks) > 3 and all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(c.content for c in chunks) == TEXT
    assert srv.chat_requests[0]["stream"] is True


def test_ainvoke_and_astream(server_factory):
    srv = server_factory(TEXT)
    chat = _chat(srv)

    async def main():
        whole = await chat.ainvoke("Tell me something")
        parts = [c.content async for c in chat.astream("Tell me something")]
        return whole, parts

    whole, parts = asyncio.run(main())
    assert whole.content == TEXT
    assert len(parts) > 3 and "".join(parts) == TEXT


def test_bind_tools_invoke(server_factory):
    srv = server_factory(tool_arguments=WEATHER_ARGS)
    out = _chat(srv).bind_tools([GetWeather]).invoke("Weather in Paris?")
    assert [(c["name"], c["args"]) for c in out.tool_calls] == [("GetWeather", WEATHER_ARGS)]
    assert srv.chat_requests[0]["tools"][0]["function"]["name"] == "GetWeather"


def _dumped_deltas_carry_none_keys() -> bool:
    """langchain-litellm model_dump()s each chunk and reads ``tc["function"]["name"]`` and
    ``tc["id"]`` on every tool-call delta, so those keys must be present (as None)."""
    from llmrelay.types import ModelResponseStream

    chunk = ModelResponseStream(
        id="c", choices=[{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]
    )
    call = chunk.model_dump()["choices"][0]["delta"]["tool_calls"][0]
    call = call if isinstance(call, dict) else call.model_dump()
    return "id" in call and "name" in (call.get("function") or {})


@pytest.mark.xfail(
    not _dumped_deltas_carry_none_keys(),
    reason="needs OpenAI-schema keys (as None) in dumped tool-call deltas (the parity work)",
    strict=True,
)
def test_bind_tools_stream_keeps_arguments(server_factory):
    srv = server_factory(tool_arguments=WEATHER_ARGS)
    chunks = list(_chat(srv).bind_tools([GetWeather]).stream("Weather in Paris?"))
    assert len(chunks) > 2
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("GetWeather", WEATHER_ARGS)]


def _json_when_asked(body: dict) -> str:
    return json.dumps(WEATHER_ARGS) if body.get("response_format") else TEXT


@pytest.mark.parametrize("method", [None, "function_calling"])
def test_with_structured_output(server_factory, method):
    srv = server_factory(_json_when_asked, tool_arguments=WEATHER_ARGS)
    kw = {} if method is None else {"method": method}
    out = _chat(srv).with_structured_output(GetWeather, **kw).invoke("Weather in Paris?")
    assert isinstance(out, GetWeather) and out.model_dump() == WEATHER_ARGS
    sent = srv.chat_requests[0]
    if method == "function_calling":
        assert sent["tools"][0]["function"]["name"] == "GetWeather"
    else:
        assert sent["response_format"]["type"] == "json_schema"
        assert set(sent["response_format"]["json_schema"]["schema"]["properties"]) == {"city", "unit"}


def test_tool_round_trip(server_factory):
    """An AIMessage's tool call and the ToolMessage answering it go back upstream intact."""
    from langchain_core.messages import ToolMessage

    def decide(body):
        return [] if any(m["role"] == "tool" for m in body["messages"]) else [("GetWeather", WEATHER_ARGS)]

    srv = server_factory("It is sunny in Paris.", decide=decide)
    chat = _chat(srv).bind_tools([GetWeather])
    history = [HumanMessage("Weather in Paris?")]
    first = chat.invoke(history)
    call = first.tool_calls[0]
    history += [first, ToolMessage(content="sunny, 21C", tool_call_id=call["id"])]
    second = chat.invoke(history)
    assert second.content == "It is sunny in Paris." and not second.tool_calls
    sent = srv.chat_requests[1]["messages"]
    assistant = next(m for m in sent if m["role"] == "assistant")
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == WEATHER_ARGS
    assert sent[-1] == {"role": "tool", "content": "sunny, 21C", "tool_call_id": call["id"]}
