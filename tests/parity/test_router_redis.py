"""LiteLLM's ``Router(redis_host=..., routing_strategy=...)`` used from sync and async code in
one process (as LiteLLM's router tests do), against a fake upstream and the real Redis."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from servers.redis_server import SKIP_REASON, TEST_DB, redis_url

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    import llmrelay as litellm

    url, host, port, db, strategy = sys.argv[1:]
    router = litellm.Router(
        model_list=[{"model_name": "gpt-3.5-turbo",
                     "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": url + "/v1",
                                        "api_key": "sk-x", "rpm": 100, "tpm": 100000}}],
        routing_strategy=strategy, redis_host=host, redis_port=int(port), redis_db=int(db),
    )
    messages = [{"role": "user", "content": "hey"}]
    print(router.completion(model="gpt-3.5-turbo", messages=messages).choices[0].message.content)
    for _ in range(2):  # each asyncio.run() ends the loop the shared state's tasks run on
        answer = asyncio.run(router.acompletion(model="gpt-3.5-turbo", messages=messages))
        print(answer.choices[0].message.content)
    print("finished")
""")


@pytest.mark.parametrize("strategy", ["usage-based-routing", "usage-based-routing-v2", "least-busy",
                                      "simple-shuffle"])
def test_sync_then_async_calls_with_redis_end(upstream, strategy):
    """``asyncio.run(router.acompletion(...))`` returns: the shared-state listener honours the
    cancellation at loop shutdown (it used to hang there, swallowed by redis-py's get_message)."""
    url = redis_url()
    if url is None:
        pytest.skip(SKIP_REASON)
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    done = subprocess.run([sys.executable, "-c", SCRIPT, upstream.url, host, port, str(TEST_DB), strategy],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "finished"


@pytest.mark.parametrize("shared", [False, True])
def test_cache_responses_caches_router_calls(upstream, shared):
    """``Router(cache_responses=True)`` (LiteLLM's docs: router caching): a Redis cache on the
    Router's Redis when it has one, else a local one; the second call is the stored answer."""
    import llmrelay as litellm
    from servers.redis_server import unique_prefix

    options: dict = {"cache_responses": True, "cache_kwargs": {"namespace": unique_prefix("rc")}}
    if shared:
        url = redis_url()
        if url is None:
            pytest.skip(SKIP_REASON)
        host, port = url.removeprefix("redis://").split("/")[0].split(":")
        options.update(redis_host=host, redis_port=int(port), redis_db=TEST_DB)
        options["cache_kwargs"]["redis_timeout"] = 5
    router = litellm.Router(model_list=[{"model_name": "gpt-3.5-turbo", "litellm_params": {
        "model": "openai/gpt-4o-mini", "api_base": upstream.url + "/v1", "api_key": "sk-x"}}], **options)
    assert litellm.cache is not None and litellm.cache.type == ("redis" if shared else "local")
    messages = [{"role": "user", "content": "cache me through the router"}]
    first = router.completion(model="gpt-3.5-turbo", messages=messages)
    second = router.completion(model="gpt-3.5-turbo", messages=messages)
    assert len(upstream.chat_requests) == 1
    assert second._hidden_params["cache_hit"] is True and second.id == first.id


def test_cost_based_routing_picks_the_cheapest_deployment(upstreams):
    """LiteLLM's ``routing_strategy="cost-based-routing"``: the lowest price per token (the
    deployment's own prices, else the table's; unpriced ones last)."""
    import llmrelay as litellm

    def entry(server, model, **prices):
        return {"model_name": "g", "litellm_params": {"model": model, "api_base": server.url + "/v1",
                                                      "api_key": "sk-x", **prices}}

    a, b, c, _ = upstreams
    router = litellm.Router(model_list=[
        entry(a, "openai/gpt-4o"),                      # table prices: dearer
        entry(b, "openai/gpt-4o-mini"),                 # table prices: cheapest
        entry(c, "openai/house-model-without-price"),   # unpriced: last
    ], routing_strategy="cost-based-routing")
    for _ in range(3):
        answer = router.completion(model="g", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "from B"
    cheap_own = litellm.Router(model_list=[entry(a, "openai/gpt-4o", input_cost_per_token=0, output_cost_per_token=0),
                                           entry(b, "openai/gpt-4o-mini")], routing_strategy="cost-based-routing")
    assert cheap_own.completion(model="g", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content == "from A"
