"""The OpenAI-compatible hosts table: default api_base, key variables, parameter limits, end to end."""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay.exceptions import AuthenticationError, UnsupportedParamsError
from llmrelay.providers.openai_compatible import HOSTS
from providers.helpers import build_request
from servers.openai_server import DEFAULT_TEXT

MSG = [{"role": "user", "content": "Hi"}]

DEFAULT_URLS = {
    "groq": "https://api.groq.com/openai/v1/chat/completions",
    "deepseek": "https://api.deepseek.com/chat/completions",
    "mistral": "https://api.mistral.ai/v1/chat/completions",
    "together_ai": "https://api.together.xyz/v1/chat/completions",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1/chat/completions",
    "openrouter": "https://openrouter.ai/api/v1/chat/completions",
    "xai": "https://api.x.ai/v1/chat/completions",
    "perplexity": "https://api.perplexity.ai/chat/completions",
    "cerebras": "https://api.cerebras.ai/v1/chat/completions",
    "deepinfra": "https://api.deepinfra.com/v1/openai/chat/completions",
    "lm_studio": "http://localhost:1234/v1/chat/completions",
    "llamacpp": "http://127.0.0.1:8080/v1/chat/completions",
    "nvidia_nim": "https://integrate.api.nvidia.com/v1/chat/completions",
    "huggingface": "https://router.huggingface.co/v1/chat/completions",
    "github": "https://models.github.ai/inference/chat/completions",
    "cloudflare": "https://api.cloudflare.com/client/v4/accounts/acct123/ai/v1/chat/completions",
    "minimax": "https://api.minimax.io/v1/chat/completions",
    "sambanova": "https://api.sambanova.ai/v1/chat/completions",
    "nebius": "https://api.tokenfactory.nebius.com/v1/chat/completions",
    "novita": "https://api.novita.ai/openai/v1/chat/completions",
    "dashscope": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions",
    "moonshot": "https://api.moonshot.ai/v1/chat/completions",
    "llamafile": "http://127.0.0.1:8080/v1/chat/completions",
    "codestral": "https://codestral.mistral.ai/v1/chat/completions",
    "hyperbolic": "https://api.hyperbolic.xyz/v1/chat/completions",
    "lambda_ai": "https://api.lambda.ai/v1/chat/completions",
    "meta_llama": "https://api.llama.com/compat/v1/chat/completions",
    "nscale": "https://inference.api.nscale.com/v1/chat/completions",
    "friendliai": "https://api.friendli.ai/serverless/v1/chat/completions",
    "featherless_ai": "https://api.featherless.ai/v1/chat/completions",
    "volcengine": "https://ark.cn-beijing.volces.com/api/v3/chat/completions",
}
#: Self-hosted servers: no default api_base.
SELF_HOSTED = {"hosted_vllm", "vllm", "openai_like", "custom_openai", "litellm_proxy", "databricks"}


def build(prefix, model="m", **kwargs):
    return build_request(f"{prefix}/{model}", MSG, False, kwargs)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for host in HOSTS.values():
        for var in host.api_key_env + host.api_base_env:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "acct123")


def test_every_listed_prefix_is_registered():
    assert set(DEFAULT_URLS) | SELF_HOSTED == set(HOSTS)


def test_cloudflare_needs_its_account_id(monkeypatch):
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID")
    with pytest.raises(AuthenticationError, match="CLOUDFLARE_ACCOUNT_ID"):
        build("cloudflare", api_key="k")
    req, _ = build("cloudflare", api_key="k", api_base="https://gateway.example/v1")
    assert req.url == "https://gateway.example/v1/chat/completions"


@pytest.mark.parametrize("prefix", sorted(SELF_HOSTED))
def test_self_hosted_need_an_api_base(prefix):
    with pytest.raises(AuthenticationError, match="api_base"):
        build(prefix)


@pytest.mark.parametrize("prefix", sorted(DEFAULT_URLS))
def test_default_api_base_and_key_env(monkeypatch, prefix):
    host = HOSTS[prefix]
    monkeypatch.setenv(host.api_key_env[-1], "env-key")
    req, body = build(prefix, "some-model")
    assert req.url.split("?")[0] == DEFAULT_URLS[prefix]
    assert req.headers["Authorization"] == "Bearer env-key"
    assert body["messages"] == MSG


@pytest.mark.parametrize("prefix", [p for p, h in HOSTS.items() if h.requires_key])
def test_hosted_needs_a_key(prefix):
    with pytest.raises(AuthenticationError, match=HOSTS[prefix].api_key_env[0]):
        build(prefix)


def test_databricks_serving_endpoints(monkeypatch):
    monkeypatch.setenv("DATABRICKS_API_BASE", "https://adb-1.azuredatabricks.net/serving-endpoints")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-123")
    req, body = build("databricks", "databricks-meta-llama-3-3-70b-instruct")
    assert req.url == "https://adb-1.azuredatabricks.net/serving-endpoints/chat/completions"
    assert req.headers["Authorization"] == "Bearer dapi-123"
    assert body["model"] == "databricks-meta-llama-3-3-70b-instruct"


def test_litellm_proxy_takes_its_base_and_virtual_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("LITELLM_PROXY_API_BASE", "http://gateway.internal:4000")
    monkeypatch.setenv("LITELLM_PROXY_API_KEY", "sk-virtual")
    req, body = build("litellm_proxy", "gpt-4o")
    assert req.url == "http://gateway.internal:4000/chat/completions"
    assert req.headers["Authorization"] == "Bearer sk-virtual" and body["model"] == "gpt-4o"


@pytest.mark.parametrize("prefix", ["lm_studio", "llamacpp", "llamafile",
                                    *sorted(SELF_HOSTED - {"databricks"})])
def test_local_servers_need_no_key(prefix):
    req, _ = build(prefix, api_base="http://127.0.0.1:9/v1")
    assert "Authorization" not in req.headers and req.url == "http://127.0.0.1:9/v1/chat/completions"


def test_api_base_env_override(monkeypatch):
    monkeypatch.setenv("GROQ_API_BASE", "http://proxy.local/v1")
    req, _ = build("groq", api_key="k")
    assert req.url == "http://proxy.local/v1/chat/completions"


@pytest.mark.parametrize("prefix,param,value", [
    ("groq", "logit_bias", {"1": 1}), ("groq", "logprobs", True), ("cerebras", "presence_penalty", 0.1),
    ("cerebras", "frequency_penalty", 0.1), ("perplexity", "tools", [{"type": "function", "function": {"name": "f"}}]),
    ("mistral", "logit_bias", {"1": 1}), ("mistral", "user", "u"), ("deepseek", "seed", 1),
])
def test_unsupported_param_raises_or_is_dropped(prefix, param, value):
    with pytest.raises(UnsupportedParamsError) as info:
        build(prefix, api_key="k", **{param: value})
    assert param in str(info.value) and prefix in str(info.value)
    _, body = build(prefix, api_key="k", drop_params=True, temperature=0.5, **{param: value})
    assert param not in body and body["temperature"] == 0.5


def test_groq_accepts_only_n_1():
    _, body = build("groq", api_key="k", n=1)
    assert body["n"] == 1
    with pytest.raises(UnsupportedParamsError, match="groq.*n=1"):
        build("groq", api_key="k", n=2)
    _, body = build("groq", api_key="k", n=2, drop_params=True)
    assert "n" not in body
    _, body = build("together_ai", api_key="k", n=2)  # other hosts: as given
    assert body["n"] == 2


def test_deepseek_max_completion_tokens_is_max_tokens_and_fireworks_keeps_logit_bias():
    _, body = build("deepseek", api_key="k", max_completion_tokens=64)
    assert body["max_tokens"] == 64 and "max_completion_tokens" not in body
    _, body = build("fireworks_ai", "m", api_key="k", logit_bias={"1": 1})
    assert body["logit_bias"] == {"1": 1}


def test_module_level_drop_params(monkeypatch):
    monkeypatch.setattr(llmrelay, "drop_params", True, raising=False)
    _, body = build("groq", api_key="k", logit_bias={"1": 1})
    assert "logit_bias" not in body


def test_mistral_renames_and_fireworks_model_prefix():
    _, body = build("mistral", api_key="k", seed=7, max_completion_tokens=50)
    assert body["random_seed"] == 7 and body["max_tokens"] == 50 and "seed" not in body
    _, body = build("fireworks_ai", "llama-v3p1-8b-instruct", api_key="k")
    assert body["model"] == "accounts/fireworks/models/llama-v3p1-8b-instruct"
    _, body = build("fireworks_ai", "accounts/me/models/custom", api_key="k")
    assert body["model"] == "accounts/me/models/custom"


@pytest.mark.parametrize("prefix", ["groq", "openrouter", "hosted_vllm", "llamacpp"])
def test_e2e_sync_stream_and_async(openai_server, prefix):
    base = openai_server.url + "/v1"
    resp = llmrelay.completion(f"{prefix}/gpt-4o-mini", MSG, api_base=base, api_key="k")
    assert resp.choices[0].message.content == DEFAULT_TEXT
    # gpt-4o-mini is not a groq/openrouter model name (unpriced); self-hosted servers cost 0
    cost = 0.0 if prefix in ("hosted_vllm", "llamacpp") else None
    hidden = dict(resp._hidden_params)
    assert hidden.pop("additional_headers")["llm_provider-content-type"] == "application/json"
    assert hidden == {"custom_llm_provider": prefix, "api_base": base + "/chat/completions",
                      "model": "gpt-4o-mini", "response_cost": cost}
    chunks = list(llmrelay.completion(f"{prefix}/gpt-4o-mini", MSG, stream=True, api_base=base, api_key="k"))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_TEXT


async def test_e2e_async_mistral_sends_renamed_params(openai_server):
    resp = await llmrelay.acompletion("mistral/gpt-4o-mini", MSG, api_base=openai_server.url + "/v1", api_key="k",
                                      seed=3)
    assert resp.choices[0].message.content == DEFAULT_TEXT
    assert openai_server.last_json["random_seed"] == 3
