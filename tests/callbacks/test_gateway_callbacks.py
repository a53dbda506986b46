"""Gateway callbacks from the config: a team's CustomLogger module next to the config file and
its proxy hooks; exactly one event per request (streams, failures, abandoned streams, retries,
fallbacks); ``cost`` and ``key_alias`` in the access log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest

from proxy.harness import Gateway
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer, dropped_stream, error_reply, slow_stream_reply
from timing import wait_for

from .conftest import two_groups_config

HANDLER = '''
import json, os
from llmrelay.integrations.custom_logger import CustomLogger
from helper_next_to_it import tag   # the module may import its neighbours


class _Rejected(Exception):
    def __init__(self, status_code, detail):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def _write(kind, kwargs=None, **extra):
    slo = (kwargs or {}).get("standard_logging_object") or {}
    record = {"kind": kind, "id": slo.get("id") or (kwargs or {}).get("litellm_call_id"), "status": slo.get("status"),
              "model": slo.get("model"), "model_group": slo.get("model_group"),
              "completion_tokens": slo.get("completion_tokens"), "stream": slo.get("stream"),
              "error_str": slo.get("error_str"), "alias": (slo.get("metadata") or {}).get("user_api_key_alias"),
              "has_complete": (kwargs or {}).get("complete_streaming_response") is not None,
              "ttft": (slo.get("completionStartTime") or 0) - (slo.get("startTime") or 0), **extra}
    with open(os.environ["CALLBACK_LOG"], "a") as f:
        f.write(json.dumps(record) + "\\n")


class Handler(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        _write("success", kwargs)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        _write("failure", kwargs)

    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        text = str(data["messages"][-1].get("content"))
        if "forbidden" in text:
            raise _Rejected(403, {"error": "not allowed here"})
        # cache: LiteLLM's DualCache, kept between requests
        seen = await cache.async_increment_cache("pre_calls", 1)
        data["user"] = tag("pre") if seen >= 1 and cache.get_cache("pre_calls") == seen else "no-cache"
        return data

    async def async_post_call_success_hook(self, data, user_api_key_dict, response):
        response.choices[0].message.content += " [checked]"
        return response

    async def async_post_call_failure_hook(self, request_data, original_exception, user_api_key_dict, traceback_str=None):
        _write("post_failure", None, error=type(original_exception).__name__)

    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict, response, request_data):
        async for chunk in response:
            yield chunk
        _write("iterator_end", None)


proxy_handler_instance = Handler()
'''


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cb")
    (tmp / "custom_callbacks.py").write_text(HANDLER)
    (tmp / "helper_next_to_it.py").write_text("def tag(x):\n    return 'tag-' + x\n")
    log = tmp / "events.jsonl"
    with FakeOpenAIServer() as up, FakeOpenAIServer() as down:
        path = tmp / "config.yaml"
        path.write_text(two_groups_config(up.url, down.url, "custom_callbacks.proxy_handler_instance"))
        # started from another directory: the module is found next to the config, not in the cwd
        with Gateway(str(path), env={"CALLBACK_LOG": str(log)}) as gw:
            yield gw, up, down, log


def _records(log: Path) -> list[dict]:
    lines = log.read_text().split("\n")[:-1] if log.exists() else []  # (not a line still being written)
    return [json.loads(x) for x in lines]


def _events_now(log: Path, request_id: str) -> list[dict]:
    return [e for e in _records(log) if e.get("id") == request_id or e["kind"] in ("post_failure", "iterator_end")
            and e.get("rid") == request_id]


def events(log: Path, request_id: str, settle: float = 0.3) -> list[dict]:
    """The events of one request, once its outcome (success or failure) was written, and
    ``settle`` s more: a second outcome (the bug these tests look for) would be among them."""
    wait_for(lambda: any(e["kind"] in ("success", "failure") for e in _events_now(log, request_id)),
             what=f"the outcome event of {request_id}")
    time.sleep(settle)
    return _events_now(log, request_id)


def outcome_events(log: Path, request_id: str) -> list[str]:
    return [e["kind"] for e in events(log, request_id) if e["kind"] in ("success", "failure")]


def client(gw: Gateway, request_id: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0, timeout=20,
                         default_headers={"x-request-id": request_id})


def test_non_stream_success_one_event_and_hooks(setup):
    gw, up, _, log = setup
    with client(gw, "req-ok") as c:
        response = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert response.choices[0].message.content == DEFAULT_TEXT + " [checked]"
    assert up.last_json["user"] == "tag-pre"  # the pre-call hook changed the request
    assert outcome_events(log, "req-ok") == ["success"]
    record = gw.wait_log(lambda r: r.get("request_id") == "req-ok")
    assert record["cost"] > 0 and "key_alias" in record


def test_stream_success_one_event_at_the_end(setup):
    gw, _, _, log = setup
    with client(gw, "req-stream") as c:
        text = "".join(ch.choices[0].delta.content or "" for ch in
                       c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
                       if ch.choices)
    assert text == DEFAULT_TEXT
    got = events(log, "req-stream")
    outcomes = [e for e in got if e["kind"] in ("success", "failure")]
    assert [e["kind"] for e in outcomes] == ["success"]
    assert outcomes[0]["stream"] is True and outcomes[0]["has_complete"] and outcomes[0]["completion_tokens"] > 0
    assert outcomes[0]["ttft"] > 0


def test_pre_call_hook_rejects_with_its_status(setup):
    gw, up, _, log = setup
    before = len(up.chat_requests)
    r = httpx.post(gw.url + "/v1/chat/completions", headers={"x-request-id": "req-reject"},
                   json={"model": "m", "messages": [{"role": "user", "content": "forbidden words"}]})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "not allowed here"
    assert len(up.chat_requests) == before
    assert outcome_events(log, "req-reject") == ["failure"]


def test_upstream_failure_one_event_and_failure_hook(setup):
    gw, up, _, log = setup
    up.enqueue(error_reply(500, "upstream broke"), error_reply(500, "upstream broke"))
    with client(gw, "req-fail") as c, pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert outcome_events(log, "req-fail") == ["failure"]
    wait_for(lambda: any(e["kind"] == "post_failure" and e["error"] == "InternalServerError"
                         for e in _records(log)), what="the post-failure hook")


def test_stream_cut_upstream_one_failure(setup):
    gw, up, _, log = setup
    up.enqueue(dropped_stream(after_chunks=3))
    with client(gw, "req-cut") as c:
        with pytest.raises(openai.APIError):
            for _ in c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True):
                pass
    got = [e for e in events(log, "req-cut") if e["kind"] in ("success", "failure")]
    assert [e["kind"] for e in got] == ["failure"]
    assert got[0]["completion_tokens"] > 0  # what was generated is logged


def test_abandoned_stream_one_failure(setup):
    gw, up, _, log = setup
    up.enqueue(slow_stream_reply(0.2))
    with httpx.Client(timeout=10) as h:
        with h.stream("POST", gw.url + "/v1/chat/completions", headers={"x-request-id": "req-gone"},
                      json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    break  # leave after the first chunk
    got = [e for e in events(log, "req-gone", settle=0.5) if e["kind"] in ("success", "failure")]
    assert [e["kind"] for e in got] == ["failure"]


def test_retries_and_fallback_one_event(setup):
    gw, up, down, log = setup
    down.enqueue(error_reply(503), error_reply(503))
    with client(gw, "req-fallback") as c:
        response = c.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "hi"}])
    assert response.choices[0].message.content.startswith(DEFAULT_TEXT)
    assert len(down.chat_requests) == 2
    got = [e for e in events(log, "req-fallback") if e["kind"] in ("success", "failure")]
    assert [e["kind"] for e in got] == ["success"]
    assert got[0]["model_group"] == "m"
