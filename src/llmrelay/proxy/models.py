"""The models the gateway serves: public names → deployments, called through the Router.

Every ``model_name`` group is a :class:`~llmrelay.router.Router` model group, and
``router_settings`` configure it.
"""

from __future__ import annotations

import re
from typing import Any

from ..router import Router
from .config import ConfigError, ProxyConfig

__all__ = ["ModelTable", "client_param_refused"]

#: Request keys that configure where and how the upstream is called: set by the operator in the
#: config, never by a client (a client-chosen api_base would receive the configured api_key).
_REFUSED = frozenset(
    {
        "api_base", "base_url", "api_key", "api_version", "custom_llm_provider", "extra_headers",
        "headers", "mock_response", "num_retries", "max_retries", "timeout", "request_timeout",
        "stream_timeout", "organization", "azure_ad_token", "model_list", "litellm_params",
    }
)
#: Also refused: credentials anywhere in a name, and provider connection settings (a region,
#: location or project picks the host the configured credentials are sent to; a local model's
#: path and sizes pick files and memory on the gateway's machine).
_REFUSED_PATTERN = re.compile(
    r"api_key|access_key|secret|_token$|credential|password|api_base|endpoint|^(aws|vertex|azure|gcp|google)_"
    r"|region|location|project|profile|^model_path$|^n_(ctx|threads|gpu_layers|batch)$"
)


def client_param_refused(key: str) -> bool:
    """Whether a client may not set this request key."""
    return key in _REFUSED or bool(_REFUSED_PATTERN.search(key))


class ModelTable:
    """Public model names and how to call them."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.names = config.model_names
        self._known = frozenset(self.names)
        self.router: Any = None  # set whenever there is a name to serve
        if config.deployments:
            model_list = [
                {"model_name": d.model_name, "litellm_params": dict(d.litellm_params), "model_info": dict(d.model_info)}
                for d in config.deployments
            ]
            try:
                self.router = Router(model_list=model_list, **config.router_settings)
            except (TypeError, ValueError) as exc:
                where = config.path or "<config>"
                raise ConfigError(f"{where}: router_settings: {exc}. Check the keys and values under router_settings.") from None

    def __contains__(self, name: object) -> bool:
        return name in self._known

    async def acompletion(self, name: str, messages: Any, stream: bool, params: dict[str, Any]) -> Any:
        """Call the model group ``name`` (same return types as ``llmrelay.acompletion``)."""
        return await self.router.acompletion(model=name, messages=messages, stream=stream, **params)
