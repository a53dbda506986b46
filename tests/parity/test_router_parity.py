"""Router behaviour LiteLLM's router tests assert (tests/local_testing/test_router*.py,
test_router_retries.py, test_router_batch_completion.py), checked with mock_response deployments
(no network)."""

from __future__ import annotations

import asyncio

import pytest

import llmrelay as litellm
from llmrelay.router import AllowedFailsPolicy, RetryPolicy

MESSAGES = [{"role": "user", "content": "Hey, how's it going?"}]


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """Retries at once (LiteLLM's tests patch their router's sleep the same way)."""
    import llmrelay.routing.policy as policy

    monkeypatch.setattr(policy, "retry_delay", lambda exc, attempt, cap: 0.0)


def _deployment(name: str, mock: object, model: str = "gpt-4o", **extra: object) -> dict:
    return {"model_name": name, "litellm_params": {"model": model, "api_key": "x", "mock_response": mock, **extra}}


def _attempts(error: BaseException) -> int:
    return len(getattr(error, "attempts", []))


def test_retry_policy_sets_retries_per_kind_of_failure():
    router = litellm.Router(model_list=[_deployment("rl", "litellm.RateLimitError"),
                                        _deployment("cp", "Exception: content_filter_policy")],
                            num_retries=5,
                            retry_policy=RetryPolicy(RateLimitErrorRetries=2, ContentPolicyViolationErrorRetries=1))
    with pytest.raises(litellm.RateLimitError) as info:
        router.completion(model="rl", messages=MESSAGES)
    assert _attempts(info.value) == 3 and info.value.num_retries == 2
    with pytest.raises(litellm.ContentPolicyViolationError) as info:  # named in the policy: retried
        router.completion(model="cp", messages=MESSAGES)
    assert _attempts(info.value) == 2
    # a dict works too, and a group's own policy wins
    router = litellm.Router(model_list=[_deployment("rl", "litellm.RateLimitError")],
                            retry_policy={"RateLimitErrorRetries": 3},
                            model_group_retry_policy={"rl": RetryPolicy(RateLimitErrorRetries=0)})
    with pytest.raises(litellm.RateLimitError) as info:
        router.completion(model="rl", messages=MESSAGES)
    assert _attempts(info.value) == 1
    with pytest.raises(ValueError):
        RetryPolicy(NoSuchErrorRetries=1)


def test_allowed_fails_policy_cools_down_per_kind():
    router = litellm.Router(model_list=[_deployment("g", "litellm.RateLimitError"),
                                        _deployment("g", "fine", model="gpt-4o-mini")],
                            allowed_fails=0, cooldown_time=60,
                            allowed_fails_policy=AllowedFailsPolicy(RateLimitErrorAllowedFails=100))
    failing = router.get_model_list()[0]["model_info"]["id"]
    for _ in range(5):
        try:
            router.completion(model=failing, messages=MESSAGES, num_retries=0)
        except litellm.RateLimitError:
            pass
    # 5 rate limits are within the 100 the policy allows: the deployment is not cooling down
    assert router._by_id[failing].available(__import__("time").monotonic())


def test_default_litellm_params_reach_every_call():
    seen = []

    class Spy(litellm.CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            metadata = kwargs["litellm_params"].get("metadata") or {}
            seen.append((metadata.get("team"), metadata.get("env")))

    litellm.callbacks = [Spy()]
    router = litellm.Router(model_list=[_deployment("g", "hi")],
                            default_litellm_params={"metadata": {"team": "a", "env": "prod"}})
    assert router.completion(model="g", messages=MESSAGES).choices[0].message.content == "hi"
    # metadata is merged; the call's own keys win (LiteLLM lets the defaults overwrite them)
    router.completion(model="g", messages=MESSAGES, metadata={"team": "b"})
    import time

    for _ in range(50):
        if len(seen) == 2:
            break
        time.sleep(0.02)
    assert seen == [("a", "prod"), ("b", "prod")]


def test_batch_completions():
    router = litellm.Router(model_list=[_deployment("a", "from a"), _deployment("b", "from b"),
                                        _deployment("bad", "litellm.RateLimitError")])

    async def run() -> tuple:
        both = await router.abatch_completion(models=["a", "b"], messages=MESSAGES)
        nested = await router.abatch_completion(models=["a", "bad"], messages=[MESSAGES, MESSAGES])
        many = await router.abatch_completion_one_model_multiple_requests(model="a", messages=[MESSAGES] * 3)
        fastest = await router.abatch_completion_fastest_response(model="bad, b", messages=MESSAGES)
        return both, nested, many, fastest

    both, nested, many, fastest = asyncio.run(run())
    assert [r.choices[0].message.content for r in both] == ["from a", "from b"]
    assert [r.choices[0].message.content for r in nested[0]] == ["from a", "from a"]
    assert all(isinstance(r, litellm.RateLimitError) for r in nested[1])  # errors in the answers' place
    assert [r.choices[0].message.content for r in many] == ["from a"] * 3
    assert fastest.choices[0].message.content == "from b"


def test_specific_deployment_by_its_model_or_id():
    router = litellm.Router(model_list=[
        {"model_name": "g", "litellm_params": {"model": "azure/chatgpt-v-2", "api_key": "x", "api_base": "https://x",
                                               "api_version": "2024-02-01", "mock_response": "azure"},
         "model_info": {"id": "az"}},
        {"model_name": "g", "litellm_params": {"model": "gpt-4o", "api_key": "x", "mock_response": "openai"}},
    ])
    response = router.completion(model="azure/chatgpt-v-2", messages=MESSAGES, specific_deployment=True)
    assert response.choices[0].message.content == "azure" and response._hidden_params["model_id"] == "az"
    assert router.completion(model="az", messages=MESSAGES).choices[0].message.content == "azure"


def test_litellm_import_path_of_the_policies():
    import subprocess
    import sys

    code = """
import llmrelay
llmrelay.install_as_litellm()
from litellm.router import RetryPolicy as R1
from litellm.types.router import AllowedFailsPolicy as A1, RetryPolicy as R2
from llmrelay.router import AllowedFailsPolicy, RetryPolicy
assert R1 is R2 is RetryPolicy and A1 is AllowedFailsPolicy
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_gateway_config_retry_policy_reaches_the_router(tmp_path):
    """router_settings.retry_policy (a dict of RetryPolicy's fields in LiteLLM's config) is a
    Router option, not an ignored key."""
    from llmrelay.proxy.config import parse_config
    from llmrelay.proxy.models import ModelTable

    config = parse_config("model_list:\n  - model_name: g\n    litellm_params: {model: openai/gpt-4o, api_key: k}\n"
                          "router_settings:\n  retry_policy: {RateLimitErrorRetries: 2}\n"
                          "  allowed_fails_policy: {RateLimitErrorAllowedFails: 50}\n", "conf.yaml")
    assert not any("retry_policy" in w for w in config.warnings)
    router = ModelTable(config).router
    assert router.retry_policy == RetryPolicy(RateLimitErrorRetries=2)
    assert router.allowed_fails_policy.RateLimitErrorAllowedFails == 50
