"""The ``kwargs`` every CustomLogger hook receives, key by key and type by type, as LiteLLM's
own callback tests check them (tests/local_testing/test_custom_callback_input.py): which hooks
run for sync/async, streamed/whole, successful/failed chat and embedding calls, and the
``standard_logging_object`` keys (LiteLLM's ``StandardLoggingPayload``) — real transport, fake
upstreams."""

from __future__ import annotations

import json
import traceback
from datetime import datetime

import pytest

import llmrelay as litellm
from llmrelay.integrations.custom_logger import CustomLogger
from llmrelay.integrations.dispatch import wait_pending
from servers.embedding_servers import KEY, FakeEmbeddingServer
from servers.openai_server import FakeOpenAIServer

#: LiteLLM's StandardLoggingPayload, StandardLoggingMetadata and StandardLoggingHiddenParams keys.
PAYLOAD_KEYS = {
    "id", "trace_id", "call_type", "stream", "response_cost", "cost_breakdown", "response_cost_failure_debug_info",
    "status", "status_fields", "custom_llm_provider", "total_tokens", "prompt_tokens", "completion_tokens",
    "startTime", "endTime", "completionStartTime", "response_time", "model_map_information", "model", "model_id",
    "model_group", "api_base", "metadata", "cache_hit", "cache_key", "saved_cache_cost", "request_tags", "end_user",
    "requester_ip_address", "messages", "response", "error_str", "error_information", "model_parameters",
    "hidden_params", "guardrail_information", "standard_built_in_tools_params",
}
METADATA_KEYS = {
    "user_api_key_hash", "user_api_key_alias", "user_api_key_spend", "user_api_key_max_budget",
    "user_api_key_budget_reset_at", "user_api_key_org_id", "user_api_key_team_id", "user_api_key_user_id",
    "user_api_key_user_email", "user_api_key_team_alias", "user_api_key_end_user_id", "user_api_key_request_route",
    "user_api_key_auth_metadata", "spend_logs_metadata", "requester_ip_address", "requester_metadata",
    "requester_custom_headers", "prompt_management_metadata", "mcp_tool_call_metadata",
    "vector_store_request_metadata", "applied_guardrails", "usage_object", "cold_storage_object_key",
}
HIDDEN_KEYS = {"model_id", "cache_key", "api_base", "response_cost", "litellm_overhead_time_ms", "additional_headers",
               "batch_models", "litellm_model_name", "usage_object"}


class TypeChecker(CustomLogger):
    """Records each hook that ran and every expectation about its arguments that failed."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[str] = []
        self.errors: list[str] = []
        self.success_kwargs: dict | None = None

    def _check(self, state: str, fn) -> None:
        self.states.append(state)
        try:
            fn()
        except Exception:  # noqa: BLE001 - recorded, asserted on by the test
            self.errors.append(f"{state}: {traceback.format_exc()}")

    @staticmethod
    def _common(kwargs: dict) -> None:
        assert isinstance(kwargs["model"], str)
        assert isinstance(kwargs["messages"], list)
        assert isinstance(kwargs["optional_params"], dict)
        assert isinstance(kwargs["litellm_params"], dict)
        assert kwargs["litellm_params"].get("metadata") is None or isinstance(kwargs["litellm_params"]["metadata"], dict)
        assert isinstance(kwargs["start_time"], (datetime, type(None)))
        assert isinstance(kwargs["stream"], bool)
        assert isinstance(kwargs["user"], (str, type(None)))

    @classmethod
    def _after_call(cls, kwargs: dict) -> None:
        cls._common(kwargs)
        assert isinstance(kwargs["input"], (list, dict, str))
        assert isinstance(kwargs["api_key"], (str, type(None)))
        assert isinstance(kwargs["additional_args"], (dict, type(None)))
        assert isinstance(kwargs["log_event_type"], str)

    def log_pre_api_call(self, model, messages, kwargs):
        def check():
            assert isinstance(model, str) and isinstance(messages, list)
            self._common(kwargs)
        self._check("pre_api_call", check)

    def log_post_api_call(self, kwargs, response_obj, start_time, end_time):
        def check():
            assert isinstance(start_time, datetime) and end_time is None and response_obj is None
            self._after_call(kwargs)
            assert isinstance(kwargs["original_response"], str)
            assert kwargs["log_event_type"] == "post_api_call"
        self._check("post_api_call", check)

    def _success(self, state, kwargs, response_obj, start_time, end_time):
        def check():
            json.dumps(kwargs, default=str)  # no circular references
            assert isinstance(start_time, datetime) and isinstance(end_time, datetime)
            assert isinstance(response_obj, (litellm.ModelResponse, litellm.EmbeddingResponse))
            self._after_call(kwargs)
            assert isinstance(kwargs["litellm_params"]["api_base"], str)
            assert kwargs["cache_hit"] is None or isinstance(kwargs["cache_hit"], bool)
            assert isinstance(kwargs["completion_start_time"], datetime)
            assert isinstance(kwargs["original_response"], str)
            assert isinstance(kwargs["response_cost"], (float, type(None)))
            assert kwargs["log_event_type"] == "successful_api_call"
            self.success_kwargs = kwargs
        self._check(state, check)

    def _failure(self, state, kwargs, response_obj, start_time, end_time):
        def check():
            assert isinstance(start_time, datetime) and isinstance(end_time, datetime) and response_obj is None
            self._after_call(kwargs)
            assert kwargs["original_response"] is None or isinstance(kwargs["original_response"], str)
            assert kwargs["log_event_type"] == "failed_api_call"
            assert "additional_headers" in kwargs["standard_logging_object"]["hidden_params"]
        self._check(state, check)

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._success("sync_success", kwargs, response_obj, start_time, end_time)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._success("async_success", kwargs, response_obj, start_time, end_time)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._failure("sync_failure", kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._failure("async_failure", kwargs, response_obj, start_time, end_time)


@pytest.fixture
def keyed():
    with FakeOpenAIServer(api_key="sk-good") as server:
        yield server


def chat(server, **kw) -> dict:
    return {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hi 👋 - i'm openai"}],
            "api_base": server.url + "/v1", "api_key": "sk-good", **kw}


@pytest.mark.parametrize("stream", [False, True])
def test_sync_chat_hooks_and_their_kwargs(keyed, stream):
    handler = TypeChecker()
    litellm.callbacks = [handler]
    response = litellm.completion(**chat(keyed), stream=stream)
    if stream:
        for _ in response:
            pass
    with pytest.raises(litellm.AuthenticationError):
        litellm.completion(**chat(keyed, api_key="my-bad-key"), stream=stream)
    assert handler.errors == []
    assert handler.states == ["pre_api_call", "post_api_call", "sync_success",
                              "pre_api_call", "post_api_call", "sync_failure"]


@pytest.mark.parametrize("stream", [False, True])
async def test_async_chat_hooks_and_their_kwargs(keyed, stream):
    handler = TypeChecker()
    litellm.callbacks = [handler]
    response = await litellm.acompletion(**chat(keyed), stream=stream)
    if stream:
        async for _ in response:
            pass
    await wait_pending()
    with pytest.raises(litellm.AuthenticationError):
        await litellm.acompletion(**chat(keyed, api_key="my-bad-key"), stream=stream)
    await wait_pending()
    assert handler.errors == []
    assert handler.states == ["pre_api_call", "post_api_call", "async_success",
                              "pre_api_call", "post_api_call", "async_failure"]


async def test_async_embedding_pre_post_and_end():
    with FakeEmbeddingServer() as server:
        kw = {"model": "text-embedding-ada-002", "input": ["good morning from litellm"], "api_base": server.url + "/v1"}
        handler = TypeChecker()
        litellm.callbacks = [handler]
        await litellm.aembedding(api_key=KEY, **kw)
        await wait_pending()
        assert handler.errors == [] and handler.states == ["pre_api_call", "post_api_call", "async_success"]
        assert handler.success_kwargs["input"] == ["good morning from litellm"]
        failing = TypeChecker()
        litellm.callbacks = [failing]
        with pytest.raises(litellm.AuthenticationError):
            await litellm.aembedding(api_key="my-bad-key", **kw)
        await wait_pending()
        assert failing.errors == [] and failing.states == ["pre_api_call", "post_api_call", "async_failure"]


def test_standard_logging_payload_keys_and_model_map(keyed):
    """test_standard_logging_payload: every key, JSON-serializable, a cost > 0 and the price
    table's facts for the model in model_map_information."""
    handler = TypeChecker()
    litellm.callbacks = [handler]
    answer = litellm.completion(**chat(keyed), metadata={"tags": ["t"]})
    kwargs = handler.success_kwargs
    slo = kwargs["standard_logging_object"]
    assert PAYLOAD_KEYS <= set(slo), PAYLOAD_KEYS - set(slo)
    assert METADATA_KEYS <= set(slo["metadata"]), METADATA_KEYS - set(slo["metadata"])
    assert HIDDEN_KEYS <= set(slo["hidden_params"]), HIDDEN_KEYS - set(slo["hidden_params"])
    json.loads(json.dumps(slo))
    assert slo["response_cost"] > 0 and slo["status_fields"]["llm_api_status"] == "success"
    facts = slo["model_map_information"]["model_map_value"]
    assert facts is not None and facts["input_cost_per_token"] == litellm.get_model_info("gpt-3.5-turbo")[
        "input_cost_per_token"]
    assert json.loads(kwargs["original_response"])["id"] == answer.id
    assert answer._hidden_params["litellm_call_id"] == kwargs["litellm_call_id"] == slo["id"]
    assert kwargs["additional_args"]["complete_input_dict"]["messages"] == chat(keyed)["messages"]


@pytest.mark.parametrize("stream", [False, True])
def test_turn_off_message_logging(keyed, stream, monkeypatch):
    """test_standard_logging_payload / test_logging_async_cache_hit_sync_call with
    turn_off_message_logging: the callbacks see LiteLLM's placeholder, the caller its answer."""
    monkeypatch.setattr(litellm, "turn_off_message_logging", True)
    handler = TypeChecker()
    seen = []
    litellm.callbacks = [handler]
    litellm.success_callback = [lambda kwargs, response, start, end: seen.append(response)]
    answer = litellm.completion(**chat(keyed), stream=stream)
    text = "".join(c.choices[0].delta.content or "" for c in answer) if stream else answer.choices[0].message.content
    assert text and "redacted" not in text
    assert handler.errors == []
    kwargs = handler.success_kwargs
    slo = kwargs["standard_logging_object"]
    assert slo["messages"][0]["content"] == "redacted-by-litellm" and slo["response"] == {"text": "redacted-by-litellm"}
    assert kwargs["messages"][0]["content"] == "redacted-by-litellm" and "Hi" not in json.dumps(kwargs, default=str)
    [response] = seen
    assert response.choices[0].message.content == "redacted-by-litellm"
    assert slo["response_cost"] > 0 and slo["total_tokens"] > 0  # spend is still tracked


def test_logging_callback_manager(keyed):
    """litellm.logging_callback_manager, as LiteLLM's tests and integrations use it: no
    duplicates, async functions to the async list, and _reset_all_callbacks between cases."""
    manager = litellm.logging_callback_manager
    first, second = TypeChecker(), TypeChecker()
    manager.add_litellm_callback(first)
    manager.add_litellm_callback(second)  # the same class with the same settings: once
    assert litellm.callbacks == [first]

    async def on_success(kwargs, response, start, end):
        pass

    manager.add_litellm_success_callback(on_success)
    manager.add_litellm_success_callback(on_success)
    assert litellm._async_success_callback == [on_success] and litellm.success_callback == []
    assert manager.get_custom_loggers_for_type(TypeChecker) == [first] and manager.callback_is_active(TypeChecker)
    litellm.completion(**chat(keyed))
    assert first.states == ["pre_api_call", "post_api_call", "sync_success"]
    manager._reset_all_callbacks()
    assert litellm.callbacks == [] == litellm._async_success_callback == litellm.input_callback
    litellm.completion(**chat(keyed))
    assert len(first.states) == 3
