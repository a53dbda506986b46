"""The gateway's CustomLogger hooks as LiteLLM's proxy docs use them (proxy/call_hooks.md):
``async_moderation_hook`` rejecting a request with its status, and the library kwargs
(``log_event_type``, ``original_response``…) reaching a logger loaded from the config."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from proxy.harness import Gateway
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer
from timing import wait_for

HANDLER = '''
import json, os
from llmrelay.integrations.custom_logger import CustomLogger


class HTTPException(Exception):  # the shape of fastapi's, which LiteLLM's examples raise
    def __init__(self, status_code, detail):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class Moderator(CustomLogger):
    async def async_moderation_hook(self, data, user_api_key_dict, call_type):
        text = " ".join(str(m.get("content")) for m in data["messages"])
        if "hello world" in text:
            raise HTTPException(status_code=400, detail={"error": "Violated content safety policy"})

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        with open(os.environ["CALLBACK_LOG"], "a") as f:
            meta = kwargs["litellm_params"]["metadata"]
            f.write(json.dumps({"event": kwargs["log_event_type"], "call_type": call_type_of(kwargs),
                                "original": json.loads(kwargs["original_response"])["id"],
                                "input": kwargs["input"], "key_metadata": meta.get("user_api_key_metadata"),
                                "key_hash": meta.get("user_api_key"), "end_user": meta.get("user_api_key_end_user_id"),
                                "body": kwargs["litellm_params"]["proxy_server_request"]["body"]}) + "\\n")


def call_type_of(kwargs):
    return kwargs["call_type"]


moderator = Moderator()
'''

CONFIG = """
model_list:
  - model_name: m
    litellm_params: {{model: openai/gpt-4o-mini, api_base: {url}/v1, api_key: sk-up}}
litellm_settings:
  callbacks: custom_callbacks.moderator
general_settings:
  master_key: sk-1234
  database_url: "sqlite:///{db}"
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hooks")
    (tmp / "custom_callbacks.py").write_text(HANDLER)
    log = tmp / "events.jsonl"
    with FakeOpenAIServer() as up:
        path = tmp / "config.yaml"
        path.write_text(CONFIG.format(url=up.url, db=tmp / "keys.db"))
        with Gateway(str(path), env={"CALLBACK_LOG": str(log), "LLMRELAY_DATA_DIR": str(tmp)}) as gw:
            yield gw, up, log


def read_events(log: Path, count: int = 1) -> list[dict]:
    """The logger's events, once ``count`` whole lines were written (the success event is
    written off the request path, after the answer went out)."""
    def lines() -> list[str]:
        return log.read_text().split("\n")[:-1] if log.exists() else []  # (not a line still being written)

    wait_for(lambda: len(lines()) >= count, what=f"{count} logged event(s)")
    return [json.loads(x) for x in lines()]


def test_moderation_hook_rejects_before_the_upstream_call(setup):
    gw, up, _ = setup
    client = openai.OpenAI(base_url=gw.url, api_key="sk-1234", max_retries=0)
    before = len(up.chat_requests)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello world"}])
    assert err.value.status_code == 400 and "Violated content safety policy" in str(err.value)
    assert len(up.chat_requests) == before


def test_passing_request_and_the_success_kwargs(setup):
    """A virtual key's metadata reaches the callbacks as LiteLLM's proxy puts it
    (litellm_params.metadata.user_api_key_metadata), with the request's body."""
    gw, up, log = setup
    made = httpx.post(gw.url + "/key/generate", headers={"Authorization": "Bearer sk-1234"},
                      json={"metadata": {"app": "billing"}}).json()
    client = openai.OpenAI(base_url=gw.url, api_key=made["key"], max_retries=0)
    answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], user="end-1")
    assert answer.choices[0].message.content == DEFAULT_TEXT
    [event] = read_events(log)
    assert event["event"] == "successful_api_call" and event["original"] == answer.id
    assert event["input"] == [{"role": "user", "content": "hi"}]
    assert event["key_metadata"] == {"app": "billing"} and event["key_hash"] == made["token"]
    assert event["end_user"] == "end-1" and event["body"]["messages"] == event["input"]
