"""LiteLLM's top-level ``credential_list`` and ``litellm_params.litellm_credential_name``: one set
of credentials shared by several deployments, through the gateway with the openai SDK."""

from __future__ import annotations

import openai
import pytest

from llmrelay.proxy.config import ConfigError, parse_config
from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer

UPSTREAM_KEY = "sk-upstream-credentials-1"

CONFIG = """
credential_list:
  - credential_name: shared_openai
    credential_values:
      api_key: os.environ/CRED_UPSTREAM_KEY
      api_base: os.environ/CRED_UPSTREAM_BASE
    credential_info:
      description: "the team's account"

model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      litellm_credential_name: shared_openai
  - model_name: mini
    litellm_params:
      model: openai/gpt-4o-mini
      litellm_credential_name: shared_openai
      api_key: os.environ/CRED_OWN_KEY
"""


@pytest.fixture(scope="module")
def upstream():
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


def test_deployments_take_their_credentials(tmp_path, upstream):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    env = {"CRED_UPSTREAM_KEY": UPSTREAM_KEY, "CRED_UPSTREAM_BASE": upstream.url + "/v1", "CRED_OWN_KEY": "sk-own-key-2"}
    with Gateway(str(path), env=env) as gw:
        assert not [line for line in gw.lines if "credential" in line]  # nothing ignored
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
        sent = upstream.requests[-1]
        assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
        assert "litellm_credential_name" not in sent.json()
        # the deployment's own api_key wins over the credential's (the upstream refuses it: 401)
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model="mini", messages=[{"role": "user", "content": "hi"}])
        assert "sk-own-key-2" not in str(info.value) and upstream.url not in str(info.value)


def test_credentials_are_secrets_of_the_config(monkeypatch):
    monkeypatch.setenv("CRED_UPSTREAM_KEY", "sk-secret-from-credential")
    monkeypatch.setenv("CRED_UPSTREAM_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("CRED_OWN_KEY", "sk-own")
    config = parse_config(CONFIG, "conf.yaml")
    assert "sk-secret-from-credential" in config.secrets  # redacted from answers and logs
    first = config.deployments[0].litellm_params
    assert first["api_key"] == "sk-secret-from-credential" and first["api_base"] == "http://127.0.0.1:9/v1"
    assert "litellm_credential_name" not in first


@pytest.mark.parametrize("text,message", [
    ("credential_list: {a: 1}\n", "must be a list"),
    ("credential_list:\n  - credential_values: {api_key: x}\n", "need a credential_name"),
    ("credential_list:\n  - credential_name: a\n    credential_values: x\n", "must be a mapping"),
    ("credential_list:\n  - {credential_name: a, credential_values: {}}\n  - {credential_name: a, credential_values: {}}\n",
     "listed twice"),
])
def test_malformed_credential_lists_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text + "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: k}\n",
                     "conf.yaml")


def test_an_unknown_credential_name_is_warned_about_and_the_deployment_served():
    config = parse_config("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: k, "
                          "litellm_credential_name: nope}\n", "conf.yaml")
    assert [d.model_name for d in config.deployments] == ["m"]
    assert any("'nope' names no credential_list entry" in w for w in config.warnings)
