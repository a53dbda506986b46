"""Virtual keys, budgets, rate limits and spend through the real gateway and the openai SDK,
on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import hashlib
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from dbs import HOW_TO, database_for, postgres_schema, postgres_url
from proxy.conftest import MASTER_KEY, UPSTREAM_KEY
from proxy.harness import Gateway
from servers.loopback import Gate
from servers.openai_server import FakeOpenAIServer, completion_reply, dropped_stream, slow_stream_reply
from timing import DEADLINE, in_one_period, wait_for

IN_PRICE = 0.001
OUT_PRICE = 0.002
MESSAGES = [{"role": "user", "content": "Hi there"}]


def keys_config(upstream_url: str, database_url: str) -> str:
    def model(name: str, extra: str = "") -> str:
        return f"""
  - model_name: {name}
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream_url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
      input_cost_per_token: {IN_PRICE}
      output_cost_per_token: {OUT_PRICE}{extra}"""

    return f"""
model_list:{model("gpt-4o-mini")}{model("gpt-4o")}{model("beta-model", '''
    model_info:
      access_groups: [beta]''')}
litellm_settings:
  num_retries: 0
router_settings:
  num_retries: 0
  disable_cooldowns: true
general_settings:
  master_key: {MASTER_KEY}
  database_url: "{database_url}"
  proxy_batch_write_at: 0.1
"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    with database_for(request.param, str(tmp_path_factory.mktemp("db")), "llmrelay_keys") as url:
        yield url


def start_gateway(upstream_url: str, database: str, tmp_path_factory, args: list[str] = (),
                  extra: str = "") -> Gateway:
    path = tmp_path_factory.mktemp("gw") / "config.yaml"
    path.write_text(keys_config(upstream_url, database) + extra)
    data_dir = tmp_path_factory.mktemp("data")
    return Gateway(str(path), list(args), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "LLMRELAY_DATA_DIR": str(data_dir)})


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def gw(upstream, database, tmp_path_factory) -> Iterator[Gateway]:
    with start_gateway(upstream.url, database, tmp_path_factory) as g:
        yield g


class Admin:
    """The management API with the master key."""

    def __init__(self, url: str, key: str = MASTER_KEY) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10)

    def post(self, path: str, expect: int = 200, **body) -> dict:
        r = self.http.post(path, json=body)
        assert r.status_code == expect, r.text
        return r.json()

    def get(self, path: str, expect: int = 200, **params) -> dict:
        r = self.http.get(path, params=params)
        assert r.status_code == expect, r.text
        return r.json()

    def key(self, **fields) -> str:
        return self.post("/key/generate", **fields)["key"]


@pytest.fixture(scope="module")
def admin(gw) -> Admin:
    return Admin(gw.url)


def client(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def chat(gw: Gateway, key: str, model: str = "gpt-4o-mini", **kw):
    return client(gw, key).chat.completions.create(model=model, messages=MESSAGES, **kw)


def served(gw: Gateway, key: str, **kw) -> bool:
    """Whether a chat is served (False: refused for its budget)."""
    return budget_refusal(gw, key, **kw) is None


def budget_refusal(gw: Gateway, key: str, **kw) -> openai.BadRequestError | None:
    """A chat's refusal for a budget (None: it was served)."""
    try:
        chat(gw, key, **kw)
        return None
    except openai.BadRequestError as exc:
        assert exc.body["type"] == "budget_exceeded", exc.body
        return exc


def refused_for_budget(gw: Gateway, key: str, timeout: float = DEADLINE, **kw) -> openai.BadRequestError:
    """The refusal of a key that has just spent a budget. A request is charged when it ends,
    just after its response went out, so the client's very next request may still be admitted
    (by one, as in LiteLLM; more on a loaded machine): chat until refused, within ``timeout``."""
    return wait_for(lambda: budget_refusal(gw, key, **kw), timeout, what="the budget's refusal")


def open_stream(gw: Gateway, key: str, frames: int):
    """A raw streamed request (a socket the test can close mid-stream), read up to ``frames`` frames."""
    import socket

    import orjson

    host, port = gw.url.removeprefix("http://").split(":")
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True})
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while data.count(b"data: ") < frames:
        data += sock.recv(65536)
    return sock


def cost_of(row: dict) -> float:
    return row["prompt_tokens"] * IN_PRICE + row["completion_tokens"] * OUT_PRICE


# ====================================================================== lifecycle
def test_key_lifecycle(gw, admin):
    made = admin.post("/key/generate", key_alias="app-1", models=["gpt-4o-mini"], metadata={"team": "x"},
                      max_budget=10, duration="1h")
    key = made["key"]
    assert key.startswith("sk-") and made["token"] == hashlib.sha256(key.encode()).hexdigest()
    assert made["key_name"] == f"sk-...{key[-4:]}" and made["expires"] and made["models"] == ["gpt-4o-mini"]
    answer = chat(gw, key)
    assert answer.choices[0].message.content
    info = admin.get("/key/info", key=key)
    assert info["key"] == made["token"] and info["info"]["key_alias"] == "app-1"
    assert "key" not in info["info"]  # shown once
    assert made["token"] in admin.get("/key/list")["keys"]
    admin.post("/key/update", key=key, models=["gpt-4o"])
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key)
    assert chat(gw, key, model="gpt-4o").choices
    new = admin.post("/key/regenerate", key=key)["key"]
    assert new != key
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key, model="gpt-4o")
    assert chat(gw, new, model="gpt-4o").choices
    assert admin.post("/key/delete", keys=[new])["deleted_keys"] == [new]  # as sent, like LiteLLM
    with pytest.raises(openai.AuthenticationError):
        chat(gw, new, model="gpt-4o")
    admin.get("/key/info", expect=404, key=new)


def test_expired_and_blocked_keys(gw, admin):
    key = admin.key()
    admin.post("/key/update", key=key, blocked=True)
    with pytest.raises(openai.AuthenticationError, match="blocked"):
        chat(gw, key)
    admin.post("/key/update", key=key, blocked=False)
    assert chat(gw, key).choices
    short = admin.key(duration="1s")
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError, match="Expired"):
        chat(gw, short)


# ====================================================================== model access
def test_model_allow_lists(gw, admin):
    exact = admin.key(models=["gpt-4o-mini"])
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, exact, model="gpt-4o")
    assert err.value.status_code == 401
    assert err.value.body["type"] == "key_model_access_denied" and err.value.body["param"] == "model"
    wildcard = admin.key(models=["gpt-4o*"])
    assert chat(gw, wildcard, model="gpt-4o").choices and chat(gw, wildcard).choices
    with pytest.raises(openai.AuthenticationError):
        chat(gw, wildcard, model="beta-model")
    group = admin.key(models=["beta"])
    assert chat(gw, group, model="beta-model").choices
    with pytest.raises(openai.AuthenticationError):
        chat(gw, group)
    team = admin.post("/team/new", team_alias="t-models", models=["gpt-4o"])["team_id"]
    member = admin.key(team_id=team)
    assert chat(gw, member, model="gpt-4o").choices
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, member)
    assert err.value.body["type"] == "team_model_access_denied"


def test_each_key_keeps_its_own_allow_list_in_a_team(gw, admin):
    # A key's allow-list answer is cached per key: never on its team's, user's or end user's
    # row, where a key of the same team with a wider list would open the model to this one.
    team = admin.post("/team/new", team_alias="t-shared", models=["gpt-4o", "gpt-4o-mini"])["team_id"]
    wide = admin.key(team_id=team, models=["gpt-4o", "gpt-4o-mini"])
    narrow = admin.key(team_id=team, models=["gpt-4o-mini"])
    admin.post("/user/new", user_id="u-shared")
    wide_user = admin.key(user_id="u-shared", models=["gpt-4o"])
    narrow_user = admin.key(user_id="u-shared", models=["gpt-4o-mini"])
    for ok, refused in ((wide, narrow), (wide_user, narrow_user)):
        assert chat(gw, ok, model="gpt-4o").choices
        assert client(gw, ok).chat.completions.create(model="gpt-4o", messages=MESSAGES, user="end-1").choices
        for user in (None, "end-1"):
            with pytest.raises(openai.AuthenticationError) as err:
                client(gw, refused).chat.completions.create(
                    model="gpt-4o", messages=MESSAGES, **({"user": user} if user else {}))
            assert err.value.body["type"] == "key_model_access_denied"


# ====================================================================== limits
def test_rpm_limit_is_hit_at_its_number(gw, admin):
    key = admin.key(rpm_limit=3)
    raw = client(gw, key).chat.completions.with_raw_response
    remaining = [raw.create(model="gpt-4o-mini", messages=MESSAGES).headers["x-ratelimit-remaining-requests"]
                 for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw, key)
    wait = int(err.value.response.headers["retry-after"])
    assert 1 <= wait <= 60
    assert err.value.body["message"] == f"Rate limit reached: key rpm limit (3/min). Retry after {wait}s."


def test_rpm_limit_under_concurrency(gw, admin):
    key = admin.key(rpm_limit=5)

    def one(_):
        try:
            chat(gw, key)
            return 200
        except openai.RateLimitError:
            return 429

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, range(12)))
    assert results.count(200) == 5 and results.count(429) == 7


def test_parallel_limit(gw, admin, upstream):
    key = admin.key(max_parallel_requests=2)
    gate = threading.Event()
    for _ in range(2):  # answers the upstream holds back until the gate opens
        held = completion_reply()
        held.body = [Gate(gate), *held.body]
        upstream.enqueue(held)

    def one(_):
        try:
            chat(gw, key)
            return 200
        except openai.RateLimitError as exc:
            return int(exc.response.headers["retry-after"])

    before = len(upstream.chat_requests)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        try:
            held_two = [pool.submit(one, i) for i in range(2)]
            wait_for(lambda: len(upstream.chat_requests) - before == 2, what="two requests in flight")
            # both slots taken until the gate opens: the next three are refused
            assert [one(i) for i in range(3)] == [1, 1, 1]
        finally:
            gate.set()
        assert [f.result() for f in held_two] == [200, 200]
    assert chat(gw, key).choices  # slots are given back


def test_tpm_limit(gw, admin):
    key = admin.key(tpm_limit=20)
    raw = client(gw, key).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-ratelimit-limit-tokens"] == "20"
    used = raw.parse().usage.total_tokens
    assert 0 < used < 20
    calls = 1
    while True:
        try:
            chat(gw, key)
            calls += 1
        except openai.RateLimitError as exc:
            assert "tpm" in exc.message
            break
        assert calls < 20
    assert calls == -(-20 // used)  # allowed while the tokens used so far are under the limit


def test_team_rpm_limit_is_shared_by_its_keys(gw, admin):
    team = admin.post("/team/new", rpm_limit=2)["team_id"]
    a, b = admin.key(team_id=team), admin.key(team_id=team)
    chat(gw, a)
    chat(gw, b)
    with pytest.raises(openai.RateLimitError, match="team"):
        chat(gw, a)


# ====================================================================== budgets
def test_budget_exceeded_and_reset(gw, admin):
    def spend(period: float) -> str:  # within the budget's period
        key = admin.key(max_budget=0.0001, budget_duration=f"{period:g}s")
        raw = client(gw, key).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        assert raw.headers["x-litellm-key-spend"] == "0.0" and raw.headers["x-litellm-key-max-budget"] == "0.0001"
        assert "Budget has been exceeded" in refused_for_budget(gw, key, timeout=period).message
        return key

    key = in_one_period(spend)
    wait_for(lambda: served(gw, key), timeout=60, what="a new period")
    wait_for(lambda: admin.get("/key/info", key=key)["info"]["spend"] > 0, what="spend written")


def test_team_user_and_end_user_budgets(gw, admin):
    team = admin.post("/team/new", max_budget=0.0001)["team_id"]
    key = admin.key(team_id=team)
    chat(gw, key)
    assert "Team=" in refused_for_budget(gw, key).message
    user = admin.post("/user/new", user_id="u-budget", max_budget=0.0001)
    chat(gw, user["key"])
    assert "User=u-budget" in refused_for_budget(gw, user["key"]).message
    admin.post("/customer/new", user_id="end-user-1", max_budget=0.0001)
    free = admin.key()
    chat(gw, free, user="end-user-1")
    assert "End User=end-user-1" in refused_for_budget(gw, free, user="end-user-1").message
    assert chat(gw, free, user="someone-else").choices


# ====================================================================== spend
def test_spend_is_the_sum_of_request_costs(gw, admin, upstream):
    key = admin.key(key_alias="spender")
    token = hashlib.sha256(key.encode()).hexdigest()
    sdk = client(gw, key)
    plain = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    expected = plain.usage.prompt_tokens * IN_PRICE + plain.usage.completion_tokens * OUT_PRICE
    chunks = list(sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                              stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    expected += usage.prompt_tokens * IN_PRICE + usage.completion_tokens * OUT_PRICE
    assert [c for c in sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)]
    # an upstream that fails mid-stream: charged for what was generated
    upstream.enqueue(dropped_stream(after_chunks=3))
    with pytest.raises(Exception):
        list(sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    # a client that disconnects mid-stream
    upstream.enqueue(slow_stream_reply(0.2))
    open_stream(gw, key, frames=2).close()

    rows = wait_for(lambda: (r := admin.get("/spend/logs", api_key=key)) and len(r) == 5 and r, what="5 spend rows")
    by_status = sorted(r["status"] for r in rows)
    assert by_status == ["client_disconnected", "failure", "success", "success", "success"]
    for row in rows:
        assert row["api_key"] == token and row["model_group"] == "gpt-4o-mini"
        assert row["spend"] == pytest.approx(cost_of(row))
        assert row["completion_tokens"] > 0, row  # cut streams are charged for what was generated
    assert sum(r["spend"] for r in rows if r["metadata"]["stream"] is False) == pytest.approx(
        plain.usage.prompt_tokens * IN_PRICE + plain.usage.completion_tokens * OUT_PRICE)
    total = sum(r["spend"] for r in rows)
    assert total >= expected
    info = wait_for(lambda: (i := admin.get("/key/info", key=key)["info"]) and i["spend"] == pytest.approx(total) and i,
                    what="key spend")
    assert info["spend"] == pytest.approx(total)
    report = admin.get("/global/spend/report", group_by="key", api_key=key)
    assert report["results"] == [{"group": token, "spend": pytest.approx(total), "requests": 5,
                                  "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
                                  "completion_tokens": sum(r["completion_tokens"] for r in rows),
                                  "total_tokens": sum(r["total_tokens"] for r in rows)}]
    days = admin.get("/global/spend/report", group_by="day")["results"]
    assert days and all(len(d["group"]) == 10 for d in days)


@pytest.fixture(scope="module")
def slow_writer(upstream, database, tmp_path_factory) -> Iterator[Gateway]:
    """A gateway whose spend writer runs every 3 s: an admin's change made right after a request
    always finds that request's cost still queued."""
    path = tmp_path_factory.mktemp("gw") / "config.yaml"
    path.write_text(keys_config(upstream.url, database).replace("proxy_batch_write_at: 0.1", "proxy_batch_write_at: 3"))
    env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "LLMRELAY_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    with Gateway(str(path), [], env=env) as g:
        yield g


def _cost(response) -> float:
    return cost_of({"prompt_tokens": response.usage.prompt_tokens, "completion_tokens": response.usage.completion_tokens})


def test_a_spend_reset_drops_the_spend_still_queued(slow_writer):
    """``/key/update {"spend": 0}`` while the key's last costs still wait for the spend writer:
    they are from before the reset, so they are not added to the spend set (their spend-log rows
    are still written)."""
    g = slow_writer
    admin = Admin(g.url)
    key = admin.key(max_budget=0.0001, key_alias="to-reset")
    chat(g, key)
    before = 1
    while served(g, key):  # (a request is charged as it ends: the next one may be admitted)
        before += 1
    assert admin.get("/key/info", key=key)["info"]["spend"] > 0.0001
    assert admin.post("/key/update", key=key, spend=0)["spend"] == 0
    assert admin.get("/key/info", key=key)["info"]["spend"] == 0
    after = chat(g, key)  # served again
    rows = wait_for(lambda: (r := admin.get("/spend/logs", api_key=key)) and len(r) >= before + 1 and r,
                    what="the spend rows")
    assert len(rows) == before + 1  # every row is written, from before the reset or not
    assert admin.get("/key/info", key=key)["info"]["spend"] == pytest.approx(_cost(after))
    assert not served(g, key)


def test_a_regenerated_key_keeps_the_spend_still_queued(slow_writer):
    """A key regenerated while its last request's cost waits for the spend writer: that cost is
    charged to the key's row under its new token (it was lost: written to the old token)."""
    g = slow_writer
    admin = Admin(g.url)
    key = admin.key(key_alias="to-regenerate")
    spent = _cost(chat(g, key))
    new = admin.post("/key/regenerate", key=key)["key"]
    wait_for(lambda: len(admin.get("/spend/logs", api_key=key)) == 1, what="the old key's spend row")
    assert wait_for(lambda: (s := admin.get("/key/info", key=new)["info"]["spend"]) > 0 and s,
                    what="the spend written") == pytest.approx(spent)


# ====================================================================== security
def test_management_needs_the_master_key(gw, admin):
    key = admin.key()
    other = admin.key()
    as_key = Admin(gw.url, key)
    for path in ("/key/generate", "/key/update", "/key/delete", "/team/new", "/user/new", "/customer/new"):
        as_key.post(path, expect=401)
    for path in ("/key/list", "/team/list", "/spend/logs", "/global/spend/report"):
        as_key.get(path, expect=401)
    assert as_key.get("/key/info")["key"] == hashlib.sha256(key.encode()).hexdigest()
    assert as_key.get("/key/info", key=key)["info"]["spend"] == 0
    as_key.get("/key/info", expect=403, key=other)  # LiteLLM's status for another key's info
    Admin(gw.url, "sk-wrong").get("/key/info", expect=401)
    r = httpx.post(gw.url + "/key/generate", json={})
    assert r.status_code == 401


def test_no_key_or_hash_in_any_log_line(gw, admin):
    key = admin.key(key_alias="secret-check")
    chat(gw, key)
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key + "x")
    admin.post("/key/delete", keys=[key])
    record = gw.wait_log(lambda r: r.get("key_alias") == "secret-check")  # the alias names the key
    assert record["cost"] == pytest.approx(cost_of({"prompt_tokens": record["prompt_tokens"],
                                                    "completion_tokens": record["completion_tokens"]}))
    time.sleep(0.3)
    text = "\n".join(gw.lines)
    for secret in (key, hashlib.sha256(key.encode()).hexdigest(), key + "x",
                   hashlib.sha256((key + "x").encode()).hexdigest(), MASTER_KEY):
        assert secret not in text


# ====================================================================== several gateways, a dying database
#: A key cache TTL far beyond any test's deadline: a change that reaches a process in time was
#: brought by the database's change feed, not by a cached row's periodic re-read.
NO_TTL = "  user_api_key_cache_ttl: 3600\n"


def test_two_gateways_on_one_database(gw, admin, upstream, database, tmp_path_factory):
    with start_gateway(upstream.url, database, tmp_path_factory, extra=NO_TTL) as second:
        key = admin.key(models=["gpt-4o-mini"])
        assert chat(second, key).choices  # created on one, used on the other
        admin.post("/key/update", key=key, models=["gpt-4o"])
        wait_for(lambda: _refused(second, key, "gpt-4o-mini"), what="update seen by the other gateway")
        chat(gw, key, model="gpt-4o")
        chat(second, key, model="gpt-4o")
        token = hashlib.sha256(key.encode()).hexdigest()
        # (requests on the second gateway before it saw the update were served and charged too)
        rows = wait_for(lambda: (r := admin.get("/spend/logs", api_key=key))
                        and sum(x["model_group"] == "gpt-4o" for x in r) == 2 and r, what="spend rows of both")
        assert {r["model_group"] for r in rows} == {"gpt-4o-mini", "gpt-4o"}
        info = wait_for(lambda: (i := Admin(second.url).get("/key/info", key=key)["info"])
                        and i["spend"] == pytest.approx(sum(r["spend"] for r in admin.get("/spend/logs", api_key=key)))
                        and i, what="summed spend")
        assert info["token"] == token
        admin.post("/key/delete", keys=[key])
        wait_for(lambda: _refused(second, key, "gpt-4o"), what="delete seen by the other gateway")


def _refused(g: Gateway, key: str, model: str) -> bool:
    try:
        chat(g, key, model=model)
    except openai.AuthenticationError:
        return True
    return False


def test_requests_keep_flowing_when_the_database_dies(upstream, tmp_path_factory):
    from urllib.parse import urlsplit

    from tcp_proxy import CuttableProxy

    url = postgres_url()
    if url is None:
        pytest.skip(HOW_TO)
    parts = urlsplit(url)
    proxy = CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    via_proxy = url.replace(parts.netloc, f"{parts.username + '@' if parts.username else ''}127.0.0.1:{proxy.port}")
    try:
        with postgres_schema(url, "llmrelay_dbkill") as schema_url:
            schema_via_proxy = schema_url.replace(url, via_proxy)
            with start_gateway(upstream.url, schema_via_proxy, tmp_path_factory) as g:
                admin = Admin(g.url)
                key = admin.key(max_budget=100)
                chat(g, key)  # now cached
                wait_for(lambda: len(admin.get("/spend/logs", api_key=key)) == 1, what="first row")
                # The database stops answering: a request that waited on it would wait until the
                # client gives up (DEADLINE), so these complete only if none of them touches it.
                proxy.hang()
                patient = openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0, timeout=DEADLINE)
                master = openai.OpenAI(base_url=g.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=DEADLINE)
                for _ in range(5):
                    assert patient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
                    assert master.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
                proxy.cut()  # and now it is gone
                wait_for(lambda: any("KEY DATABASE UNAVAILABLE" in line for line in g.lines), what="a loud log line")
                admin.get("/key/info", expect=503, key=key)
                proxy.restore()
                rows = wait_for(lambda: (r := _try_logs(admin, key)) and len(r) == 6 and r, timeout=20,
                                what="spend written after the database returned")
                total = sum(r["spend"] for r in rows)
                assert total > 0
                info = wait_for(lambda: (i := admin.get("/key/info", key=key)["info"]) and
                                i["spend"] == pytest.approx(total) and i, what="key spend caught up")
                assert info["spend"] == pytest.approx(total)
                assert len(admin.get("/spend/logs")) == 11  # the master key's requests too
    finally:
        proxy.close()


def _try_logs(admin: Admin, key: str):
    r = admin.http.get("/spend/logs", params={"api_key": key})
    return r.json() if r.status_code == 200 else None


def test_management_shapes_and_validation(gw, admin):
    admin.post("/key/generate", expect=400, budget_duration="1year")
    admin.post("/key/generate", expect=400, rpm_limit=-1)
    admin.post("/key/generate", expect=400, models="gpt-4o")
    admin.post("/key/generate", expect=400, key="not-a-key")
    custom = admin.post("/key/generate", key="sk-my-custom-key-1", key_alias="custom")
    assert custom["key"] == "sk-my-custom-key-1"
    admin.post("/key/generate", expect=400, key="sk-my-custom-key-1")
    team = admin.post("/team/new", team_id="team-shapes", team_alias="shapes", max_budget=5, budget_duration="30d")
    assert team["team_id"] == "team-shapes" and team["budget_reset_at"]
    admin.post("/team/new", expect=400, team_id="team-shapes")
    k1 = admin.post("/key/generate", team_id="team-shapes")["token"]
    info = admin.get("/team/info", team_id="team-shapes")
    assert info["team_info"]["team_alias"] == "shapes" and [k["token"] for k in info["keys"]] == [k1]
    assert admin.post("/team/update", team_id="team-shapes", rpm_limit=7)["rpm_limit"] == 7
    assert "team-shapes" in [t["team_id"] for t in admin.get("/team/list")]
    user = admin.post("/user/new", user_id="u-shapes", user_email="a@b.c", team_id="team-shapes")
    assert user["key"].startswith("sk-")
    uinfo = admin.get("/user/info", user_id="u-shapes")
    assert uinfo["user_info"]["teams"] == ["team-shapes"] and len(uinfo["keys"]) == 1
    assert uinfo["teams"][0]["team_id"] == "team-shapes"
    page = admin.get("/key/list", team_id="team-shapes", size=1, return_full_object="true")
    assert page["total_count"] == 2 and page["total_pages"] == 2  # + the user's key
    assert page["keys"][0]["token"] != k1  # newest first, as LiteLLM's
    assert admin.get("/key/list", team_id="team-shapes", size=1, page=2)["keys"] == [k1]
    assert admin.post("/key/delete", key_aliases=["custom"])["deleted_keys"] == [custom["token"]]
    assert admin.post("/team/delete", team_ids=["team-shapes"])["deleted"] == ["team-shapes"]
    admin.get("/team/info", expect=404, team_id="team-shapes")
    assert admin.post("/customer/new", user_id="c-shapes", alias="C")["alias"] == "C"
    assert admin.get("/customer/info", end_user_id="c-shapes")["user_id"] == "c-shapes"
    admin.get("/nope", expect=404)
    admin.get("/key/generate", expect=405)


def test_keys_on_the_anthropic_messages_api(gw, admin):
    key = admin.key(models=["gpt-4o-mini"], key_alias="anthropic-client")
    body = {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}
    ok = httpx.post(gw.url + "/v1/messages", json=body, headers={"x-api-key": key, "anthropic-version": "2023-06-01"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["type"] == "message"
    refused = httpx.post(gw.url + "/v1/messages", json={**body, "model": "gpt-4o"},
                         headers={"x-api-key": key, "anthropic-version": "2023-06-01"})
    assert refused.status_code == 401
    assert refused.json()["type"] == "error" and "not allowed" in refused.json()["error"]["message"]
    rows = wait_for(lambda: admin.get("/spend/logs", api_key=key), what="spend row")
    assert len(rows) == 1 and rows[0]["spend"] == pytest.approx(cost_of(rows[0])) and rows[0]["spend"] > 0


def test_workers_share_keys_and_both_see_a_delete(upstream, database, tmp_path_factory):
    with start_gateway(upstream.url, database, tmp_path_factory, ["--workers", "2"], extra=NO_TTL) as g:
        admin = Admin(g.url)
        key = admin.key()
        for _ in range(6):  # spread over both workers (each caches the key)
            assert chat(g, key).choices
        admin.post("/key/delete", keys=[key])
        wait_for(lambda: all(_refused(g, key, "gpt-4o-mini") for _ in range(6)),
                 what="both workers refusing the deleted key")


def test_a_disconnect_still_closes_the_upstream_at_once(gw, admin, upstream):
    from servers.openai_server import hanging_stream

    key = admin.key()
    upstream.enqueue(hanging_stream(after_chunks=3))
    before = len(upstream.requests)
    sock = open_stream(gw, key, frames=3)  # role and both content chunks reached the client
    request = wait_for(lambda: len(upstream.requests) > before and upstream.requests[before], what="upstream call")
    sock.close()
    upstream.assert_closed_by_peer(request.connection_id, DEADLINE)  # a hanging stream: closed only because the client left
    row = wait_for(lambda: admin.get("/spend/logs", api_key=key), what="spend row")[0]
    assert row["status"] == "client_disconnected" and row["completion_tokens"] > 0


def test_sqlite_in_the_data_directory_by_default(upstream, tmp_path):
    config = tmp_path / "config.yaml"
    # no database_url; spend written only at (graceful) shutdown
    config.write_text(keys_config(upstream.url, "").replace('  database_url: ""\n', "")
                      .replace("proxy_batch_write_at: 0.1", "proxy_batch_write_at: 600"))
    data_dir = tmp_path / "data"
    with Gateway(str(config), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "LLMRELAY_DATA_DIR": str(data_dir)}) as g:
        assert not (data_dir / "llmrelay.db").exists()  # nothing until keys are used
        assert chat(g, MASTER_KEY).choices
        with pytest.raises(openai.AuthenticationError):
            chat(g, "sk-unknown-key-000")
        key = Admin(g.url).key()
        assert (data_dir / "llmrelay.db").exists()
        assert chat(g, key).choices
    with Gateway(str(config), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "LLMRELAY_DATA_DIR": str(data_dir)}) as g:
        # the file is found again at start, and the first gateway's queued row was flushed at shutdown
        assert len(Admin(g.url).get("/spend/logs", api_key=key)) == 1
        assert chat(g, key).choices
