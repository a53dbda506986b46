"""LiteLLM's CustomLogger contract as its tests use it (tests/local_testing/test_custom_logger.py,
test_completion_cost.py's CustomLoggingHandler): which hooks run, and the ``kwargs`` keys they
read — against fake upstreams, with the real transport."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

import llmrelay as litellm
from llmrelay.integrations.custom_logger import CustomLogger
from llmrelay.integrations.dispatch import wait_pending
from servers.embedding_servers import KEY, FakeEmbeddingServer
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer
from timing import DEADLINE


class Handler(CustomLogger):
    def __init__(self) -> None:
        self.success = self.failure = self.async_success = self.async_failure = False
        self.kwargs: dict | None = None
        self.response = None
        self.sent: dict = {}
        self.response_cost = None

    def log_pre_api_call(self, model, messages, kwargs):
        self.sent = kwargs["additional_args"].get("complete_input_dict", {})

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.success, self.kwargs, self.response = True, kwargs, response_obj
        self.response_cost = kwargs["response_cost"]

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.failure, self.kwargs = True, kwargs
        self.response_cost = kwargs["response_cost"]

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.async_success, self.kwargs, self.response = True, kwargs, response_obj
        self.response_cost = kwargs["response_cost"]

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.async_failure, self.kwargs = True, kwargs
        self.response_cost = kwargs["response_cost"]


@pytest.fixture
def keyed():
    with FakeOpenAIServer(api_key="sk-good") as server:
        yield server


def chat_kw(server, **kw) -> dict:
    return {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hello from litellm test"}],
            "api_base": server.url + "/v1", "api_key": "sk-good", **kw}


async def test_async_success_then_failure_with_a_bad_key(keyed):
    handler = Handler()
    litellm.callbacks = [handler]
    await litellm.acompletion(**chat_kw(keyed), user="John")
    await wait_pending()
    assert handler.async_success and handler.kwargs["model"] == "gpt-3.5-turbo"
    assert handler.kwargs["user"] == "John" == handler.sent["user"]
    assert handler.response_cost > 0
    failing = Handler()
    litellm.callbacks = [failing]
    with pytest.raises(litellm.AuthenticationError):
        await litellm.acompletion(**chat_kw(keyed, api_key="my-bad-key"))
    await wait_pending()
    assert failing.async_failure and failing.kwargs["model"] == "gpt-3.5-turbo"
    assert len(str(failing.kwargs["exception"])) > 10
    assert failing.response_cost == 0  # LiteLLM: 0, not None


@pytest.mark.parametrize("sync_mode", [True, False])
async def test_failure_cost_is_zero_and_custom_pricing(sync_mode):
    handler = Handler()
    litellm.callbacks = [handler]
    call = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hey!"}]}
    with pytest.raises(Exception):
        if sync_mode:
            litellm.completion(**call, mock_response=Exception("this should trigger an error"))
        else:
            await litellm.acompletion(**call, mock_response=Exception("this should trigger an error"))
    await wait_pending()
    assert handler.response_cost is not None and handler.response_cost == 0
    handler.response_cost = None
    if sync_mode:
        litellm.completion(**call, mock_response="What do you want?", input_cost_per_token=0.0, output_cost_per_token=0.0)
    else:
        await litellm.acompletion(**call, mock_response="What do you want?", input_cost_per_token=0.0,
                                  output_cost_per_token=0.0)
    await wait_pending()
    assert handler.response_cost == 0


async def test_stream_success_has_the_assembled_response(keyed):
    handler = Handler()
    litellm.callbacks = [handler]
    text = ""
    async for chunk in await litellm.acompletion(**chat_kw(keyed), stream=True):
        text += chunk["choices"][0]["delta"]["content"] or ""
    await wait_pending()
    assert handler.kwargs["stream"] is True
    assert handler.response["choices"][0]["message"]["content"] == text == DEFAULT_TEXT
    assert handler.kwargs["complete_streaming_response"]["choices"][0]["message"]["content"] == text


async def test_embedding_success_and_failure():
    handler = Handler()
    litellm.callbacks = [handler]
    with FakeEmbeddingServer() as server:
        kw = {"model": "text-embedding-ada-002", "api_base": server.url + "/v1"}
        await litellm.aembedding(input=["hello world"], api_key=KEY, user="John", **kw)
        await wait_pending()
        assert handler.async_success and handler.kwargs["model"] == "text-embedding-ada-002"
        assert handler.response["usage"]["prompt_tokens"] == 2 and handler.kwargs["user"] == "John"
        assert handler.sent["user"] == "John" and handler.sent["input"] == ["hello world"]
        with pytest.raises(litellm.AuthenticationError):
            await litellm.aembedding(input=["hello world"], api_key="my-bad-key", **kw)
        await wait_pending()
        assert handler.async_failure and len(str(handler.kwargs["exception"])) > 10


async def test_cached_response_costs_zero(upstream):
    """test_cost_tracking_with_caching: the first answer costs > 0, the cache hit 0."""
    litellm.cache = litellm.Cache()
    handler = Handler()
    litellm.callbacks = [handler]
    call = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": f"poem about {uuid.uuid4()}"}],
            "api_base": upstream.url + "/v1", "api_key": "sk-x", "max_tokens": 40, "temperature": 0.2,
            "caching": True}
    await litellm.acompletion(**call)
    await wait_pending()
    assert handler.response_cost > 0
    await litellm.acompletion(**call)
    await wait_pending()
    assert handler.response_cost == 0 and handler.kwargs["cache_hit"] is True


def test_sync_success_function_and_logger(keyed):
    seen = []
    litellm.success_callback = [lambda kwargs, response, start, end: seen.append(kwargs["response_cost"])]
    handler = Handler()
    litellm.callbacks = [handler]
    litellm.completion(**chat_kw(keyed))
    deadline = time.monotonic() + DEADLINE
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handler.success and seen and seen[0] == handler.response_cost > 0
    asyncio.run(wait_pending())
