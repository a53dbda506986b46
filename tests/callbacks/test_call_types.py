"""Callbacks for every kind of library call, and LiteLLM's conventions around them.

Embeddings (``llmrelay.embedding``/``aembedding``, ``Router.embedding``/``aembedding``), legacy
completions (``text_completion``) and routed calls with retries and fallbacks each give exactly
one success or one failure event, with LiteLLM's ``call_type`` and a cost from the table. Real
loopback servers (tests/servers), nothing of llmrelay's transport mocked.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
from typing import Any

import pytest

import llmrelay
from llmrelay.integrations import offloop
from llmrelay.integrations.dispatch import wait_pending
from servers.embedding_servers import KEY, FakeEmbeddingServer
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer, error_reply

from .conftest import Recorder

MESSAGES = [{"role": "user", "content": "Hey, how's it going?"}]
EMBED_MODEL = "openai/text-embedding-3-small"
SLO_KEYS = {
    "id", "call_type", "model", "model_group", "custom_llm_provider", "api_base", "prompt_tokens",
    "completion_tokens", "total_tokens", "response_cost", "startTime", "endTime", "completionStartTime",
    "status", "error_str", "metadata", "cache_hit",
}
PRICE_PER_TOKEN = 2e-08  # text-embedding-3-small, OpenAI's published $0.02 / 1M tokens


@pytest.fixture
def embed_server():
    with FakeEmbeddingServer() as srv:
        yield srv


def _ekw(srv: FakeEmbeddingServer, **extra: Any) -> dict[str, Any]:
    return {"model": EMBED_MODEL, "input": ["one two three", "four five"], "api_base": srv.url + "/v1",
            "api_key": KEY, "timeout": 10, **extra}


def _outcome(recorder: Recorder) -> tuple[str, dict, Any]:
    outcomes = [e for e in recorder.events if e[0] != "pre"]
    assert len(outcomes) == 1, [e[0] for e in outcomes]
    name, kwargs, response, _ = outcomes[0]
    return name, kwargs, response


# ------------------------------------------------------------------ embeddings
def test_embedding_reports_once_with_cost(embed_server, recorder: Recorder):
    response = llmrelay.embedding(**_ekw(embed_server, metadata={"team": "a"}))
    name, kwargs, got = _outcome(recorder)
    assert name == "success" and got is response
    assert kwargs["call_type"] == "embedding"
    assert kwargs["input"] == ["one two three", "four five"]
    assert kwargs["litellm_params"]["metadata"] == {"team": "a"}
    slo = kwargs["standard_logging_object"]
    assert SLO_KEYS <= set(slo)
    assert slo["call_type"] == "embedding" and slo["status"] == "success"
    assert slo["prompt_tokens"] == response.usage.prompt_tokens == 5
    assert slo["custom_llm_provider"] == "openai"
    assert slo["api_base"].startswith(embed_server.url)
    assert kwargs["response_cost"] == pytest.approx(5 * PRICE_PER_TOKEN)
    assert response._hidden_params["response_cost"] == kwargs["response_cost"] == slo["response_cost"]
    # the library's bookkeeping never reaches the upstream
    assert set(embed_server.bodies("/v1/embeddings")[0]) == {"model", "input", "encoding_format"}


async def test_aembedding_runs_async_hooks(embed_server, recorder: Recorder):
    await llmrelay.aembedding(**_ekw(embed_server))
    await wait_pending()
    name, kwargs, _ = _outcome(recorder)
    assert name == "async_success"
    assert kwargs["call_type"] == "aembedding"
    assert kwargs["response_cost"] == pytest.approx(5 * PRICE_PER_TOKEN)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_embedding_failure_reports_once(embed_server, recorder: Recorder, mode: str):
    with pytest.raises(llmrelay.AuthenticationError):
        if mode == "sync":
            llmrelay.embedding(**_ekw(embed_server, api_key="wrong"))
        else:
            await llmrelay.aembedding(**_ekw(embed_server, api_key="wrong"))
    await wait_pending()
    name, kwargs, _ = _outcome(recorder)
    assert name == ("failure" if mode == "sync" else "async_failure")
    assert isinstance(kwargs["exception"], llmrelay.AuthenticationError)
    assert kwargs["standard_logging_object"]["status"] == "failure"
    assert kwargs["standard_logging_object"]["error_information"]["error_class"] == "AuthenticationError"


def test_bad_embedding_input_reports_once(recorder: Recorder):
    with pytest.raises(llmrelay.BadRequestError):
        llmrelay.embedding(model=EMBED_MODEL, input=[], api_key=KEY)
    assert _outcome(recorder)[0] == "failure"


def _embed_router(good: FakeEmbeddingServer, bad_base: str, **options: Any) -> Any:
    model_list = [
        {"model_name": "flaky", "litellm_params": {"model": EMBED_MODEL, "api_base": bad_base, "api_key": KEY}},
        {"model_name": "good", "litellm_params": {"model": EMBED_MODEL, "api_base": good.url + "/v1", "api_key": KEY}},
    ]
    return llmrelay.Router(model_list=model_list, **options)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_router_embedding_with_retries_and_fallbacks_reports_once(embed_server, recorder: Recorder, mode: str):
    with FakeEmbeddingServer() as flaky:
        flaky.enqueue(error_reply(500), error_reply(500))
        router = _embed_router(embed_server, flaky.url + "/v1", num_retries=1, retry_after=0,
                               fallbacks=[{"flaky": ["good"]}], disable_cooldowns=True)
        if mode == "sync":
            response = router.embedding(model="flaky", input="hello there")
        else:
            response = await router.aembedding(model="flaky", input="hello there")
        await wait_pending()
        assert len(flaky.requests) == 2  # the first try and its retry
    assert len(embed_server.requests) == 1
    name, kwargs, got = _outcome(recorder)
    assert name == ("success" if mode == "sync" else "async_success")
    assert got is response
    assert kwargs["call_type"] == ("embedding" if mode == "sync" else "aembedding")
    slo = kwargs["standard_logging_object"]
    assert slo["model_group"] == "good" and slo["model_id"]
    assert slo["response_cost"] == pytest.approx(2 * PRICE_PER_TOKEN) == response._hidden_params["response_cost"]


async def test_router_aembedding_final_failure_reports_once(recorder: Recorder):
    with FakeEmbeddingServer() as a, FakeEmbeddingServer() as b:
        a.enqueue(error_reply(503), error_reply(503))
        b.enqueue(error_reply(503), error_reply(503))
        router = _embed_router(b, a.url + "/v1", num_retries=1, retry_after=0, fallbacks=[{"flaky": ["good"]}],
                               disable_cooldowns=True)
        with pytest.raises(llmrelay.ServiceUnavailableError):
            await router.aembedding(model="flaky", input="hello")
    await wait_pending()
    name, kwargs, _ = _outcome(recorder)
    assert name == "async_failure" and kwargs["call_type"] == "aembedding"


def test_router_unknown_group_reports_one_failure(recorder: Recorder):
    router = llmrelay.Router(model_list=[{"model_name": "a", "litellm_params": {"model": "openai/gpt-4o-mini"}}])
    with pytest.raises(llmrelay.NotFoundError):
        router.completion(model="nope", messages=MESSAGES)
    with pytest.raises(llmrelay.NotFoundError):
        router.embedding(model="nope", input="x")
    assert recorder.outcomes() == ["failure", "failure"]


# ------------------------------------------------------------------ legacy completions
@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def test_text_completion_of_two_prompts_reports_once(server, recorder: Recorder):
    response = llmrelay.text_completion(model="openai/gpt-4o-mini", prompt=["first", "second"],
                                        api_base=server.url + "/v1", api_key="k")
    assert len(server.chat_requests) == 2
    name, kwargs, got = _outcome(recorder)
    assert name == "success" and got is response
    assert type(got).__name__ == "TextCompletionResponse"
    assert kwargs["call_type"] == "text_completion"
    assert kwargs["prompt"] == ["first", "second"]
    assert kwargs["standard_logging_object"]["total_tokens"] == response.usage.total_tokens > 0
    # priced as the sum of its two chat calls (the usage is their sum too)
    usage = response.usage
    expected = sum(llmrelay.cost_per_token(model="gpt-4o-mini", prompt_tokens=usage.prompt_tokens,
                                           completion_tokens=usage.completion_tokens))
    assert kwargs["response_cost"] == pytest.approx(expected) and expected > 0
    assert response._hidden_params["response_cost"] == kwargs["response_cost"]


async def test_atext_completion_stream_reports_once_at_its_end(server, recorder: Recorder):
    stream = await llmrelay.atext_completion(model="openai/gpt-4o-mini", prompt="hi", stream=True,
                                             api_base=server.url + "/v1", api_key="k")
    text = ""
    async for chunk in stream:
        assert recorder.outcomes() == []
        text += chunk.choices[0].text
    await wait_pending()
    assert text == DEFAULT_TEXT
    name, kwargs, _ = _outcome(recorder)
    assert name == "async_success" and kwargs["call_type"] == "atext_completion"
    assert kwargs["complete_streaming_response"].choices[0].message.content == DEFAULT_TEXT
    assert kwargs["response_cost"] > 0


def test_router_text_completion_reports_once(recorder: Recorder):
    with FakeOpenAIServer() as a, FakeOpenAIServer(text="from b") as b:
        a.enqueue(error_reply(500), error_reply(500))
        router = llmrelay.Router(model_list=[
            {"model_name": "a", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": a.url + "/v1", "api_key": "k"}},
            {"model_name": "b", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": b.url + "/v1", "api_key": "k"}},
        ], num_retries=1, retry_after=0, fallbacks=[{"a": ["b"]}], disable_cooldowns=True)
        response = router.text_completion(model="a", prompt="hi")
    assert response.choices[0].text == "from b"
    name, kwargs, _ = _outcome(recorder)
    assert name == "success" and kwargs["call_type"] == "text_completion"
    assert kwargs["standard_logging_object"]["model_group"] == "b"


# ------------------------------------------------------------------ LiteLLM's conventions
async def test_success_callback_function_gets_datetimes_for_async_calls(server):
    seen: list[tuple] = []
    llmrelay.success_callback = [lambda kwargs, response, start, end: seen.append((kwargs, response, start, end))]
    response = await llmrelay.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES,
                                          api_base=server.url + "/v1", api_key="k")
    await wait_pending()
    assert len(seen) == 1
    kwargs, got, start, end = seen[0]
    assert got is response
    assert isinstance(start, datetime.datetime) and isinstance(end, datetime.datetime) and start <= end
    assert kwargs["start_time"] == start and kwargs["end_time"] == end
    assert kwargs["response_cost"] == response._hidden_params["response_cost"] > 0


def test_stream_hidden_params_carry_the_reported_cost(server, recorder: Recorder):
    stream = llmrelay.completion(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True,
                                 api_base=server.url + "/v1", api_key="k")
    list(stream)
    _, kwargs, response = _outcome(recorder)
    assert stream._hidden_params["response_cost"] == kwargs["response_cost"] > 0
    assert response._hidden_params["response_cost"] == kwargs["response_cost"]


async def test_async_success_callback_list_runs_for_async_calls_only(server):
    seen: list[str] = []

    async def on_success(kwargs, response, start, end):
        seen.append(kwargs["call_type"])

    llmrelay._async_success_callback = [on_success]
    llmrelay.completion(model="openai/gpt-4o-mini", messages=MESSAGES, api_base=server.url + "/v1", api_key="k")
    await llmrelay.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES, api_base=server.url + "/v1", api_key="k")
    await wait_pending()
    assert seen == ["acompletion"]


def test_input_callback_hears_each_call_before_it_goes_out(server):
    seen: list[dict] = []
    calls_before: list[int] = []

    def on_input(kwargs):
        calls_before.append(len(server.chat_requests))
        seen.append(kwargs)

    class Pre(llmrelay.CustomLogger):
        def log_pre_api_call(self, model, messages, kwargs):
            seen.append({"logger": model})

        def log_success_event(self, kwargs, response_obj, start_time, end_time):  # not for input_callback
            raise AssertionError("a logger in input_callback hears of the call's start only")

    llmrelay.input_callback = [on_input, Pre()]
    llmrelay.completion(model="openai/gpt-4o-mini", messages=MESSAGES, temperature=0.5,
                        api_base=server.url + "/v1", api_key="k")
    assert calls_before == [0]
    assert seen[0] == {"logger": "openai/gpt-4o-mini"}
    details = seen[1]
    assert details["model"] == "openai/gpt-4o-mini" and details["messages"] == MESSAGES
    assert details["log_event_type"] == "pre_api_call"
    assert details["optional_params"] == {"temperature": 0.5}
    assert details["litellm_call_id"]


def test_custom_logger_sync_and_async_hooks_in_callbacks(server):
    events: list[str] = []

    class Both(llmrelay.CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            events.append("sync")

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            events.append("async")

    llmrelay.callbacks = [Both()]
    kw = {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "api_base": server.url + "/v1", "api_key": "k"}
    llmrelay.completion(**kw)

    async def go() -> None:
        await llmrelay.acompletion(**kw)
        await wait_pending()

    asyncio.run(go())
    assert events == ["sync", "async"]


async def test_slow_sync_callback_does_not_hold_up_the_next_calls(server):
    """Sync callbacks of async calls run on callback threads; one that blocks gets company."""
    release = threading.Event()
    order: list[str] = []

    def on_success(kwargs, response, start, end):
        if not order:
            order.append("first")
            release.wait(10)  # blocks its thread until the second call's callback has run
        else:
            order.append("second")
            release.set()

    llmrelay.success_callback = [on_success]
    kw = {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "api_base": server.url + "/v1", "api_key": "k"}
    await llmrelay.acompletion(**kw)
    for _ in range(1000):  # until the first callback runs (and blocks its thread)
        if order:
            break
        await asyncio.sleep(0.01)
    await llmrelay.acompletion(**kw)
    await asyncio.wait_for(wait_pending(), 10)
    assert order == ["first", "second"] and release.is_set()
    assert not offloop.busy()


async def test_cancelled_router_call_reports_one_failure(recorder: Recorder):
    from servers.openai_server import slow_headers_reply

    with FakeOpenAIServer() as a:
        a.enqueue(slow_headers_reply(1.5, stream=False))
        router = llmrelay.Router(model_list=[
            {"model_name": "a", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": a.url + "/v1", "api_key": "k"}},
        ])
        task = asyncio.ensure_future(router.acompletion(model="a", messages=MESSAGES))
        for _ in range(500):  # until the request reached the upstream
            if a.requests:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await wait_pending()
    name, kwargs, _ = _outcome(recorder)
    assert name == "async_failure" and kwargs["call_type"] == "acompletion"


async def test_async_callback_exceptions_are_logged_not_raised(server, caplog):
    class Broken(llmrelay.CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            raise ValueError("async logger bug")

    def broken(kwargs, response, start, end):
        raise RuntimeError("sync function bug, off the loop")

    llmrelay.callbacks = [Broken()]
    llmrelay.success_callback = [broken]
    with caplog.at_level("WARNING", logger="llmrelay.callbacks"):
        response = await llmrelay.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES,
                                              api_base=server.url + "/v1", api_key="k")
        await wait_pending()
    assert response.choices[0].message.content == DEFAULT_TEXT
    assert "async logger bug" in caplog.text and "sync function bug, off the loop" in caplog.text


#: LiteLLM's StandardLoggingPayload keys that callbacks commonly read (all present, maybe None).
LITELLM_SLO_KEYS = {
    "id", "trace_id", "call_type", "stream", "response_cost", "response_cost_failure_debug_info", "status",
    "custom_llm_provider", "total_tokens", "prompt_tokens", "completion_tokens", "startTime", "endTime",
    "completionStartTime", "response_time", "model_map_information", "model", "model_id", "model_group",
    "api_base", "metadata", "cache_hit", "cache_key", "saved_cache_cost", "request_tags", "end_user",
    "requester_ip_address", "messages", "response", "error_str", "error_information", "model_parameters",
    "hidden_params", "guardrail_information",
}
LITELLM_METADATA_KEYS = {"user_api_key_hash", "user_api_key_alias", "user_api_key_team_id", "user_api_key_user_id",
                         "user_api_key_team_alias", "spend_logs_metadata", "requester_ip_address",
                         "requester_metadata"}


def test_standard_logging_object_has_litellms_keys(server, recorder: Recorder):
    llmrelay.completion(model="openai/gpt-4o-mini", messages=MESSAGES, user="u-1", metadata={"tags": ["t1"]},
                        api_base=server.url + "/v1", api_key="k")
    _, kwargs, _ = _outcome(recorder)
    slo = kwargs["standard_logging_object"]
    assert LITELLM_SLO_KEYS <= set(slo), LITELLM_SLO_KEYS - set(slo)
    assert LITELLM_METADATA_KEYS <= set(slo["metadata"])
    assert slo["request_tags"] == ["t1"] and slo["end_user"] == "u-1"
    assert slo["response"]["choices"][0]["message"]["content"] == DEFAULT_TEXT  # a plain dict
    assert slo["hidden_params"]["response_cost"] == slo["response_cost"] == kwargs["response_cost"]
    assert slo["model_map_information"]["model_map_key"]


def test_sync_callbacks_of_async_calls_still_run_at_interpreter_exit(tmp_path):
    """A script that ends right after its last call loses no event (as with an executor)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "events.txt"
    script = f"""
import asyncio, time, llmrelay
def on_success(kwargs, response, start, end):
    time.sleep(0.3)  # still running when the script ends
    with open({str(out)!r}, "a") as f:
        f.write(kwargs["call_type"] + "\\n")
llmrelay.success_callback = [on_success]
async def main():
    for _ in range(3):
        await llmrelay.acompletion(model="openai/gpt-4o-mini", messages=[{{"role": "user", "content": "x"}}],
                                   mock_response="hi")
asyncio.run(main())
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)
    assert out.read_text().split() == ["acompletion"] * 3


def test_router_text_completion_stream_reports_once_at_its_end(server, recorder: Recorder):
    router = llmrelay.Router(model_list=[
        {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": server.url + "/v1", "api_key": "k"}},
    ])
    text = ""
    for chunk in router.text_completion(model="m", prompt="hi", stream=True):
        assert recorder.outcomes() == []
        text += chunk.choices[0].text
    assert text == DEFAULT_TEXT
    name, kwargs, _ = _outcome(recorder)
    assert name == "success" and kwargs["call_type"] == "text_completion"
    assert kwargs["standard_logging_object"]["model_group"] == "m"
    assert kwargs["standard_logging_object"]["completion_tokens"] > 0
