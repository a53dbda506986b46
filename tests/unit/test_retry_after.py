"""Retry-After is untrusted input: one defensive parser for the library, the router and the
gateway (issue 15, items 2 and 3)."""

from __future__ import annotations


import pytest

import llmrelay
from llmrelay import Router
from llmrelay.retry_after import MAX_SECONDS, capped, parse_retry_after, retry_after_seconds
from servers.openai_server import FakeOpenAIServer, rate_limit_reply

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT


@pytest.mark.parametrize(
    "value, expected",
    [
        ("3", 3.0), (" 2.5 ", 2.5), (7, 7.0), ("0", 0.0),
        ("inf", None), ("-inf", None), ("Infinity", None), ("nan", None), (float("nan"), None),
        (float("inf"), None), ("-5", None), (-1, None), ("1e400", None), ("soon", None), ("", None),
        (None, None), (True, None), (["3"], None), ("9" * 100, None),
        ("999999999", MAX_SECONDS),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),  # 30 s after NOW
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_SECONDS),
        ("Mon, 99 Foo 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after_seconds(value, expected):
    assert retry_after_seconds(value, now=NOW) == expected


def test_headers_prefer_retry_after_ms_and_ignore_its_garbage():
    assert parse_retry_after({"Retry-After-Ms": "1500", "Retry-After": "9"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "nan", "retry-after": "9"}) == 9.0
    assert parse_retry_after({"retry-after": "inf"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_capped():
    assert capped("999999999", 60) == 60 and capped("inf", 60) is None and capped(3, 60) == 3


@pytest.mark.parametrize("value", ["inf", "nan", "-3", "garbage"])
def test_library_retries_hostile_retry_after_without_crashing(value):
    with FakeOpenAIServer() as srv:
        srv.enqueue(rate_limit_reply(retry_after=value))
        resp = llmrelay.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                   api_base=srv.url + "/v1", api_key="sk-test", num_retries=1)
        assert resp.choices[0].message.content
    from llmrelay.main import retry_delay

    # the wait it took: plain backoff (0.5 s ± 25 %), the header ignored
    exc = llmrelay.RateLimitError("slow down", headers={"Retry-After": value})
    assert capped(exc.retry_after, 60) is None and retry_delay(exc, 0) <= 0.625


def test_library_retry_wait_is_capped():
    from llmrelay.main import retry_delay

    exc = llmrelay.RateLimitError("slow down", headers={"Retry-After": "999999999"})
    assert retry_delay(exc, 0) == 60.0 and retry_delay(exc, 0, cap=2) == 2.0


def test_library_error_exposes_a_finite_retry_after():
    with FakeOpenAIServer() as srv:
        srv.enqueue(rate_limit_reply(retry_after="inf"))
        with pytest.raises(llmrelay.RateLimitError) as info:
            llmrelay.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                api_base=srv.url + "/v1", api_key="sk-test")
        assert info.value.retry_after is None


@pytest.mark.parametrize("value, cooled", [("999999999", 2.0), ("inf", 0.0), ("-1", 0.0), ("Fri, 31 Dec 9999 23:59:59 GMT", 2.0)])
def test_router_cooldown_from_retry_after_is_capped(value, cooled):
    with FakeOpenAIServer() as srv:
        router = Router(model_list=[{"model_name": "g", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": srv.url + "/v1", "api_key": "sk-test"}}],
            allowed_fails=100, max_retry_after=2)
        srv.enqueue(rate_limit_reply(retry_after=value))
        with pytest.raises(llmrelay.RateLimitError):
            router.completion(model="g", messages=[{"role": "user", "content": "hi"}])
        state = router.deployment_state("g")[0]
        assert state["cooling_down_for"] <= cooled
        if cooled:
            assert state["cooling_down_for"] > cooled - 0.5


def test_router_rejects_a_bad_cap():
    with pytest.raises(ValueError, match="max_retry_after"):
        Router(model_list=[], max_retry_after=-1)
