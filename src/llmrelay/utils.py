"""``litellm.utils``: the helpers code imports from LiteLLM's utils module.

    from llmrelay.utils import trim_messages, token_counter, get_secret, ModelResponse

Nothing is defined here: each name is read from the ``llmrelay`` package when first used (its
lazy table imports the module that provides it), so this module is as light as ``llmrelay``;
any other public name of the package works too (``from llmrelay.utils import completion``, as
in LiteLLM).
"""

from __future__ import annotations

import importlib
from typing import Any

#: The names code imports from LiteLLM's utils module. Each is the ``llmrelay`` package's own
#: (its lazy table says where it lives), except :data:`_OWN`'s.
_NAMES = (
    "trim_messages", "shorten_message_to_fit_limit", "token_counter", "encode", "decode", "get_secret",
    "get_secret_str", "get_secret_bool", "ModelResponse", "ModelResponseStream", "Message", "Delta", "Choices",
    "StreamingChoices", "Usage", "EmbeddingResponse", "TextCompletionResponse", "CustomStreamWrapper",
    "get_model_info", "completion_cost", "cost_per_token", "get_max_tokens", "register_model",
    "supports_function_calling", "supports_parallel_function_calling", "supports_tool_choice", "supports_vision",
    "supports_reasoning", "supports_response_schema", "supports_prompt_caching", "supports_system_messages",
    "supports_audio_input", "supports_pdf_input", "supports_web_search", "get_llm_provider",
    "get_supported_openai_params", "validate_environment", "check_valid_key", "get_response_string",
    "print_verbose", "get_first_chars_messages", "supports_audio_output", "supports_computer_use",
    "supports_url_context", "supports_embedding_image_input", "supports_native_streaming", "get_model_cost_map",
    "get_valid_models", "function_to_dict", "is_base64_encoded", "get_token_count", "model_cost",
    "get_modified_max_tokens",
)
#: name → the llmrelay module of the names the package does not export.
_OWN: dict[str, str] = {"shorten_message_to_fit_limit": "trim"}

__all__ = list(_NAMES)


def __getattr__(name: str) -> Any:
    source = _OWN.get(name)
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
    return sorted(set(globals()) | set(_NAMES))
