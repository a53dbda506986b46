"""``general_settings.allowed_routes`` and ``admin_only_routes``: which paths the gateway exposes,
and which only the master key may call (LiteLLM's route controls).

Sans-I/O: :class:`RoutePolicy` answers for a request path. Entries are paths (``/chat/completions``),
patterns with ``{placeholders}`` (``/v1/responses/{response_id}``) or LiteLLM's route groups
(``LiteLLMRoutes.public_routes``, ``LiteLLMRoutes.openai_routes``/``llm_api_routes``,
``LiteLLMRoutes.info_routes``, ``LiteLLMRoutes.management_routes``,
``LiteLLMRoutes.spend_tracking_routes``). A path and its ``/v1`` form are the same route here
(LiteLLM matches them separately, so ``allowed_routes: ["/chat/completions"]`` there refuses
the openai SDK's ``/v1/chat/completions``).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

__all__ = ["RoutePolicy", "ROUTE_GROUPS", "parse_routes"]

#: LiteLLM's route-group names → the gateway's paths of that kind (without ``/v1``).
ROUTE_GROUPS: dict[str, tuple[str, ...]] = {
    "public_routes": ("/", "/health/liveliness", "/health/liveness", "/health/readiness", "/metrics",
                      "/openapi.json"),
    "openai_routes": ("/chat/completions", "/completions", "/embeddings", "/responses", "/responses/{id}",
                      "/messages", "/messages/count_tokens", "/models", "/models/{model}", "/model/info"),
    "info_routes": ("/key/info", "/user/info", "/team/info", "/customer/info", "/end_user/info", "/model/info",
                    "/models", "/budget/info", "/health"),
    "management_routes": ("/key/{action}", "/key/{key}/regenerate", "/team/{action}", "/team/model/{action}",
                          "/user/{action}", "/customer/{action}", "/end_user/{action}", "/budget/{action}",
                          "/model/new", "/model/update", "/model/delete"),
    "spend_tracking_routes": ("/spend/logs", "/global/spend/report"),
}
ROUTE_GROUPS["llm_api_routes"] = ROUTE_GROUPS["openai_routes"]
ROUTE_GROUPS["global_spend_tracking_routes"] = ROUTE_GROUPS["spend_tracking_routes"]

_GROUP_PREFIX = "LiteLLMRoutes."


def _canonical(path: str) -> str:
    path = path.rstrip("/") or "/"
    return path[3:] if path.startswith("/v1/") else path


def _pattern(route: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(_canonical(route))) + "$")


def parse_routes(value: Any, what: str) -> tuple[list[str], list[str]]:
    """(the routes of ``value``, group names that are not known); ValueError when not a list of paths."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{what} must be a list of route paths (e.g. /chat/completions) or LiteLLMRoutes.<group> "
                         f"names, got {value!r}")
    routes: list[str] = []
    unknown: list[str] = []
    for entry in (v.strip() for v in value):
        if entry.startswith(_GROUP_PREFIX):
            group = ROUTE_GROUPS.get(entry[len(_GROUP_PREFIX):])
            if group is None:
                unknown.append(entry)
            else:
                routes.extend(group)
        elif not entry.startswith("/"):
            raise ValueError(f"{what}: {entry!r} is neither a path (starting with /) nor a LiteLLMRoutes.<group> name")
        else:
            routes.append(entry)
    return routes, unknown


class _Routes:
    __slots__ = ("exact", "patterns")

    def __init__(self, routes: Iterable[str]) -> None:
        routes = list(routes)
        self.exact = frozenset(_canonical(r) for r in routes if "{" not in r)
        self.patterns = tuple(_pattern(r) for r in routes if "{" in r)

    def __contains__(self, path: str) -> bool:
        path = _canonical(path)
        return path in self.exact or any(p.match(path) for p in self.patterns)


class RoutePolicy:
    """The two lists; None for a list the config does not set."""

    __slots__ = ("allowed", "admin_only")

    def __init__(self, allowed: Iterable[str] | None = None, admin_only: Iterable[str] | None = None) -> None:
        self.allowed = None if allowed is None else _Routes(allowed)
        self.admin_only = None if admin_only is None else _Routes(admin_only)

    def exposed(self, path: str) -> bool:
        """Whether ``allowed_routes`` (if set) exposes ``path``."""
        return self.allowed is None or path in self.allowed

    def admin_only_route(self, path: str) -> bool:
        """Whether only the master key may call ``path``."""
        return self.admin_only is not None and path in self.admin_only
