"""OpenAI-compatible hosts as a table: default api_base, API-key variable, parameter limits."""

from __future__ import annotations

from dataclasses import dataclass

from .openai import OpenAIProvider

__all__ = ["Host", "HOSTS", "make_provider"]


@dataclass(frozen=True)
class Host:
    api_base: str | None  # None: the user must give one (a self-hosted server)
    api_key_env: tuple[str, ...] = ()
    api_base_env: tuple[str, ...] = ()
    requires_key: bool = False
    unsupported_params: frozenset[str] = frozenset()


HOSTS: dict[str, Host] = {
    "hosted_vllm": Host(None, ("HOSTED_VLLM_API_KEY",), ("HOSTED_VLLM_API_BASE",)),
}


def make_provider(prefix: str) -> OpenAIProvider:
    """An OpenAI provider configured from :data:`HOSTS`."""
    host = HOSTS[prefix]
    provider = OpenAIProvider(prefix)
    provider.default_api_base = host.api_base
    provider.api_key_env = host.api_key_env
    provider.api_base_env = host.api_base_env
    provider.requires_key = host.requires_key
    if host.unsupported_params:
        from .base import OPENAI_PARAMS

        provider.supported_params = OPENAI_PARAMS - host.unsupported_params
    return provider
