"""Which ingress answers which path (the gateway's table of APIs)."""

from __future__ import annotations

from . import Ingress
from .anthropic import CountTokensIngress, MessagesIngress
from .chat import ChatIngress

__all__ = ["INGRESSES", "served_endpoints"]

_ALL: tuple[Ingress, ...] = (ChatIngress(), MessagesIngress(), CountTokensIngress())

#: Request path → the ingress answering it (POST).
INGRESSES: dict[str, Ingress] = {path: ingress for ingress in _ALL for path in ingress.paths}

#: Endpoints that are not ingresses (answered by the app itself).
_OTHER = ("GET /v1/models", "GET /v1/models/{model}", "GET /health/liveliness", "GET /health/readiness",
          "GET /openapi.json")


def served_endpoints() -> str:
    """Every endpoint this gateway answers, for the 404 message."""
    posts = sorted(p for p in INGRESSES if p.startswith("/v1/"))
    return ", ".join([*(f"POST {p}" for p in posts), *_OTHER])
