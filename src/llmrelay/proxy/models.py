"""The models the gateway serves: public names → deployments, called through the Router.

Every ``model_name`` group is a :class:`~llmrelay.router.Router` model group, and
``router_settings`` configure it.
"""

from __future__ import annotations

from typing import Any, Awaitable

from ..router import Router
from ..routing.names import visible_aliases
from .config import ConfigError, ProxyConfig
from .shared import router_options

__all__ = ["ModelTable"]

class ModelTable:
    """Public model names and how to call them."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.router: Any = None  # set whenever there is a name to serve
        if config.deployments:
            model_list = [
                {"model_name": d.model_name, "litellm_params": dict(d.litellm_params), "model_info": dict(d.model_info)}
                for d in config.deployments
            ]
            default_parallel = config.general_settings.get("max_parallel_requests")
            if default_parallel is not None:  # (LiteLLM's per-deployment default; a deployment's own wins)
                for entry in model_list:
                    entry["litellm_params"].setdefault("max_parallel_requests", default_parallel)
            try:
                self.router = Router(model_list=model_list, **router_options(config.router_settings))
            except (TypeError, ValueError) as exc:
                where = config.path or "<config>"
                raise ConfigError(f"{where}: router_settings: {exc}. Check the keys and values under router_settings.") from None
        self.refresh_names()

    def refresh_names(self) -> None:
        """Work out the served names again (after ``config.deployments`` changed)."""
        aliases = self.router.model_group_alias if self.router is not None else {}
        #: What /v1/models lists: the groups, then the aliases that are not hidden.
        self.names = list(dict.fromkeys([*self.config.model_names, *visible_aliases(aliases)]))
        self._known = frozenset(self.names)

    def __contains__(self, name: object) -> bool:
        """Served: a listed name, a hidden alias or a name a wildcard group matches."""
        return name in self._known or (self.router is not None and self.router.has_group(name))

    def acall(self, request: Any) -> Awaitable[Any]:
        """Call the model group for a canonical request (:class:`~.ingress.CanonicalRequest`):
        awaited for the answer (a chat call is the router's coroutine itself, one less per request)."""
        if request.kind == "chat":
            return self.router.acompletion(model=request.model, messages=request.messages,
                                           stream=request.stream, **request.params)
        return self._acall(request)

    async def _acall(self, request: Any) -> Any:
        kind = request.kind
        if kind == "chat":
            return await self.router.acompletion(model=request.model, messages=request.messages,
                                                 stream=request.stream, **request.params)
        if kind == "embedding":
            return await self.router.aembedding(model=request.model, input=request.input, **request.params)
        if kind == "count_tokens":
            from ..tokens import token_counter

            return token_counter(request.model, messages=request.messages, tools=request.input.get("tools"))
        raise ValueError(f"unknown request kind {kind!r}")
