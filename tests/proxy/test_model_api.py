"""LiteLLM's model management API (/model/new, /model/update, /model/delete with
store_model_in_db) through the real gateway: httpx for the admin calls, the openai SDK for the
calls, a loopback OpenAI server upstream; SQLite and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from dbs import database_for
from proxy.conftest import MASTER_KEY, UPSTREAM_KEY
from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer
from timing import wait_for

MESSAGES = [{"role": "user", "content": "Hi there"}]
ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}


def config(database_url: str, store: bool = True) -> str:
    return f"""
model_list:
  - model_name: cfg-model
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:9/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      id: cfg-id
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
  database_url: "{database_url}"
  store_model_in_db: {"true" if store else "false"}
"""


def start(tmp_path_factory, database_url: str, store: bool = True) -> Gateway:
    path = tmp_path_factory.mktemp("gw") / "config.yaml"
    path.write_text(config(database_url, store))
    data_dir = tmp_path_factory.mktemp("data")
    return Gateway(str(path), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "LLMRELAY_DATA_DIR": str(data_dir)})


def entry(upstream: FakeOpenAIServer, name: str = "db-model", **info) -> dict:
    return {"model_name": name,
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": f"{upstream.url}/v1",
                               "api_key": "os.environ/TEST_UPSTREAM_KEY"},
            "model_info": info}


def client(gw: Gateway, key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


def names(gw: Gateway) -> list[str]:
    return [m.id for m in client(gw).models.list().data]


def assert_clean(text: str, upstream: FakeOpenAIServer) -> None:
    """Nothing of the upstream's key or host in an answer."""
    host = upstream.url.split("//", 1)[1]
    assert UPSTREAM_KEY not in text and host not in text and "api_base" not in text and "api_key" not in text


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def gw(tmp_path_factory) -> Iterator[Gateway]:
    with database_for("sqlite", str(tmp_path_factory.mktemp("db"))) as url, start(tmp_path_factory, url) as g:
        yield g


def test_add_list_call_update_delete(gw: Gateway, upstream: FakeOpenAIServer) -> None:
    r = httpx.post(f"{gw.url}/model/new", headers=ADMIN, json=entry(upstream, access_groups=["beta"]))
    assert r.status_code == 200, r.text
    added = r.json()
    ident = added["model_id"]
    assert added["model_name"] == "db-model" and added["model_info"]["id"] == ident
    assert added["litellm_params"] == {"model": "openai/gpt-4o-mini"}
    assert_clean(r.text, upstream)

    assert "db-model" in names(gw)
    answer = client(gw).chat.completions.create(model="db-model", messages=MESSAGES)
    assert answer.choices[0].message.content
    assert upstream.chat_requests[-1]["model"] == "gpt-4o-mini"

    info = httpx.get(f"{gw.url}/v1/model/info", headers=ADMIN)
    mine = [d for d in info.json()["data"] if d["model_name"] == "db-model"]
    assert len(mine) == 1 and mine[0]["model_info"]["id"] == ident
    assert_clean(info.text, upstream)

    # a key of the access group the stored model_info names may call it
    key = httpx.post(f"{gw.url}/key/generate", headers=ADMIN, json={"models": ["beta"]}).json()["key"]
    assert client(gw, key).chat.completions.create(model="db-model", messages=MESSAGES).choices[0].message.content
    with pytest.raises(openai.AuthenticationError):  # (LiteLLM: 401, "key not allowed to access model")
        client(gw, key).chat.completions.create(model="cfg-model", messages=MESSAGES)

    # a bad change is refused and changes nothing
    r = httpx.post(f"{gw.url}/model/update", headers=ADMIN,
                   json={"model_info": {"id": ident}, "litellm_params": {"rpm": -1}})
    assert r.status_code == 400 and "rpm must be a non-negative number" in r.json()["error"]["message"]
    r = httpx.post(f"{gw.url}/model/update", headers=ADMIN,
                   json={"model_name": "db-renamed", "model_info": {"id": ident}})
    assert r.status_code == 200, r.text
    assert r.json()["model_name"] == "db-renamed"
    assert_clean(r.text, upstream)
    assert "db-renamed" in names(gw) and "db-model" not in names(gw)
    assert client(gw).chat.completions.create(model="db-renamed", messages=MESSAGES).choices[0].message.content

    r = httpx.post(f"{gw.url}/model/delete", headers=ADMIN, json={"id": ident})
    assert r.status_code == 200 and r.json() == {"message": f"Model: {ident} deleted successfully"}
    assert "db-renamed" not in names(gw)
    with pytest.raises(openai.NotFoundError):
        client(gw).chat.completions.create(model="db-renamed", messages=MESSAGES)
    r = httpx.post(f"{gw.url}/model/delete", headers=ADMIN, json={"id": ident})
    assert r.status_code == 400 and "not found" in r.json()["error"]["message"]
    assert not any(UPSTREAM_KEY in line or upstream.url in line for line in gw.lines)


def test_bad_entries_are_400s_naming_the_problem(gw: Gateway, upstream: FakeOpenAIServer) -> None:
    bad = entry(upstream)
    del bad["litellm_params"]["model"]
    r = httpx.post(f"{gw.url}/model/new", headers=ADMIN, json=bad)
    assert r.status_code == 400 and "litellm_params.model" in r.json()["error"]["message"]
    bad = entry(upstream)
    bad["litellm_params"]["api_key"] = "os.environ/NOT_SET_ANYWHERE_42"
    r = httpx.post(f"{gw.url}/model/new", headers=ADMIN, json=bad)
    assert r.status_code == 400 and "NOT_SET_ANYWHERE_42" in r.json()["error"]["message"]
    r = httpx.post(f"{gw.url}/model/new", headers=ADMIN, json={"model_name": "x", "litellm_params": "openai/x"})
    assert r.status_code == 400 and "litellm_params" in r.json()["error"]["message"]
    assert "x" not in names(gw)


def test_config_models_are_not_changed_through_the_api(gw: Gateway, upstream: FakeOpenAIServer) -> None:
    for path, body in (("/model/delete", {"id": "cfg-id"}),
                       ("/model/update", {"model_info": {"id": "cfg-id"}, "model_name": "hijack"}),
                       ("/model/new", entry(upstream, "hijack", id="cfg-id"))):
        r = httpx.post(f"{gw.url}{path}", headers=ADMIN, json=body)
        assert r.status_code == 400 and "config file" in r.json()["error"]["message"], (path, r.text)
    assert "cfg-model" in names(gw) and "hijack" not in names(gw)


def test_a_virtual_key_is_refused(gw: Gateway, upstream: FakeOpenAIServer) -> None:
    key = httpx.post(f"{gw.url}/key/generate", headers=ADMIN, json={}).json()["key"]
    for path, body in (("/model/new", entry(upstream, "by-key")), ("/model/delete", {"id": "cfg-id"})):
        r = httpx.post(f"{gw.url}{path}", headers={"Authorization": f"Bearer {key}"}, json=body)
        assert r.status_code == 401, r.text
    assert "by-key" not in names(gw)


def test_refused_without_store_model_in_db(tmp_path_factory, upstream: FakeOpenAIServer) -> None:
    with database_for("sqlite", str(tmp_path_factory.mktemp("db"))) as url, \
            start(tmp_path_factory, url, store=False) as g:
        r = httpx.post(f"{g.url}/model/new", headers=ADMIN, json=entry(upstream))
        assert r.status_code == 500
        assert "STORE_MODEL_IN_DB='True'" in r.json()["error"]["message"]
        assert "db-model" not in names(g)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_second_gateway_on_the_database_serves_the_model(backend: str, tmp_path_factory,
                                                           upstream: FakeOpenAIServer) -> None:
    with database_for(backend, str(tmp_path_factory.mktemp("db")), "llmrelay_models") as url, \
            start(tmp_path_factory, url) as first, start(tmp_path_factory, url) as second:
        r = httpx.post(f"{first.url}/model/new", headers=ADMIN, json=entry(upstream, "shared-model"))
        assert r.status_code == 200, r.text
        ident = r.json()["model_id"]
        wait_for(lambda: "shared-model" in names(second), what="the second gateway to serve the model")
        answer = client(second).chat.completions.create(model="shared-model", messages=MESSAGES)
        assert answer.choices[0].message.content
        r = httpx.post(f"{second.url}/model/update", headers=ADMIN,
                       json={"model_info": {"id": ident}, "model_name": "shared-renamed"})
        assert r.status_code == 200, r.text
        wait_for(lambda: "shared-renamed" in names(first) and "shared-model" not in names(first),
                 what="the first gateway to follow the update")
        # a gateway started now loads it
        with start(tmp_path_factory, url) as third:
            assert "shared-renamed" in names(third)
            assert client(third).chat.completions.create(model="shared-renamed",
                                                          messages=MESSAGES).choices[0].message.content
        r = httpx.post(f"{first.url}/model/delete", headers=ADMIN, json={"id": ident})
        assert r.status_code == 200, r.text
        wait_for(lambda: "shared-renamed" not in names(second), what="the second gateway to drop the model")
