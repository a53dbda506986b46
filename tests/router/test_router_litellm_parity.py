"""Router behaviours LiteLLM documents: get_deployment(model_id=…) with attribute access,
enable_pre_call_checks, default_fallbacks for any group (also one that does not exist)."""

from __future__ import annotations

import asyncio
import json

import pytest

import llmrelay
from llmrelay import Router

from .conftest import MESSAGES, counts, deployment

LONG = [{"role": "user", "content": "word " * 400}]  # ~400 tokens


def test_get_deployment_reads_by_attribute_and_dumps(upstreams):
    a = upstreams[0]
    router = Router(model_list=[deployment(a, model_info={"id": "dep-1", "max_input_tokens": 1000}, rpm=60)])
    dep = router.get_deployment(model_id="dep-1")
    assert dep.litellm_params.api_key == "sk-test" and dep.litellm_params.model == "openai/gpt-4o-mini"
    assert dep.litellm_params.api_base == a.url + "/v1" and dep.litellm_params.rpm == 60
    assert dep.litellm_params.api_version is None  # an optional field that was not configured
    assert dep.model_info.id == "dep-1" and dep.model_name == "g"
    assert dep["litellm_params"]["model"] == "openai/gpt-4o-mini"  # still a dict
    dumped = dep.model_dump()
    assert type(dumped) is dict and type(dumped["litellm_params"]) is dict
    assert dumped["litellm_params"]["api_key"] == "sk-test" and json.loads(dep.model_dump_json())["model_name"] == "g"
    dep.litellm_params.api_key = "changed"  # a copy: the router is untouched
    assert router.get_deployment("dep-1").litellm_params.api_key == "sk-test"
    assert router.get_deployment(model_id="nope") is None


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_pre_call_checks_skip_small_context_windows(upstreams, mode):
    small, large = upstreams[0], upstreams[1]
    router = Router(model_list=[
        deployment(small, model_info={"id": "small", "max_input_tokens": 50}),
        deployment(large, model_info={"id": "large", "max_input_tokens": 100_000}),
    ], enable_pre_call_checks=True)
    for _ in range(4):
        if mode == "sync":
            response = router.completion(model="g", messages=LONG)
        else:
            response = asyncio.run(router.acompletion(model="g", messages=LONG))
        assert response.choices[0].message.content.startswith("from B")
    assert counts([small, large]) == [0, 4]
    router.completion(model="g", messages=MESSAGES)  # a short prompt may still go anywhere
    assert sum(counts([small, large])) == 5


def test_pre_call_checks_off_by_default_and_fallback_when_nothing_fits(upstreams):
    small, backup = upstreams[0], upstreams[2]
    model_list = [deployment(small, model_info={"id": "small", "max_tokens": 50}),
                  deployment(backup, "big", model_info={"id": "big", "max_input_tokens": 100_000})]
    Router(model_list=model_list).completion(model="g", messages=LONG)
    assert counts([small]) == [1]
    router = Router(model_list=model_list, enable_pre_call_checks=True, context_window_fallbacks=[{"g": ["big"]}])
    response = router.completion(model="g", messages=LONG)
    assert response.choices[0].message.content.startswith("from C") and counts([small]) == [1]
    assert response._hidden_params["router_attempts"][0]["error"] == "ContextWindowExceededError"
    with pytest.raises(llmrelay.ContextWindowExceededError, match="context window"):
        Router(model_list=model_list, enable_pre_call_checks=True).completion(model="g", messages=LONG)


def test_default_fallbacks_serve_any_group_and_unknown_ones(upstreams):
    a, b = upstreams[0], upstreams[1]
    a.enqueue(*[llmrelay_error() for _ in range(3)])
    router = Router(model_list=[deployment(a), deployment(b, "backup")], default_fallbacks=["backup"])
    response = router.completion(model="g", messages=MESSAGES)
    assert response.choices[0].message.content.startswith("from B")
    response = router.completion(model="no-such-group", messages=MESSAGES)
    assert response.choices[0].message.content.startswith("from B")
    assert response._hidden_params["model_group"] == "backup"
    stream = router.completion(model="no-such-group", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).startswith("from B")
    with pytest.raises(llmrelay.NotFoundError):
        Router(model_list=[deployment(a)]).completion(model="no-such-group", messages=MESSAGES)


def llmrelay_error():
    from servers.openai_server import error_reply

    return error_reply(500, "boom")


def test_pre_call_checks_use_the_model_table(upstreams):
    """Without a window in model_info, it comes from llmrelay's model table (get_model_info):
    gpt-4 takes 8,192 input tokens, gpt-4o-mini 128,000."""
    small, large = upstreams[0], upstreams[1]
    router = Router(model_list=[deployment(small, model="openai/gpt-4"), deployment(large)],
                    enable_pre_call_checks=True)
    huge = [{"role": "user", "content": "word " * 9000}]
    for _ in range(3):
        assert router.completion(model="g", messages=huge).choices[0].message.content.startswith("from B")
    assert counts([small, large]) == [0, 3]
    based = Router(model_list=[deployment(small, model="openai/my-gpt4-finetune", model_info={"base_model": "gpt-4"}),
                               deployment(large)], enable_pre_call_checks=True)
    based.completion(model="g", messages=huge)
    assert counts([small, large]) == [0, 4]
