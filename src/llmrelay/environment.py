"""LiteLLM's ``validate_environment``: which environment variables a model's provider still needs.

Each provider needs a few settings; a setting is present when any of the environment
variables llmrelay reads for it is set, and is reported missing under its first (LiteLLM's)
name. Providers with a default local server (Ollama, LM Studio, llama.cpp) need nothing.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["validate_environment", "required_env"]

#: provider → the settings it needs, each as the environment variables read for it.
_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "openai": (("OPENAI_API_KEY",),),
    "text-completion-openai": (("OPENAI_API_KEY",),),
    "azure": (("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"), ("AZURE_API_VERSION", "OPENAI_API_VERSION"),
              ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY")),
    "anthropic": (("ANTHROPIC_API_KEY",),),
    "gemini": (("GEMINI_API_KEY", "GOOGLE_API_KEY"),),
    "vertex_ai": (("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT"),),
    "bedrock": (("AWS_ACCESS_KEY_ID",), ("AWS_SECRET_ACCESS_KEY",)),
    "cohere": (("COHERE_API_KEY", "CO_API_KEY"),),
    "cohere_chat": (("COHERE_API_KEY", "CO_API_KEY"),),
    "ollama": (),
    "ollama_chat": (),
    "local": (),
}


def required_env(provider: str) -> tuple[tuple[str, ...], ...]:
    """The settings ``provider`` needs from the environment (see the module docstring)."""
    needs = _NEEDS.get(provider)
    if needs is not None:
        return needs
    from .providers.openai_compatible import HOSTS

    host = HOSTS.get(provider)
    if host is None:
        return ()
    out: list[tuple[str, ...]] = []
    if host.api_base is None and host.api_base_env:
        out.append(host.api_base_env)
    if host.requires_key and host.api_key_env:
        out.append(host.api_key_env)
    return tuple(out)


def validate_environment(
    model: str | None = None, api_key: str | None = None, api_base: str | None = None
) -> dict[str, Any]:
    """``{"keys_in_environment": bool, "missing_keys": [...]}`` for ``model``'s provider.

    A given ``api_key`` (``api_base``) stands for the missing ``*_API_KEY`` (``*_API_BASE``)
    variables. No model, or one no provider serves: ``keys_in_environment`` is False and
    nothing is listed, as in LiteLLM.
    """
    nothing: dict[str, Any] = {"keys_in_environment": False, "missing_keys": []}
    if not model:
        return nothing
    from .exceptions import BadRequestError
    from .providers.registry import resolve

    try:
        provider, _ = resolve(model)
    except BadRequestError:
        return nothing
    missing = [names[0] for names in required_env(provider) if not any(os.environ.get(n) for n in names)]
    if api_key is not None:
        missing = [k for k in missing if "api_key" not in k.lower()]
    if api_base is not None:
        missing = [k for k in missing if "api_base" not in k.lower()]
    return {"keys_in_environment": not missing, "missing_keys": missing}
