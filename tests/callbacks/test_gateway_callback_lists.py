"""The gateway's ``success_callback`` / ``failure_callback`` lists (plain functions from a module
next to the config: each hears only its own outcome, once) and the per-chunk
``async_post_call_streaming_hook`` (runs on every chunk the client gets, may replace it) beside
an ``async_post_call_streaming_iterator_hook`` (wraps the whole stream, once); a logger whose
hooks raise breaks neither the requests nor the other callbacks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import pytest

from proxy.harness import Gateway
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer, error_reply
from timing import wait_for

HOOKS = '''
import json, os
from llmrelay.integrations.custom_logger import CustomLogger


def _write(**record):
    with open(os.environ["CALLBACK_LOG"], "a") as f:
        f.write(json.dumps(record) + "\\n")


def on_success(kwargs, response, start_time, end_time):
    _write(kind="success", id=kwargs["litellm_call_id"], status=kwargs["standard_logging_object"]["status"],
           cost=kwargs["response_cost"])


def on_failure(kwargs, response, start_time, end_time):
    _write(kind="failure", id=kwargs["litellm_call_id"], status=kwargs["standard_logging_object"]["status"])


class Chunks(CustomLogger):
    async def async_post_call_streaming_hook(self, user_api_key_dict, response):
        for choice in response.choices:
            if choice.delta.content:
                choice.delta.content = choice.delta.content.upper()
        _write(kind="chunk")
        return response

    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict, response, request_data):
        n = 0
        async for chunk in response:
            n += 1
            yield chunk
        _write(kind="stream_end", text=request_data["messages"][-1]["content"], chunks=n)


chunks = Chunks()


class Breaks(CustomLogger):
    """Every event hook raises: the requests and the other callbacks go on (the error is logged)."""

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        raise RuntimeError("a broken logger")

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        raise RuntimeError("a broken logger")


breaks = Breaks()
'''

CONFIG = """
model_list:
  - model_name: m
    litellm_params: {{model: openai/gpt-4o-mini, api_base: {url}/v1, api_key: sk-up}}
router_settings:
  num_retries: 0
  disable_cooldowns: true
litellm_settings:
  callbacks: [hooks.breaks, hooks.chunks]
  success_callback: [hooks.on_success]
  failure_callback: [hooks.on_failure]
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lists")
    (tmp / "hooks.py").write_text(HOOKS)
    log = tmp / "events.jsonl"
    with FakeOpenAIServer() as up:
        path = tmp / "config.yaml"
        path.write_text(CONFIG.format(url=up.url))
        with Gateway(str(path), env={"CALLBACK_LOG": str(log)}) as gw:
            yield gw, up, log


def _records(log: Path) -> list[dict]:
    lines = log.read_text().split("\n")[:-1] if log.exists() else []
    return [json.loads(x) for x in lines]


def _outcomes(log: Path, request_id: str) -> list[tuple[str, str]]:
    """(kind, status) of the request's success/failure records, once one came and 0.3 s more."""
    def now() -> list[tuple[str, str]]:
        return [(r["kind"], r["status"]) for r in _records(log) if r.get("id") == request_id]

    wait_for(lambda: now(), what=f"the outcome of {request_id}")
    time.sleep(0.3)
    return now()


def client(gw: Gateway, request_id: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0, timeout=20,
                         default_headers={"x-request-id": request_id})


def test_success_callback_hears_only_successes(setup):
    gw, _, log = setup
    with client(gw, "ok-1") as c:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert _outcomes(log, "ok-1") == [("success", "success")]


def test_failure_callback_hears_only_failures(setup):
    gw, up, log = setup
    up.enqueue(error_reply(500, "broken"))
    with client(gw, "bad-1") as c, pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert _outcomes(log, "bad-1") == [("failure", "failure")]


def test_per_chunk_hook_runs_on_every_chunk_and_may_replace_it(setup):
    gw, _, log = setup
    before = len([r for r in _records(log) if r["kind"] == "chunk"])
    with client(gw, "stream-1") as c:
        chunks = list(c.chat.completions.create(model="m", messages=[{"role": "user", "content": "stream please"}],
                                                stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == DEFAULT_TEXT.upper()  # the hook's replacement reached the client
    assert _outcomes(log, "stream-1") == [("success", "success")]
    records = _records(log)
    assert len([r for r in records if r["kind"] == "chunk"]) - before == len(chunks)  # once per chunk
    # the iterator hook wrapped the whole stream once (the first chunk, read before the response
    # starts, included) and saw its end
    assert [(r["text"], r["chunks"]) for r in records if r["kind"] == "stream_end"] == [("stream please", len(chunks))]


def test_a_stream_costs_what_the_same_response_costs(setup):
    gw, _, log = setup
    with client(gw, "same-1") as c:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "the same"}])
    with client(gw, "same-2") as c:
        list(c.chat.completions.create(model="m", messages=[{"role": "user", "content": "the same"}], stream=True,
                                       stream_options={"include_usage": True}))
    _outcomes(log, "same-1"), _outcomes(log, "same-2")
    costs = {r["id"]: r["cost"] for r in _records(log) if r["kind"] == "success"}
    assert costs["same-1"] == costs["same-2"] > 0
    # the access log says the same
    logged = [gw.wait_log(lambda r: r.get("request_id") == rid)["cost"] for rid in ("same-1", "same-2")]
    assert logged == [costs["same-1"]] * 2
