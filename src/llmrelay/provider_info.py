"""LiteLLM's questions about a model string, answered from llmrelay's provider table.

``get_llm_provider`` (LiteLLM's 4-tuple) and the ``OPENAI_CHAT_COMPLETION_PARAMS`` list
(``get_supported_openai_params`` is in :mod:`llmrelay.providers.registry`). No I/O: only the provider table is consulted.
"""

from __future__ import annotations

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
    provider, provider_model = registry.resolve(model, custom_llm_provider)
    if api_base is None:
        host = getattr(registry.get_provider(provider), "host", None)
        default = getattr(host, "api_base", None)
        if isinstance(default, str) and "{" not in default:
            api_base = default
    return provider_model, provider, api_key, api_base

