"""``GET /v1/model/info`` (and ``/model/info``): each served deployment as LiteLLM shows it.

``{"data": [{"model_name", "litellm_params", "model_info"}, …]}``, with only what a client may
see: the model string and the routing settings of ``litellm_params`` (never the host, the key,
headers or any other connection setting) and the descriptive ``model_info`` fields.
"""

from __future__ import annotations

from typing import Any

from . import config_keys
from .config import ProxyConfig

__all__ = ["model_info_list", "SHOWN_PARAMS"]

#: ``litellm_params`` keys a client may see.
SHOWN_PARAMS = ("model", "custom_llm_provider", "rpm", "tpm", "order", "weight", "tags", "region_name",
                "max_parallel_requests", "cooldown_time", "input_cost_per_token", "output_cost_per_token")
_COSTS = ("input_cost_per_token", "output_cost_per_token")


def model_info_list(config: ProxyConfig, mode_default: str = "chat", ids: list[str] | None = None) -> list[dict[str, Any]]:
    """The ``data`` list of ``/model/info``, in config order. ``ids``: the router's deployment
    ids in the same order (``model_info.id``, generated when the config has none: the
    ``x-litellm-model-id`` response header's value, as in LiteLLM)."""
    from .config import _secret_name

    shown_info = config_keys.MODEL_INFO.all() - {"key"}
    out = []
    if ids is not None and len(ids) != len(config.deployments):
        ids = None
    for i, dep in enumerate(config.deployments):
        params = {k: dep.litellm_params[k] for k in SHOWN_PARAMS if k in dep.litellm_params}
        info: dict[str, Any] = {} if ids is None else {"id": ids[i]}
        info.update((k, v) for k, v in dep.model_info.items() if k in shown_info and not _secret_name(k))
        info.setdefault("mode", mode_default)
        for key in _COSTS:
            if key not in info and key in params:
                info[key] = params[key]
        info.setdefault("litellm_provider", dep.provider)
        for key, value in _table_facts(info.get("base_model") or dep.litellm_params["model"], dep.provider).items():
            info.setdefault(key, value)
        out.append({"model_name": dep.model_name, "litellm_params": params, "model_info": info})
    return out


def _table_facts(model: str, provider: str | None) -> dict[str, Any]:
    """LiteLLM fills ``model_info`` from its price table: context windows, prices, ``supports_*``
    (the config's own values win). Nothing for a model the table does not know."""
    from ..cost import ModelNotMappedError, get_model_info

    if not isinstance(model, str):
        return {}
    try:
        facts = get_model_info(model, provider if provider and not model.startswith(provider + "/") else None)
    except (ModelNotMappedError, TypeError):
        return {}
    facts.pop("source", None)
    facts.pop("litellm_provider", None)
    return facts

