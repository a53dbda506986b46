"""``GET /health`` (LiteLLM's model health check): one real call per deployment, against fake
OpenAI chat and embedding upstreams on 127.0.0.1 and a closed port."""

from __future__ import annotations

import httpx
import pytest

from proxy.conftest import closed_port
from proxy.harness import Gateway
from servers.embedding_servers import KEY as EMBED_KEY
from servers.embedding_servers import FakeEmbeddingServer
from servers.openai_server import FakeOpenAIServer

MASTER = "sk-master-health-1"
CHAT_KEY = "sk-upstream-health-chat"


@pytest.fixture(scope="module")
def servers():
    with FakeOpenAIServer(api_key=CHAT_KEY) as chat, FakeEmbeddingServer() as embed:
        yield chat, embed


@pytest.fixture(scope="module")
def gateway(servers, tmp_path_factory):
    chat, embed = servers
    down = closed_port()
    path = tmp_path_factory.mktemp("health") / "config.yaml"
    path.write_text(f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{chat.url}/v1", api_key: os.environ/T_CHAT_KEY}}
    model_info: {{id: gpt-ok}}
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:{down}/v1", api_key: os.environ/T_CHAT_KEY}}
    model_info: {{id: gpt-down, health_check_timeout: 5}}
  - model_name: small
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{embed.url}/v1", api_key: os.environ/T_EMB_KEY}}
    model_info: {{id: emb, mode: embedding}}
  - model_name: "openai/*"
    litellm_params: {{model: "openai/*", api_base: "{chat.url}/v1", api_key: os.environ/T_CHAT_KEY}}
    model_info: {{id: wild}}
  - model_name: "other/*"
    litellm_params: {{model: "openai/*", api_base: "{chat.url}/v1", api_key: os.environ/T_CHAT_KEY}}
    model_info: {{id: wild-checked, health_check_model: openai/gpt-4o}}
general_settings:
  master_key: {MASTER}
""")
    with Gateway(str(path), env={"T_CHAT_KEY": CHAT_KEY, "T_EMB_KEY": EMBED_KEY}) as gw:
        gw.down_port = down
        yield gw


def _get(gateway, query: str = "", key: str = MASTER) -> httpx.Response:
    return httpx.get(f"{gateway.url}/health{query}", headers={"authorization": f"Bearer {key}"}, timeout=30)


def test_health_checks_every_deployment(gateway, servers):
    chat, _ = servers
    before = len(chat.chat_requests)
    r = _get(gateway)
    assert r.status_code == 200
    report = r.json()
    healthy = {e["model_id"] for e in report["healthy_endpoints"]}
    unhealthy = {e["model_id"]: e for e in report["unhealthy_endpoints"]}
    assert healthy == {"gpt-ok", "emb", "wild-checked"}
    assert set(unhealthy) == {"gpt-down", "wild"}
    assert report["healthy_count"] == 3 and report["unhealthy_count"] == 2
    assert "health_check_model" in unhealthy["wild"]["error"]
    assert unhealthy["gpt-down"]["model_name"] == "gpt" and unhealthy["gpt-down"]["error"]
    sent = chat.chat_requests[before:]
    assert sorted(b["model"] for b in sent) == ["gpt-4o", "gpt-4o-mini"]
    assert all(b["max_tokens"] == 1 for b in sent)
    # no upstream host, port or key in the answer
    text = r.text
    assert chat.url not in text and str(gateway.down_port) not in text and CHAT_KEY not in text
    assert "127.0.0.1" not in text


def test_health_of_one_group_or_deployment(gateway):
    report = _get(gateway, "?model=gpt").json()
    assert {e["model_id"] for e in report["healthy_endpoints"] + report["unhealthy_endpoints"]} == {"gpt-ok", "gpt-down"}
    report = _get(gateway, "?model_id=emb").json()
    assert [e["model_id"] for e in report["healthy_endpoints"]] == ["emb"] and report["unhealthy_count"] == 0
    missing = _get(gateway, "?model=nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]


def test_health_is_for_the_master_key(gateway):
    assert _get(gateway, key="sk-wrong").status_code == 401
    made = httpx.post(gateway.url + "/key/generate", json={}, headers={"authorization": f"Bearer {MASTER}"}).json()
    r = _get(gateway, "?model_id=gpt-ok", key=made["key"])
    assert r.status_code == 403 and "master key" in r.json()["error"]["message"]
    assert httpx.post(gateway.url + "/health", headers={"authorization": f"Bearer {MASTER}"}).status_code == 405


def test_background_health_checks_answer_from_the_latest_round(servers, tmp_path):
    import time

    chat, _ = servers
    path = tmp_path / "config.yaml"
    path.write_text(f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{chat.url}/v1", api_key: os.environ/T_CHAT_KEY}}
    model_info: {{id: bg-1}}
general_settings:
  master_key: {MASTER}
  background_health_checks: true
  health_check_interval: 3600
""")
    before = len(chat.chat_requests)
    with Gateway(str(path), env={"T_CHAT_KEY": CHAT_KEY}) as gw:
        deadline = time.monotonic() + 30
        while len(chat.chat_requests) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(chat.chat_requests) == before + 1  # the round at start
        for _ in range(2):
            report = _get(gw).json()
            assert [e["model_id"] for e in report["healthy_endpoints"]] == ["bg-1"]
        assert _get(gw, "?model=nope").status_code == 404
        assert len(chat.chat_requests) == before + 1  # answered from that round, no new calls
