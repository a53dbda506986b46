"""install_as_litellm() and the LiteLLM public names it relies on."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

import llmrelay
from llmrelay.response_format import response_format_param
from servers.openai_server import FakeOpenAIServer


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_llmrelay_installs_nothing():
    assert _run("import sys, llmrelay; print(sorted(m for m in sys.modules if m.startswith('litellm')))") == "[]"


def test_install_maps_litellm_and_submodules():
    code = """
import sys, llmrelay
llmrelay.install_as_litellm()
llmrelay.install_as_litellm()  # idempotent
import litellm, litellm.types.utils
from litellm.types.utils import Delta, ModelResponse, Usage
from litellm.utils import get_llm_provider, ModelResponse as M2
from litellm.exceptions import BudgetExceededError, RateLimitError
from litellm.main import completion
from litellm.router import Router
from litellm.integrations.custom_logger import CustomLogger
from litellm.caching.caching import Cache
from litellm.caching import Cache as Cache2
assert Cache is Cache2 is llmrelay.Cache
assert litellm is llmrelay and Delta is llmrelay.Delta and M2 is llmrelay.ModelResponse
assert completion is llmrelay.completion and Router is llmrelay.Router
assert RateLimitError is llmrelay.RateLimitError and CustomLogger is llmrelay.CustomLogger
assert litellm.utils.get_supported_openai_params is llmrelay.get_supported_openai_params
assert litellm._logging.verbose_logger.name == "llmrelay"
assert litellm.types.utils.ModelResponse is llmrelay.ModelResponse  # attribute chain
assert litellm.types.llms.openai.Message is llmrelay.Message
try:
    litellm.utils.ProviderConfigManager
except AttributeError as e:
    assert "internals" in str(e)
else:
    raise AssertionError("an internal name resolved")
print("ok")
"""
    assert _run(code) == "ok"


def test_install_refuses_when_real_litellm_is_loaded():
    code = """
import sys, types, llmrelay
sys.modules["litellm"] = types.ModuleType("litellm")
try:
    llmrelay.install_as_litellm()
except RuntimeError as e:
    print("refused")
"""
    assert _run(code) == "refused"


def test_get_llm_provider_tuple():
    assert llmrelay.get_llm_provider("anthropic/claude-3-5-sonnet") == ("claude-3-5-sonnet", "anthropic", None, None)
    assert llmrelay.get_llm_provider("gpt-4o-mini") == ("gpt-4o-mini", "openai", None, None)
    model, provider, key, base = llmrelay.get_llm_provider("groq/llama-3.1-8b", api_key="k")
    assert (model, provider, key) == ("llama-3.1-8b", "groq", "k") and base.startswith("https://")
    assert llmrelay.get_llm_provider("m", custom_llm_provider="openai", api_base="http://x") == ("m", "openai", None, "http://x")
    with pytest.raises(llmrelay.BadRequestError):
        llmrelay.get_llm_provider("nonsense-model")


def test_get_supported_openai_params():
    openai = llmrelay.get_supported_openai_params("gpt-4o-mini")
    assert {"tools", "response_format", "temperature", "logit_bias"} <= set(openai)
    claude = llmrelay.get_supported_openai_params("claude-3-5-sonnet-latest", custom_llm_provider="anthropic")
    assert "tools" in claude and "logit_bias" not in claude
    assert llmrelay.get_supported_openai_params("nonsense-model") is None
    assert {"temperature", "tools", "stream", "api_base"} <= set(llmrelay.OPENAI_CHAT_COMPLETION_PARAMS)


def test_litellm_exception_names():
    assert issubclass(llmrelay.InvalidRequestError, llmrelay.BadRequestError)
    assert llmrelay.APIResponseValidationError("bad shape").status_code == 500
    e = llmrelay.BudgetExceededError(current_cost=2.5, max_budget=1.0)
    assert (e.current_cost, e.max_budget) == (2.5, 1.0) and "2.5" in str(e)
    r = llmrelay.RouterRateLimitError(model="gpt", cooldown_time=5, enable_pre_call_checks=False, cooldown_list=["a"])
    assert isinstance(r, ValueError) and r.cooldown_time == 5 and "gpt" in str(r)


class City(BaseModel):
    name: str
    population: int | None = None


class Answer(BaseModel):
    city: City
    reasons: list[str]


def test_response_format_from_pydantic_class():
    rf = response_format_param(Answer)
    assert rf["type"] == "json_schema"
    js = rf["json_schema"]
    assert js["name"] == "Answer" and js["strict"] is True
    schema = js["schema"]
    assert schema["additionalProperties"] is False and schema["required"] == ["city", "reasons"]
    city = schema["$defs"]["City"]
    assert city["additionalProperties"] is False and city["required"] == ["name", "population"]
    assert response_format_param({"type": "json_object"}) == {"type": "json_object"}


def test_completion_sends_pydantic_response_format_and_honours_alias_map(monkeypatch):
    monkeypatch.setattr(llmrelay, "model_alias_map", {"fast": "openai/gpt-4o-mini"})
    with FakeOpenAIServer('{"city": {"name": "Paris", "population": null}, "reasons": []}') as srv:
        resp = llmrelay.completion(
            model="fast", messages=[{"role": "user", "content": "hi"}],
            response_format=Answer, api_base=srv.url + "/v1", api_key="k",
        )
        body = srv.chat_requests[0]
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"]["json_schema"]["name"] == "Answer"
    assert Answer.model_validate_json(resp.choices[0].message.content).city.name == "Paris"
