"""Response objects, stream_chunk_builder, mock_response, exceptions, settings."""

from __future__ import annotations

import asyncio
import pickle

import pytest

import llmrelay
from llmrelay.types import ModelResponse, ModelResponseStream


def test_model_response_shapes():
    r = ModelResponse(id="x", model="m", choices=[{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                                   "finish_reason": "stop"}], usage={"prompt_tokens": 1, "completion_tokens": 2})
    assert r.object == "chat.completion" and r.choices[0].message.content == "hi"
    assert r["choices"][0]["message"]["content"] == "hi" and r.get("nope") is None
    assert r.usage.total_tokens == 3
    d = r.model_dump()
    assert d["choices"][0]["message"] == {"content": "hi", "role": "assistant", "refusal": None, "annotations": None,
                                          "audio": None, "function_call": None, "tool_calls": None}
    assert r.model_dump(exclude_unset=True)["choices"][0]["message"] == {"content": "hi", "role": "assistant"}
    assert ModelResponse(**d) == r
    assert pickle.loads(pickle.dumps(r)) == r
    assert "_hp" not in r.model_dump_json() and "hidden" not in r.model_dump_json()
    with pytest.raises(KeyError):
        r["missing"]


def test_stream_true_builds_a_chunk():
    c = ModelResponse(id="c", choices=[{"index": 0, "delta": {"content": "x"}}], stream=True)
    assert isinstance(c, ModelResponseStream) and isinstance(c, ModelResponse)
    assert c.object == "chat.completion.chunk"
    assert c.choices[0].delta.content == "x" and c.choices[0].delta.role is None
    assert c.choices[0].finish_reason is None
    assert '"delta":{"content":"x"}' in c.model_dump_json(exclude_unset=True)
    assert '"delta":{"audio":null,"content":"x","function_call":null' in c.model_dump_json()


def test_openai_sdk_parses_our_chunks():
    from openai.types.chat import ChatCompletionChunk

    c = ModelResponse(id="c", created=1, model="m", choices=[{"index": 0, "delta": {"content": "x"}}], stream=True)
    parsed = ChatCompletionChunk.model_validate_json(c.model_dump_json())
    assert parsed.choices[0].delta.content == "x"


def test_builder_empty_and_dicts_and_linear():
    assert llmrelay.stream_chunk_builder([]) is None
    chunks = [{"id": "a", "model": "m", "choices": [{"index": 0, "delta": {"content": str(i % 10)}}]} for i in range(10_000)]
    chunks.append({"id": "a", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 10_000, "total_tokens": 10_001}})
    built = llmrelay.stream_chunk_builder(chunks)
    assert len(built.choices[0].message.content) == 10_000
    assert built.choices[0].finish_reason == "length"
    assert built.usage.completion_tokens == 10_000


def test_builder_generates_missing_tool_call_id_and_legacy_function_call():
    chunks = [
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{"}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}}]},
        {"choices": [{"index": 1, "delta": {"function_call": {"name": "g", "arguments": "[1"}}}]},
        {"choices": [{"index": 1, "delta": {"function_call": {"arguments": "]"}}, "finish_reason": "function_call"}]},
    ]
    built = llmrelay.stream_chunk_builder(chunks, messages=[{"role": "user", "content": "hi"}])
    call = built.choices[0].message.tool_calls[0]
    assert call.id.startswith("call_") and call.function.arguments == "{}"
    assert built.choices[0].finish_reason == "tool_calls"
    assert built.choices[1].message.function_call.arguments == "[1]"
    assert built.usage.prompt_tokens > 0 and built.usage.completion_tokens > 0


def test_mock_response_string_stream_and_not():
    messages = [{"role": "user", "content": "hi"}]
    r = llmrelay.completion(model="gpt-4o", messages=messages, mock_response="Hello there friend")
    assert r.choices[0].message.content == "Hello there friend" and r.usage.completion_tokens > 0
    chunks = list(llmrelay.completion(model="gpt-4o", messages=messages, mock_response="Hello there friend", stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello there friend"
    assert len(chunks) > 3 and chunks[-1].choices[0].finish_reason == "stop"

    async def main():
        s = await llmrelay.acompletion(model="gpt-4o", messages=messages, mock_response="a b", stream=True)
        return [c async for c in s]

    assert len(asyncio.run(main())) >= 3


@pytest.mark.parametrize("mock", ["litellm.RateLimitError", "llmrelay.RateLimitError", "RateLimitError",
                                  llmrelay.RateLimitError("limited", llm_provider="openai")])
def test_mock_response_exceptions(mock):
    with pytest.raises(llmrelay.RateLimitError):
        llmrelay.completion(model="gpt-4o", messages=[{"role": "user", "content": "x"}], mock_response=mock)


def test_exceptions_carry_fields_and_pickle():
    e = llmrelay.RateLimitError("slow down", llm_provider="openai", model="m", headers={"Retry-After": "3"})
    assert e.status_code == 429 and e.retry_after == 3 and e.message == "slow down"
    e2 = pickle.loads(pickle.dumps(e))
    assert isinstance(e2, llmrelay.RateLimitError) and type(e2).__name__ == "RateLimitError"
    assert e2.retry_after == 3 and e2.model == "m"
    assert issubclass(llmrelay.ContextWindowExceededError, llmrelay.BadRequestError)
    assert issubclass(llmrelay.InternalServerError, llmrelay.APIError)
    assert llmrelay.InternalServerError("x").status_code == 500


def test_set_verbose_logs_to_stderr_not_stdout(capsys):
    import logging

    llmrelay.set_verbose = True
    try:
        logging.getLogger("llmrelay").debug("hello-debug")
    finally:
        llmrelay.set_verbose = False
    out = capsys.readouterr()
    assert "hello-debug" in out.err and out.out == ""


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, llmrelay; heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('aiohttp', 'urllib3', 'tiktoken', 'uvicorn', 'yaml', 'llama_cpp', 'openai', 'httpx')]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_usage_details_read_like_the_openai_sdk():
    usage = llmrelay.Usage(prompt_tokens=10, completion_tokens=5,
                           prompt_tokens_details={"cached_tokens": 4},
                           completion_tokens_details={"reasoning_tokens": 2})
    assert usage.prompt_tokens_details.cached_tokens == 4
    assert usage.completion_tokens_details.reasoning_tokens == 2
    assert usage.model_dump()["prompt_tokens_details"] == {"cached_tokens": 4, "audio_tokens": None, "image_tokens": None,
                                                           "cache_write_tokens": None, "text_tokens": None}
    assert usage.model_dump(exclude_unset=True)["prompt_tokens_details"] == {"cached_tokens": 4}


def test_model_dump_schema_keys_first_with_class_defaults_then_extras():
    """model_dump(): every schema key in schema order (absent ones as the class default or
    None), then the extra fields in the order they were set; nested objects dumped too."""
    from llmrelay.types import Message, Usage

    response = ModelResponse(id="r", model="m", usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
                             choices=[{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": "hi"}}],
                             zz_extra={"inner": [Message(content="x")]}, aa_extra=1)
    dump = response.model_dump()
    assert list(dump)[:len(ModelResponse._schema)] == list(ModelResponse._schema)
    assert list(dump)[len(ModelResponse._schema):] == ["zz_extra", "aa_extra"]
    message = dump["choices"][0]["message"]
    assert list(message) == list(Message._schema) and message["content"] == "hi" and message["tool_calls"] is None
    assert dump["zz_extra"]["inner"][0]["content"] == "x" and dump["usage"]["total_tokens"] == 3
    assert type(dump["choices"][0]) is dict and type(dump["usage"]) is dict


def test_model_dump_reads_a_schema_property_of_a_subclass():
    """A subclass whose schema key is a property is dumped through it (no cached defaults)."""
    from llmrelay.types import Usage

    class Counted(Usage):
        @property
        def total_tokens(self):  # noqa: D401 - computed
            return (self.__dict__.get("prompt_tokens") or 0) + (self.__dict__.get("completion_tokens") or 0)

    dump = Counted(prompt_tokens=2, completion_tokens=5).model_dump()
    assert dump["total_tokens"] == 7 and list(dump)[:3] == list(Usage._schema)[:3]
