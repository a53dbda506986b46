"""Router introspection and settings as LiteLLM's Router has them (router.py): model_list,
get_model_ids, has_model_id, get_model_info, get_model_group_info, get_settings /
update_settings, upsert_deployment, get_available_deployment, reset."""

from __future__ import annotations

import asyncio
import logging

import pytest

import llmrelay as litellm
from llmrelay import Router
from router.conftest import deployment


def make_router(upstreams, **kwargs):
    return Router(model_list=[
        deployment(upstreams[0], "gpt", rpm=10),
        deployment(upstreams[1], "gpt", model="azure/gpt-4o", model_info={"id": "az"}, api_version="2024-06-01"),
        deployment(upstreams[2], "claude", model="anthropic/claude-3-5-haiku-latest"),
    ], **kwargs)


def test_model_list_is_the_entries_as_given_plus_their_id(upstreams):
    router = make_router(upstreams)
    entries = router.model_list
    assert [e["model_name"] for e in entries] == ["gpt", "gpt", "claude"]
    assert entries[1] == {
        "model_name": "gpt",
        "litellm_params": {"model": "azure/gpt-4o", "api_base": upstreams[1].url + "/v1", "api_key": "sk-test",
                           "api_version": "2024-06-01"},
        "model_info": {"id": "az"},
    }
    assert all(set(e) == {"model_name", "litellm_params", "model_info"} and set(e["model_info"]) == {"id"}
               for e in entries)
    ids = router.get_model_ids()
    assert ids == [e["model_info"]["id"] for e in entries] and len(set(ids)) == 3
    assert router.get_model_ids("gpt") == ids[:2] and router.get_model_ids("nope") == []
    assert router.has_model_id("az") and not router.has_model_id("nope")
    assert router.get_model_info("az") == entries[1] and router.get_model_info("nope") is None


def test_model_list_follows_add_delete_upsert_and_set(upstreams):
    router = make_router(upstreams)
    added = router.add_deployment(deployment(upstreams[3], "new", model_info={"id": "n1"}))
    assert router.model_list[-1] == added and router.has_model_id("n1")
    assert router.delete_deployment("az") and "az" not in router.get_model_ids()
    assert len(router.model_list) == 3
    same = deployment(upstreams[3], "new", model_info={"id": "n1"})
    assert router.upsert_deployment(same) is None  # nothing changed
    changed = deployment(upstreams[0], "new", model_info={"id": "n1"})
    assert router.upsert_deployment(changed)["litellm_params"]["api_base"] == upstreams[0].url + "/v1"
    assert router.get_model_info("n1")["litellm_params"]["api_base"] == upstreams[0].url + "/v1"
    assert router.upsert_deployment(deployment(upstreams[1], "other", model_info={"id": "o1"}))["model_name"] == "other"
    assert router.completion(model="new", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content == "from A"
    router.set_model_list([deployment(upstreams[2], "only")])
    assert [e["model_name"] for e in router.model_list] == ["only"] and router.model_names == ["only"]


def test_get_model_group_info(upstreams):
    router = make_router(upstreams)
    info = router.get_model_group_info("gpt")
    assert info.model_group == "gpt" and info["providers"] == ["openai", "azure"]
    gpt4o = litellm.get_model_info("gpt-4o")
    assert info.max_input_tokens == gpt4o["max_input_tokens"]  # the largest of the group
    assert info.input_cost_per_token == gpt4o["input_cost_per_token"]
    assert info.mode == "chat" and info.supports_function_calling and info.supports_vision
    assert info.rpm == 10 and info.tpm is None
    assert "tools" in info.supported_openai_params
    assert router.get_model_group_info("nope") is None
    claude = router.get_model_group_info("claude")
    assert claude.providers == ["anthropic"] and claude.supports_vision is True
    assert claude.model_dump()["model_group"] == "claude"


def test_get_and_update_settings(upstreams, caplog):
    router = make_router(upstreams, fallbacks=[{"gpt": ["claude"]}], num_retries=1, timeout=30)
    settings = router.get_settings()
    assert settings["routing_strategy"] == "simple-shuffle" and settings["num_retries"] == 1
    assert settings["timeout"] == 30 and settings["fallbacks"] == [{"gpt": ["claude"]}]
    assert settings["allowed_fails"] == 3 and settings["cooldown_time"] == 5
    with caplog.at_level(logging.WARNING, logger="llmrelay.router"):
        router.update_settings(num_retries=3, routing_strategy="least-busy", cooldown_time=1, no_such_setting=1,
                               fallbacks=[{"claude": ["gpt"]}])
    assert "no_such_setting" in caplog.text
    settings = router.get_settings()
    assert settings["num_retries"] == 3 and router.num_retries == 3
    assert settings["routing_strategy"] == "least-busy" and settings["cooldown_time"] == 1
    assert settings["fallbacks"] == [{"claude": ["gpt"]}]
    with pytest.raises(ValueError):
        router.update_settings(fallbacks=[{"gpt": ["no-such-group"]}])
    assert router.get_settings()["fallbacks"] == [{"claude": ["gpt"]}]  # unchanged after the bad update


def test_get_available_deployment_picks_what_a_call_would_use(upstreams):
    router = make_router(upstreams)
    assert router.get_available_deployment("claude")["litellm_params"]["model"] == "anthropic/claude-3-5-haiku-latest"
    assert router.get_available_deployment("gpt")["model_name"] == "gpt"
    assert router.get_available_deployment("az", specific_deployment=True)["model_info"]["id"] == "az"
    assert asyncio.run(router.async_get_available_deployment("claude", messages=[]))["model_name"] == "claude"
    with pytest.raises(litellm.NotFoundError):
        router.get_available_deployment("nope")
    # a deployment in cooldown is not picked; none left: RateLimitError
    router.set_model_list([deployment(upstreams[0], "solo", model_info={"id": "s"}),
                           deployment(upstreams[1], "solo", model_info={"id": "t"})])
    router._by_id["s"].cooldown_until = float("inf")
    assert {router.get_available_deployment("solo")["model_info"]["id"] for _ in range(20)} == {"t"}
    router._by_id["t"].cooldown_until = float("inf")
    with pytest.raises(litellm.RateLimitError):
        router.get_available_deployment("solo")
    router.reset()  # fresh health state
    assert router.get_available_deployment("solo")["model_name"] == "solo"


def test_get_available_deployment_with_pre_call_checks(upstreams):
    router = Router(model_list=[deployment(upstreams[0], "g", model_info={"id": "small", "max_input_tokens": 50}),
                                deployment(upstreams[1], "g", model_info={"id": "big", "max_input_tokens": 100_000})],
                    enable_pre_call_checks=True)
    long = [{"role": "user", "content": "word " * 500}]
    assert {router.get_available_deployment("g", messages=long)["model_info"]["id"] for _ in range(10)} == {"big"}
    with pytest.raises(litellm.ContextWindowExceededError):
        router.get_available_deployment("g", messages=[{"role": "user", "content": "word " * 200_000}])


def test_reset_clears_callbacks_as_litellm_does(upstreams):
    router = make_router(upstreams)
    litellm.success_callback = [lambda *a: None]
    router.reset()
    assert litellm.success_callback == [] and litellm.failure_callback == []


def test_update_settings_routing_strategy_in_shared_mode(upstreams):
    """Shared (Redis) mode: the old strategy's counter exchange stops and the new one runs."""
    from servers.redis_server import SKIP_REASON, redis_url

    url = redis_url()
    if url is None:
        pytest.skip(SKIP_REASON)
    router = Router(model_list=[deployment(upstreams[0], "g")], routing_strategy="least-busy", redis_url=url)
    messages = [{"role": "user", "content": "hi"}]

    async def run() -> None:
        await router.acompletion(model="g", messages=messages)
        old = router.shared.counters
        assert old.busy and not old.usage and old._task is not None and not old._task.done()
        router.update_settings(routing_strategy="usage-based-routing")
        await asyncio.sleep(0.05)
        assert old._task.done()
        new = router.shared.counters
        assert new is not old and new.usage and not new.busy
        assert (await router.acompletion(model="g", messages=messages)).choices[0].message.content == "from A"
        assert new._task is not None and not new._task.done()
        await router.shared.stop()

    asyncio.run(run())
