"""Which deployments a requested model name means, beyond exact group names.

LiteLLM's config features, kept out of the router's hot path:

* ``model_group_alias``: ``{"gpt-4": "gpt-4o"}`` or ``{"gpt-4": {"model": "gpt-4o", "hidden": true}}``
  (a hidden alias is served but not listed);
* wildcard groups: ``model_name: "openai/*"`` (or ``"*"``) with ``litellm_params.model:
  "openai/*"`` (or ``"*"``): a request for ``openai/gpt-4o`` is served by a deployment made
  from the group's own, with the ``*`` of its model replaced by the requested part. The host
  and the key are always the configured ones; a catch-all ``model: "*"`` lets the client pick
  the provider, so it may not reach a provider on the gateway's own machine without a configured
  ``api_base``;
* ``order``: only the available deployments of the lowest order are candidates;
* tags: a request's ``tags`` (or ``metadata.tags``) pick the deployments carrying one of them;
  an untagged request goes to deployments tagged ``default`` when the group has some.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Iterable

from ..exceptions import BadRequestError, NotFoundError
from .deployment import Deployment

__all__ = ["parse_aliases", "Wildcards", "lowest_order", "request_tags", "by_tags"]

#: A requested model name a wildcard may put into a deployment's model (no path tricks).
_SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+\-]*")
#: Providers whose default host is on the gateway's machine or network: a catch-all ``*``
#: deployment reaches them only through a configured api_base.
LOCAL_PROVIDERS = frozenset(
    {"local", "ollama", "ollama_chat", "lm_studio", "llamacpp", "hosted_vllm", "vllm", "openai_like",
     "custom_openai", "text-completion-openai"}
)
_CACHE_SIZE = 256


def parse_aliases(value: Any) -> dict[str, tuple[str, bool]]:
    """``model_group_alias`` → ``{alias: (group, hidden)}``."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"model_group_alias must be a mapping alias: group, got {value!r}")
    out: dict[str, tuple[str, bool]] = {}
    for alias, target in value.items():
        hidden = False
        if isinstance(target, dict):
            hidden = bool(target.get("hidden", False))
            target = target.get("model")
        if not isinstance(alias, str) or not isinstance(target, str) or not target:
            raise ValueError(f"model_group_alias[{alias!r}] must name a model group, got {target!r}")
        out[alias] = (target, hidden)
    return out


def lowest_order(candidates: list[Deployment]) -> list[Deployment]:
    """The candidates of the lowest ``order`` (deployments without one come after all that have one)."""
    if len(candidates) < 2:
        return candidates
    orders = [d.order for d in candidates if d.order is not None]
    if not orders:
        return candidates
    best = min(orders)
    return [d for d in candidates if d.order == best]


_NO_TAGS: frozenset[str] = frozenset()


def request_tags(kwargs: dict[str, Any]) -> frozenset[str]:
    """Pop a call's ``tags`` (also read ``metadata.tags``): the tags it asks for."""
    value = kwargs.pop("tags", None)
    metadata = kwargs.get("metadata")
    if value is None and metadata is None:
        return _NO_TAGS
    tags: list[Any] = []
    for source in (value, metadata.get("tags") if isinstance(metadata, dict) else None):
        if isinstance(source, str):
            tags.append(source)
        elif isinstance(source, (list, tuple)):
            tags.extend(t for t in source if isinstance(t, str))
    return frozenset(tags)


def by_tags(group: str, deps: list[Deployment], tags: frozenset[str]) -> list[Deployment]:
    """The deployments of ``group`` a request with ``tags`` may use."""
    if not any(d.tags for d in deps):
        return deps
    if tags:
        matched = [d for d in deps if d.tags & tags]
        if matched:
            return matched
    default = [d for d in deps if "default" in d.tags]
    if default:
        return default
    if not tags:
        return deps
    raise BadRequestError(
        f"No deployment of {group!r} carries any of the tags {sorted(tags)}.",
        model=group, code="no_deployment_for_tags",
    )


class Wildcards:
    """Wildcard groups (names containing ``*``) and the deployments made from them per name."""

    def __init__(self, groups: dict[str, list[Deployment]]) -> None:
        names = [name for name in groups if "*" in name]
        # the most specific pattern first: "openai/*" before "*"
        names.sort(key=lambda n: len(n.replace("*", "")), reverse=True)
        self.patterns = [(re.compile(re.escape(n).replace(r"\*", "(.+)")), n) for n in names]
        self._made: OrderedDict[str, list[Deployment]] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, model: Any) -> bool:
        return isinstance(model, str) and any(p.fullmatch(model) for p, _ in self.patterns)

    def made(self) -> list[Deployment]:
        """The deployments made so far (and still cached) for names matching a pattern."""
        return [dep for deps in list(self._made.values()) for dep in deps]

    def deployments(self, model: Any, groups: dict[str, list[Deployment]]) -> list[Deployment] | None:
        """The deployments serving ``model`` through a wildcard group (None: no pattern matches)."""
        if not self.patterns or not isinstance(model, str):
            return None
        made = self._made.get(model)
        if made is not None:
            self._made.move_to_end(model)
            return made
        for pattern, name in self.patterns:
            match = pattern.fullmatch(model)
            if match is not None:
                made = [_concrete(dep, model, match.groups()) for dep in groups.get(name, ())]
                if made:
                    self._made[model] = made
                    if len(self._made) > _CACHE_SIZE:
                        self._made.popitem(last=False)
                    return made
        return None


def _concrete(dep: Deployment, model: str, parts: tuple[str, ...]) -> Deployment:
    """``dep`` (of a wildcard group) serving ``model``, the group name's wildcards standing for
    ``parts``: the deployment's ``*``s take them in order when it has as many (LiteLLM's
    ``fo::*:static::*`` → ``openai/fo::*:static::*``), else each takes the first."""
    from ..providers import registry

    for part in parts:
        if not _SAFE_PART.fullmatch(part) or ".." in part:
            raise _not_served(model, "the name has characters a model name cannot have")
    target = dep.model
    if "*" in target:
        pieces = target.split("*")
        if len(pieces) - 1 == len(parts):
            target = pieces[0] + "".join(part + piece for part, piece in zip(parts, pieces[1:]))
        else:
            target = target.replace("*", parts[0])
    params = dep.litellm_params
    try:
        provider, _ = registry.resolve(target, params.get("custom_llm_provider"))
    except BadRequestError as exc:
        raise _not_served(model, exc.message) from None
    if dep.model == "*" and not dep.api_base:
        # the client picks the provider: never a host on the gateway's machine, never a key
        # configured for one provider sent to another
        if provider in LOCAL_PROVIDERS:
            raise _not_served(model, f"the provider {provider!r} is not reachable through a '*' deployment")
        if params.get("api_key"):
            raise _not_served(model, "a '*' deployment with an api_key needs an api_base")
    entry = {
        "model_name": model,
        "litellm_params": {**params, "model": target},
        "model_info": {**dep.model_info, "id": f"{dep.id}/{model}"},
    }
    return Deployment(entry, 0)


def _not_served(model: str, why: str) -> NotFoundError:
    return NotFoundError(f"The model {model!r} is not served here: {why}.", model=model,
                         code="model_not_found", param="model", error_type="invalid_request_error")


def visible_aliases(aliases: dict[str, tuple[str, bool]]) -> Iterable[str]:
    return (alias for alias, (_, hidden) in aliases.items() if not hidden)
