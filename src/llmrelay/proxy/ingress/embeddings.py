"""``/v1/embeddings``: OpenAI's embeddings API, answered by :func:`llmrelay.aembedding` through
the Router (every provider of :mod:`llmrelay.embeddings`). Nothing to translate: the canonical
embeddings call is OpenAI's."""

from __future__ import annotations

from typing import Any

import orjson

from ...embeddings import EMBEDDING_PARAMS
from ...types import json_default
from . import CanonicalRequest, Ingress, IngressError, StreamEncoder
from .chat import take_model

__all__ = ["EmbeddingsIngress"]


class EmbeddingsIngress(Ingress):
    """OpenAI's ``POST /v1/embeddings``."""

    name = "embeddings"
    summary = "OpenAI embeddings (any configured embeddings provider)"
    paths = frozenset({"/v1/embeddings", "/embeddings"})
    known_params = EMBEDDING_PARAMS

    def parse(self, data: dict[str, Any]) -> CanonicalRequest:
        model = take_model(data)
        value = data.pop("input", None)
        if value is None:
            raise IngressError("Missing required parameter: 'input'.", param="input")
        if data.pop("stream", None):
            raise IngressError("Embeddings cannot be streamed.", param="stream")
        return CanonicalRequest(model, None, False, data, kind="embedding", input=value)

    def response_body(self, result: Any, request: CanonicalRequest) -> bytes:
        result.model = request.model
        return orjson.dumps(result, default=json_default)

    def encoder(self, request: CanonicalRequest) -> StreamEncoder:  # pragma: no cover - never streamed
        raise IngressError("Embeddings cannot be streamed.", param="stream")
