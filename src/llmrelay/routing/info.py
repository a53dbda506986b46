"""``Router.get_model_group_info``: what a model group's deployments can do, as LiteLLM's
``ModelGroupInfo`` says it.

Each deployment is described by the model table (:func:`llmrelay.cost.get_model_info` of its
``model_info.base_model`` or its model) overridden by its own ``model_info`` and prices; the
group gets the largest windows and prices of its deployments, a capability when any deployment
has it, and the sum of their rpm/tpm.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..types import OpenAIObject
from .deployment import Deployment, provider_of

__all__ = ["ModelGroupInfo", "group_info"]

#: Capabilities reported for the group (True when any deployment has it).
_SUPPORTS = ("supports_parallel_function_calling", "supports_vision", "supports_web_search",
             "supports_reasoning", "supports_function_calling")
#: Numbers reported as the largest among the deployments.
_LARGEST = ("max_input_tokens", "max_output_tokens", "input_cost_per_token", "output_cost_per_token")


class ModelGroupInfo(OpenAIObject):
    """LiteLLM's ``ModelGroupInfo`` (the fields llmrelay can fill), read by attribute or key."""

    _schema = ("model_group", "providers", *_LARGEST, "mode", "tpm", "rpm", *_SUPPORTS, "supported_openai_params")


def _deployment_info(dep: Deployment) -> dict[str, Any]:
    from ..cost import PRICE_KEYS, get_model_info

    model = dep.model_info.get("base_model") or dep.model
    try:
        info = dict(get_model_info(model))
    except (ValueError, TypeError):  # a model the table does not know
        info = {}
    info.update({k: v for k, v in dep.model_info.items() if v is not None})
    info.update({k: v for k, v in dep.litellm_params.items() if k in PRICE_KEYS and v is not None})
    return info


def group_info(model_group: str, deps: Iterable[Deployment]) -> ModelGroupInfo:
    """The :class:`ModelGroupInfo` of ``deps``, the deployments of ``model_group``."""
    from ..providers.registry import get_supported_openai_params

    fields: dict[str, Any] = {"model_group": model_group, "providers": [], "mode": "chat", "tpm": None, "rpm": None,
                              "supported_openai_params": []}
    fields.update(dict.fromkeys(_LARGEST))
    fields.update(dict.fromkeys(_SUPPORTS, False))
    params: set[str] = set()
    for dep in deps:
        info = _deployment_info(dep)
        provider = provider_of(dep)
        if provider is not None and provider not in fields["providers"]:
            fields["providers"].append(provider)
        for key in _LARGEST:
            value = info.get(key)
            if isinstance(value, (int, float)) and (fields[key] is None or value > fields[key]):
                fields[key] = value
        for key in _SUPPORTS:
            fields[key] = fields[key] or bool(info.get(key))
        if info.get("mode"):
            fields["mode"] = info["mode"]
        for key in ("tpm", "rpm"):
            value = getattr(dep, key)
            if value is not None:
                fields[key] = int((fields[key] or 0) + value)
        params.update(get_supported_openai_params(dep.model, dep.litellm_params.get("custom_llm_provider")) or ())
    fields["supported_openai_params"] = sorted(params)
    return ModelGroupInfo(**fields)
