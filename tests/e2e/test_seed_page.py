"""The seed page (shared/seed/streaming_async.md), snippet by snippet.

Each snippet runs verbatim with ``import llmrelay as litellm`` in front of it; since several
snippets say ``from litellm import …``, the ``litellm`` module name is pointed at llmrelay for
the duration of the test. The only edits are the page's own bug (``chunks = []`` is never
initialised) and that the repeat-guard snippet uses ``time`` without importing it, so ``time``
is imported in front of it too. The snippets call ``gpt-3.5-turbo`` with no api_base: the
test points ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` at a loopback OpenAI server.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

import llmrelay
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer

PREFIX = "import llmrelay as litellm\n"

STREAMING = '''
from litellm import completion
messages = [{"role": "user", "content": "Hey, how's it going?"}]
response = completion(model="gpt-3.5-turbo", messages=messages, stream=True)
for part in response:
    print(part.choices[0].delta.content or "")
'''

HELPER = '''
from litellm import completion
messages = [{"role": "user", "content": "Hey, how's it going?"}]
response = completion(model="gpt-3.5-turbo", messages=messages, stream=True)
chunks = []
for chunk in response: 
    chunks.append(chunk)

print(litellm.stream_chunk_builder(chunks, messages=messages))
'''

ASYNC = '''
from litellm import acompletion
import asyncio

async def test_get_response():
    user_message = "Hello, how are you?"
    messages = [{"content": user_message, "role": "user"}]
    response = await acompletion(model="gpt-3.5-turbo", messages=messages)
    return response

response = asyncio.run(test_get_response())
print(response)
'''

ASYNC_STREAMING = '''
from litellm import acompletion
import asyncio, os, traceback

async def completion_call():
    try:
        print("test acompletion + streaming")
        response = await acompletion(
            model="gpt-3.5-turbo", 
            messages=[{"content": "Hello, how are you?", "role": "user"}], 
            stream=True
        )
        print(f"response: {response}")
        async for chunk in response:
            print(chunk)
    except:
        print(f"error occurred: {traceback.format_exc()}")
        pass

asyncio.run(completion_call())
'''

LIMIT = '''
litellm.REPEATED_STREAMING_CHUNK_LIMIT = 100 # # catch if model starts looping the same chunk while streaming. Uses high default to prevent false positives.
'''

REPEAT_GUARD = '''
import litellm 
import os 

litellm.set_verbose = False
loop_amount = litellm.REPEATED_STREAMING_CHUNK_LIMIT + 1
chunks = [
    litellm.ModelResponse(**{
    "id": "chatcmpl-123",
    "object": "chat.completion.chunk",
    "created": 1694268190,
    "model": "gpt-3.5-turbo-0125",
    "system_fingerprint": "fp_44709d6fcb",
    "choices": [
        {"index": 0, "delta": {"content": "How are you?"}, "finish_reason": "stop"}
    ],
}, stream=True)
] * loop_amount
completion_stream = litellm.ModelResponseListIterator(model_responses=chunks)

response = litellm.CustomStreamWrapper(
    completion_stream=completion_stream,
    model="gpt-3.5-turbo",
    custom_llm_provider="cached_response",
    logging_obj=litellm.Logging(
        model="gpt-3.5-turbo",
        messages=[{"role": "user", "content": "Hey"}],
        stream=True,
        call_type="completion",
        start_time=time.time(),
        litellm_call_id="12345",
        function_id="1245",
    ),
)

for chunk in response:
    continue # expect to raise InternalServerError 
'''


@pytest.fixture
def seed_env(monkeypatch):
    with FakeOpenAIServer() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-seed")
        monkeypatch.setitem(sys.modules, "litellm", llmrelay)
        monkeypatch.setattr(llmrelay, "REPEATED_STREAMING_CHUNK_LIMIT", llmrelay.REPEATED_STREAMING_CHUNK_LIMIT)
        yield srv


def run(snippet: str, prefix: str = PREFIX) -> dict:
    namespace: dict = {"__name__": "__seed__"}
    exec(compile(prefix + textwrap.dedent(snippet), "<seed>", "exec"), namespace)
    return namespace


def test_streaming_snippet(seed_env, capsys):
    run(STREAMING)
    out = capsys.readouterr().out
    assert out.replace("\n", "") == DEFAULT_TEXT
    assert seed_env.last_json["model"] == "gpt-3.5-turbo" and seed_env.last_json["stream"] is True


def test_helper_snippet(seed_env, capsys):
    ns = run(HELPER)
    out = capsys.readouterr().out
    assert DEFAULT_TEXT in out
    built = llmrelay.stream_chunk_builder(ns["chunks"], messages=ns["messages"])
    assert built.choices[0].message.content == DEFAULT_TEXT
    assert built.usage.prompt_tokens > 0


def test_async_snippet(seed_env, capsys):
    ns = run(ASYNC)
    assert ns["response"].choices[0].message.content == DEFAULT_TEXT
    assert DEFAULT_TEXT in capsys.readouterr().out


def test_async_streaming_snippet(seed_env, capsys):
    run(ASYNC_STREAMING)
    out = capsys.readouterr().out
    assert "error occurred" not in out
    assert "test acompletion + streaming" in out and "chat.completion.chunk" in out


def test_limit_snippet(seed_env):
    run(LIMIT)
    assert llmrelay.REPEATED_STREAMING_CHUNK_LIMIT == 100


def test_repeat_guard_snippet(seed_env):
    with pytest.raises(llmrelay.InternalServerError) as info:
        run(REPEAT_GUARD, prefix=PREFIX + "import time\n")
    assert type(info.value) is llmrelay.InternalServerError
    assert info.value.status_code == 500
    assert "How are you?" in info.value.message


def test_repeat_guard_snippet_one_below_limit_passes(seed_env):
    below = REPEAT_GUARD.replace("REPEATED_STREAMING_CHUNK_LIMIT + 1", "REPEATED_STREAMING_CHUNK_LIMIT")
    ns = run(below, prefix=PREFIX + "import time\n")
    assert ns["chunk"].choices[0].finish_reason == "stop"
