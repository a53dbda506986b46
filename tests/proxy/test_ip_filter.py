"""general_settings.allowed_ips / use_x_forwarded_for (LiteLLM's IP address filtering): the
sans-I/O filter, the config checks, and the gateway with the openai and anthropic SDKs."""

from __future__ import annotations

import ipaddress

import anthropic
import httpx
import openai
import pytest

from llmrelay.proxy.config import ConfigError, parse_config
from llmrelay.proxy.ip_filter import FORBIDDEN_MESSAGE, IPFilter, parse_allowed_ips
from proxy.harness import Gateway
from servers.openai_server import FakeOpenAIServer

UPSTREAM_KEY = "sk-upstream-ipfilter"
MESSAGES = [{"role": "user", "content": "hi"}]


def scope(client: str | None, *forwarded: str) -> dict:
    return {"client": (client, 5555) if client else None,
            "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded]}


def test_filter_matches_addresses_and_networks():
    f = IPFilter(parse_allowed_ips(["10.0.0.0/8", "192.168.1.7", "::1"]))
    assert f.allows(scope("10.200.3.4")) and f.allows(scope("192.168.1.7")) and f.allows(scope("::1"))
    assert not f.allows(scope("192.168.1.8")) and not f.allows(scope("11.0.0.1"))
    assert f.allows(scope("::ffff:10.1.1.1"))  # IPv4 through an IPv6 socket
    assert not f.allows(scope(None)) and not f.allows(scope("not-an-ip"))
    assert not f.allows(scope("192.168.1.8", "10.0.0.1"))  # the header is ignored unless asked for


def test_forwarded_for_takes_the_nearest_proxys_entry():
    f = IPFilter(parse_allowed_ips(["10.0.0.1"]), use_x_forwarded_for=True)
    assert f.allows(scope("172.16.0.9", "10.0.0.1"))
    assert f.allows(scope("172.16.0.9", "203.0.113.5, 10.0.0.1"))
    # a client that prepends an allowed address is still judged by the address its proxy saw
    assert not f.allows(scope("172.16.0.9", "10.0.0.1, 203.0.113.5"))
    assert not f.allows(scope("172.16.0.9", "10.0.0.1", "203.0.113.5"))  # last header wins
    assert not f.allows(scope("10.0.0.2", "garbage"))
    assert f.allows(scope("10.0.0.1"))  # no header: the peer


@pytest.mark.parametrize("value,message", [
    ([], "is empty"),
    (["10.0.0.300"], "'10.0.0.300' is not an IP address"),
    ({"ip": "1.2.3.4"}, "must be a list"),
])
def test_config_refuses_bad_lists(value, message):
    text = f"model_list: []\ngeneral_settings:\n  allowed_ips: {value!r}\n"
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "conf.yaml")


def test_config_accepts_litellms_example_and_a_string():
    config = parse_config('model_list: []\ngeneral_settings:\n  allowed_ips: ["192.168.1.1"]\n', "conf.yaml")
    assert config.general_settings["allowed_ips"] == [ipaddress.ip_network("192.168.1.1/32")]
    assert not [w for w in config.warnings if "allowed_ips" in w]
    config = parse_config("model_list: []\ngeneral_settings:\n  allowed_ips: 10.0.0.0/8\n"
                          "  use_x_forwarded_for: true\n", "conf.yaml")
    assert config.general_settings["use_x_forwarded_for"] is True
    with pytest.raises(ConfigError, match="use_x_forwarded_for must be true or false"):
        parse_config("model_list: []\ngeneral_settings:\n  use_x_forwarded_for: yes please\n", "conf.yaml")


@pytest.fixture(scope="module")
def upstream():
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


def _gateway(tmp_path, upstream, general: str) -> Gateway:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream.url}/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
general_settings:
  master_key: sk-master-ip
{general}
""")
    return Gateway(str(path), env={"TEST_UPSTREAM_KEY": UPSTREAM_KEY})


def test_gateway_refuses_other_addresses(tmp_path, upstream):
    with _gateway(tmp_path, upstream, '  allowed_ips: ["192.0.2.10"]') as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-master-ip", max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as info:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert info.value.status_code == 403 and FORBIDDEN_MESSAGE in str(info.value)
        with pytest.raises(openai.PermissionDeniedError):
            client.models.list()
        messages = anthropic.Anthropic(base_url=gw.url, api_key="sk-master-ip", max_retries=0)
        with pytest.raises(anthropic.PermissionDeniedError) as ainfo:
            messages.messages.create(model="gpt-4o-mini", max_tokens=10, messages=MESSAGES)
        assert ainfo.value.body["type"] == "error"  # Anthropic's error shape for its API
        assert httpx.get(gw.url + "/health/liveliness").status_code == 200  # probes stay open
        before = len(upstream.chat_requests)
        httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES},
                   headers={"authorization": "Bearer sk-master-ip", "x-forwarded-for": "192.0.2.10"})
        assert len(upstream.chat_requests) == before  # the header is not trusted unless configured


def test_gateway_serves_allowed_addresses(tmp_path, upstream):
    with _gateway(tmp_path, upstream, '  allowed_ips: ["127.0.0.0/8", "::1"]') as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-master-ip", max_retries=0)
        assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content


def test_gateway_behind_a_proxy(tmp_path, upstream):
    general = '  allowed_ips: ["198.51.100.7"]\n  use_x_forwarded_for: true'
    with _gateway(tmp_path, upstream, general) as gw:
        auth = {"authorization": "Bearer sk-master-ip"}
        body = {"model": "gpt-4o-mini", "messages": MESSAGES}
        ok = httpx.post(gw.url + "/v1/chat/completions", json=body,
                        headers={**auth, "x-forwarded-for": "203.0.113.9, 198.51.100.7"})
        assert ok.status_code == 200
        spoofed = httpx.post(gw.url + "/v1/chat/completions", json=body,
                             headers={**auth, "x-forwarded-for": "198.51.100.7, 203.0.113.9"})
        assert spoofed.status_code == 403 and spoofed.json()["error"]["message"] == FORBIDDEN_MESSAGE
        assert httpx.post(gw.url + "/v1/chat/completions", json=body, headers=auth).status_code == 403
