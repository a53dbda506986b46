"""The gateway's response cache on a real Redis, through the official openai SDK, with two
gateway processes sharing it (a miss on one is a hit on the other)."""

from __future__ import annotations

import json
import time

import openai
import pytest

from proxy.conftest import MASTER_KEY, UPSTREAM_KEY
from proxy.harness import Gateway
from servers.openai_server import DEFAULT_TEXT, FakeOpenAIServer, dropped_stream
from servers.redis_server import SKIP_REASON, delete_matching, redis_url, unique_prefix
from timing import DEADLINE, in_one_period, wait_for


def cache_config(upstream_url: str, url: str, namespace: str) -> str:
    return f"""
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{upstream_url}/v1", api_key: os.environ/TEST_UPSTREAM_KEY}}
  - model_name: other
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{upstream_url}/v1", api_key: os.environ/TEST_UPSTREAM_KEY}}
litellm_settings:
  cache: true
  cache_params: {{type: redis, url: "{url}", namespace: "{namespace}", ttl: 600}}
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture(scope="module")
def redis_conf():
    url = redis_url()
    if url is None:
        pytest.skip(SKIP_REASON)
    namespace = unique_prefix("gw")
    yield url, namespace
    delete_matching(url, f"llmrelay:cache:{namespace}:*")


@pytest.fixture(scope="module")
def upstream():
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def gateways(upstream, redis_conf, tmp_path_factory):
    path = tmp_path_factory.mktemp("cachegw") / "config.yaml"
    path.write_text(cache_config(upstream.url, *redis_conf))
    env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY}
    with Gateway(str(path), env=env) as a, Gateway(str(path), env=env) as b:
        yield a, b


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=10)


def ask(gw, content: str, **kw):
    """(response object, headers) of a non-streamed call."""
    raw = client(gw).chat.completions.with_raw_response.create(
        model=kw.pop("model", "gpt-4o-mini"), messages=[{"role": "user", "content": content}], **kw)
    return raw.parse(), raw.headers


def ask_stream(gw, content: str, **kw):
    raw = client(gw).chat.completions.with_raw_response.create(
        model=kw.pop("model", "gpt-4o-mini"), messages=[{"role": "user", "content": content}], stream=True, **kw)
    return list(raw.parse()), raw.headers


def text_of(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def upstream_count(upstream, content: str) -> int:
    return sum(1 for r in upstream.chat_requests if r["messages"][0]["content"] == content)


def eventually_hit(gw, content: str, stream: bool = False):
    """Stream stores land just after the stream ends: poll for the hit (the caller asserts it)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = ask_stream(gw, content) if stream else ask(gw, content)
        if result[1].get("x-llmrelay-cache") == "hit" or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def test_non_stream_miss_then_hit_on_another_instance(gateways, upstream):
    a, b = gateways
    first, h1 = ask(a, "q-nonstream")
    assert h1["x-llmrelay-cache"] == "miss" and "x-litellm-cache-key" not in h1
    second, h2 = ask(b, "q-nonstream")
    assert h2["x-llmrelay-cache"] == "hit"
    assert len(h2["x-litellm-cache-key"]) >= 64
    assert float(h1["x-litellm-response-cost"]) > 0 and h2["x-litellm-response-cost"] == "0.0"  # LiteLLM's
    assert second.choices[0].message.content == DEFAULT_TEXT == first.choices[0].message.content
    assert second.model == "gpt-4o-mini"
    assert second.usage.total_tokens == first.usage.total_tokens
    assert second.id == first.id and second.created == first.created  # the stored answer, as LiteLLM
    assert upstream_count(upstream, "q-nonstream") == 1
    record = b.wait_log(lambda r: r.get("cache_hit") is True)
    assert record["status"] == 200 and record["cost"] == 0  # a hit costs nothing


def test_stream_hit_is_a_proper_stream(gateways, upstream):
    a, b = gateways
    ask(a, "q-stream")
    chunks, headers = ask_stream(b, "q-stream", stream_options={"include_usage": True})
    assert headers["x-llmrelay-cache"] == "hit"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    assert text_of(chunks) == DEFAULT_TEXT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1 and all(c.model == "gpt-4o-mini" for c in chunks)
    assert upstream_count(upstream, "q-stream") == 1


def test_streamed_miss_is_stored_after_it_completes(gateways, upstream):
    a, b = gateways
    chunks, headers = ask_stream(a, "q-streamed-miss")
    assert headers["x-llmrelay-cache"] == "miss" and text_of(chunks) == DEFAULT_TEXT
    resp, h = eventually_hit(b, "q-streamed-miss")
    assert h["x-llmrelay-cache"] == "hit" and resp.choices[0].message.content == DEFAULT_TEXT
    assert resp.choices[0].finish_reason == "stop"
    assert upstream_count(upstream, "q-streamed-miss") == 1


def test_a_partial_stream_is_never_cached(gateways, upstream):
    a, _ = gateways
    upstream.enqueue(dropped_stream(after_chunks=3))
    raw = client(a).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "q-partial"}], stream=True)
    with pytest.raises(openai.APIError):
        list(raw.parse())  # the gateway's error frame after the first chunks
    time.sleep(0.3)
    _, h = ask(a, "q-partial")
    assert h["x-llmrelay-cache"] == "miss"
    assert upstream_count(upstream, "q-partial") == 2


def test_client_controls_body_and_header(gateways, upstream):
    a, b = gateways
    ask(a, "q-controls")
    _, h = ask(b, "q-controls", extra_body={"cache": {"no-cache": True}})
    assert h["x-llmrelay-cache"] == "miss"
    _, h = ask(b, "q-controls", extra_headers={"Cache-Control": "no-cache"})
    assert h["x-llmrelay-cache"] == "miss"
    assert upstream_count(upstream, "q-controls") == 3
    ask(a, "q-nostore", extra_body={"cache": {"no-store": True}})
    ask(a, "q-nostore", extra_headers={"Cache-Control": "no-store"})
    _, h = ask(b, "q-nostore")
    assert h["x-llmrelay-cache"] == "miss"
    assert upstream_count(upstream, "q-nostore") == 3
    _, h = ask(b, "q-nostore")
    assert h["x-llmrelay-cache"] == "hit"
    time.sleep(1.1)
    _, h = ask(b, "q-nostore", extra_headers={"Cache-Control": "max-age=1"})
    assert h["x-llmrelay-cache"] == "miss"


def test_ttl_expiry(gateways, upstream):
    a, b = gateways

    def store(ttl: float) -> str:  # and hit, within the entry's ttl
        content = f"q-ttl-{ttl:g}"
        ask(a, content, extra_body={"cache": {"ttl": int(ttl)}})
        assert ask(b, content)[1]["x-llmrelay-cache"] == "hit"
        return content

    content = in_one_period(store, (1, 4, 16))
    wait_for(lambda: ask(b, content)[1]["x-llmrelay-cache"] == "miss", what="the entry to expire")
    assert upstream_count(upstream, content) == 2


def test_key_is_per_model_group_and_params(gateways, upstream):
    a, b = gateways
    ask(a, "q-key", temperature=0.1, user="u1")
    assert ask(b, "q-key", temperature=0.1, user="u2")[1]["x-llmrelay-cache"] == "hit"
    assert ask(b, "q-key", temperature=0.5)[1]["x-llmrelay-cache"] == "miss"
    assert ask(b, "q-key", temperature=0.1, model="other")[1]["x-llmrelay-cache"] == "miss"


def test_bad_cache_object_is_a_400(gateways):
    a, _ = gateways
    with pytest.raises(openai.BadRequestError, match="cache"):
        ask(a, "q-bad", extra_body={"cache": "yes please"})


def test_hits_carry_the_stored_id_and_the_requested_model_name(gateways, upstream):
    """Group ``other`` is served by an upstream model of another name: every hit says ``other``,
    and carries the stored answer's id and time (as LiteLLM), one id for all of a stream's chunks."""
    a, b = gateways
    first, _ = ask(a, "q-ids", model="other")
    for gw in (a, b, b):
        hit, h = ask(gw, "q-ids", model="other")
        assert h["x-llmrelay-cache"] == "hit" and hit.model == "other"
        assert hit.id == first.id and hit.created == first.created
    for gw in (a, b):
        chunks, h = ask_stream(gw, "q-ids", model="other")
        assert h["x-llmrelay-cache"] == "hit"
        assert {c.id for c in chunks} == {first.id} and {c.created for c in chunks} == {first.created}
        assert all(c.model == "other" for c in chunks)
    assert upstream_count(upstream, "q-ids") == 1


def test_stream_hit_without_include_usage_has_no_usage_chunk(gateways, upstream):
    a, b = gateways
    ask(a, "q-no-usage")
    chunks, headers = ask_stream(b, "q-no-usage")
    assert headers["x-llmrelay-cache"] == "hit" and text_of(chunks) == DEFAULT_TEXT
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    record = b.wait_log(lambda r: r.get("cache_hit") is True and r.get("stream") is True
                        and r.get("chunks") == len(chunks))
    assert record["status"] == 200 and record["cost"] == 0 and record["completion_tokens"] > 0


CALLBACK = '''
import json, os
from llmrelay.integrations.custom_logger import CustomLogger


class Recorder(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        with open(os.environ["CALLBACK_LOG"], "a") as f:
            f.write(json.dumps({"cache_hit": kwargs.get("cache_hit"), "cost": kwargs.get("response_cost"),
                                "id": response_obj.id, "model": response_obj.model,
                                "text": response_obj.choices[0].message.content,
                                "stream": kwargs.get("stream")}) + "\\n")


recorder = Recorder()
'''


def test_hits_served_as_bytes_still_reach_the_callbacks(upstream, redis_conf, tmp_path):
    """A success callback (no hook that rewrites answers): hits are still served as bytes, and
    the callback hears of each with ``cache_hit``, no cost and the id the client got."""
    (tmp_path / "recording.py").write_text(CALLBACK)
    log = tmp_path / "events.jsonl"
    url, namespace = redis_conf
    path = tmp_path / "config.yaml"
    path.write_text(cache_config(upstream.url, url, namespace + "-cb").replace(
        "litellm_settings:\n", "litellm_settings:\n  callbacks: [recording.recorder]\n"))
    with Gateway(str(path), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "CALLBACK_LOG": str(log)}) as gw:
        first, _ = ask(gw, "q-callbacks")
        second, h2 = ask(gw, "q-callbacks")
        chunks, h3 = ask_stream(gw, "q-callbacks")
        assert h2["x-llmrelay-cache"] == h3["x-llmrelay-cache"] == "hit"
        deadline = time.monotonic() + DEADLINE
        while len(log.read_text().splitlines() if log.exists() else []) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    events = [json.loads(x) for x in log.read_text().splitlines()]
    assert [e["cache_hit"] for e in events] == [False, True, True]
    assert events[1]["cost"] == 0 and events[2]["cost"] == 0
    assert [e["id"] for e in events] == [first.id, second.id, chunks[0].id]
    assert all(e["model"] == "gpt-4o-mini" and e["text"] == DEFAULT_TEXT for e in events[1:])
    assert events[2]["stream"] is True


def test_hits_served_as_bytes_in_the_spend_log(upstream, redis_conf, tmp_path):
    """With a database: a hit's spend-log row is a success costing 0 with the answer's id
    (``metadata.response_id``, as for any answer), streamed or not."""
    import httpx

    url, namespace = redis_conf
    path = tmp_path / "config.yaml"
    path.write_text(cache_config(upstream.url, url, namespace + "-spend")
                    + f'  database_url: "sqlite:///{tmp_path}/llmrelay.db"\n  proxy_batch_write_at: 0.1\n')
    with Gateway(str(path), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        first, _ = ask(gw, "q-spend")
        _, h = ask(gw, "q-spend")
        chunks, hs = ask_stream(gw, "q-spend")
        assert h["x-llmrelay-cache"] == hs["x-llmrelay-cache"] == "hit"
        deadline = time.monotonic() + DEADLINE
        while True:
            rows = httpx.get(gw.url + "/spend/logs", headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
            if len(rows) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert len(rows) == 3, rows
    assert all(r["status"] == "success" and r["metadata"]["response_id"] == first.id for r in rows)
    hits = [r for r in rows if r["spend"] == 0]
    assert len(hits) == 2 and {r["metadata"]["stream"] for r in hits} == {False, True}
    assert all(r["completion_tokens"] > 0 for r in hits)
