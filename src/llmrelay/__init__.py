"""llmrelay: call any LLM provider through one OpenAI-shaped API, streaming first.

    import llmrelay
    for chunk in llmrelay.completion(model="openai/gpt-4o-mini", messages=[...], stream=True):
        print(chunk.choices[0].delta.content or "", end="")

Public names are imported lazily, so ``import llmrelay`` loads no HTTP library.
Module settings (``REPEATED_STREAMING_CHUNK_LIMIT``, ``drop_params``, ``num_retries``,
``request_timeout``, ``api_key``, ``api_base``, ``set_verbose``) are attributes of this module,
and so are LiteLLM's callback lists (``callbacks``, ``success_callback``, ``failure_callback``,
``_async_success_callback``, ``_async_failure_callback``, ``input_callback``; see
``docs/observability.md``).
"""

from __future__ import annotations

import sys
import types as _types
from typing import Any

from . import settings as _settings
from .exceptions import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    LLMRelayError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
    UnprocessableEntityError,
    UnsupportedParamsError,
)

__version__ = "0.1.0"

REPEATED_STREAMING_CHUNK_LIMIT: int = _settings.DEFAULTS["REPEATED_STREAMING_CHUNK_LIMIT"]
drop_params: bool = _settings.DEFAULTS["drop_params"]
num_retries: int = _settings.DEFAULTS["num_retries"]
request_timeout: float = _settings.DEFAULTS["request_timeout"]
api_key: str | None = None
api_base: str | None = None
ssl_verify: bool | str = True
#: Callbacks (and OTel spans) get "redacted-by-litellm" instead of prompts and answers.
turn_off_message_logging: bool = False
#: LiteLLM's global budget (USD): once the calls made since it was set (``_current_cost``) cost
#: more, a call raises BudgetExceededError before it goes out. None: no budget.
max_budget: float | None = None
_current_cost: float = 0.0
#: The response cache for completion()/acompletion(): ``llmrelay.cache = llmrelay.Cache(...)``.
cache: Any = None

# Callbacks (LiteLLM's lists): CustomLogger instances, functions (kwargs, response, start, end),
# or built-in names ("prometheus", "otel"). Read at the start of every call.
callbacks: list = []
success_callback: list = []
failure_callback: list = []
_async_success_callback: list = []
_async_failure_callback: list = []
#: Told of each call before it goes out: functions ``fn(kwargs)``, loggers' ``log_pre_api_call``.
input_callback: list = []

# LiteLLM's other module settings, for code written against LiteLLM (install_as_litellm).
#: model name → the model string to call instead (read by ``completion``).
model_alias_map: dict[str, str] = {}
#: Accepted for compatibility; llmrelay sends no telemetry.
telemetry: bool = False
#: Accepted for compatibility; llmrelay prints nothing (it logs to the "llmrelay" logger).
suppress_debug_info: bool = False
modify_params: bool = False
model_fallbacks: list | None = None
use_litellm_proxy: bool = False

_LAZY = {
    "completion": ("main", "completion"),
    "acompletion": ("main", "acompletion"),
    "responses": ("responses_api", "responses"),
    "aresponses": ("responses_api", "aresponses"),
    "embedding": ("embeddings", "embedding"),
    "aembedding": ("embeddings", "aembedding"),
    "EmbeddingResponse": ("embeddings", "EmbeddingResponse"),
    "text_completion": ("completions_api", "text_completion"),
    "atext_completion": ("completions_api", "atext_completion"),
    "TextCompletionResponse": ("completions_api", "TextCompletionResponse"),
    "stream_chunk_builder": ("builder", "stream_chunk_builder"),
    "token_counter": ("tokens", "token_counter"),
    "CustomStreamWrapper": ("streaming", "CustomStreamWrapper"),
    "ModelResponseListIterator": ("streaming", "ModelResponseListIterator"),
    "ModelResponse": ("types", "ModelResponse"),
    "ModelResponseStream": ("types", "ModelResponseStream"),
    "Message": ("types", "Message"),
    "Delta": ("types", "Delta"),
    "Choices": ("types", "Choices"),
    "StreamingChoices": ("types", "StreamingChoices"),
    "Usage": ("types", "Usage"),
    "ImageResponse": ("types", "ImageResponse"),
    "TranscriptionResponse": ("types", "TranscriptionResponse"),
    "ChatCompletionMessageToolCall": ("types", "ChatCompletionMessageToolCall"),
    "ChatCompletionDeltaToolCall": ("types", "ChatCompletionDeltaToolCall"),
    "Function": ("types", "Function"),
    "Logging": ("logging_obj", "Logging"),
    "Router": ("router", "Router"),
    "CustomLogger": ("integrations.custom_logger", "CustomLogger"),
    "logging_callback_manager": ("integrations.callback_manager", "logging_callback_manager"),
    "completion_cost": ("cost", "completion_cost"),
    "cost_per_token": ("cost", "cost_per_token"),
    "model_cost": ("cost", "model_cost"),
    "get_model_info": ("cost", "get_model_info"),
    "model_list": ("cost", "model_list"),
    "open_ai_chat_completion_models": ("cost", "open_ai_chat_completion_models"),
    "open_ai_embedding_models": ("cost", "open_ai_embedding_models"),
    "open_ai_text_completion_models": ("cost", "open_ai_text_completion_models"),
    "anthropic_models": ("cost", "anthropic_models"),
    "cohere_models": ("cost", "cohere_models"),
    "gemini_models": ("cost", "gemini_models"),
    "mistral_chat_models": ("cost", "mistral_chat_models"),
    "groq_models": ("cost", "groq_models"),
    "bedrock_models": ("cost", "bedrock_models"),
    "models_by_provider": ("cost", "models_by_provider"),
    "register_model": ("cost", "register_model"),
    "get_max_tokens": ("cost", "get_max_tokens"),
    "supports_function_calling": ("cost", "supports_function_calling"),
    "supports_parallel_function_calling": ("cost", "supports_parallel_function_calling"),
    "supports_tool_choice": ("cost", "supports_tool_choice"),
    "supports_vision": ("cost", "supports_vision"),
    "supports_reasoning": ("cost", "supports_reasoning"),
    "supports_response_schema": ("cost", "supports_response_schema"),
    "supports_prompt_caching": ("cost", "supports_prompt_caching"),
    "supports_system_messages": ("cost", "supports_system_messages"),
    "get_supported_openai_params": ("providers.registry", "get_supported_openai_params"),
    "Cache": ("caching", "Cache"),
    "enable_cache": ("caching", "enable_cache"),
    "disable_cache": ("caching", "disable_cache"),
    "update_cache": ("caching", "update_cache"),
    "install_as_litellm": ("litellm_compat", "install_as_litellm"),
    "get_secret": ("env_secrets", "get_secret"),
    "get_secret_str": ("env_secrets", "get_secret_str"),
    "get_secret_bool": ("env_secrets", "get_secret_bool"),
    "get_llm_provider": ("provider_info", "get_llm_provider"),
    "OPENAI_CHAT_COMPLETION_PARAMS": ("provider_info", "OPENAI_CHAT_COMPLETION_PARAMS"),
    "InvalidRequestError": ("exceptions", "InvalidRequestError"),
    "APIResponseValidationError": ("exceptions", "APIResponseValidationError"),
    "BudgetExceededError": ("exceptions", "BudgetExceededError"),
    "RouterRateLimitError": ("exceptions", "RouterRateLimitError"),
    "JSONSchemaValidationError": ("exceptions", "JSONSchemaValidationError"),
    "RejectedRequestError": ("exceptions", "RejectedRequestError"),
    "MockException": ("exceptions", "MockException"),
    "MidStreamFallbackError": ("exceptions", "MidStreamFallbackError"),
    "LITELLM_EXCEPTION_TYPES": ("exceptions", "LITELLM_EXCEPTION_TYPES"),
    "OpenAIError": ("helpers", "openai_error_class"),
    "exception_type": ("helpers", "exception_type"),
    "supports_audio_input": ("cost", "supports_audio_input"),
    "supports_pdf_input": ("cost", "supports_pdf_input"),
    "supports_web_search": ("cost", "supports_web_search"),
    "supports_audio_output": ("cost", "supports_audio_output"),
    "supports_computer_use": ("cost", "supports_computer_use"),
    "supports_url_context": ("cost", "supports_url_context"),
    "supports_embedding_image_input": ("cost", "supports_embedding_image_input"),
    "supports_native_streaming": ("cost", "supports_native_streaming"),
    "get_model_cost_map": ("cost", "get_model_cost_map"),
    "response_cost_calculator": ("cost", "response_cost_calculator"),
    "get_valid_models": ("helpers", "get_valid_models"),
    "function_to_dict": ("helpers", "function_to_dict"),
    "is_base64_encoded": ("helpers", "is_base64_encoded"),
    "get_token_count": ("helpers", "get_token_count"),
    "get_modified_max_tokens": ("helpers", "get_modified_max_tokens"),
    "_turn_on_debug": ("helpers", "turn_on_debug"),
    "encode": ("tokens", "encode"),
    "decode": ("tokens", "decode"),
    "trim_messages": ("trim", "trim_messages"),
    "validate_environment": ("environment", "validate_environment"),
    "check_valid_key": ("helpers", "check_valid_key"),
    "get_response_string": ("helpers", "get_response_string"),
    "print_verbose": ("helpers", "print_verbose"),
    "get_first_chars_messages": ("helpers", "get_first_chars_messages"),
    "mock_completion": ("helpers", "mock_completion"),
    "provider_list": ("helpers", "provider_list"),
    "batch_completion": ("batch", "batch_completion"),
    "batch_completion_models": ("batch", "batch_completion_models"),
    "batch_completion_models_all_responses": ("batch", "batch_completion_models_all_responses"),
    "completion_with_retries": ("retries", "completion_with_retries"),
    "acompletion_with_retries": ("retries", "acompletion_with_retries"),
    "BudgetManager": ("budget_manager", "BudgetManager"),
}

#: Submodules that are also public names (LiteLLM's ``litellm.utils``, ``litellm.budget_manager``),
#: imported when first read as attributes.
_SUBMODULES = frozenset({"utils", "budget_manager"})

__all__ = [
    "REPEATED_STREAMING_CHUNK_LIMIT",
    "drop_params",
    "num_retries",
    "request_timeout",
    "api_key",
    "api_base",
    "cache",
    "set_verbose",
    "callbacks",
    "success_callback",
    "failure_callback",
    "model_alias_map",
    "telemetry",
    "suppress_debug_info",
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "InternalServerError",
    "LLMRelayError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Timeout",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    *_LAZY,
    *_SUBMODULES,
]


class _Module(_types.ModuleType):
    """Lets ``llmrelay.set_verbose = True`` switch debug logging on (LiteLLM's spelling)."""

    _verbose = False

    @property
    def set_verbose(self) -> bool:
        return self._verbose

    @set_verbose.setter
    def set_verbose(self, value: bool) -> None:
        self._verbose = bool(value)
        _settings.configure_verbose(bool(value))

    def __getattr__(self, name: str) -> Any:
        target = _LAZY.get(name)
        if target is None and name not in _SUBMODULES:
            raise AttributeError(f"module 'llmrelay' has no attribute {name!r}")
        import importlib

        if target is None:
            return importlib.import_module(f"llmrelay.{name}")  # (sets itself as the attribute)
        value = getattr(importlib.import_module(f"llmrelay.{target[0]}"), target[1])
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(_LAZY) | _SUBMODULES)


sys.modules[__name__].__class__ = _Module
