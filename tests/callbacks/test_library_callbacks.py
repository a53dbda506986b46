"""Library callbacks (LiteLLM's interface) against a real loopback OpenAI server.

Every call produces exactly one success or failure event; a stream reports at its end (with
the assembled response and the time of its first chunk), never per chunk.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
from typing import Any

import pytest

import llmrelay
from llmrelay.integrations.dispatch import wait_pending
from servers.openai_server import (
    DEFAULT_TEXT,
    FakeOpenAIServer,
    dropped_stream,
    error_reply,
    slow_stream_reply,
)

from .conftest import Recorder

MESSAGES = [{"role": "user", "content": "Hey, how's it going?"}]
SLO_KEYS = {
    "id", "call_type", "model", "model_group", "custom_llm_provider", "api_base", "prompt_tokens",
    "completion_tokens", "total_tokens", "response_cost", "startTime", "endTime", "completionStartTime",
    "status", "error_str", "metadata", "cache_hit",
}


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def kw(srv: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "api_base": srv.url + "/v1",
            "api_key": "sk-test", "timeout": 10, **extra}


def test_sync_call_reports_once_with_litellm_kwargs(server, recorder: Recorder):
    seen: list[tuple] = []
    llmrelay.success_callback = [lambda kwargs, response, start, end: seen.append((kwargs, response, start, end))]
    response = llmrelay.completion(**kw(server, temperature=0.2, metadata={"team": "a"}))
    assert recorder.names() == ["pre", "success"]
    assert len(seen) == 1
    kwargs, got, start, end = seen[0]
    assert got is response
    assert isinstance(start, datetime.datetime) and isinstance(end, datetime.datetime) and start <= end
    assert kwargs["model"] == "openai/gpt-4o-mini"
    assert kwargs["messages"] == MESSAGES
    assert kwargs["optional_params"] == {"temperature": 0.2}
    assert kwargs["litellm_params"]["metadata"] == {"team": "a"}
    assert kwargs["litellm_call_id"]
    assert "response_cost" in kwargs
    slo = kwargs["standard_logging_object"]
    assert SLO_KEYS <= set(slo)
    assert slo["status"] == "success"
    assert slo["custom_llm_provider"] == "openai"
    assert slo["api_base"].startswith(server.url)
    assert slo["total_tokens"] == response.usage.total_tokens > 0
    assert slo["prompt_tokens"] == response.usage.prompt_tokens
    assert slo["metadata"]["team"] == "a"  # the call's metadata, and LiteLLM's standard keys:
    assert slo["metadata"]["user_api_key_alias"] is None and "spend_logs_metadata" in slo["metadata"]
    assert slo["error_str"] is None


def test_sync_stream_reports_once_at_the_end(server, recorder: Recorder):
    stream = llmrelay.completion(**kw(server, stream=True))
    pieces = []
    for chunk in stream:
        assert recorder.outcomes() == []  # nothing while the stream runs
        pieces.append(chunk.choices[0].delta.content or "")
    assert recorder.outcomes() == ["success"]
    _, kwargs, response, _ = recorder.events[-1]
    assert "".join(pieces) == DEFAULT_TEXT
    assert kwargs["complete_streaming_response"] is response
    assert response.choices[0].message.content == DEFAULT_TEXT
    assert response.choices[0].finish_reason == "stop"
    slo = kwargs["standard_logging_object"]
    assert slo["startTime"] <= slo["completionStartTime"] <= slo["endTime"]
    assert slo["completion_tokens"] > 0 and slo["stream"] is True


def test_stream_and_non_stream_report_the_same_usage(server, recorder: Recorder):
    llmrelay.completion(**kw(server))
    list(llmrelay.completion(**kw(server, stream=True, stream_options={"include_usage": True})))
    a, b = (e[1]["standard_logging_object"] for e in recorder.events if e[0] == "success")
    assert (a["prompt_tokens"], a["completion_tokens"]) == (b["prompt_tokens"], b["completion_tokens"])
    assert a["response_cost"] == b["response_cost"] > 0


async def test_async_stream_runs_async_hooks_on_the_loop_and_sync_functions_off_it(server, recorder: Recorder):
    threads: list[int] = []
    llmrelay.success_callback = [lambda kwargs, response, start, end: threads.append(threading.get_ident())]
    stream = await llmrelay.acompletion(**kw(server, stream=True))
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    await wait_pending()
    assert text == DEFAULT_TEXT
    assert recorder.outcomes() == ["async_success"]
    loop_thread = threading.get_ident()
    assert recorder.events[-1][3] == loop_thread
    assert len(threads) == 1 and threads[0] != loop_thread
    assert recorder.events[-1][1]["litellm_params"]["acompletion"] is True


async def test_slow_async_callback_does_not_hold_up_the_caller(server):
    gate = asyncio.Event()
    done: list[bool] = []

    class Slow(llmrelay.CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            await gate.wait()
            done.append(True)

    llmrelay.callbacks = [Slow()]
    response = await asyncio.wait_for(llmrelay.acompletion(**kw(server)), 5)
    assert response.choices[0].message.content == DEFAULT_TEXT and done == []
    gate.set()
    await wait_pending()
    assert done == [True]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_http_error_reports_one_failure(server, recorder: Recorder, mode: str):
    server.enqueue(error_reply(500, "boom"))
    with pytest.raises(llmrelay.InternalServerError):
        if mode == "sync":
            llmrelay.completion(**kw(server))
        else:
            await llmrelay.acompletion(**kw(server))
    await wait_pending()
    assert recorder.outcomes() == ["failure" if mode == "sync" else "async_failure"]
    kwargs = recorder.events[-1][1]
    assert isinstance(kwargs["exception"], llmrelay.InternalServerError)
    slo = kwargs["standard_logging_object"]
    assert slo["status"] == "failure" and "boom" in slo["error_str"]
    assert slo["error_information"]["error_class"] == "InternalServerError"


def test_dropped_stream_reports_one_failure_with_what_was_generated(server, recorder: Recorder):
    server.enqueue(dropped_stream(after_chunks=3))
    stream = llmrelay.completion(**kw(server, stream=True))
    got = []
    with pytest.raises(llmrelay.APIConnectionError):
        for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    stream.close()
    assert recorder.outcomes() == ["failure"]
    kwargs, partial = recorder.events[-1][1], recorder.events[-1][2]
    assert partial.choices[0].message.content == "".join(got) != ""
    assert kwargs["complete_streaming_response"] is partial


@pytest.mark.parametrize("how", ["close", "with", "gc"])
def test_abandoned_stream_reports_one_failure(server, recorder: Recorder, how: str):
    server.enqueue(slow_stream_reply(0.01))
    stream = llmrelay.completion(**kw(server, stream=True))
    if how == "with":
        with stream:
            next(stream)
            next(stream)
    else:
        next(stream)
        next(stream)
        if how == "close":
            stream.close()
            stream.close()
        else:
            del stream
            import gc

            gc.collect()
    assert recorder.outcomes() == ["failure"]
    kwargs = recorder.events[-1][1]
    assert "abandoned" in kwargs["standard_logging_object"]["error_str"]
    assert kwargs["complete_streaming_response"].choices[0].message.content


async def test_abandoned_async_stream_reports_one_failure(server, recorder: Recorder):
    server.enqueue(slow_stream_reply(0.01))
    stream = await llmrelay.acompletion(**kw(server, stream=True))
    await stream.__anext__()
    await stream.aclose()
    await wait_pending()
    assert recorder.outcomes() == ["async_failure"]


def test_callback_exception_is_logged_not_raised(server, caplog):
    def broken(kwargs, response, start, end):
        raise RuntimeError("callback bug")

    class Broken(llmrelay.CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            raise ValueError("logger bug")

    llmrelay.success_callback = [broken]
    llmrelay.callbacks = [Broken()]
    with caplog.at_level(logging.WARNING, logger="llmrelay.callbacks"):
        response = llmrelay.completion(**kw(server))
        assert list(llmrelay.completion(**kw(server, stream=True)))
    assert response.choices[0].message.content == DEFAULT_TEXT
    text = caplog.text
    assert "callback bug" in text and "logger bug" in text


def test_a_builtin_logger_that_cannot_start_never_breaks_a_call(server, recorder: Recorder, caplog, monkeypatch):
    """``success_callback = ["langfuse"]`` without Langfuse's keys: warned about, the call and the
    other callbacks go on (LiteLLM's own Langfuse logger logs its failure too)."""
    monkeypatch.delenv("LANGFUSE_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("LANGFUSE_SECRET_KEY", raising=False)
    llmrelay.success_callback = ["langfuse", "langfuse_otel"]
    with caplog.at_level(logging.WARNING, logger="llmrelay.callbacks"):
        response = llmrelay.completion(**kw(server))
        assert list(llmrelay.completion(**kw(server, stream=True)))
    assert response.choices[0].message.content == DEFAULT_TEXT
    assert recorder.outcomes() == ["success", "success"]
    assert "'langfuse' cannot start" in caplog.text and "LANGFUSE_PUBLIC_KEY" in caplog.text


def test_no_callbacks_means_no_observer(server):
    stream = llmrelay.completion(**kw(server, stream=True))
    assert stream._observer is None
    list(stream)


def test_failure_callback_list_and_mock_response(recorder: Recorder):
    failures: list[Any] = []
    llmrelay.failure_callback = [lambda kwargs, response, start, end: failures.append(kwargs["exception"])]
    llmrelay.completion(model="openai/gpt-4o-mini", messages=MESSAGES, mock_response="hi")
    with pytest.raises(llmrelay.RateLimitError):
        llmrelay.completion(model="openai/gpt-4o-mini", messages=MESSAGES, mock_response=llmrelay.RateLimitError)
    assert recorder.outcomes() == ["success", "failure"]
    assert len(failures) == 1 and isinstance(failures[0], llmrelay.RateLimitError)


# ------------------------------------------------------------------ the router: one event per call
def _router(*servers: FakeOpenAIServer, **options: Any) -> Any:
    model_list = [
        {"model_name": "a", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": servers[0].url + "/v1", "api_key": "k"}},
        {"model_name": "b", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": servers[1].url + "/v1", "api_key": "k"}},
    ]
    return llmrelay.Router(model_list=model_list, **options)


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
async def test_retries_and_fallbacks_report_once(recorder: Recorder, stream: bool):
    with FakeOpenAIServer(text="from a") as a, FakeOpenAIServer(text="from b") as b:
        a.enqueue(error_reply(500), error_reply(500))
        router = _router(a, b, num_retries=1, retry_after=0, fallbacks=[{"a": ["b"]}], disable_cooldowns=True)
        response = await router.acompletion(model="a", messages=MESSAGES, stream=stream)
        if stream:
            text = "".join([c.choices[0].delta.content or "" async for c in response])
        else:
            text = response.choices[0].message.content
        await wait_pending()
    assert text == "from b"
    assert len(a.chat_requests) == 2 and len(b.chat_requests) == 1
    assert recorder.outcomes() == ["async_success"]
    slo = recorder.events[-1][1]["standard_logging_object"]
    assert slo["model_group"] == "b" and slo["model_id"]


def test_router_final_failure_reports_once(recorder: Recorder):
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        a.enqueue(error_reply(503), error_reply(503))
        b.enqueue(error_reply(503), error_reply(503))
        router = _router(a, b, num_retries=1, retry_after=0, fallbacks=[{"a": ["b"]}], disable_cooldowns=True)
        with pytest.raises(llmrelay.ServiceUnavailableError):
            router.completion(model="a", messages=MESSAGES)
    assert recorder.outcomes() == ["failure"]
