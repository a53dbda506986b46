"""``litellm.utils``: the helpers code imports from LiteLLM's utils module.

    from llmrelay.utils import trim_messages, token_counter, get_secret, ModelResponse

Nothing is defined here: each name is llmrelay's own (from the module that provides it),
imported when first used, so this module is as light as ``llmrelay``. Names not listed are
looked up on the ``llmrelay`` package (``from llmrelay.utils import completion`` works, as in
LiteLLM).
"""

from __future__ import annotations

import importlib
from typing import Any

#: name → the llmrelay module that provides it.
_SOURCES: dict[str, str] = {
    "trim_messages": "trim",
    "shorten_message_to_fit_limit": "trim",
    "token_counter": "tokens",
    "encode": "tokens",
    "decode": "tokens",
    "get_secret": "env_secrets",
    "get_secret_str": "env_secrets",
    "get_secret_bool": "env_secrets",
    "ModelResponse": "types",
    "ModelResponseStream": "types",
    "Message": "types",
    "Delta": "types",
    "Choices": "types",
    "StreamingChoices": "types",
    "Usage": "types",
    "EmbeddingResponse": "embeddings",
    "TextCompletionResponse": "completions_api",
    "CustomStreamWrapper": "streaming",
    "get_model_info": "cost",
    "completion_cost": "cost",
    "cost_per_token": "cost",
    "get_max_tokens": "cost",
    "register_model": "cost",
    "supports_function_calling": "cost",
    "supports_parallel_function_calling": "cost",
    "supports_tool_choice": "cost",
    "supports_vision": "cost",
    "supports_reasoning": "cost",
    "supports_response_schema": "cost",
    "supports_prompt_caching": "cost",
    "supports_system_messages": "cost",
    "supports_audio_input": "cost",
    "supports_pdf_input": "cost",
    "supports_web_search": "cost",
    "get_llm_provider": "provider_info",
    "get_supported_openai_params": "providers.registry",
    "validate_environment": "environment",
    "check_valid_key": "helpers",
    "get_response_string": "helpers",
    "print_verbose": "helpers",
    "get_first_chars_messages": "helpers",
}

__all__ = list(_SOURCES)


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is not None:
        value = getattr(importlib.import_module(f"llmrelay.{source}"), name)
    elif name.startswith("__"):
        raise AttributeError(name)
    else:
        import llmrelay

        try:
            value = getattr(llmrelay, name)
        except AttributeError:
            raise AttributeError(
                f"module 'llmrelay.utils' has no attribute {name!r}; llmrelay provides LiteLLM's public API, "
                "not its internals"
            ) from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
