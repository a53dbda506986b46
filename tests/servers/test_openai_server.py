"""Self-tests of the fake OpenAI server, checked with the official ``openai`` SDK and raw bytes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from servers import openai_server as oa
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer

MESSAGES = [{"role": "user", "content": "Say hello"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


def client(srv: FakeOpenAIServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-test", max_retries=0, **kwargs)


def aclient(srv: FakeOpenAIServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key="sk-test", max_retries=0)


def sse_data(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body (comments and blank lines dropped)."""
    text = raw.decode().replace("\r\n", "\n")
    out = []
    for frame in text.split("\n\n"):
        for line in frame.split("\n"):
            if line.startswith("data: "):
                out.append(line[len("data: ") :])
    return out


def raw_stream(srv: FakeOpenAIServer, **body: Any) -> bytes:
    payload = {"model": "gpt-x", "messages": MESSAGES, "stream": True, **body}
    return httpx.post(srv.url + "/v1/chat/completions", json=payload).content


# --------------------------------------------------------------------------- default answers


def test_non_stream_completion(openai_server: FakeOpenAIServer) -> None:
    resp = client(openai_server).chat.completions.create(model="my-model", messages=MESSAGES)
    assert resp.object == "chat.completion"
    assert resp.model == "my-model"
    assert resp.choices[0].message.content == DEFAULT_TEXT
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert openai_server.last_json["messages"] == MESSAGES
    assert openai_server.last_request.headers["authorization"] == "Bearer sk-test"


def test_default_stream(openai_server: FakeOpenAIServer) -> None:
    chunks = list(client(openai_server).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert all(c.object == "chat.completion.chunk" and c.model == "m" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_TEXT
    assert len(chunks) > 4  # several small pieces
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    assert all(c.usage is None for c in chunks)


def test_stream_wire_format(openai_server: FakeOpenAIServer) -> None:
    raw = raw_stream(openai_server)
    assert raw.endswith(b"data: [DONE]\n\n")
    frames = sse_data(raw)
    assert frames[-1] == "[DONE]"
    for frame in frames[:-1]:
        chunk = json.loads(frame)
        assert "usage" not in chunk
        assert set(chunk["choices"][0]) == {"index", "delta", "logprobs", "finish_reason"}


def test_stream_include_usage(openai_server: FakeOpenAIServer) -> None:
    frames = sse_data(raw_stream(openai_server, stream_options={"include_usage": True}))
    chunks = [json.loads(f) for f in frames[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == len(oa.split_text(DEFAULT_TEXT)[0])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"

    sdk_chunks = list(
        client(openai_server).chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert sdk_chunks[-1].choices == [] and sdk_chunks[-1].usage.total_tokens > 0


def test_stream_n_interleaved(openai_server: FakeOpenAIServer) -> None:
    frames = sse_data(raw_stream(openai_server, n=2))
    indices = [json.loads(f)["choices"][0]["index"] for f in frames[:-1]]
    assert indices == [0, 1] * (len(indices) // 2)
    texts = {0: "", 1: ""}
    for f in frames[:-1]:
        choice = json.loads(f)["choices"][0]
        texts[choice["index"]] += choice["delta"].get("content") or ""
    assert texts == {0: DEFAULT_TEXT, 1: DEFAULT_TEXT}


def test_max_tokens_gives_length(openai_server: FakeOpenAIServer) -> None:
    c = client(openai_server)
    resp = c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=2)
    assert resp.choices[0].message.content == "Hello! How"
    assert resp.choices[0].finish_reason == "length"
    chunks = list(c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=2, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "Hello! How"
    assert chunks[-1].choices[0].finish_reason == "length"
    assert c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=100).choices[0].finish_reason == "stop"


def test_text_can_derive_from_request() -> None:
    with FakeOpenAIServer(text=lambda body: "echo: " + body["messages"][-1]["content"]) as srv:
        resp = client(srv).chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "echo: Say hello"


def test_tool_call_stream(openai_server: FakeOpenAIServer) -> None:
    chunks = list(
        client(openai_server).chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, stream=True)
    )
    first = chunks[0].choices[0].delta.tool_calls[0]
    assert (first.index, first.type, first.function.name, first.function.arguments) == (0, "function", "get_weather", "")
    assert first.id.startswith("call_")
    arguments = ""
    for chunk in chunks[1:-1]:
        (call,) = chunk.choices[0].delta.tool_calls
        assert call.index == 0 and call.id is None and call.function.name is None
        arguments += call.function.arguments
    assert json.loads(arguments) == oa.DEFAULT_TOOL_ARGUMENTS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_call_non_stream_and_forced_choice(openai_server: FakeOpenAIServer) -> None:
    c = client(openai_server)
    forced = {"type": "function", "function": {"name": "get_time"}}
    resp = c.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, tool_choice=forced)
    (call,) = resp.choices[0].message.tool_calls
    assert call.function.name == "get_time"
    assert resp.choices[0].finish_reason == "tool_calls"
    assert resp.choices[0].message.content is None
    plain = c.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, tool_choice="none")
    assert plain.choices[0].message.content == DEFAULT_TEXT


def test_parallel_tool_calls_stream() -> None:
    calls = [("get_weather", {"location": "Oslo"}), ("get_time", {"tz": "CET"})]
    with FakeOpenAIServer(tool_calls=calls) as srv:
        chunks = list(client(srv).chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, stream=True))
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    for chunk in chunks[:-1]:
        for call in chunk.choices[0].delta.tool_calls:
            if call.function.name:
                names[call.index] = call.function.name
            args[call.index] = args.get(call.index, "") + call.function.arguments
    assert names == {0: "get_weather", 1: "get_time"}
    assert {i: json.loads(a) for i, a in args.items()} == {0: {"location": "Oslo"}, 1: {"tz": "CET"}}


def test_models_endpoints(openai_server: FakeOpenAIServer) -> None:
    c = client(openai_server)
    assert [m.id for m in c.models.list()] == ["gpt-4o-mini", "gpt-4o"]
    assert c.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("nope")


def test_path_without_v1(openai_server: FakeOpenAIServer) -> None:
    body = {"model": "m", "messages": MESSAGES}
    assert httpx.post(openai_server.url + "/chat/completions", json=body).json()["object"] == "chat.completion"


def test_bad_request_bodies(openai_server: FakeOpenAIServer) -> None:
    url = openai_server.url + "/v1/chat/completions"
    assert httpx.post(url, content=b"{not json").json()["error"]["type"] == "invalid_request_error"
    missing = httpx.post(url, json={"model": "m"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "messages"


def test_api_key_required() -> None:
    with FakeOpenAIServer(api_key="sk-right") as srv:
        with pytest.raises(openai.AuthenticationError):
            client(srv).chat.completions.create(model="m", messages=MESSAGES)
        ok = openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-right", max_retries=0)
        assert ok.chat.completions.create(model="m", messages=MESSAGES).choices


async def test_async_sdk(openai_server: FakeOpenAIServer) -> None:
    async with aclient(openai_server) as c:
        resp = await c.chat.completions.create(model="m", messages=MESSAGES)
        assert resp.choices[0].message.content == DEFAULT_TEXT
        stream = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream])
    assert text == DEFAULT_TEXT


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (409, openai.ConflictError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_error_statuses_map_to_sdk_exceptions(openai_server: FakeOpenAIServer, status: int, exc: type) -> None:
    openai_server.enqueue(oa.error_reply(status, "nope", retry_after=3))
    with pytest.raises(exc) as info:
        client(openai_server).chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == status
    assert info.value.message.endswith("nope") or "nope" in str(info.value)
    assert set(info.value.body) == {"message", "type", "param", "code"}
    assert info.value.response.headers["retry-after"] == "3"


def test_error_codes(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(oa.context_length_exceeded_reply(), oa.content_policy_reply(), oa.rate_limit_reply(2))
    c = client(openai_server)
    with pytest.raises(openai.BadRequestError) as ctx:
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert ctx.value.code == "context_length_exceeded" and "maximum context length" in ctx.value.message
    with pytest.raises(openai.BadRequestError) as policy:
        c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert policy.value.code == "content_policy_violation"
    with pytest.raises(openai.RateLimitError) as limited:
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert limited.value.response.headers["retry-after"] == "2"


def test_in_band_error_raises_api_error(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(oa.in_band_error_stream("overloaded", after_chunks=2))
    got = []
    with pytest.raises(openai.APIError, match="overloaded"):
        for chunk in client(openai_server).chat.completions.create(model="m", messages=MESSAGES, stream=True):
            got.append(chunk)
    assert len(got) == 2


def test_dropped_stream(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(oa.dropped_stream(after_chunks=3))
    got = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        for chunk in client(openai_server).chat.completions.create(model="m", messages=MESSAGES, stream=True):
            got.append(chunk)
    assert len(got) == 3


def test_hanging_stream_times_out(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(oa.hanging_stream(after_chunks=1))
    c = client(openai_server, timeout=httpx.Timeout(5, read=0.2))
    with pytest.raises((httpx.ReadTimeout, openai.APITimeoutError)):
        list(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))


def test_slow_headers_and_slow_stream(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(oa.slow_headers_reply(0.5))
    with pytest.raises(openai.APITimeoutError):
        client(openai_server, timeout=0.2).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    openai_server.enqueue(oa.slow_stream_reply(0.02))
    frames = sse_data(raw_stream(openai_server))
    assert frames[-1] == "[DONE]"


# --------------------------------------------------------------------------- scenario shapes


def chunks_of(reply_bytes: bytes) -> list[Any]:
    return [f if f == "[DONE]" else json.loads(f) for f in sse_data(reply_bytes)]


def fetch(srv: FakeOpenAIServer, reply: Any) -> bytes:
    srv.enqueue(reply)
    return raw_stream(srv)


def test_malformed_chunk(openai_server: FakeOpenAIServer) -> None:
    raw = fetch(openai_server, oa.malformed_chunk_stream(after_chunks=1))
    frames = sse_data(raw)
    with pytest.raises(json.JSONDecodeError):
        json.loads(frames[1])
    assert frames[-1] == "[DONE]"


def test_no_finish_and_no_done(openai_server: FakeOpenAIServer) -> None:
    no_finish = chunks_of(fetch(openai_server, oa.no_finish_stream()))
    assert no_finish[-1] == "[DONE]"
    assert all(c["choices"][0]["finish_reason"] is None for c in no_finish[:-1])
    no_done = chunks_of(fetch(openai_server, oa.no_done_stream()))
    assert no_done[-1] != "[DONE]" and no_done[-1]["choices"][0]["finish_reason"] == "stop"


def test_repeated_chunks(openai_server: FakeOpenAIServer) -> None:
    frames = sse_data(fetch(openai_server, oa.repeated_chunk_stream(5, "Hi")))
    assert frames[1:6] == [frames[1]] * 5
    assert json.loads(frames[1])["choices"][0]["delta"] == {"content": "Hi"}


def test_reasoning_stream_with_sdk(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(oa.reasoning_stream("Think first.", "Done."))
    chunks = list(client(openai_server).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert (reasoning, content) == ("Think first.", "Done.")
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 2


def test_usage_stream(openai_server: FakeOpenAIServer) -> None:
    chunks = chunks_of(fetch(openai_server, oa.usage_stream(prompt_tokens=42)))
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["prompt_tokens"] == 42


@pytest.mark.parametrize("builder", [oa.crlf_stream, oa.ping_stream])
def test_crlf_and_ping_parse_in_sdk(openai_server: FakeOpenAIServer, builder: Any) -> None:
    openai_server.enqueue(builder())
    chunks = list(client(openai_server).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_TEXT


def test_crlf_and_ping_bytes(openai_server: FakeOpenAIServer) -> None:
    assert b"\r\n\r\n" in fetch(openai_server, oa.crlf_stream())
    assert fetch(openai_server, oa.ping_stream()).startswith(b": ping\n\n")


def test_scripted_tool_call_stream(openai_server: FakeOpenAIServer) -> None:
    chunks = chunks_of(fetch(openai_server, oa.tool_call_stream(include_usage=True)))
    assert chunks[0]["choices"][0]["delta"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-2]["choices"] == []
