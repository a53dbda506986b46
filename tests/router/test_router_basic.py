"""Router basics: the API, retries on another deployment, fallbacks, what the caller sees."""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay import Router
from llmrelay.streaming import CustomStreamWrapper
from llmrelay.types import ModelResponse
from servers.openai_server import (
    content_policy_reply,
    context_length_exceeded_reply,
    error_reply,
    rate_limit_reply,
)

from .conftest import MESSAGES, MODES, STREAM, call, counts, deployment


def test_model_list_api(upstreams):
    a, b, c, _ = upstreams
    router = Router(model_list=[deployment(a), deployment(b), deployment(c, "other", model_info={"id": "c1"})])
    assert router.model_names == ["g", "other"]
    assert len(router.get_model_list()) == 3
    assert [d["litellm_params"]["api_base"] for d in router.get_deployments("g")] == [a.url + "/v1", b.url + "/v1"]
    assert router.get_deployments("missing") == []
    assert router.get_deployment("c1")["model_name"] == "other"
    assert all(d["model_info"]["id"] for d in router.get_model_list())


def test_bad_config_is_rejected(upstreams):
    a = upstreams[0]
    with pytest.raises(ValueError, match="not a model_name"):
        Router(model_list=[deployment(a)], fallbacks=[{"g": ["nope"]}])
    with pytest.raises(ValueError, match="routing_strategy"):
        Router(model_list=[deployment(a)], routing_strategy="round-robin-ish")
    with pytest.raises(ValueError, match="litellm_params"):
        Router(model_list=[{"model_name": "g"}])
    with pytest.raises(TypeError):
        Router(model_list=[deployment(a)], bogus_option=1)


@MODES
@STREAM
async def test_returns_what_the_library_returns(upstreams, mode, stream):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)])
    text, response = await call(router, mode, stream)
    assert text == "from A"
    assert isinstance(response, CustomStreamWrapper if stream else ModelResponse)
    assert response._hidden_params["model_group"] == "g"
    assert response._hidden_params["model_id"] == router.get_model_list()[0]["model_info"]["id"]
    # the library's own retries are off inside the router; the call reached the server once
    assert counts(upstreams)[0] == 1
    assert a.chat_requests[0]["model"] == "gpt-4o-mini"


@MODES
async def test_unknown_group_is_not_found(upstreams, mode):
    router = Router(model_list=[deployment(upstreams[0])])
    with pytest.raises(llmrelay.NotFoundError, match="No model group named 'gpt-5'"):
        await call(router, mode, False, model="gpt-5")


def test_deployment_id_can_be_called_directly(upstreams):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a), deployment(b, model_info={"id": "b-only"})])
    for _ in range(3):
        text, _ = router.completion(model="b-only", messages=MESSAGES).choices[0].message.content, None
        assert text == "from B"


def test_call_kwargs_reach_the_upstream_and_deployment_params_apply(upstreams):
    a = upstreams[0]
    router = Router(model_list=[deployment(a, temperature=0.1, max_tokens=5)])
    router.completion(model="g", messages=MESSAGES, temperature=0.7)
    body = a.chat_requests[0]
    assert body["temperature"] == 0.7  # the caller's value wins
    assert body["max_tokens"] == 5


@MODES
@STREAM
async def test_retryable_failure_moves_to_another_deployment(upstreams, mode, stream):
    a, b = upstreams[:2]
    # A is (almost) always picked first and always fails; the retry must go to B
    router = Router(model_list=[deployment(a, weight=1000), deployment(b, weight=1)], num_retries=1,
                    allowed_fails=100)
    a.enqueue(*[error_reply(500) for _ in range(4)])
    for _ in range(4):
        text, response = await call(router, mode, stream)
        assert text == "from B"
    assert counts(upstreams)[1] == 4
    assert counts(upstreams)[0] >= 3
    attempts = response._hidden_params.get("router_attempts")
    if attempts:
        assert attempts[0]["status_code"] == 500 and attempts[0]["api_base"] == a.url + "/v1"


@MODES
@pytest.mark.parametrize("status,exc", [(400, llmrelay.BadRequestError), (401, llmrelay.AuthenticationError),
                                        (403, llmrelay.PermissionDeniedError), (404, llmrelay.NotFoundError)])
async def test_non_retryable_errors_are_not_retried(upstreams, mode, status, exc):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a), deployment(b)], num_retries=3)
    a.enqueue(error_reply(status))
    b.enqueue(error_reply(status))
    with pytest.raises(exc) as info:
        await call(router, mode, False)
    assert sum(counts(upstreams)) == 1
    assert len(info.value.attempts) == 1
    assert info.value.attempts[0]["status_code"] == status


@MODES
async def test_retry_after_is_honoured_on_the_same_deployment(upstreams, mode):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], num_retries=1)
    a.enqueue(rate_limit_reply(retry_after=0.3))
    start = a.clock()
    text, _ = await call(router, mode, False)
    assert text == "from A"
    first, second = a.requests
    assert second.received_at - first.received_at >= 0.29  # waited for Retry-After
    assert start <= first.received_at


@MODES
@STREAM
async def test_all_fail_attempts_name_every_deployment(upstreams, mode, stream):
    a, b, c = upstreams[:3]
    router = Router(model_list=[deployment(a), deployment(b), deployment(c, "backup")], num_retries=1,
                    fallbacks=[{"g": ["backup"]}], retry_after=0.0)
    for s in (a, b):
        s.enqueue(error_reply(503))
    c.enqueue(error_reply(502), error_reply(502))
    router.retry_after = 0
    with pytest.raises(llmrelay.BadGatewayError) as info:
        await call(router, mode, stream, num_retries=1)
    attempts = info.value.attempts
    assert [x["model_group"] for x in attempts] == ["g", "g", "backup", "backup"]
    assert {x["api_base"] for x in attempts[:2]} == {a.url + "/v1", b.url + "/v1"}
    assert [x["status_code"] for x in attempts] == [503, 503, 502, 502]
    assert counts(upstreams)[:3] == [1, 1, 2]


@MODES
@STREAM
async def test_generic_fallback(upstreams, mode, stream):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a), deployment(b, "backup", model="openai/gpt-4o")],
                    fallbacks=[{"g": ["backup"]}])
    a.enqueue(error_reply(500))
    text, response = await call(router, mode, stream)
    assert text == "from B"
    assert b.chat_requests[0]["model"] == "gpt-4o"
    assert response._hidden_params["model_group"] == "backup"


@MODES
async def test_context_window_and_content_policy_use_their_own_lists(upstreams, mode):
    a, b, c, d = upstreams
    router = Router(
        model_list=[deployment(a), deployment(b, "big"), deployment(c, "lenient"), deployment(d, "generic")],
        fallbacks=[{"g": ["generic"]}],
        context_window_fallbacks=[{"g": ["big"]}],
        content_policy_fallbacks=[{"g": ["lenient"]}],
        num_retries=2,
    )
    a.enqueue(context_length_exceeded_reply())
    assert (await call(router, mode, False))[0] == "from B"
    a.enqueue(content_policy_reply())
    assert (await call(router, mode, False))[0] == "from C"
    a.enqueue(error_reply(500), error_reply(500), error_reply(500))
    assert (await call(router, mode, False))[0] == "from D"
    # a plain 400 is the caller's mistake: no fallback
    a.enqueue(error_reply(400, "bad param"))
    with pytest.raises(llmrelay.BadRequestError):
        await call(router, mode, False)
    assert counts(upstreams) == [1 + 1 + 3 + 1, 1, 1, 1]


async def test_context_window_falls_back_to_generic_list_without_specific_one(upstreams):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a), deployment(b, "generic")], fallbacks=[{"*": ["generic"]}])
    a.enqueue(context_length_exceeded_reply())
    assert (await call(router, "async", False))[0] == "from B"


@MODES
async def test_mock_response_passes_through(mode):
    router = Router(model_list=[{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o-mini", "mock_response": "mocked"}}])
    assert (await call(router, mode, False, model="m"))[0] == "mocked"
    assert (await call(router, mode, True, model="m"))[0] == "mocked"
