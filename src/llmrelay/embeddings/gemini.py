"""Gemini API ``batchEmbedContents`` (ai.google.dev, Embeddings): one request per batch of 100.

``{"requests": [{"model": "models/<m>", "content": {"parts": [{"text"}]}, "taskType",
"outputDimensionality"}]}`` → ``{"embeddings": [{"values": [...]}]}``; no token counts
(usage is counted offline).
"""

from __future__ import annotations

from typing import Any

from ..providers.base import HttpRequest
from ..providers.common import first_env, load_object, post_json
from .base import Codec, EmbedCall, parsed

__all__ = ["GeminiCodec"]


class GeminiCodec(Codec):
    max_batch = 100

    def build(self, call: EmbedCall, batch: list[Any]) -> HttpRequest:
        from ..providers import registry
        from ..providers.gemini import GEMINI_BASE

        provider = registry.get_provider("gemini")
        base = (call.chat.api_base or first_env(("GEMINI_API_BASE",)) or GEMINI_BASE).rstrip("/")
        if not base.rsplit("/", 1)[-1].startswith("v1"):
            base += "/v1beta"
        url = f"{base}/models/{call.model}:batchEmbedContents"
        requests = []
        for text in batch:
            item: dict[str, Any] = {"model": f"models/{call.model}", "content": {"parts": [{"text": text}]}}
            if call.dimensions is not None:
                item["outputDimensionality"] = call.dimensions
            task = call.extra.get("task_type")
            if task:
                item["taskType"] = task
            requests.append(item)
        return post_json(call.chat, url, provider.auth_headers(call.chat), {"requests": requests})

    def parse(self, call: EmbedCall, body: bytes, batch: list[Any]) -> tuple[list[list[float]], int | None]:
        data = load_object(body, call.provider, call.model)
        embeddings = parsed(data.get("embeddings"), "embeddings", call, body)
        return [parsed(e.get("values"), "values", call, body) for e in embeddings], None
