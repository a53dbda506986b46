"""Several real gateway processes sharing one Redis behave as one gateway.

* a deployment limited to 100 RPM gets exactly 100 successes across 3 instances hammered at
  once; a TPM limit holds within one request's tokens;
* a deployment failing behind instance A is cooled down on B and C;
* Redis stopped and restarted under load: no client request fails, shared mode comes back.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import openai
import pytest

from proxy.harness import Gateway
from servers.loopback import LoopbackServer
from servers.openai_server import DEFAULT_TEXT, error_reply
from servers.redis_server import RedisServer, unique_prefix
from timing import eventually

pytestmark = pytest.mark.slow

KEY = "sk-scaling-master"
UP_KEY = "sk-scaling-upstream-0123456789"


def config(upstream: str, bad: str, url: str, prefix: str, *, cache: bool = False, database: str = "") -> str:
    params = f'api_base: "{{base}}/v1", api_key: {UP_KEY}'
    cache_part = f"""
litellm_settings:
  cache: true
  cache_params: {{type: redis, url: "{url}", namespace: "{prefix}", redis_timeout: 2}}
  callbacks: [prometheus]
""" if cache else """
litellm_settings:
  callbacks: [prometheus]
"""
    return f"""
model_list:
  - model_name: limited
    litellm_params: {{model: openai/gpt-4o-mini, {params.format(base=upstream)}, rpm: 100}}
  - model_name: tpm-limited
    litellm_params: {{model: openai/gpt-4o-mini, {params.format(base=upstream)}, tpm: 300}}
  - model_name: open
    litellm_params: {{model: openai/gpt-4o-mini, {params.format(base=upstream)}}}
  - model_name: busy
    litellm_params: {{model: openai/gpt-4o-mini, {params.format(base=upstream)}, rpm: 1000000, max_parallel_requests: 1000}}
  - model_name: pair
    litellm_params: {{model: openai/gpt-4o-mini, {params.format(base=upstream)}}}
    model_info: {{id: good}}
  - model_name: pair
    litellm_params: {{model: openai/gpt-4o-mini, {params.format(base=bad)}}}
    model_info: {{id: bad}}
router_settings:
  redis_url: "{url}"
  redis_prefix: "{prefix}:"
  redis_timeout: 2  # a machine busy with other suites can starve a process for 0.5 s
  num_retries: 1
  allowed_fails: 1
  cooldown_time: 60
general_settings:
  master_key: {KEY}
{f'  database_url: "{database}"' if database else ""}
{cache_part}"""


@pytest.fixture(scope="module")
def bad_upstream():
    srv = LoopbackServer(lambda request: error_reply(500, "the bad deployment always fails")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def three(upstream, bad_upstream, redis_conf, tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "config.yaml"
    path.write_text(config(upstream.url, bad_upstream.url, *redis_conf,
                           database=f"sqlite:///{tmp_path_factory.mktemp('keysdb')}/llmrelay.db"))
    gateways = [Gateway(str(path)) for _ in range(3)]
    try:
        yield gateways
    finally:
        for gw in gateways:
            gw.stop()


def aclient(gw) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=20)


def seconds_into_minute(url: str) -> float:
    import redis

    client = redis.Redis.from_url(url)
    try:
        sec, usec = client.time()
    finally:
        client.close()
    return (sec % 60) + usec / 1e6


def wait_for_fresh_window(url: str, need: float = 20.0) -> None:
    """Limits count per minute of the Redis clock: start where the test fits in one."""
    into = seconds_into_minute(url)
    if into > 60 - need:
        time.sleep(60 - into + 0.3)


async def hammer(gateways, model: str, total: int, conc: int, key: str = KEY, **kw) -> tuple[list, list]:
    """``total`` requests spread over ``gateways`` with ``conc`` in flight: (successes, refusals)."""
    clients = [openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20) for gw in gateways]
    sem = asyncio.Semaphore(conc)
    ok, refused = [], []

    async def one(i: int) -> None:
        async with sem:
            try:
                resp = await clients[i % len(clients)].chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "Hi"}], **kw)
                ok.append(resp)
            except openai.RateLimitError as exc:
                refused.append(exc)

    try:
        await asyncio.gather(*(one(i) for i in range(total)))
    finally:
        for c in clients:
            await c.close()
    return ok, refused


async def test_rpm_and_tpm_are_shared_by_three_instances(three, redis_conf, upstream):
    wait_for_fresh_window(redis_conf[0])
    before = len(upstream.chat_requests)
    (ok, refused), (tok_ok, _tok_refused) = await asyncio.gather(
        hammer(three, "limited", 150, 30),
        hammer(three, "tpm-limited", 60, 12, max_tokens=10),
    )
    redis_lines = [line for gw in three for line in gw.lines if "Redis" in line]
    assert len(ok) == 100, f"{len(ok)} successes for rpm: 100 across 3 instances; {redis_lines}"
    assert len(refused) == 50
    assert all(e.status_code == 429 for e in refused)
    retry_after = float(refused[0].response.headers["retry-after"])
    assert 0 < retry_after <= 60
    per_request = tok_ok[0].usage.total_tokens
    used = sum(r.usage.total_tokens for r in tok_ok)
    assert used <= 300 + per_request, f"{used} tokens through tpm: 300 (one request is {per_request})"
    assert used >= 300 - 3 * per_request - 20, f"only {used} tokens of 300 were let through"
    assert len(upstream.chat_requests) - before == len(ok) + len(tok_ok)


async def test_a_virtual_keys_rpm_limit_is_shared(three, redis_conf):
    import httpx

    async with httpx.AsyncClient(base_url=three[0].url, headers={"Authorization": f"Bearer {KEY}"}) as admin:
        r = await admin.post("/key/generate", json={"rpm_limit": 40, "key_alias": "scaling"})
        assert r.status_code == 200, r.text
        key = r.json()["key"]
    wait_for_fresh_window(redis_conf[0])
    ok, refused = await hammer(three, "open", 70, 21, key=key)
    assert len(ok) == 40 and len(refused) == 30, (len(ok), len(refused))
    assert "rpm" in str(refused[0]) and refused[0].response.headers.get("retry-after")


async def test_a_budget_tiers_limit_is_shared_and_its_change_reaches_every_instance(three, redis_conf):
    import httpx

    async with httpx.AsyncClient(base_url=three[0].url, headers={"Authorization": f"Bearer {KEY}"}) as admin:
        assert (await admin.post("/budget/new", json={"budget_id": "scaling-tier", "rpm_limit": 1})).status_code == 200
        key = (await admin.post("/key/generate", json={"budget_id": "scaling-tier"})).json()["key"]
        wait_for_fresh_window(redis_conf[0])
        ok, refused = await hammer(three[1:], "open", 4, 1, key=key)
        assert len(ok) == 1 and len(refused) == 3, (len(ok), len(refused))
        assert (await admin.post("/budget/update", json={"budget_id": "scaling-tier", "rpm_limit": 1000})).status_code == 200

    async def served_everywhere() -> bool:
        ok, _ = await hammer(three, "open", 3, 1, key=key)
        return len(ok) == 3

    deadline = time.monotonic() + 5
    while not await served_everywhere():
        assert time.monotonic() < deadline, "the tier's change did not reach every instance"
        await asyncio.sleep(0.1)


async def test_cooldown_on_one_instance_reaches_the_others(three, bad_upstream):
    a, b, c = three
    client = aclient(a)
    try:
        deadline = time.monotonic() + 20
        while len(bad_upstream.requests) < 2:  # allowed_fails: 1 -> the 2nd failure cools it down
            assert time.monotonic() < deadline, "the bad deployment was never tried"
            resp = await client.chat.completions.create(model="pair", messages=[{"role": "user", "content": "x"}])
            assert resp.choices[0].message.content == DEFAULT_TEXT  # the retry went to the good one
    finally:
        await client.close()
    failed = len(bad_upstream.requests)
    # B and C have heard of the cooldown: their litellm_deployment_state for it is 2
    for gw in (b, c):
        await eventually(lambda gw=gw: asyncio.to_thread(deployment_state, gw, "bad"), lambda s: s == 2,
                         what="the cooldown on " + gw.url)
    ok, refused = await hammer([b, c], "pair", 40, 4)
    assert len(ok) == 40 and not refused
    assert len(bad_upstream.requests) == failed, "B or C still sent requests to the cooled-down deployment"


def deployment_state(gw, model_id: str) -> float | None:
    """``litellm_deployment_state`` of one deployment on ``gw``'s /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(gw.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "litellm_deployment_state" and s.labels.get("model_id") == model_id:
                return s.value
    return None


def readiness(gw) -> dict:
    with urllib.request.urlopen(gw.url + "/health/readiness", timeout=5) as r:
        return json.loads(r.read())


async def test_redis_stopped_and_restarted_under_load(upstream, bad_upstream, tmp_path):
    with RedisServer() as private:
        prefix = unique_prefix("restart")
        path = tmp_path / "config.yaml"
        path.write_text(config(upstream.url, bad_upstream.url, private.url, prefix, cache=True))
        with Gateway(str(path)) as g1, Gateway(str(path)) as g2:
            clients = [aclient(g1), aclient(g2)]
            failures: list[BaseException] = []
            done = 0
            stop = asyncio.Event()

            async def worker(i: int) -> None:
                nonlocal done
                n = 0
                while not stop.is_set():
                    n += 1
                    model = ("busy", "open")[n % 2]
                    try:
                        kw = {"stream": True} if n % 3 == 0 else {}
                        resp = await clients[i % 2].chat.completions.create(
                            model=model, messages=[{"role": "user", "content": f"w{i}-{n % 5}"}], **kw)
                        if kw:
                            text = "".join([c.choices[0].delta.content or "" async for c in resp if c.choices])
                        else:
                            text = resp.choices[0].message.content
                        assert text == DEFAULT_TEXT
                        done += 1
                    except Exception as exc:  # noqa: BLE001 - collected and reported
                        failures.append(exc)

            workers = [asyncio.create_task(worker(i)) for i in range(6)]
            await asyncio.sleep(1.5)
            private.stop()
            await asyncio.sleep(2.0)
            during = done
            private.start()
            await asyncio.sleep(2.0)
            stop.set()
            await asyncio.gather(*workers)
            for c in clients:
                await c.close()
            assert not failures, f"{len(failures)} requests failed, first: {failures[0]!r}"
            assert done > during > 0

            async def recovered(gw) -> bool:
                # a link probes Redis again when it is next used (after a pause that doubles, up
                # to 5 s, with each failed probe): use each gateway's links until they are back
                probe = aclient(gw)
                try:
                    await probe.chat.completions.create(model="open", messages=[{"role": "user", "content": "probe"}])
                finally:
                    await probe.close()
                return readiness(gw).get("redis") == "connected" and any("reachable again" in line for line in gw.lines)

            deadline = time.monotonic() + 30
            while not all([await recovered(g) for g in (g1, g2)]):
                assert time.monotonic() < deadline, "shared mode did not come back"
                await asyncio.sleep(0.2)
            where = f'redis="127.0.0.1:{private.port}/0"'
            for gw in (g1, g2):
                down = [line for line in gw.lines if "is unreachable" in line]
                back = [line for line in gw.lines if "reachable again" in line]
                assert len(down) == 1 and len(back) == 1, gw.lines[-20:]
                with urllib.request.urlopen(gw.url + "/metrics", timeout=5) as r:
                    metrics = r.read().decode()
                assert f"llmrelay_redis_up{{{where}}} 1.0" in metrics
                assert f'llmrelay_redis_state_changes_total{{{where},state="down"}} 1.0' in metrics
                assert f'llmrelay_redis_state_changes_total{{{where},state="up"}} 1.0' in metrics
            # the cache works across instances again
            c1, c2 = aclient(g1), aclient(g2)
            try:
                raw = await c1.chat.completions.with_raw_response.create(
                    model="open", messages=[{"role": "user", "content": "after-restart"}])
                assert raw.headers["x-llmrelay-cache"] == "miss"
                raw = await c2.chat.completions.with_raw_response.create(
                    model="open", messages=[{"role": "user", "content": "after-restart"}])
                assert raw.headers["x-llmrelay-cache"] == "hit"
            finally:
                await c1.close()
                await c2.close()
