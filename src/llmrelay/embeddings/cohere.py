"""Cohere ``POST /v2/embed`` (docs.cohere.com, Embed v2): ``texts``, ``input_type``,
``embedding_types: ["float"]``, ``output_dimension`` → ``embeddings.float`` and
``meta.billed_units.input_tokens``. At most 96 texts per request."""

from __future__ import annotations

from typing import Any

from ..providers.base import HttpRequest
from ..providers.common import first_env, load_object, post_json, require_key
from .base import Codec, EmbedCall, parsed

__all__ = ["CohereCodec", "DEFAULT_INPUT_TYPE"]

#: Cohere requires ``input_type`` for v3+ models; documents is what an OpenAI-style caller means.
DEFAULT_INPUT_TYPE = "search_document"


class CohereCodec(Codec):
    max_batch = 96

    def build(self, call: EmbedCall, batch: list[Any]) -> HttpRequest:
        from ..providers.cohere import _KEY_ENV, DEFAULT_API_BASE

        chat = call.chat
        base = (chat.api_base or first_env(("COHERE_API_BASE",)) or DEFAULT_API_BASE).rstrip("/")
        base = base.removesuffix("/v2/chat").removesuffix("/v1/chat").removesuffix("/v2")
        key = chat.api_key or first_env(_KEY_ENV)
        if base == DEFAULT_API_BASE:
            key = require_key(key, call.provider, call.model, _KEY_ENV)
        body: dict[str, Any] = {"model": call.model, "texts": batch, "embedding_types": ["float"],
                                "input_type": call.extra.get("input_type") or DEFAULT_INPUT_TYPE}
        if call.dimensions is not None:
            body["output_dimension"] = call.dimensions
        if call.extra.get("truncate"):
            body["truncate"] = call.extra["truncate"]
        return post_json(chat, base + "/v2/embed", {"Authorization": f"Bearer {key}"} if key else {}, body)

    def parse(self, call: EmbedCall, body: bytes, batch: list[Any]) -> tuple[list[list[float]], int | None]:
        data = load_object(body, call.provider, call.model)
        embeddings = parsed(data.get("embeddings"), "embeddings", call, body)
        vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
        billed = (data.get("meta") or {}).get("billed_units") or {}
        return parsed(vectors, "float embeddings", call, body), billed.get("input_tokens")
