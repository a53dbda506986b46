"""Bedrock ``InvokeModel`` for embeddings (docs.aws.amazon.com/bedrock, model parameters):

* Amazon Titan (``amazon.titan-embed-*``): one text per request, ``{"inputText", "dimensions"}``
  → ``{"embedding": [...], "inputTextTokenCount"}``;
* Cohere Embed (``cohere.embed-*``): ``{"texts": [...], "input_type"}`` (at most 96) →
  ``{"embeddings": [[...]]}`` (no token count: counted offline).

Requests are SigV4-signed (or carry a Bedrock API key) exactly like the chat provider's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from ..providers.base import HttpRequest
from ..providers.common import first_env, load_object
from .base import Codec, EmbedCall, parsed
from .cohere import DEFAULT_INPUT_TYPE

__all__ = ["BedrockCodec"]


def _is_cohere(model: str) -> bool:
    return "cohere.embed" in model


class BedrockCodec(Codec):
    max_batch = 96  # Cohere Embed's limit; Titan takes one text per request

    def batch_size(self, call: EmbedCall) -> int:
        return 96 if _is_cohere(call.model) else 1

    def build(self, call: EmbedCall, batch: list[Any]) -> HttpRequest:
        from ..providers import registry

        provider = registry.get_provider("bedrock")
        chat = call.chat
        region = provider.region(chat)
        base = chat.api_base or chat.extra.get("aws_bedrock_runtime_endpoint") or first_env(("AWS_BEDROCK_RUNTIME_ENDPOINT",))
        base = (base or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        url = f"{base}/model/{quote(call.model, safe='')}/invoke"
        if _is_cohere(call.model):
            payload: dict[str, Any] = {"texts": batch, "input_type": call.extra.get("input_type") or DEFAULT_INPUT_TYPE}
            if call.extra.get("truncate"):
                payload["truncate"] = call.extra["truncate"]
        else:
            payload = {"inputText": batch[0]}
            if call.dimensions is not None:
                payload["dimensions"] = call.dimensions
            if call.extra.get("normalize") is not None:
                payload["normalize"] = call.extra["normalize"]
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json", "Accept": "application/json", **chat.extra_headers}
        token = chat.api_key or first_env(("AWS_BEARER_TOKEN_BEDROCK",))
        if token:
            headers["Authorization"] = f"Bearer {token}"
            return HttpRequest("POST", url, headers, body)
        return HttpRequest("POST", url, provider.sign(chat, region, url, headers, body), body)

    def parse(self, call: EmbedCall, body: bytes, batch: list[Any]) -> tuple[list[list[float]], int | None]:
        data = load_object(body, call.provider, call.model)
        if _is_cohere(call.model):
            embeddings = parsed(data.get("embeddings"), "embeddings", call, body)
            if isinstance(embeddings, dict):
                embeddings = parsed(embeddings.get("float"), "float embeddings", call, body)
            return embeddings, None
        return [parsed(data.get("embedding"), "embedding", call, body)], data.get("inputTextTokenCount")
