"""Realistic LiteLLM configs (tests/proxy/configs/) run by the real gateway against a fake upstream.

Each file is what people actually deploy: invented sections, keys of LiteLLM features llmrelay
does not have, router settings under litellm_settings, a provider that does not exist. The
gateway must start, say what it ignores (one line each, with file, line and key), serve the
rest, and never send LiteLLM's own ``litellm_params`` upstream.
"""

from __future__ import annotations

import re
from pathlib import Path

import openai
import pytest

from proxy.conftest import closed_port
from proxy.harness import Gateway, run_cli
from servers.openai_server import FakeOpenAIServer, reasoning_stream

CONFIGS = Path(__file__).parent / "configs"
UPSTREAM_KEY = "sk-upstream-configs-0123456789"
MASTER = "sk-gw-master-configs"

#: litellm_params of homelab.yaml that llmrelay consumes: none may reach the upstream's body.
CONSUMED = ("ssl_verify", "cooldown_time", "tags", "order", "input_cost_per_token", "output_cost_per_token",
            "max_parallel_requests", "stream_timeout", "organization", "region_name", "use_in_pass_through",
            "headers", "litellm_credential_name", "merge_reasoning_content_in_choices", "rpm", "api_key",
            "api_base")


def env(upstream: FakeOpenAIServer) -> dict[str, str]:
    return {
        "UPSTREAM_BASE": upstream.url + "/v1",
        "UPSTREAM_KEY": UPSTREAM_KEY,
        "DEAD_BASE": f"http://127.0.0.1:{closed_port()}/v1",
        "GW_MASTER_KEY": MASTER,
    }


@pytest.fixture(scope="module")
def upstream():
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def homelab(upstream):
    with Gateway(str(CONFIGS / "homelab.yaml"), env=env(upstream)) as gw:
        yield gw


def client(gw: Gateway, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def warnings_of(gw: Gateway) -> list[str]:
    return [line.split("warning: ", 1)[1] for line in gw.lines if "warning: " in line]


def test_homelab_starts_and_names_every_ignored_key(homelab):
    warnings = warnings_of(homelab)
    path = str(CONFIGS / "homelab.yaml")
    expected = {
        "logging": "unknown top-level section",
        "health_check": "unknown top-level section",
        "litellm_settings.success_callback": "'langfuse' needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY",
        "litellm_settings.cache_params": "REDIS_HOST, which is not set; the response cache is off",
        "litellm_settings.drop_param": "did you mean 'drop_params'?",
        "general_settings.database_url": "DATABASE_URL_NOT_SET is not set; virtual keys and spend use the SQLite",
        "general_settings.alerting": "does not implement",
        "router_settings.redis_host": "REDIS_HOST, which is not set; shared state through Redis is off",
        "litellm_params.litellm_credential_name": "'default_openai' names no credential_list entry",
        "model 'mystery'": "skipped",
    }
    for key, words in expected.items():
        found = [w for w in warnings if f": {key}" in w]
        assert found, (key, warnings)
        assert words in found[0], found[0]
        assert re.match(re.escape(path) + r", line \d+: ", found[0]), found[0]
    skipped = next(w for w in warnings if "'mystery'" in w)
    assert "nosuchprovider" in skipped and "the others are served" in skipped


def test_homelab_serves_the_rest(homelab):
    names = [m.id for m in client(homelab).models.list().data]
    assert names == ["gpt-4o", "thinker", "dead"]


def test_consumed_params_never_reach_the_upstream(homelab, upstream):
    upstream.requests.clear()
    reply = client(homelab).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    request = upstream.requests[-1]
    body = request.json()
    for key in CONSUMED:
        assert key not in body, (key, body)
    assert body["top_k"] == 5  # an unknown-to-llmrelay provider parameter is forwarded, as LiteLLM does
    assert body["model"] == "gpt-4o"
    assert request.headers.get("x-team") == "relay"
    assert request.headers.get("openai-organization") == "org-homelab"


def test_fallbacks_under_litellm_settings_are_honoured(homelab, upstream):
    upstream.requests.clear()
    reply = client(homelab).chat.completions.create(model="dead", messages=[{"role": "user", "content": "hi"}])
    assert reply.model == "dead" and reply.choices[0].message.content
    assert upstream.requests[-1].json()["model"] == "gpt-4o"


def test_merge_reasoning_content_in_choices(homelab, upstream):
    upstream.enqueue(reasoning_stream("Think first.", "Answer."))
    stream = client(homelab).chat.completions.create(
        model="thinker", messages=[{"role": "user", "content": "hi"}], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "<think>Think first.</think>Answer."
    assert "merge_reasoning_content_in_choices" not in upstream.requests[-1].json()


def test_strict_refuses_exactly_the_warnings(upstream):
    status, err = run_cli(["--config", str(CONFIGS / "homelab.yaml"), "--strict", "--port", "0"], env=env(upstream))
    assert status == 2 and "Traceback" not in err
    warned = [line for line in err.splitlines() if "warning: " in line]
    assert len(warned) >= 10
    assert "strict mode" in err.splitlines()[-1]


def test_check_config_prints_findings(upstream):
    import subprocess
    import sys

    from proxy.harness import gateway_env

    proc = subprocess.run([sys.executable, "-m", "llmrelay", "check-config", str(CONFIGS / "homelab.yaml")],
                          env=gateway_env(env(upstream)), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any("litellm_settings.drop_param" in line and "did you mean" in line for line in lines)
    assert "3 deployments served" in lines[-1]
    proc = subprocess.run([sys.executable, "-m", "llmrelay", "check-config", "/nonexistent.yaml"],
                          env=gateway_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "no such file" in proc.stdout


def test_model_info_shows_no_host_or_key(homelab):
    import httpx

    for path in ("/v1/model/info", "/model/info"):
        r = httpx.get(homelab.url + path, headers={"Authorization": f"Bearer {MASTER}"})
        assert r.status_code == 200
        data = r.json()["data"]
        assert [d["model_name"] for d in data] == ["gpt-4o", "thinker", "dead"]
        first = data[0]
        assert first["model_info"]["id"] == "gpt4o-main" and first["model_info"]["mode"] == "chat"
        assert first["model_info"]["base_model"] == "gpt-4o" and first["model_info"]["max_input_tokens"] == 128000
        assert first["model_info"]["input_cost_per_token"] == 0.0000025
        # the rest from llmrelay's price table, as LiteLLM fills model_info
        assert first["model_info"]["max_output_tokens"] == 16384 and first["model_info"]["supports_vision"] is True
        assert first["litellm_params"]["model"] == "openai/gpt-4o" and first["litellm_params"]["tags"] == ["prod", "eu"]
        assert UPSTREAM_KEY not in r.text and "127.0.0.1" not in r.text and "api_base" not in r.text
    assert httpx.get(homelab.url + "/v1/model/info").status_code == 401


# ------------------------------------------------------------------ priorities, aliases, tags
@pytest.fixture(scope="module")
def priorities(upstream):
    with Gateway(str(CONFIGS / "priorities.yaml"), env=env(upstream)) as gw:
        yield gw


def ask(gw: Gateway, model: str, **extra) -> str:
    """The model string the upstream received for one request."""
    client(gw, "x").chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], **extra)
    return gw.upstream.requests[-1].json()["model"]


@pytest.fixture
def prio(priorities, upstream):
    priorities.upstream = upstream
    return priorities


def test_order_tries_lower_order_first_then_the_next(prio, upstream):
    # order 1 is down (connection refused): every call lands on order 2, never on order 3
    for _ in range(6):
        assert ask(prio, "chat") == "secondary-model"


def test_model_group_alias_plain_and_hidden(prio):
    assert ask(prio, "gpt-4") == "gpt-4o"
    assert ask(prio, "gpt-4-old") == "gpt-4o"
    names = [m.id for m in client(prio, "x").models.list().data]
    assert "gpt-4" in names and "gpt-4-old" not in names and "gpt-4o" in names


def test_tags_pick_deployments(prio):
    assert {ask(prio, "tagged", extra_body={"tags": ["free"]}) for _ in range(5)} == {"free-model"}
    assert {ask(prio, "tagged", extra_body={"metadata": {"tags": ["paid"]}}) for _ in range(5)} == {"paid-model"}
    with pytest.raises(openai.BadRequestError) as info:
        ask(prio, "tagged", extra_body={"tags": ["vip"]})
    assert "vip" in str(info.value)


def test_entry_level_keys_are_known(prio):
    # rpm/tpm/order written next to litellm_params are LiteLLM's too: read, not warned about
    assert [line for line in prio.lines if "warning:" in line and "model_list" in line] == []
    from llmrelay.proxy.config import load_config
    from llmrelay.proxy.models import ModelTable
    import os

    old = dict(os.environ)
    os.environ.update(env(prio.upstream))
    try:
        table = ModelTable(load_config(str(CONFIGS / "priorities.yaml")))
    finally:
        os.environ.clear()
        os.environ.update(old)
    dep = table.router._groups["gpt-4o"][0]
    assert (dep.rpm, dep.tpm) == (1000, 100000)
    assert [d.order for d in table.router._groups["chat"]] == [1, 2, 3]


# ------------------------------------------------------------------ wildcards
@pytest.fixture(scope="module")
def wildcard(upstream):
    with Gateway(str(CONFIGS / "wildcard.yaml"), env=env(upstream)) as gw:
        gw.upstream = upstream
        yield gw


def test_wildcard_serves_any_model_of_the_provider(wildcard):
    assert ask(wildcard, "openai/gpt-4.1-mini") == "gpt-4.1-mini"
    assert ask(wildcard, "fixed") == "fixed-model"
    assert ask(wildcard, "gpt-4o-mini") == "gpt-4o-mini"  # the catch-all
    assert ask(wildcard, "openai/meta-llama/Llama-3-8B") == "meta-llama/Llama-3-8B"


def test_wildcard_never_lets_the_client_pick_host_or_key(wildcard):
    for bad in ("openai/../../admin", "openai/x?y=1", "nosuch/provider-model"):
        with pytest.raises(openai.NotFoundError):
            ask(wildcard, bad)
    # the client's model only changes the model field: same host, same configured key
    before = len(wildcard.upstream.requests)
    ask(wildcard, "openai/anything")
    request = wildcard.upstream.requests[before]
    assert request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    for bad_key in ("api_base", "api_key", "base_url"):
        with pytest.raises(openai.BadRequestError):
            client(wildcard, "x").chat.completions.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                extra_body={bad_key: "http://evil.example/v1"})


def test_merge_reasoning_non_streaming(homelab, upstream):
    from servers.openai_server import completion_reply

    upstream.enqueue(completion_reply("Answer.", reasoning_content="Think first."))
    reply = client(homelab).chat.completions.create(model="thinker", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "<think>Think first.</think>Answer."


def test_a_hundred_deployments(tmp_path, monkeypatch):
    """A big config loads whole (start time is measured, not asserted: see docs/proxy.md)."""
    from llmrelay.proxy.config import load_config
    from llmrelay.proxy.models import ModelTable

    models = ["openai/gpt-4o", "anthropic/claude-3-5-sonnet-latest", "groq/llama-3.1-8b-instant",
              "gemini/gemini-1.5-flash", "mistral/mistral-large-latest", "nvidia_nim/meta/llama-3.1-8b-instruct"]
    lines = ["model_list:"]
    for i in range(100):
        lines += [f"  - model_name: group-{i % 40}", "    litellm_params:", f"      model: {models[i % len(models)]}",
                  "      api_key: os.environ/HUNDRED_KEY", f"      rpm: {100 + i}", "      tags: [bulk]",
                  f"      order: {i % 3}", "    model_info:", f"      id: dep-{i}", "      mode: chat"]
    path = tmp_path / "big.yaml"
    path.write_text("\n".join(lines) + "\nrouter_settings:\n  model_group_alias: {big: group-0}\n")
    monkeypatch.setenv("HUNDRED_KEY", "sk-hundred")
    config = load_config(str(path))
    assert len(config.deployments) == 100 and config.warnings == []
    table = ModelTable(config)
    assert len(table.names) == 41 and "big" in table


def test_compose_stack_config(monkeypatch):
    """Keys in the wrong section say where they belong; every provider of the file is served."""
    from llmrelay.proxy.config import load_config

    monkeypatch.setenv("AZURE_KEY", "azure-secret-key-1234")
    monkeypatch.setenv("GW_MASTER_KEY", MASTER)
    config = load_config(str(CONFIGS / "compose.yaml"))
    assert config.model_names == ["gpt-4o", "llama3", "embed", "claude-haiku", "gemini"]
    assert {d.model_name: d.provider for d in config.deployments}["gemini"] == "vertex_ai"  # a bare gemini- name
    assert config.deployments[0].litellm_params["api_version"] == "2024-10-21"  # environment_variables first
    warnings = "\n".join(config.warnings)
    assert "litellm_settings.master_key: unknown key; ignored (it belongs under general_settings:)" in warnings
    assert "general_settings.drop_params: unknown key; ignored (it belongs under litellm_settings:)" in warnings
    assert "litellm_settings.json_logs" not in warnings  # used: JSON log lines
    assert "general_settings.proxy_batch_write_at" not in warnings  # used: the spend flush interval
    assert len(config.warnings) == 2, warnings
    assert config.master_key == MASTER and "azure-secret-key-1234" in config.secrets
