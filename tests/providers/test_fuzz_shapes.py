"""Every provider's translator, fed valid JSON of unexpected shapes, fails only with typed errors.

Real traffic (recorded from Mistral, proxies, older API versions) carries shapes a provider's
documentation does not promise: lists where strings were, objects where lists were, nulls,
numbers. For each provider, valid event sequences and response bodies from the fakes are mutated
at random (deterministically seeded) and run through the real pipeline pieces — the provider's
stream decoder, the stream state machine, ``stream_chunk_builder``, and ``parse_response`` — and
the only exceptions allowed out are llmrelay's (``LLMRelayError``), never a ``TypeError`` /
``AttributeError`` / ``KeyError``, and never the catch-all "Unexpected error while streaming".
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any, Callable

import orjson
import pytest

import llmrelay
from llmrelay.exceptions import LLMRelayError
from llmrelay.main import _response, prepare_call
from llmrelay.providers.registry import get_provider
from llmrelay.streaming import CustomStreamWrapper
from llmrelay.transport.sync import SyncStreamSource
from servers._answers import Answer
from servers.anthropic_server import event_frame as anthropic_frame
from servers.anthropic_server import message_dict, message_events
from servers.bedrock_server import event_frame as bedrock_frame
from servers.cohere_server import cohere_events
from servers.gemini_server import response_dict, stream_events
from servers.ollama_server import _final, ollama_stream_lines
from servers.openai_server import ChunkFactory, completion_dict, text_stream_events, tool_call_stream_events

ROUNDS = 150
ANSWER = Answer(text="Hello there, how are you?", thinking="Greet back.", tool_calls=[("get_weather", {"city": "Paris"})])

#: Valid JSON values of shapes a translator may not expect.
ODD_VALUES: list[Any] = [
    None, 0, -1, 7, 1.5, True, False, "", "x", "{", [], {}, [None], [1, "a"], [[]], [{}],
    {"type": "text", "text": "t"}, [{"type": "text", "text": "t"}], [{"type": "thinking", "thinking": [{"type": "text"}]}],
    {"type": 5}, {"text": None}, {"a": {"b": []}}, "9" * 30,
]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


def _mutate(value: Any, rng: random.Random) -> Any:
    """One random change: replace a node, drop a key, or wrap a node in a list."""
    value = copy.deepcopy(value)
    paths = [p for p in _paths(value) if p]
    if not paths:
        return rng.choice(ODD_VALUES)
    path = rng.choice(paths)
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    action = rng.random()
    if action < 0.7:
        parent[last] = copy.deepcopy(rng.choice(ODD_VALUES))
    elif action < 0.85 and isinstance(parent, dict):
        del parent[last]
    else:
        parent[last] = [parent[last]]
    return value


class _Body:
    """A response whose body is ``data`` in one read (what the transport reads from)."""

    def __init__(self, data: bytes) -> None:
        self._parts = [data, b""]

    def read1(self) -> bytes:
        return self._parts.pop(0) if self._parts else b""

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


def _sse(events: list) -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def _sse_no_done(events: list) -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


def _named_sse(events: list) -> bytes:
    out = []
    for e in events:
        name = e.get("type") if isinstance(e, dict) and isinstance(e.get("type"), str) else "message"
        out.append(f"event: {name}\ndata: ".encode() + orjson.dumps(e) + b"\n\n")
    return b"".join(out)


def _anthropic_named(events: list) -> bytes:
    return b"".join(anthropic_frame(e) if isinstance(e, dict) and isinstance(e.get("type"), str)
                    else b"event: x\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


def _ndjson(events: list) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def _bedrock(events: list) -> bytes:
    return b"".join(bedrock_frame(name, payload if isinstance(payload, dict) else {"v": payload}, pad=False)
                    for name, payload in events)


def _openai_events() -> list:
    f = ChunkFactory(model="gpt-4o-mini", include_usage=True)
    text = [e for e in text_stream_events("Hello there friend", factory=f) if isinstance(e, dict)]
    tools = [e for e in tool_call_stream_events([("get_weather", {"city": "Paris"})], factory=f) if isinstance(e, dict)]
    return text[:-1] + tools


def _bedrock_events() -> list:
    events = [{"role": "assistant"}]
    names = ["messageStart"]
    text = json.dumps({"city": "Paris"})
    for name, payload in [
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Hmm"}}}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig"}}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Hello"}}),
        ("contentBlockStop", {"contentBlockIndex": 1}),
        ("contentBlockStart", {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t1", "name": "get_weather"}}}),
        ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": text}}}),
        ("contentBlockStop", {"contentBlockIndex": 2}),
        ("messageStop", {"stopReason": "tool_use"}),
        ("metadata", {"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}}),
    ]:
        names.append(name)
        events.append(payload)
    return [[n, e] for n, e in zip(names, events)]


def _bedrock_body() -> dict:
    return {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "Hmm", "signature": "s"}}}, {"text": "Hello"},
        {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}}


PROVIDERS: dict[str, tuple[str, Callable[[], list], Callable[[list], bytes], Callable[[], dict]]] = {
    "openai": ("openai/gpt-4o-mini", _openai_events, _sse,
               lambda: completion_dict("Hi", tool_calls=[{"id": "c1", "type": "function",
                                                          "function": {"name": "f", "arguments": "{}"}}],
                                       reasoning_content="r")),
    "anthropic": ("anthropic/claude-sonnet-4-5",
                  lambda: message_events([{"type": "thinking", "thinking": "Hmm", "signature": "s"},
                                          {"type": "text", "text": "Hello there"},
                                          {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
                                          {"type": "tool_use", "id": "t2", "name": "get_time", "input": {}}],
                                         model="claude-sonnet-4-5", stop_reason="tool_use"),
                  _anthropic_named,
                  lambda: message_dict([{"type": "thinking", "thinking": "Hmm", "signature": "s"},
                                        {"type": "text", "text": "Hello"},
                                        {"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                                       model="claude-sonnet-4-5")),
    "gemini": ("gemini/gemini-2.5-flash",
               lambda: stream_events([{"text": "Thinking it over", "thought": True}, {"text": "Hello there friend"},
                                      {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]),
               _sse_no_done,
               lambda: response_dict([{"text": "Hmm", "thought": True}, {"text": "Hello"},
                                      {"functionCall": {"name": "f", "args": {"a": 1}}}])),
    "cohere": ("cohere/command-a-03-2025", lambda: cohere_events(ANSWER, citations=True), _named_sse,
               lambda: {"id": "x", "finish_reason": "TOOL_CALL", "message": {
                   "role": "assistant", "content": [{"type": "thinking", "thinking": "Hmm"}, {"type": "text", "text": "Hi"}],
                   "tool_plan": "plan", "tool_calls": [{"id": "c1", "type": "function",
                                                        "function": {"name": "f", "arguments": "{}"}}]},
                   "usage": {"tokens": {"input_tokens": 3, "output_tokens": 4}}}),
    "ollama": ("ollama/llama3.2", lambda: [json.loads(line) for line in ollama_stream_lines(ANSWER, ids=True)], _ndjson,
               lambda: _final("llama3.2", "stop", 3, 4, {"role": "assistant", "content": "Hi", "thinking": "Hmm",
                                                         "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]})),
    "bedrock": ("bedrock/anthropic.claude-3-5-haiku-20241022-v1:0", _bedrock_events,
                lambda events: _bedrock([(e[0], e[1]) if isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
                                         else ("contentBlockDelta", e) for e in events]),
                _bedrock_body),
}

MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]


def _call(model: str, stream: bool):
    call, _ = prepare_call(model, MESSAGES, stream, {"api_key": "k", "api_base": "http://127.0.0.1:9",
                                                     "aws_access_key_id": "a", "aws_secret_access_key": "b",
                                                     "aws_region_name": "us-east-1"})
    return call, get_provider(call.provider)


def _check_typed(exc: BaseException, what: str) -> None:
    assert isinstance(exc, LLMRelayError), f"{what}: untyped {type(exc).__name__}: {exc}"
    assert "Unexpected error while streaming" not in str(exc), f"{what}: {exc}"


def _run_stream(model: str, data: bytes) -> list:
    call, provider = _call(model, True)
    source = SyncStreamSource(_Body(data), provider.stream_decoder(call), call.provider, call.user_model)
    stream = CustomStreamWrapper(source, model=call.user_model, custom_llm_provider=call.provider,
                                 stream_options={"include_usage": True}, messages=MESSAGES)
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        chunk.model_dump()
    llmrelay.stream_chunk_builder(chunks, messages=MESSAGES)
    return chunks


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_valid_samples_translate(name):
    """The unmutated samples are fine (so the fuzzing below starts from real shapes)."""
    model, events, encode, body = PROVIDERS[name]
    chunks = _run_stream(model, encode(events()))
    assert any(c.choices and (c.choices[0].delta.content or c.choices[0].delta.tool_calls) for c in chunks)
    call, provider = _call(model, False)
    response = _response(call, provider, "http://x", 200, {}, orjson.dumps(body()))
    assert response.choices[0].message.content or response.choices[0].message.tool_calls


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_stream_fuzz_only_typed_errors(name):
    model, events, encode, _ = PROVIDERS[name]
    base = events()
    rng = random.Random(f"stream-{name}")
    failures = 0
    for round_ in range(ROUNDS):
        mutated = base
        for _ in range(rng.randint(1, 3)):
            mutated = _mutate(mutated, rng)
        try:
            _run_stream(model, encode(mutated))
        except BaseException as exc:  # noqa: BLE001 - the point is to look at what escaped
            failures += 1
            _check_typed(exc, f"{name} round {round_}")
    assert failures < ROUNDS  # mutations are not all fatal: most shapes are tolerated


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_response_fuzz_only_typed_errors(name):
    model, _, _, body = PROVIDERS[name]
    base = body()
    rng = random.Random(f"body-{name}")
    for round_ in range(ROUNDS):
        mutated = base
        for _ in range(rng.randint(1, 3)):
            mutated = _mutate(mutated, rng)
        call, provider = _call(model, False)
        try:
            response = _response(call, provider, "http://x", 200, {}, orjson.dumps(mutated))
            response.model_dump()
            response.model_dump_json()
        except BaseException as exc:  # noqa: BLE001
            _check_typed(exc, f"{name} round {round_}")
