"""LiteLLM's proxy reliability docs (fallbacks, client-side fallbacks, retries, the routing
response headers) run through the real gateway: each config is the doc's, with only the
providers' api_base/api_key pointed at a fake upstream (``os.environ/`` variables), and each
request the doc's curl or OpenAI-SDK example. Each test names its doc page.

Where the gateway deliberately differs from LiteLLM (a client choosing something outside the
config), the test says so.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from proxy.conftest import closed_port
from proxy.harness import Gateway
from servers.azure_server import FakeAzureServer
from servers.openai_server import FakeOpenAIServer, error_reply

UPSTREAM_KEY = "sk-upstream-reliability-0123456789"
MASTER = "sk-1234"  # the docs' master key


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def azure() -> Iterator[FakeAzureServer]:
    deployments = ("<your-deployment-name>", "%3Cyour-deployment-name%3E", "gpt-4-ca", "chatgpt-v-2")
    with FakeAzureServer(deployments=deployments, api_key=UPSTREAM_KEY) as srv:
        yield srv


def env(upstream: FakeOpenAIServer, azure: FakeAzureServer) -> dict[str, str]:
    return {
        "AZURE_API_BASE": azure.url,
        "AZURE_API_KEY": UPSTREAM_KEY,
        "AZURE_API_VERSION": "2024-02-01",
        "OPENAI_API_BASE": upstream.url + "/v1",
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        # the docs' zephyr-beta servers (http://0.0.0.0:8001...) are down: the calls fail
        "ZEPHYR_BASE_1": f"http://127.0.0.1:{closed_port()}",
        "ZEPHYR_BASE_2": f"http://127.0.0.1:{closed_port()}",
        "ZEPHYR_BASE_3": f"http://127.0.0.1:{closed_port()}",
    }


def start(upstream: FakeOpenAIServer, azure: FakeAzureServer, tmp_path_factory: pytest.TempPathFactory,
          config: str) -> Gateway:
    path = tmp_path_factory.mktemp("gw") / "config.yaml"
    path.write_text(config + "\ngeneral_settings:\n  master_key: sk-1234\n")
    return Gateway(str(path), env={**env(upstream, azure), "LLMRELAY_DATA_DIR": str(tmp_path_factory.mktemp("data"))})


def post(gw: Gateway, body: dict, key: str = MASTER) -> httpx.Response:
    """The docs' curl: POST /chat/completions with a Bearer key."""
    return httpx.post(gw.url + "/chat/completions", json=body, timeout=60,
                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})


def sdk(gw: Gateway, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=gw.url, max_retries=0)


# ====================================================================== Quick Start
# https://docs.litellm.ai/docs/proxy/reliability (Quick Start: 1. Setup fallbacks, 3. Test Fallbacks)
QUICK_START = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/<your-deployment-name>
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
      rpm: 6      # Rate limit for this deployment: in requests per minute (rpm)
  - model_name: gpt-4
    litellm_params:
      model: azure/gpt-4-ca
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
      rpm: 6

router_settings:
  fallbacks: [{"gpt-3.5-turbo": ["gpt-4"]}]
"""


@pytest.fixture(scope="module")
def quick(upstream, azure, tmp_path_factory) -> Iterator[Gateway]:
    with start(upstream, azure, tmp_path_factory, QUICK_START) as gw:
        yield gw


def test_quick_start_mock_testing_fallbacks(quick, azure):
    azure.requests.clear()
    r = post(quick, {
        "model": "gpt-3.5-turbo",
        "messages": [
            {
                "role": "user",
                "content": "ping"
            }
        ],
        "mock_testing_fallbacks": True  # 👈 KEY CHANGE
    })
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
    # the first group's call was mocked to fail: only the fallback group's deployment was called
    assert [req.path for req in azure.requests] == ["/openai/deployments/gpt-4-ca/chat/completions"]
    assert r.headers["x-litellm-model-group"] == "gpt-4"
    assert r.headers["x-litellm-attempted-fallbacks"] == "1"
    assert r.headers["x-litellm-attempted-retries"] == "0"
    assert r.headers["x-litellm-model-id"]


def test_quick_start_without_the_flag_answers_from_the_group(quick, azure):
    azure.requests.clear()
    r = post(quick, {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "ping"}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-model-group"] == "gpt-3.5-turbo"
    assert r.headers["x-litellm-attempted-fallbacks"] == "0"
    assert "gpt-4-ca" not in azure.requests[-1].path


def test_mock_testing_flag_must_be_a_bool(quick):
    r = post(quick, {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "ping"}],
                     "mock_testing_fallbacks": "yes"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "mock_testing_fallbacks"


# ====================================================================== Advanced
# https://docs.litellm.ai/docs/proxy/reliability (Fallbacks + Retries + Timeouts + Cooldowns,
# Client Side Fallbacks, Control Fallback Prompts, Fallback to Specific Model ID)
ADVANCED = """
model_list:
  - model_name: zephyr-beta
    litellm_params:
        model: huggingface/HuggingFaceH4/zephyr-7b-beta
        api_base: os.environ/ZEPHYR_BASE_1
  - model_name: zephyr-beta
    litellm_params:
        model: huggingface/HuggingFaceH4/zephyr-7b-beta
        api_base: os.environ/ZEPHYR_BASE_2
  - model_name: zephyr-beta
    litellm_params:
        model: huggingface/HuggingFaceH4/zephyr-7b-beta
        api_base: os.environ/ZEPHYR_BASE_3
  - model_name: gpt-3.5-turbo
    litellm_params:
        model: gpt-3.5-turbo
        api_key: os.environ/OPENAI_API_KEY
        api_base: os.environ/OPENAI_API_BASE
  - model_name: gpt-3.5-turbo-16k
    litellm_params:
        model: gpt-3.5-turbo-16k
        api_key: os.environ/OPENAI_API_KEY
        api_base: os.environ/OPENAI_API_BASE
  - model_name: gpt-4
    litellm_params:
      model: openai/gpt-4
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE
    model_info:
      id: my-specific-model-id # 👈 KEY CHANGE
  - model_name: gpt-4
    litellm_params:
      model: azure/chatgpt-v-2
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
  - model_name: claude-3-haiku
    litellm_params:
      model: openai/claude-3-haiku
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE

litellm_settings:
  num_retries: 3 # retry call 3 times on each model_name (e.g. zephyr-beta)
  request_timeout: 10 # raise Timeout error if call takes longer than 10s. Sets litellm.request_timeout
  fallbacks: [{"zephyr-beta": ["gpt-3.5-turbo"]}, {"gpt-4": ["my-specific-model-id"]}] # fallback to gpt-3.5-turbo if call fails num_retries
  allowed_fails: 3 # cooldown model if it fails > 1 call in a minute.
  cooldown_time: 30 # how long to cooldown model if fails/min > allowed_fails
"""


@pytest.fixture(scope="module")
def advanced(upstream, azure, tmp_path_factory) -> Iterator[Gateway]:
    with start(upstream, azure, tmp_path_factory, ADVANCED) as gw:
        yield gw


def test_advanced_config_starts_without_ignoring_its_keys(advanced):
    ignored = [line for line in advanced.lines if "warning: " in line]
    assert not ignored, ignored


def test_zephyr_fails_over_to_gpt_35_after_its_retries(advanced, upstream):
    upstream.requests.clear()
    r = post(advanced, {"model": "zephyr-beta", "messages": [{"role": "user", "content": "what llm are you"}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-model-group"] == "gpt-3.5-turbo"
    assert r.headers["x-litellm-attempted-fallbacks"] == "1"
    assert upstream.chat_requests[-1]["model"] == "gpt-3.5-turbo"


def test_client_side_fallbacks_openai_sdk(advanced, upstream):
    upstream.requests.clear()
    client = openai.OpenAI(
        api_key="sk-1234",  # (the doc's "anything": this gateway has a master key)
        base_url=advanced.url
    )
    response = client.chat.completions.with_raw_response.create(
        model="zephyr-beta",
        messages = [
            {
                "role": "user",
                "content": "this is a test request, write a short poem"
            }
        ],
        extra_body={
            "fallbacks": ["gpt-3.5-turbo"]
        }
    )
    assert response.parse().choices[0].message.content
    assert response.headers["x-litellm-model-group"] == "gpt-3.5-turbo"
    assert upstream.chat_requests[-1]["messages"][0]["content"] == "this is a test request, write a short poem"
    assert "fallbacks" not in upstream.chat_requests[-1]


def test_control_fallback_prompts_curl(advanced, upstream):
    upstream.requests.clear()
    r = post(advanced, {
        "model": "gpt-3.5-turbo",
        "messages": [
          {
            "role": "user",
            "content": [
              {
                "type": "text",
                "text": "Hi, how are you ?"
              }
            ]
          }
        ],
        "fallbacks": [{
            "model": "claude-3-haiku",
            "messages": [{"role": "user", "content": "What is LiteLLM?"}]
        }],
        "mock_testing_fallbacks": True
    })
    assert r.status_code == 200, r.text
    sent = upstream.chat_requests
    assert len(sent) == 1  # the first group's call was mocked
    assert sent[0]["model"] == "claude-3-haiku"
    assert sent[0]["messages"] == [{"role": "user", "content": "What is LiteLLM?"}]
    assert r.headers["x-litellm-model-group"] == "claude-3-haiku"


def test_control_fallback_prompts_openai_sdk(advanced, upstream):
    upstream.requests.clear()
    client = openai.OpenAI(api_key="sk-1234", base_url=advanced.url)
    response = client.chat.completions.create(
        model="zephyr-beta",
        messages = [
            {
                "role": "user",
                "content": "this is a test request, write a short poem"
            }
        ],
        extra_body={
          "fallbacks": [{
              "model": "claude-3-haiku",
              "messages": [{"role": "user", "content": "What is LiteLLM?"}]
          }]
        }
    )
    assert response.choices[0].message.content
    assert upstream.chat_requests[-1]["messages"] == [{"role": "user", "content": "What is LiteLLM?"}]


def test_fallback_to_specific_model_id(advanced, upstream):
    r = post(advanced, {
        "model": "gpt-4",
        "messages": [
            {
                "role": "user",
                "content": "ping"
            }
        ],
        "mock_testing_fallbacks": True
    })
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-model-id"] == "my-specific-model-id"  # "Validate it works"


# The gateway's security rule (not LiteLLM's): a request's own fallbacks name models of this
# gateway, which the caller's key may use; their arguments pass the same screen as the request's.
def test_client_fallbacks_stay_inside_the_config(advanced, upstream):
    upstream.requests.clear()
    r = post(advanced, {"model": "zephyr-beta", "messages": [{"role": "user", "content": "hi"}],
                        "fallbacks": ["gpt-5-not-configured"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "fallbacks", r.text
    r = post(advanced, {"model": "zephyr-beta", "messages": [{"role": "user", "content": "hi"}],
                        "fallbacks": [{"model": "gpt-3.5-turbo", "api_base": "http://evil.example"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "fallbacks.api_base", r.text
    r = post(advanced, {"model": "zephyr-beta", "messages": [{"role": "user", "content": "hi"}],
                        "fallbacks": [{"gpt-3.5-turbo": ["gpt-4"]}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "fallbacks", r.text
    assert not upstream.requests


def test_client_fallbacks_only_to_models_the_key_may_use(advanced, upstream):
    made = httpx.post(advanced.url + "/key/generate", json={"models": ["zephyr-beta", "gpt-3.5-turbo"]},
                      headers={"Authorization": "Bearer sk-1234"}, timeout=30)
    assert made.status_code == 200, made.text
    key = made.json()["key"]
    messages = [{"role": "user", "content": "hi"}]
    r = post(advanced, {"model": "zephyr-beta", "messages": messages, "fallbacks": ["gpt-4"],
                        "mock_testing_fallbacks": True}, key=key)
    assert r.status_code == 401 and r.json()["error"]["param"] == "fallbacks", r.text
    r = post(advanced, {"model": "zephyr-beta", "messages": messages, "fallbacks": ["gpt-3.5-turbo"],
                        "mock_testing_fallbacks": True}, key=key)
    assert r.status_code == 200 and r.headers["x-litellm-model-group"] == "gpt-3.5-turbo", r.text


# ====================================================================== content policy / context window
# https://docs.litellm.ai/docs/proxy/reliability (Content Policy Violation Fallback, Context
# Window Exceeded Fallback, Test Fallbacks!)
POLICY = """
model_list:
  - model_name: claude-2
    litellm_params:
      model: openai/claude-2
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE
  - model_name: my-fallback-model
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE
  - model_name: my-context-model
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE

router_settings:
  content_policy_fallbacks: [{"claude-2": ["my-fallback-model"]}]
  context_window_fallbacks: [{"claude-2": ["my-context-model"]}]
"""


@pytest.fixture(scope="module")
def policy(upstream, azure, tmp_path_factory) -> Iterator[Gateway]:
    with start(upstream, azure, tmp_path_factory, POLICY) as gw:
        yield gw


@pytest.mark.parametrize("flag, group", [
    ("mock_testing_content_policy_fallbacks", "my-fallback-model"),
    ("mock_testing_context_window_fallbacks", "my-context-model"),
])
def test_mock_testing_kind_fallbacks(policy, upstream, flag, group):
    upstream.requests.clear()
    r = post(policy, {
        "model": "claude-2",
        "messages": [
            {
                "role": "user",
                "content": "ping"
            }
        ],
        flag: True  # 👈 KEY CHANGE
    })
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-model-group"] == group
    assert len(upstream.chat_requests) == 1


def test_content_policy_error_falls_back(policy, upstream):
    upstream.requests.clear()
    upstream.enqueue(error_reply(400, "Your request was rejected as a result of our safety system.",
                                 code="content_policy_violation"))
    r = post(policy, {"model": "claude-2", "messages": [{"role": "user", "content": "Hey, how's it going?"}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-model-group"] == "my-fallback-model"
    assert [b["model"] for b in upstream.chat_requests] == ["claude-2", "gpt-4o-mini"]


# ====================================================================== retries
# https://docs.litellm.ai/docs/proxy/reliability ("num_retries" per request) and
# https://docs.litellm.ai/docs/proxy/response_headers (x-litellm-attempted-retries)
RETRIES = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: openai/gpt-3.5-turbo
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE

router_settings:
  disable_cooldowns: true
"""


@pytest.fixture(scope="module")
def retries(upstream, azure, tmp_path_factory) -> Iterator[Gateway]:
    with start(upstream, azure, tmp_path_factory, RETRIES) as gw:
        yield gw


def test_num_retries_in_the_request_and_the_retry_header(retries, upstream):
    upstream.requests.clear()
    upstream.enqueue(error_reply(500, "boom"), error_reply(500, "boom"))
    r = post(retries, {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}],
                       "num_retries": 2})
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-attempted-retries"] == "2"
    assert r.headers["x-litellm-attempted-fallbacks"] == "0"
    assert len(upstream.chat_requests) == 3
    upstream.requests.clear()
    upstream.enqueue(error_reply(500, "boom"))
    r = post(retries, {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}],
                       "num_retries": 0})
    assert r.status_code == 500, r.text
    assert len(upstream.chat_requests) == 1


def test_num_retries_is_capped_for_clients(retries, upstream):
    upstream.requests.clear()
    upstream.enqueue(*[error_reply(500, "boom")] * 10)
    r = post(retries, {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}],
                       "num_retries": 1000})
    assert r.status_code == 500
    assert len(upstream.chat_requests) == 6  # MAX_CLIENT_RETRIES (5) retries: the gateway's limit


def test_routing_headers_on_a_stream(retries):
    with sdk(retries).chat.completions.with_streaming_response.create(
            model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}], stream=True) as response:
        assert response.headers["x-litellm-model-group"] == "gpt-3.5-turbo"
        assert response.headers["x-litellm-model-id"]
        assert "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)


# ====================================================================== timeouts
# https://docs.litellm.ai/docs/proxy/timeout (Global Timeouts, Custom Timeouts - Per Model,
# Setting Dynamic Timeouts - Per Request) and https://docs.litellm.ai/docs/proxy/request_headers
# (x-litellm-timeout, x-litellm-num-retries)
TIMEOUTS = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/gpt-turbo-small-eu
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
      timeout: 0.1                      # timeout in (seconds)
      stream_timeout: 0.01              # timeout for stream requests (seconds)
      max_retries: 5
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/gpt-turbo-small-ca
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
      timeout: 0.1                      # timeout in (seconds)
      stream_timeout: 0.01              # timeout for stream requests (seconds)
      max_retries: 5
  - model_name: gpt-4
    litellm_params:
      model: openai/gpt-4
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE

router_settings:
    timeout: 30 # sets a 30s timeout for the entire call
    disable_cooldowns: true
"""


@pytest.fixture(scope="module")
def timeouts(upstream, azure, tmp_path_factory) -> Iterator[Gateway]:
    with start(upstream, azure, tmp_path_factory, TIMEOUTS) as gw:
        yield gw


def test_timeout_configs_start_as_written(timeouts):
    assert not [line for line in timeouts.lines if "warning: " in line]
    assert [m.id for m in sdk(timeouts).models.list().data] == ["gpt-3.5-turbo", "gpt-4"]


def test_per_request_timeout_curl(timeouts, upstream):
    r = post(timeouts, {
        "model": "gpt-4",
        "messages": [
            {"role": "user", "content": "what color is red"}
        ],
        "logit_bias": {12481: 100},
        "timeout": 1
    })
    assert r.status_code == 200, r.text
    assert "timeout" not in upstream.chat_requests[-1] and "timeout_cap" not in upstream.chat_requests[-1]
    assert upstream.chat_requests[-1]["logit_bias"] == {"12481": 100}


def test_per_request_timeout_fires(timeouts, upstream):
    from servers.openai_server import slow_headers_reply

    upstream.requests.clear()
    upstream.enqueue(slow_headers_reply(30, stream=False))
    client = openai.OpenAI(api_key="sk-1234", base_url=timeouts.url, max_retries=0)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(
            model="gpt-4",
            messages=[
                {"role": "user", "content": "what color is red"}
            ],
            logit_bias={12481: 100},
            extra_body={"timeout": 1, "num_retries": 0} # 👈 KEY CHANGE
        )
    assert failed.value.status_code == 504  # (LiteLLM: 408; this gateway's upstream timeout is a 504, docs/proxy.md)
    upstream._script.clear()


def test_timeout_header(timeouts, upstream):
    from servers.openai_server import slow_headers_reply

    upstream.enqueue(slow_headers_reply(30, stream=False))
    r = httpx.post(timeouts.url + "/v1/chat/completions", timeout=60,
                   headers={"Authorization": "Bearer sk-1234", "x-litellm-timeout": "1", "x-litellm-num-retries": "0"},
                   json={"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 504 and "timeout=1s" in r.json()["error"]["message"], r.text
    upstream._script.clear()
    r = httpx.post(timeouts.url + "/v1/chat/completions", timeout=60,
                   headers={"Authorization": "Bearer sk-1234", "x-litellm-timeout": "soon"},
                   json={"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "x-litellm-timeout"


def test_a_client_timeout_cannot_lengthen_the_configured_one(timeouts):
    r = post(timeouts, {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}], "timeout": -1})
    assert r.status_code == 400 and r.json()["error"]["param"] == "timeout"


# ====================================================================== caching
# https://docs.litellm.ai/docs/proxy/caching (In Memory Cache; Usage: Basic; Dynamic Cache Controls)
CACHING = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: gpt-3.5-turbo
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE
  - model_name: text-embedding-ada-002
    litellm_params:
      model: text-embedding-ada-002
      api_key: os.environ/EMBED_API_KEY
      api_base: os.environ/EMBED_API_BASE

litellm_settings:
  set_verbose: True
  cache: True
  cache_params:
    type: local
"""


@pytest.fixture(scope="module")
def embedder():
    from servers.embedding_servers import FakeEmbeddingServer

    with FakeEmbeddingServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def caching(upstream, azure, embedder, tmp_path_factory) -> Iterator[Gateway]:
    from servers.embedding_servers import KEY

    path = tmp_path_factory.mktemp("gw") / "config.yaml"
    path.write_text(CACHING)
    extra = {"EMBED_API_KEY": KEY, "EMBED_API_BASE": embedder.url + "/v1"}
    with Gateway(str(path), env={**env(upstream, azure), **extra}) as gw:
        yield gw


def plain(gw: Gateway, body: dict, path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(gw.url + path, json=body, headers={"Content-Type": "application/json"}, timeout=30)


def test_caching_basic_same_request_twice(caching, upstream):
    assert not [line for line in caching.lines if "warning: " in line and "master_key" not in line]
    before = len(upstream.chat_requests)
    body = {
     "model": "gpt-3.5-turbo",
     "messages": [{"role": "user", "content": "write a poem about litellm!"}],
     "temperature": 0.7
   }
    first, second = plain(caching, body), plain(caching, body)
    assert first.status_code == second.status_code == 200
    assert len(upstream.chat_requests) == before + 1
    assert second.json()["choices"] == first.json()["choices"]
    assert second.headers["x-litellm-cache-key"]


def test_bare_embedding_model_name_is_served(caching, embedder):
    # (the doc's `model: text-embedding-ada-002` resolves to OpenAI, as in LiteLLM; the gateway's
    # response cache is for chat completions only: the embedding is asked for each time)
    body = {
  "model": "text-embedding-ada-002",
  "input": ["write a litellm poem"]
  }
    r = plain(caching, body, "/embeddings")
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["embedding"]


@pytest.mark.parametrize("cache, stored, served", [
    ({"ttl": 300}, True, False),
    ({"no-store": True}, False, False),
])
def test_dynamic_cache_controls_store(caching, upstream, cache, stored, served):
    content = f"Hello {sorted(cache)}"
    before = len(upstream.chat_requests)
    r = plain(caching, {"model": "gpt-3.5-turbo", "cache": cache, "messages": [{"role": "user", "content": content}]})
    assert r.status_code == 200 and r.headers["x-llmrelay-cache"] == "miss"
    again = plain(caching, {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": content}]})
    assert (again.headers["x-llmrelay-cache"] == "hit") is stored
    assert len(upstream.chat_requests) == before + (1 if stored else 2)


def test_dynamic_cache_controls_no_cache_and_s_maxage(caching, upstream):
    client = openai.OpenAI(api_key="your-api-key", base_url=caching.url)
    messages = [{"role": "user", "content": "Hello no-cache"}]
    client.chat.completions.create(messages=messages, model="gpt-3.5-turbo")
    before = len(upstream.chat_requests)
    chat_completion = client.chat.completions.with_raw_response.create(
        messages=messages,
        model="gpt-3.5-turbo",
        extra_body={
            "cache": {
                "no-cache": True  # Skip cache check, get fresh response
            }
        }
    )
    assert chat_completion.headers["x-llmrelay-cache"] == "miss"
    assert len(upstream.chat_requests) == before + 1
    chat_completion = client.chat.completions.with_raw_response.create(
        messages=messages,
        model="gpt-3.5-turbo",
        extra_body={
            "cache": {
                "s-maxage": 600  # Only use cache if less than 10 minutes old
            }
        }
    )
    assert chat_completion.headers["x-llmrelay-cache"] == "hit"


def test_dynamic_cache_controls_namespace(caching, upstream):
    client = openai.OpenAI(api_key="your-api-key", base_url=caching.url)
    messages = [{"role": "user", "content": "Hello namespace"}]
    for _ in range(2):
        r = client.chat.completions.with_raw_response.create(
            messages=messages,
            model="gpt-3.5-turbo",
            extra_body={
                "cache": {
                    "namespace": "my-custom-namespace"  # Store in custom namespace
                }
            }
        )
    assert r.headers["x-litellm-cache-key"].startswith("my-custom-namespace:")


# ====================================================================== load balancing
# https://docs.litellm.ai/docs/proxy/load_balancing (Quick Start; Test - Simple Call; Test -
# Loadbalancing; model_group_alias; Hide Alias Models). The redis_* lines are left out: shared
# state through Redis is tested in tests/scaling.
LOAD_BALANCING = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/<your-deployment-name>
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
      rpm: 6      # Rate limit for this deployment: in requests per minute (rpm)
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/gpt-turbo-small-ca
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
      rpm: 6
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/gpt-turbo-large
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
      rpm: 1440

router_settings:
  routing_strategy: simple-shuffle # Literal["simple-shuffle", "least-busy", "usage-based-routing","latency-based-routing"], default="simple-shuffle"
  model_group_alias:
    "gpt-4": "gpt-3.5-turbo" # all requests with `gpt-4` will be routed to models with `gpt-3.5-turbo`
    "GPT-3.5-turbo": # alias
      model: "gpt-3.5-turbo"  # Actual model name in 'model_list'
      hidden: true             # Exclude from `/v1/models`, `/v1/model/info`, `/v1/model_group/info`
  num_retries: 2
  timeout: 30                                  # 30 seconds
"""


@pytest.fixture(scope="module")
def balanced(upstream, tmp_path_factory) -> Iterator[Gateway]:
    deployments = ("<your-deployment-name>", "%3Cyour-deployment-name%3E", "gpt-turbo-small-ca", "gpt-turbo-large")
    with FakeAzureServer(deployments=deployments, api_key=UPSTREAM_KEY) as srv:
        with start(upstream, srv, tmp_path_factory, LOAD_BALANCING) as gw:
            yield gw


def test_load_balancing_simple_call_and_model_id_header(balanced):
    client = openai.OpenAI(
        api_key="sk-1234",
        base_url=balanced.url
    )
    ids = set()
    for _ in range(12):
        response = client.chat.completions.with_raw_response.create(
            model="gpt-3.5-turbo",
            messages = [
                {
                    "role": "user",
                    "content": "this is a test request, write a short poem"
                }
            ]
        )
        assert response.parse().choices[0].message.content
        ids.add(response.headers["x-litellm-model-id"])
    # "Check the model_id in Response Headers to make sure the requests are being load balanced"
    # (simple-shuffle weighs by rpm, as LiteLLM's: 1440 against 6 and 6, so mostly one deployment)
    info = httpx.get(balanced.url + "/v1/model/info", headers={"Authorization": "Bearer sk-1234"}, timeout=30).json()
    assert ids <= {m["model_info"]["id"] for m in info["data"]}, (ids, info)


def test_load_balancing_mock_rate_limit_error_is_retried(balanced):
    r = post(balanced, {
      "model": "gpt-3.5-turbo",
      "messages": [
            {"role": "user", "content": "Hi there!"}
        ],
        "mock_testing_rate_limit_error": True
    })
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-attempted-retries"] == "1"


def test_model_group_alias_and_hidden_alias(balanced):
    names = [m.id for m in sdk(balanced).models.list().data]
    assert names == ["gpt-3.5-turbo", "gpt-4"]
    for alias in ("gpt-4", "GPT-3.5-turbo"):
        r = post(balanced, {"model": alias, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200, r.text
        assert r.json()["model"] == alias


# ====================================================================== tag routing
# https://docs.litellm.ai/docs/proxy/tag_routing (Quick Start, Calling via Request Header,
# Setting Default Tags). LiteLLM's x-litellm-model-api-base header is not sent (the upstream's
# address stays inside the gateway): x-litellm-model-id tells the deployments apart instead.
TAGS = """
model_list:
  - model_name: gpt-4
    litellm_params:
      model: openai/fake
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE
      tags: ["free"] # 👈 Key Change
    model_info:
      id: "free-model"
  - model_name: gpt-4
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE
      tags: ["paid"] # 👈 Key Change
    model_info:
      id: "paid-model"
  - model_name: gpt-4
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE
      tags: ["default"] # OPTIONAL - All untagged requests will get routed to this
    model_info:
      id: "default-model" # used for identifying model in response headers


router_settings:
  enable_tag_filtering: True # 👈 Key Change
"""


@pytest.fixture(scope="module")
def tagged(upstream, azure, tmp_path_factory) -> Iterator[Gateway]:
    with start(upstream, azure, tmp_path_factory, TAGS) as gw:
        yield gw


@pytest.mark.parametrize("tags, model_id, upstream_model", [
    (["free"], "free-model", "fake"),
    (["paid"], "paid-model", "gpt-4o"),
    (None, "default-model", "gpt-4o"),
])
def test_tag_routing_quick_start(tagged, upstream, tags, model_id, upstream_model):
    body = {
        "model": "gpt-4",
        "messages": [
          {"role": "user", "content": "Hello, Claude gm!"}
        ],
    }
    if tags is not None:
        body["tags"] = tags
    for _ in range(4):
        r = post(tagged, body)
        assert r.status_code == 200, r.text
        assert r.headers["x-litellm-model-id"] == model_id
        assert upstream.chat_requests[-1]["model"] == upstream_model
        assert "tags" not in upstream.chat_requests[-1]


def test_tag_routing_via_request_header(tagged, upstream):
    for _ in range(4):
        r = httpx.post(tagged.url + "/v1/chat/completions", timeout=30, headers={
            "Content-Type": "application/json", "Authorization": "Bearer sk-1234",
            "x-litellm-tags": "free,my-custom-tag"},
            json={"model": "gpt-4", "messages": [{"role": "user", "content": "Hey, how's it going 123456?"}]})
        assert r.status_code == 200, r.text
        assert r.headers["x-litellm-model-id"] == "free-model"


# ====================================================================== wildcard routing
# https://docs.litellm.ai/docs/wildcard_routing (Provider specific Wildcard routing: config.yaml, Test it)
WILDCARDS = """
model_list:
  # provider specific wildcard routing
  - model_name: "anthropic/*"
    litellm_params:
      model: "anthropic/*"
      api_key: os.environ/ANTHROPIC_API_KEY
      api_base: os.environ/ANTHROPIC_API_BASE
  - model_name: "groq/*"
    litellm_params:
      model: "groq/*"
      api_key: os.environ/GROQ_API_KEY
      api_base: os.environ/GROQ_API_BASE
  - model_name: "fo::*:static::*" # all requests matching this pattern will be routed to this deployment, example: model="fo::hi::static::hi" will be routed to deployment: "openai/fo::*:static::*"
    litellm_params:
      model: "openai/fo::*:static::*"
      api_key: os.environ/OPENAI_API_KEY
      api_base: os.environ/OPENAI_API_BASE
"""


@pytest.fixture(scope="module")
def wild(upstream, azure, tmp_path_factory) -> Iterator[tuple[Gateway, object]]:
    from servers.anthropic_server import FakeAnthropicServer

    with FakeAnthropicServer(api_key=UPSTREAM_KEY) as anthropic:
        path = tmp_path_factory.mktemp("gw") / "config.yaml"
        path.write_text(WILDCARDS + "\ngeneral_settings:\n  master_key: sk-1234\n")
        extra = {"ANTHROPIC_API_BASE": anthropic.url, "GROQ_API_KEY": UPSTREAM_KEY,
                 "GROQ_API_BASE": upstream.url + "/v1"}
        with Gateway(str(path), env={**env(upstream, azure), **extra}) as gw:
            yield gw, anthropic


@pytest.mark.parametrize("model, sent", [
    ("anthropic/claude-3-sonnet-20240229", "claude-3-sonnet-20240229"),
    ("groq/llama3-8b-8192", "llama3-8b-8192"),
    ("fo::hi::static::hi", "fo::hi::static::hi"),
])
def test_wildcard_routing(wild, upstream, model, sent):
    gw, anthropic = wild
    r = httpx.post(gw.url + "/v1/chat/completions", timeout=30, headers={
        "Content-Type": "application/json", "Authorization": "Bearer sk-1234"}, json={
          "model": model,
          "messages": [
            {"role": "user", "content": "Hello, Claude!"}
          ]
        })
    assert r.status_code == 200, r.text
    assert r.json()["model"] == model
    server = anthropic if model.startswith("anthropic/") else upstream
    assert server.requests[-1].json()["model"] == sent


# https://docs.litellm.ai/docs/proxy/reliability (Disable Fallbacks - Per Request)
def test_disable_fallbacks_per_request(quick, azure):
    azure.requests.clear()
    r = post(quick, {
        "messages": [
            {
                "role": "user",
                "content": "List 5 important events in the XIX century"
            }
        ],
        "model": "gpt-3.5-turbo",
        "disable_fallbacks": True,  # 👈 DISABLE FALLBACKS
        "mock_testing_fallbacks": True,
    })
    assert r.status_code == 500, r.text  # the group's (mocked) error: no fallback to gpt-4
    assert not azure.requests
    r = post(quick, {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}],
                     "disable_fallbacks": "yes"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "disable_fallbacks"
