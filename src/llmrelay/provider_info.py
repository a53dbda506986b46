"""LiteLLM's questions about a model string, answered from llmrelay's provider table.

``get_llm_provider`` (LiteLLM's 4-tuple) and the ``OPENAI_CHAT_COMPLETION_PARAMS`` list
(``get_supported_openai_params`` is in :mod:`llmrelay.providers.registry`). No I/O: only the provider table is consulted.
"""

from __future__ import annotations

import os
from typing import Any

from .providers import registry
from .providers.base import OPENAI_PARAMS

__all__ = ["OPENAI_CHAT_COMPLETION_PARAMS", "get_llm_provider"]

#: Keyword arguments of ``completion`` that are not forwarded as model parameters.
_CLIENT_KWARGS = (
    "stream",
    "request_timeout",
    "timeout",
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "extra_headers",
    "max_retries",
)

#: Every OpenAI chat-completions keyword ``completion`` accepts (LiteLLM's list of the same name).
OPENAI_CHAT_COMPLETION_PARAMS: list[str] = sorted(OPENAI_PARAMS) + list(_CLIENT_KWARGS)


def get_llm_provider(
    model: str,
    custom_llm_provider: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    litellm_params: Any = None,
) -> tuple[str, str, str | None, str | None]:
    """``(model, provider, api_key, api_base)`` for a model string, as LiteLLM returns them.

    The model is the provider's own name (prefix removed); ``api_base`` is the one given, else
    the provider's fixed default for hosted OpenAI-compatible providers, else ``None``.
    Raises :class:`~llmrelay.exceptions.BadRequestError` for a model no provider serves.
    """
    if model == "*" and not custom_llm_provider:  # LiteLLM's catch-all deployment
        return model, "openai", api_key, api_base
    provider, provider_model = registry.resolve(model, custom_llm_provider)
    host = getattr(registry.get_provider(provider), "host", None)
    if api_base is None:
        for name in getattr(host, "api_base_env", ()):  # the base the call would use
            value = os.environ.get(name)
            if value:
                api_base = value
                break
        else:
            default = getattr(host, "api_base", None)
            if isinstance(default, str) and "{" not in default:
                api_base = default
    if api_key is None and provider in _FAKE_KEY_PROVIDERS:
        api_key = "fake-api-key"  # LiteLLM's placeholder for servers that take any key
    return provider_model, _litellm_name(provider, provider_model), api_key, api_base


#: Self-hosted servers LiteLLM gives a placeholder key when none is set.
_FAKE_KEY_PROVIDERS = frozenset({"hosted_vllm", "llamafile"})


def _litellm_name(provider: str, model: str) -> str:
    """LiteLLM's name for the provider of this model: OpenAI's legacy completion models are
    ``text-completion-openai``, Cohere's chat models ``cohere_chat``."""
    if provider == "openai" and (model.startswith("gpt-3.5-turbo-instruct") or model in ("babbage-002", "davinci-002")):
        return "text-completion-openai"
    if provider == "cohere" and model.startswith(("command-r", "command-a")):
        return "cohere_chat"
    return provider

