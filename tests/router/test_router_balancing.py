"""Load balancing, rpm/tpm limits, cooldowns and recovery, non-stream timeouts."""

from __future__ import annotations

import asyncio

import pytest

import llmrelay
from llmrelay import Router
from servers.openai_server import error_reply, rate_limit_reply, slow_headers_reply

from .conftest import MESSAGES, MODES, call, counts, deployment


def served_by(router, n, **kwargs):
    """Run n sync calls; the text of each ("from A"...)."""
    return [router.completion(model="g", messages=MESSAGES, **kwargs).choices[0].message.content for _ in range(n)]


def test_simple_shuffle_weights(upstreams):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, weight=1), deployment(b, weight=3)])
    served_by(router, 200)
    na, nb = counts(upstreams)[:2]
    assert na + nb == 200
    assert 20 <= na <= 80  # expected 50 (binomial sd ≈ 6)


def test_simple_shuffle_uses_rpm_when_no_weight(upstreams):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, rpm=100_000), deployment(b, rpm=900_000)])
    served_by(router, 200)
    assert 2 <= counts(upstreams)[0] <= 45  # expected 20


def test_simple_shuffle_uniform_spreads(upstreams):
    router = Router(model_list=[deployment(s) for s in upstreams[:3]])
    served_by(router, 150)
    assert all(20 <= n <= 80 for n in counts(upstreams)[:3])


@MODES
async def test_least_busy_prefers_idle_deployments(upstreams, mode):
    a, b, c = upstreams[:3]
    router = Router(model_list=[deployment(s) for s in (a, b, c)], routing_strategy="least-busy")
    # three streams held open (first chunk read, rest not): one per deployment
    streams = [(await call_open(router, mode)) for _ in range(3)]
    assert counts(upstreams)[:3] == [1, 1, 1]
    assert [s["in_flight"] for s in router.deployment_state()] == [1, 1, 1]
    # B's stream ends; the next call must go to B
    ids = {s._hidden_params["model_id"]: s for s in streams}
    b_id = router.get_model_list()[1]["model_info"]["id"]
    await drain(ids[b_id], mode)
    text, _ = await call(router, mode, False)
    assert text == "from B"
    for s in streams:
        await drain(s, mode)
    assert [s["in_flight"] for s in router.deployment_state()] == [0, 0, 0]


async def call_open(router, mode):
    if mode == "sync":
        return router.completion(model="g", messages=MESSAGES, stream=True)
    return await router.acompletion(model="g", messages=MESSAGES, stream=True)


async def drain(stream, mode):
    if mode == "sync":
        for _ in stream:
            pass
    else:
        async for _ in stream:
            pass


@MODES
async def test_latency_based_routing_moves_to_the_fast_deployment(upstreams, mode):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a), deployment(b)], routing_strategy="latency-based-routing")
    a.enqueue(*[slow_headers_reply(0.25, stream=False) for _ in range(3)])
    # both get measured first (unmeasured counts as fastest), then B wins
    for _ in range(2):
        await call(router, mode, False)
    assert counts(upstreams)[:2] == [1, 1]
    texts = [(await call(router, mode, False))[0] for _ in range(8)]
    assert texts == ["from B"] * 8


@MODES
async def test_latency_based_routing_uses_time_to_first_token_for_streams(upstreams, mode):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a), deployment(b)], routing_strategy="latency-based-routing")
    a.enqueue(slow_headers_reply(0.25))
    for _ in range(2):
        await call(router, mode, True)
    texts = [(await call(router, mode, True))[0] for _ in range(6)]
    assert texts == ["from B"] * 6
    ttft = {s["id"]: s["ttft"] for s in router.deployment_state()}
    a_id = router.get_model_list()[0]["model_info"]["id"]
    assert ttft[a_id] >= 0.2


def test_usage_based_routing_balances_tokens(upstreams):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, tpm=100_000), deployment(b, tpm=100_000)],
                    routing_strategy="usage-based-routing")
    served_by(router, 20)
    na, nb = counts(upstreams)[:2]
    assert abs(na - nb) <= 2
    assert all(s["tpm_used"] > 0 for s in router.deployment_state())


@MODES
async def test_usage_based_counts_stream_tokens(upstreams, mode):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, tpm=100_000), deployment(b, tpm=100_000)],
                    routing_strategy="usage-based-routing")
    for _ in range(6):
        await call(router, mode, True)
    assert counts(upstreams)[:2] == [3, 3]
    assert all(s["tpm_used"] > 0 for s in router.deployment_state())


@MODES
async def test_rpm_limit_skips_deployment_then_fails_with_rate_limit(upstreams, mode):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, rpm=2, weight=1000), deployment(b, rpm=3, weight=1)])
    texts = [(await call(router, mode, False))[0] for _ in range(5)]
    assert texts.count("from A") == 2 and texts.count("from B") == 3
    with pytest.raises(llmrelay.RateLimitError, match="limits") as info:
        await call(router, mode, False)
    assert info.value.retry_after is not None and info.value.retry_after > 0
    assert counts(upstreams)[:2] == [2, 3]


def test_max_parallel_requests_waits_when_allowed(upstreams):
    a = upstreams[0]
    router = Router(model_list=[deployment(a, max_parallel_requests=1)], rate_limit_wait=5)
    held = router.completion(model="g", messages=MESSAGES, stream=True)
    next(held)

    import threading

    threading.Timer(0.3, held.close).start()
    text = router.completion(model="g", messages=MESSAGES).choices[0].message.content
    assert text == "from A"
    assert len(a.chat_requests) == 2
    no_wait = Router(model_list=[deployment(a, max_parallel_requests=1)])
    held = no_wait.completion(model="g", messages=MESSAGES, stream=True)
    next(held)
    with pytest.raises(llmrelay.RateLimitError):
        no_wait.completion(model="g", messages=MESSAGES)
    held.close()


@MODES
async def test_cooldown_after_allowed_fails_and_recovery(upstreams, mode):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, weight=10_000), deployment(b, weight=1)],
                    allowed_fails=1, cooldown_time=1.5, num_retries=1)
    a.enqueue(error_reply(500), error_reply(500))
    for _ in range(2):  # A fails (retried on B) twice: more than allowed_fails → cooldown
        assert (await call(router, mode, False))[0] == "from B"
    state = {s["id"]: s for s in router.deployment_state()}
    a_id = router.get_model_list()[0]["model_info"]["id"]
    assert state[a_id]["cooling_down_for"] > 0
    assert state[a_id]["cooldown_reason"] == "InternalServerError"
    for _ in range(4):
        assert (await call(router, mode, False))[0] == "from B"
    assert counts(upstreams)[0] == 2
    await asyncio.sleep(1.7)  # back by itself
    assert (await call(router, mode, False))[0] == "from A"


@MODES
async def test_429_retry_after_cools_down_for_that_long(upstreams, mode):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, weight=10_000), deployment(b, weight=1)],
                    allowed_fails=100, num_retries=1)
    a.enqueue(rate_limit_reply(retry_after=1.5))
    assert (await call(router, mode, False))[0] == "from B"  # retried on B at once
    for _ in range(3):
        assert (await call(router, mode, False))[0] == "from B"
    assert counts(upstreams)[0] == 1
    await asyncio.sleep(1.7)
    assert (await call(router, mode, False))[0] == "from A"


@MODES
async def test_all_cooling_down_falls_back(upstreams, mode):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a), deployment(b, "backup")], fallbacks=[{"g": ["backup"]}],
                    allowed_fails=0, cooldown_time=30)
    a.enqueue(error_reply(503))
    assert (await call(router, mode, False))[0] == "from B"
    # A is cooling down: straight to the fallback without touching A
    assert (await call(router, mode, False))[0] == "from B"
    assert counts(upstreams)[:2] == [1, 2]


@MODES
async def test_all_cooling_down_without_fallback_raises_rate_limit(upstreams, mode):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], allowed_fails=0, cooldown_time=30)
    a.enqueue(error_reply(503))
    with pytest.raises(llmrelay.ServiceUnavailableError):
        await call(router, mode, False)
    with pytest.raises(llmrelay.RateLimitError, match="cooling down"):
        await call(router, mode, False)
    assert counts(upstreams)[0] == 1
    router.reset_cooldowns()
    assert (await call(router, mode, False))[0] == "from A"


@MODES
async def test_non_stream_timeout_is_a_retryable_failure(upstreams, mode):
    a, b = upstreams[:2]
    router = Router(model_list=[deployment(a, weight=10_000), deployment(b, weight=1)], timeout=0.5,
                    num_retries=1, allowed_fails=100)
    a.enqueue(slow_headers_reply(30, stream=False))
    text, response = await call(router, mode, False)
    assert text == "from B"
    attempt = response._hidden_params["router_attempts"][0]
    assert attempt["error"] == "Timeout"  # (A would have answered after 30 s: B's answer is the timeout's)


@MODES
async def test_per_call_timeout_overrides_router(upstreams, mode):
    a = upstreams[0]
    router = Router(model_list=[deployment(a)], timeout=60)
    a.enqueue(slow_headers_reply(30, stream=False))
    with pytest.raises(llmrelay.Timeout):
        await call(router, mode, False, timeout=0.4)


def test_router_is_thread_safe_for_in_flight_counts(upstreams):
    from concurrent.futures import ThreadPoolExecutor

    router = Router(model_list=[deployment(s) for s in upstreams[:2]], routing_strategy="least-busy")
    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(lambda _: router.completion(model="g", messages=MESSAGES).choices[0].message.content,
                              range(40)))
    assert len(texts) == 40
    assert [s["in_flight"] for s in router.deployment_state()] == [0, 0]
    assert sum(s["rpm_used"] for s in router.deployment_state()) == 40
