"""LiteLLM's /key, /team, /user and /spend routes as its e2e tests call them (tests/test_keys.py,
docs/my-website/docs/proxy/virtual_keys.md), through the real gateway on SQLite, with a fake
upstream; spend is checked against ``litellm.cost_per_token`` as LiteLLM's tests do."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

import llmrelay as litellm
from proxy.conftest import MASTER_KEY, UPSTREAM_KEY
from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer

CONFIG = """
model_list:
  - model_name: gpt-4
    litellm_params:
      model: openai/gpt-4o
      api_base: {url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
  - model_name: gpt-4-hidden
    litellm_params:
      model: openai/gpt-4o
      api_base: {url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
general_settings:
  master_key: {master}
  database_url: "sqlite:///{db}"
  proxy_batch_write_at: 0.1
"""
MESSAGES = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hello!"}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory) -> Iterator[Gateway]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as upstream:
        d = tmp_path_factory.mktemp("mgmt")
        path = d / "config.yaml"
        path.write_text(CONFIG.format(url=upstream.url, master=MASTER_KEY, db=d / "keys.db"))
        with Gateway(str(path), [], env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "LLMRELAY_DATA_DIR": str(d)}) as g:
            yield g


def as_(gw: Gateway, key: str) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def generate_key(gw: Gateway, **fields) -> dict:
    data = {"models": ["gpt-4"], "aliases": {"mistral-7b": "gpt-3.5-turbo"}, "duration": None,
            "max_budget": None, "budget_duration": None, **fields}
    r = as_(gw, MASTER_KEY).post("/key/generate", json=data)
    assert r.status_code == 200, r.text
    return r.json()


def chat(gw: Gateway, key: str):
    return openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0).chat.completions.create(
        model="gpt-4", messages=MESSAGES)


def wait_for(fn, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


def test_key_info_as_admin_as_itself_and_as_another_key(gw):
    key = generate_key(gw)["key"]
    assert as_(gw, MASTER_KEY).get(f"/key/info?key={key}").status_code == 200
    assert as_(gw, key).get(f"/key/info?key={key}").status_code == 200
    own = as_(gw, key).get("/key/info")
    assert own.status_code == 200 and own.json()["info"]["models"] == ["gpt-4"]
    random_key = generate_key(gw)["key"]
    assert as_(gw, random_key).get(f"/key/info?key={key}").status_code == 403


def test_key_update_then_call(gw):
    key = generate_key(gw, models=["gpt-3.5-turbo"])["key"]
    updated = as_(gw, MASTER_KEY).post("/key/update", json={"key": key, "models": ["gpt-4"]})
    assert updated.status_code == 200 and updated.json()["models"] == ["gpt-4"] and updated.json()["key"] == key
    assert chat(gw, key).choices[0].message.content
    deleted = as_(gw, MASTER_KEY).post("/key/delete", json={"keys": [key]})
    assert deleted.status_code == 200 and deleted.json() == {"deleted_keys": [key]}


def test_spend_logs_by_the_response_id_and_key_spend(gw):
    key = generate_key(gw)["key"]
    response = chat(gw, key)
    admin = as_(gw, MASTER_KEY)
    logs = wait_for(lambda: admin.get(f"/spend/logs?request_id={response.id}").json())
    prompt_tokens, completion_tokens = logs[0]["prompt_tokens"], logs[0]["completion_tokens"]
    assert (prompt_tokens, completion_tokens) == (response.usage.prompt_tokens, response.usage.completion_tokens)
    prompt_cost, completion_cost = litellm.cost_per_token(model="gpt-4o", prompt_tokens=prompt_tokens,
                                                          completion_tokens=completion_tokens)
    info = as_(gw, key).get(f"/key/info?key={key}").json()
    assert round(info["info"]["spend"], 8) == round(prompt_cost + completion_cost, 8) == round(logs[0]["spend"], 8)
    assert admin.get("/spend/logs?request_id=chatcmpl-no-such-answer").json() == []


def test_key_crossing_budget(gw):
    key = generate_key(gw, max_budget=0.0000001)["key"]
    chat(gw, key)
    admin = as_(gw, MASTER_KEY)
    wait_for(lambda: admin.get(f"/key/info?key={key}").json()["info"]["spend"] > 0)
    with pytest.raises(openai.BadRequestError) as err:
        chat(gw, key)
    assert err.value.status_code == 400 and err.value.body["type"] == "budget_exceeded"
    assert "Budget has been exceeded!" in str(err.value)
    assert "ExceededTokenBudget: Current spend for token:" in str(err.value)  # LiteLLM's older text


def test_team_and_user_shapes(gw):
    admin = as_(gw, MASTER_KEY)
    team = admin.post("/team/new", json={"team_alias": "my-new-team", "max_budget": 10}).json()
    assert team["team_id"] and team["team_alias"] == "my-new-team" and team["max_budget"] == 10
    user = admin.post("/user/new", json={"user_email": "a@example.com", "user_role": "internal_user",
                                         "team_id": team["team_id"]}).json()
    assert user["user_id"] and user["key"].startswith("sk-") and user["user_email"] == "a@example.com"
    key = generate_key(gw, team_id=team["team_id"], user_id=user["user_id"])
    assert key["team_id"] == team["team_id"] and key["user_id"] == user["user_id"]
    info = admin.get(f"/team/info?team_id={team['team_id']}").json()
    assert info["team_id"] == team["team_id"] and info["team_info"]["team_alias"] == "my-new-team"
    assert admin.get(f"/user/info?user_id={user['user_id']}").json()["user_id"] == user["user_id"]


def test_key_block_unblock_and_team_members(gw):
    admin = as_(gw, MASTER_KEY)
    key = generate_key(gw)["key"]
    assert admin.post("/key/block", json={"key": key}).json()["blocked"] is True
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key)
    assert admin.post("/key/unblock", json={"key": key}).json()["blocked"] is False
    assert chat(gw, key).choices
    team = admin.post("/team/new", json={"team_alias": "members-team"}).json()["team_id"]
    admin.post("/user/new", json={"user_id": "krrish", "auto_create_key": False})
    added = admin.post("/team/member_add", json={"team_id": team, "member": {"role": "user", "user_id": "krrish"}})
    assert admin.get("/user/info?user_id=krrish").json()["user_info"]["teams"] == [team]
    assert added.status_code == 200 and added.json()["members_with_roles"] == [
        {"user_id": "krrish", "user_email": None, "role": "user"}]
    admin.post("/team/member_add", json={"team_id": team, "member": [{"role": "admin", "user_id": "ishaan"}]})
    removed = admin.post("/team/member_delete", json={"team_id": team, "user_id": "krrish"}).json()
    assert [m["user_id"] for m in removed["members_with_roles"]] == ["ishaan"]
    assert not admin.get("/user/info?user_id=krrish").json()["user_info"]["teams"]
    assert admin.post("/team/member_add", json={"team_id": "no-such-team", "member": {"user_id": "x"}}).status_code == 404


def test_spend_reset_by_update_and_unique_key_alias(gw):
    """Admin scripts reset spend with /key/update {"spend": 0} (tests/test_keys.py does so for a
    user); LiteLLM refuses a second key with an alias already in use."""
    admin = as_(gw, MASTER_KEY)
    made = generate_key(gw, key_alias="parity-unique-alias")
    key = made["key"]
    response = chat(gw, key)
    wait_for(lambda: admin.get(f"/spend/logs?request_id={response.id}").json())  # the batch is written
    assert admin.get(f"/key/info?key={key}").json()["info"]["spend"] > 0
    reset = admin.post("/key/update", json={"key": key, "spend": 0})
    assert reset.status_code == 200 and reset.json()["spend"] == 0
    assert admin.get(f"/key/info?key={key}").json()["info"]["spend"] == 0
    again = admin.post("/key/generate", json={"key_alias": "parity-unique-alias"})
    assert again.status_code == 400 and "parity-unique-alias" in again.json()["error"]["message"]
    other = generate_key(gw)["key"]
    assert admin.post("/key/update", json={"key": other, "key_alias": "parity-unique-alias"}).status_code == 400
    renamed = admin.post("/key/update", json={"key_alias": "parity-unique-alias", "tpm_limit": 5})
    assert renamed.status_code == 200 and renamed.json()["tpm_limit"] == 5
    deleted = admin.post("/key/delete", json={"key_aliases": ["parity-unique-alias"]})
    assert deleted.json() == {"deleted_keys": [made["token"]]}  # LiteLLM answers an alias delete with tokens


def test_user_and_customer_lists_and_spend_log_names(gw):
    admin = as_(gw, MASTER_KEY)
    for i in range(3):
        admin.post("/user/new", json={"user_id": f"list-user-{i}", "auto_create_key": False})
    admin.post("/customer/new", json={"user_id": "list-customer"})
    page = admin.get("/user/list?page=1&page_size=2").json()
    assert len(page["users"]) == 2 and page["total"] >= 3 and page["page"] == 1 and page["page_size"] == 2
    assert page["total_pages"] >= 2 and all("user_id" in u for u in page["users"])
    assert "list-customer" in [c["user_id"] for c in admin.get("/customer/list").json()]
    key = generate_key(gw, user_id="list-user-0")["key"]
    response = chat(gw, key)
    [row] = wait_for(lambda: admin.get(f"/spend/logs?request_id={response.id}").json())
    assert row["user"] == "list-user-0" and row["request_tags"] == []


def test_litellm_call_id_header(gw):
    """x-litellm-call-id: the request's id in the spend log (and the callbacks), and
    x-litellm-response-cost its cost, read with the OpenAI SDK."""
    key = generate_key(gw)["key"]
    client = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=MESSAGES)
    call_id = raw.headers["x-litellm-call-id"]
    assert call_id == raw.headers["x-request-id"]
    [row] = wait_for(lambda: as_(gw, MASTER_KEY).get(f"/spend/logs?request_id={call_id}").json())
    assert row["spend"] > 0 and row["request_id"] == call_id
    # LiteLLM's x-litellm-response-cost: what the spend log charged for it
    assert float(raw.headers["x-litellm-response-cost"]) == row["spend"]


def test_a_key_lists_only_its_models(gw):
    """LiteLLM's /models (and /model/info) for a virtual key: only the models it may call."""
    admin = as_(gw, MASTER_KEY)
    team = admin.post("/team/new", json={"models": ["gpt-4"]}).json()["team_id"]
    for key in (generate_key(gw, models=["gpt-4"])["key"], generate_key(gw, models=[], team_id=team)["key"]):
        client = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)
        assert [m.id for m in client.models.list()] == ["gpt-4"]
        assert client.models.retrieve("gpt-4").id == "gpt-4"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("gpt-4-hidden")
        info = as_(gw, key).get("/v1/model/info").json()["data"]
        assert [d["model_name"] for d in info] == ["gpt-4"]
    everything = openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0).models.list()
    assert sorted(m.id for m in everything) == ["gpt-4", "gpt-4-hidden"]


def test_user_update_creates_a_missing_user(gw):
    """tests/test_keys.py resets the proxy budget's user with /user/update before it exists:
    LiteLLM's user update is an upsert."""
    admin = as_(gw, MASTER_KEY)
    updated = admin.post("/user/update", json={"user_id": "litellm-proxy-budget", "spend": 0})
    assert updated.status_code == 200 and updated.json()["user_id"] == "litellm-proxy-budget"
    assert admin.get("/user/info?user_id=litellm-proxy-budget").json()["user_info"]["spend"] == 0
    again = admin.post("/user/update", json={"user_id": "litellm-proxy-budget", "max_budget": 5})
    assert again.status_code == 200 and again.json()["max_budget"] == 5
    assert admin.get("/key/list?user_id=litellm-proxy-budget").json()["total_count"] == 0


def test_key_list_is_newest_first(gw):
    """LiteLLM's /key/list: ordered by created_at, newest first (``sort_order=asc``: oldest
    first); total_count / current_page / total_pages as before."""
    made = [generate_key(gw, team_id="team-order")["token"] for _ in range(3)]
    admin = as_(gw, MASTER_KEY)
    first = admin.get("/key/list", params={"team_id": "team-order", "size": 2}).json()
    assert first["keys"] == made[::-1][:2]
    assert (first["total_count"], first["current_page"], first["total_pages"]) == (3, 1, 2)
    second = admin.get("/key/list", params={"team_id": "team-order", "size": 2, "page": 2}).json()
    assert second["keys"] == [made[0]] and second["current_page"] == 2
    oldest = admin.get("/key/list", params={"team_id": "team-order", "sort_order": "asc"}).json()
    assert oldest["keys"] == made
