"""Which ingress answers which path (the gateway's table of APIs)."""

from __future__ import annotations

from . import Ingress
from .anthropic import CountTokensIngress, MessagesIngress
from .chat import ChatIngress
from .completions import CompletionsIngress
from .embeddings import EmbeddingsIngress
from .responses import ResponsesIngress

__all__ = ["CHAT", "ingress_table", "served_endpoints"]

#: The chat-completions ingress (stateless; also the error shape of non-API paths).
CHAT = ChatIngress()

#: Endpoints that are not ingresses (answered by the app itself).
_OTHER = ("GET /v1/models", "GET /v1/models/{model}", "GET /v1/model/info", "GET|DELETE /v1/responses/{id}", "GET /health", "GET /health/liveliness",
          "GET /health/readiness",
          "GET /openapi.json")


def ingress_table() -> dict[str, Ingress]:
    """Request path → the ingress answering it (POST); fresh instances (state is per app)."""
    ingresses: tuple[Ingress, ...] = (CHAT, MessagesIngress(), CountTokensIngress(), ResponsesIngress(),
                                    EmbeddingsIngress(), CompletionsIngress())
    return {path: ingress for ingress in ingresses for path in ingress.paths}


_PATHS = sorted(p for p in ingress_table() if p.startswith("/v1/"))


def served_endpoints() -> str:
    """Every endpoint this gateway answers, for the 404 message."""
    return ", ".join([*(f"POST {p}" for p in _PATHS), *_OTHER])
