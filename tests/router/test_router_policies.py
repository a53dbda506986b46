"""LiteLLM's per-error-kind Router policies: retry_policy, model_group_retry_policy and
allowed_fails_policy, against fake OpenAI upstreams on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys

import pytest

import llmrelay
from llmrelay import Router
from llmrelay.router import AllowedFailsPolicy, RetryPolicy
from servers.openai_server import content_policy_reply, error_reply

from .conftest import MODES, call, counts, deployment


@MODES
async def test_retry_policy_sets_the_count_for_its_kind(upstreams, mode):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], num_retries=0, allowed_fails=100,
                    retry_policy=RetryPolicy(InternalServerErrorRetries=2))
    a.enqueue(error_reply(500), error_reply(500))
    text, _ = await call(router, mode, False)
    assert text == "from A" and counts(upstreams)[0] == 3


@MODES
async def test_retry_policy_zero_stops_retries_num_retries_would_make(upstreams, mode):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], num_retries=3, allowed_fails=100,
                    retry_policy={"InternalServerErrorRetries": 0})
    a.enqueue(error_reply(500))
    with pytest.raises(llmrelay.InternalServerError):
        await call(router, mode, False)
    assert counts(upstreams)[0] == 1


@MODES
async def test_retry_policy_retries_a_kind_the_router_would_not(upstreams, mode):
    """A 400 is the caller's mistake and never retried by num_retries; a policy that names it
    retries it (LiteLLM's BadRequestErrorRetries)."""
    a, b = upstreams[:2]
    plain = Router(model_list=[deployment(b)], num_retries=3)
    b.enqueue(error_reply(400))
    with pytest.raises(llmrelay.BadRequestError):
        await call(plain, mode, False)
    assert counts(upstreams)[1] == 1

    router = Router(model_list=[deployment(a)], retry_policy={"BadRequestErrorRetries": 1})
    a.enqueue(error_reply(400))
    text, _ = await call(router, mode, False)
    assert text == "from A" and counts(upstreams)[0] == 2


async def test_kinds_the_policy_leaves_unset_follow_num_retries(upstreams):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], num_retries=1, allowed_fails=100,
                    retry_policy=RetryPolicy(RateLimitErrorRetries=5))
    a.enqueue(error_reply(500), error_reply(500))
    with pytest.raises(llmrelay.InternalServerError):
        await call(router, "async", False)
    assert counts(upstreams)[0] == 2


async def test_model_group_retry_policy_wins_for_its_group(upstreams):
    a, b = upstreams[:2]
    router = Router(
        model_list=[deployment(a, "g"), deployment(b, "h")], num_retries=0, allowed_fails=100,
        retry_policy={"InternalServerErrorRetries": 0},
        model_group_retry_policy={"g": {"InternalServerErrorRetries": 1}},
    )
    a.enqueue(error_reply(500))
    b.enqueue(error_reply(500))
    text, _ = await call(router, "async", False, model="g")
    assert text == "from A" and counts(upstreams)[0] == 2
    with pytest.raises(llmrelay.InternalServerError):
        await call(router, "async", False, model="h")
    assert counts(upstreams)[1] == 1


async def test_content_policy_counts_as_a_bad_request_when_unnamed(upstreams):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], retry_policy={"BadRequestErrorRetries": 1})
    a.enqueue(content_policy_reply())
    text, _ = await call(router, "async", False)
    assert text == "from A" and counts(upstreams)[0] == 2


@MODES
async def test_allowed_fails_policy_cools_down_after_its_count(upstreams, mode):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, weight=1000), deployment(b, weight=1)], num_retries=1,
                    allowed_fails=100, cooldown_time=60,
                    allowed_fails_policy=AllowedFailsPolicy(InternalServerErrorAllowedFails=0))
    a.enqueue(error_reply(500))
    for _ in range(3):
        text, _ = await call(router, mode, False)
        assert text == "from B"
    assert counts(upstreams)[:2] == [1, 3]  # A cooled down after its first 500


async def test_allowed_fails_policy_leaves_other_kinds_to_allowed_fails(upstreams):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, weight=1000), deployment(b, weight=1)], num_retries=1,
                    allowed_fails=100, cooldown_time=60,
                    allowed_fails_policy={"RateLimitErrorAllowedFails": 0})
    a.enqueue(error_reply(500))
    await call(router, "async", False)
    for _ in range(3):
        text, _ = await call(router, "async", False)
    assert counts(upstreams)[0] >= 3  # A still chosen: one 500 is within allowed_fails=100


def test_policy_fields_are_checked():
    with pytest.raises(ValueError, match="BadRequestErrorRetrys"):
        RetryPolicy(BadRequestErrorRetrys=1)
    with pytest.raises(ValueError, match="non-negative integer"):
        Router(model_list=[], retry_policy={"TimeoutErrorRetries": -1})
    with pytest.raises(ValueError, match="allowed_fails_policy"):
        Router(model_list=[], allowed_fails_policy={"TimeoutErrorRetries": 1})
    with pytest.raises(ValueError, match="model_group_retry_policy"):
        Router(model_list=[], model_group_retry_policy=["g"])


def test_policy_objects_behave_like_litellms():
    policy = RetryPolicy(TimeoutErrorRetries=2)
    assert policy.TimeoutErrorRetries == 2 and policy.RateLimitErrorRetries is None
    assert policy.model_dump(exclude_none=True) == {"TimeoutErrorRetries": 2}
    assert policy["TimeoutErrorRetries"] == 2 and policy.get("nope", 7) == 7
    assert RetryPolicy(**policy.model_dump()) == policy

    class Foreign:  # e.g. another library's pydantic model with the same fields
        def model_dump(self):
            return {"RateLimitErrorRetries": 4, "TimeoutErrorRetries": None}

    router = Router(model_list=[], retry_policy=Foreign())
    assert router.retry_policy == RetryPolicy(RateLimitErrorRetries=4)
    assert policy.count_for(llmrelay.Timeout("t", model="m", llm_provider="openai")) == 2
    assert policy.count_for(llmrelay.RateLimitError("r", model="m", llm_provider="openai")) is None


def test_litellm_import_paths():
    """LiteLLM's documented imports, once llmrelay stands in for it."""
    code = """
import llmrelay
llmrelay.install_as_litellm()
from litellm.router import RetryPolicy, AllowedFailsPolicy
from litellm.types.router import RetryPolicy as R2, AllowedFailsPolicy as A2
from litellm import Router
assert RetryPolicy is R2 is llmrelay.router.RetryPolicy and AllowedFailsPolicy is A2
router = Router(model_list=[], retry_policy=RetryPolicy(ContentPolicyViolationErrorRetries=3,
                AuthenticationErrorRetries=0, BadRequestErrorRetries=1, TimeoutErrorRetries=2,
                RateLimitErrorRetries=3),
                allowed_fails_policy=AllowedFailsPolicy(ContentPolicyViolationErrorAllowedFails=1000,
                RateLimitErrorAllowedFails=100))
print(router.retry_policy.TimeoutErrorRetries, router.allowed_fails_policy.RateLimitErrorAllowedFails)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "100"]


LITELLM_DOCS_CONFIG = """
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY

router_settings:
  num_retries: 0
  allowed_fails: 100
  retry_policy: {{
    "BadRequestErrorRetries": 3,
    "ContentPolicyViolationErrorRetries": 4,
    "InternalServerErrorRetries": 1
  }}
  allowed_fails_policy: {{
    "BadRequestErrorAllowedFails": 1000,
    "AuthenticationErrorAllowedFails": 10,
    "TimeoutErrorAllowedFails": 12,
    "RateLimitErrorAllowedFails": 10000,
    "ContentPolicyViolationErrorAllowedFails": 15,
    "InternalServerErrorAllowedFails": 20,
  }}
"""


def test_gateway_applies_litellms_documented_policies(tmp_path):
    """LiteLLM's proxy docs' router_settings (flow-style YAML, trailing comma), through the
    gateway with the openai SDK: a 500 is retried once by the policy though num_retries is 0."""
    import openai

    from proxy.harness import Gateway
    from servers.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(api_key="sk-upstream-policies") as upstream:
        path = tmp_path / "config.yaml"
        path.write_text(LITELLM_DOCS_CONFIG.format(url=upstream.url))
        with Gateway(str(path), env={"TEST_UPSTREAM_KEY": "sk-upstream-policies"}) as gw:
            assert not [line for line in gw.lines if "policy" in line]  # no "ignored" warning
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0)
            upstream.enqueue(error_reply(500))
            answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            assert answer.choices[0].message.content
            assert len(upstream.chat_requests) == 2


def test_gateway_refuses_a_misspelt_policy_at_start(tmp_path):
    from llmrelay.proxy.config import ConfigError, parse_config
    from llmrelay.proxy.models import ModelTable

    config = parse_config("model_list:\n  - model_name: g\n    litellm_params: {model: openai/x}\n"
                          "router_settings:\n  retry_policy: {RateLimitErrorRetry: 3}\n", "conf.yaml")
    with pytest.raises(ConfigError, match="RateLimitErrorRetry.*router_settings"):
        ModelTable(config)
