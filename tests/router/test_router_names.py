"""LiteLLM's routing features in the library Router: model_group_alias, wildcard groups, order,
tags, per-deployment cooldown_time, entry-level limits, consumed params never sent upstream."""

from __future__ import annotations

import pytest

from llmrelay import Router
from llmrelay.exceptions import BadRequestError, NotFoundError
from router.conftest import call, counts, deployment
from servers.openai_server import error_reply

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_alias_and_hidden_alias(upstreams, mode):
    a = upstreams[0]
    router = Router(model_list=[deployment(a, "gpt-4o")],
                    model_group_alias={"gpt-4": "gpt-4o", "old": {"model": "gpt-4o", "hidden": True}})
    for name in ("gpt-4", "old"):
        text, response = await call(router, mode, False, model=name)
        assert text == "from A" and response.model
    assert router.has_group("gpt-4") and not router.has_group("gpt-5")
    with pytest.raises(NotFoundError):
        await call(router, mode, False, model="gpt-5")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_wildcard_group(upstreams, mode):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, "openai/*", model="openai/*"), deployment(b, "*", model="openai/*")])
    await call(router, mode, False, model="openai/gpt-4.1")
    assert a.chat_requests[-1]["model"] == "gpt-4.1"
    await call(router, mode, False, model="some-model")
    assert b.chat_requests[-1]["model"] == "some-model"
    for bad in ("openai/../x", "openai/a b"):
        with pytest.raises(NotFoundError):
            await call(router, mode, False, model=bad)


async def test_catch_all_never_sends_a_key_to_a_provider_the_client_picks(upstreams):
    entry = {"model_name": "*", "litellm_params": {"model": "*", "api_key": "sk-only-for-openai"}}
    router = Router(model_list=[entry])
    with pytest.raises(NotFoundError, match="api_base"):
        router.completion(model="anthropic/claude-3-haiku", messages=[{"role": "user", "content": "x"}])
    router = Router(model_list=[{"model_name": "*", "litellm_params": {"model": "*"}}])
    with pytest.raises(NotFoundError, match="ollama"):
        router.completion(model="ollama/llama3", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_order_is_priority(upstreams, mode):
    a, b, c = upstreams[:3]
    router = Router(model_list=[deployment(c, order=3), deployment(a, order=1), deployment(b, order=2)],
                    num_retries=1, retry_after=0)
    for _ in range(5):
        assert (await call(router, mode, False))[0] == "from A"
    a.enqueue(error_reply(500))
    assert (await call(router, mode, False))[0] == "from B"  # order 1 failed: the next order, never order 3
    assert counts(upstreams)[2] == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_tags(upstreams, mode):
    a, b, c = upstreams[:3]
    router = Router(model_list=[deployment(a, tags=["free"]), deployment(b, tags=["paid"]),
                                deployment(c, tags=["default"])])
    assert {(await call(router, mode, False, tags=["free"]))[0] for _ in range(4)} == {"from A"}
    assert {(await call(router, mode, False, metadata={"tags": ["paid"]}))[0] for _ in range(4)} == {"from B"}
    assert {(await call(router, mode, False))[0] for _ in range(4)} == {"from C"}
    assert {(await call(router, mode, False, tags=["nope"]))[0] for _ in range(2)} == {"from C"}
    assert all("tags" not in r for s in upstreams for r in s.chat_requests)
    router = Router(model_list=[deployment(a, tags=["free"])])
    with pytest.raises(BadRequestError, match="nope"):
        await call(router, mode, False, tags=["nope"])


async def test_per_deployment_cooldown_and_entry_level_keys(upstreams):
    a, b = upstreams[:2]
    entry = deployment(b, model_info={"id": "b"})
    entry.update({"rpm": 7, "tpm": 700, "order": 2, "max_parallel_requests": 3, "tags": ["x"]})
    router = Router(model_list=[deployment(a, cooldown_time=42, input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                                           region_name="eu", model_info={"id": "a"}), entry],
                    allowed_fails=0)
    first, second = router._by_id["a"], router._by_id["b"]
    assert (second.rpm, second.tpm, second.order, second.max_parallel_requests, second.tags) == \
        (7, 700, 2, 3, frozenset({"x"}))
    assert (first.input_cost_per_token, first.output_cost_per_token, first.region_name) == (1e-6, 2e-6, "eu")
    a.enqueue(error_reply(500))
    with pytest.raises(Exception):
        router.completion(model=first.id, messages=[{"role": "user", "content": "x"}])
    state = {s["id"]: s for s in router.deployment_state()}
    assert 40 < state[first.id]["cooling_down_for"] <= 42
    body = a.chat_requests[-1]
    for key in ("cooldown_time", "input_cost_per_token", "output_cost_per_token", "region_name"):
        assert key not in body
