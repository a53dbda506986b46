"""general_settings.allowed_routes and admin_only_routes (LiteLLM's route controls): the sans-I/O
policy, the config checks, and the gateway with the openai SDK and a virtual key."""

from __future__ import annotations

import httpx
import openai
import pytest

from llmrelay.proxy.config import ConfigError, parse_config
from llmrelay.proxy.route_policy import RoutePolicy, parse_routes
from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer

MASTER = "sk-master-routes-1"
MESSAGES = [{"role": "user", "content": "hi"}]


def test_policy_matches_paths_their_v1_form_patterns_and_groups():
    routes, unknown = parse_routes(["/chat/completions", "/v1/responses/{response_id}", "LiteLLMRoutes.public_routes",
                                    "LiteLLMRoutes.nope"], "allowed_routes")
    assert unknown == ["LiteLLMRoutes.nope"]
    policy = RoutePolicy(routes)
    for path in ("/chat/completions", "/v1/chat/completions", "/v1/chat/completions/", "/responses/resp_1",
                 "/v1/responses/resp_1", "/health/liveliness", "/"):
        assert policy.exposed(path), path
    for path in ("/v1/embeddings", "/v1/responses", "/v1/responses/a/b", "/key/generate", "/v1/chat/completionsX"):
        assert not policy.exposed(path), path
    assert not policy.admin_only_route("/chat/completions")
    admin = RoutePolicy(None, parse_routes(["LiteLLMRoutes.management_routes"], "admin_only_routes")[0])
    assert admin.exposed("/anything") and admin.admin_only_route("/key/generate")
    assert admin.admin_only_route("/key/sk-abc/regenerate") and not admin.admin_only_route("/v1/models")


@pytest.mark.parametrize("value,message", [("/chat/completions", "must be a list"),
                                           (["chat/completions"], "neither a path")])
def test_config_refuses_what_is_not_a_route_list(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_config("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: k}\n"
                     f"general_settings:\n  allowed_routes: {value!r}\n", "conf.yaml")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with FakeOpenAIServer() as upstream:
        path = tmp_path_factory.mktemp("routes") / "config.yaml"
        path.write_text(f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{upstream.url}/v1", api_key: sk-up}}
general_settings:
  master_key: {MASTER}
  allowed_routes: ["/chat/completions", "/models", "/key/generate", "LiteLLMRoutes.public_routes"]
  admin_only_routes: ["/models"]
""")
        with Gateway(str(path)) as gw:
            yield gw


def test_only_the_allowed_routes_are_exposed(gateway):
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER, max_retries=0)
    assert client.chat.completions.create(model="gpt", messages=MESSAGES).choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError, match="Route not allowed"):
        client.embeddings.create(model="gpt", input="x")
    assert httpx.get(gateway.url + "/health/liveliness").status_code == 200
    assert httpx.get(gateway.url + "/v1/model/info", headers={"authorization": f"Bearer {MASTER}"}).status_code == 403


def test_admin_only_routes_refuse_virtual_keys(gateway):
    made = httpx.post(gateway.url + "/key/generate", json={}, headers={"authorization": f"Bearer {MASTER}"}).json()
    user = openai.OpenAI(base_url=gateway.url + "/v1", api_key=made["key"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError, match="admin only route"):
        user.models.list()
    assert user.chat.completions.create(model="gpt", messages=MESSAGES).choices[0].message.content
    admin = openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER, max_retries=0)
    assert [m.id for m in admin.models.list().data] == ["gpt"]
    with pytest.raises(openai.AuthenticationError):  # no key at all: 401, not the route's answer
        openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-wrong", max_retries=0).models.list()
